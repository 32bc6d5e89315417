"""Administrator sign-in: product accounts with administrator rights.

The session cookie is signed, Secure, HttpOnly and SameSite=Strict; it holds
only a token for a session the box keeps (webui.sessions), so signing out, a
password change, a deleted account or the idle timeout end it on the box.
Until the first administrator exists, every page leads to first-boot setup."""

from __future__ import annotations

import logging

from flask import (Blueprint, current_app, flash, g, redirect, render_template, request, session,
                   url_for)
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired

from firmware import accounts, login_limits, plugins

from . import context, sessions, softpak_pages
from .safe_redirect import local_or_dashboard

blueprint = Blueprint("auth", __name__)
log = logging.getLogger("gatebox.web")

# Reachable without signing in (static files, the sign-in and setup pages).
PUBLIC_ENDPOINTS = {"static", "auth.login", "setup.setup", "setup.license"}


def softpak_public_endpoints(store) -> set:
    """The active SoftPaks' views that carry their own proof (a signed
    token), asked on each request so a lapsed license closes them at once.
    Only views on a SoftPak's own blueprint count: none can open a core page."""
    own = {page["blueprint"].name for page in softpak_pages.pages()}
    found = set()
    try:
        for batch in plugins.active_plugin_manager(store).hook.gatebox_public_endpoints():
            found.update(str(name) for name in batch or ())
    except Exception:
        log.exception("public endpoints of the SoftPaks")
        return set()
    return {name for name in found if name.rpartition(".")[0] in own}


class LoginForm(FlaskForm):
    name = StringField("Login Name", validators=[DataRequired()], default="admin")
    password = PasswordField("Password", validators=[DataRequired()])


def admin_exists(store) -> bool:
    return store.db.execute("SELECT 1 FROM accounts WHERE is_admin = 1 LIMIT 1").fetchone() is not None


def sign_in(store, name: str):
    sessions.start(store, session, name, current_app.config["IDLE_TIMEOUT"])
    g.admin = name


def install(app):
    # The limiter SMTP AUTH and POP3/IMAP use, counting in the database;
    # tests put one with their own clock here.
    app.extensions.setdefault("login_limiter", login_limits.shared)

    @app.before_request
    def require_admin():
        store = context.store()
        public = request.endpoint in PUBLIC_ENDPOINTS or request.endpoint is None or \
            request.endpoint in softpak_public_endpoints(store)
        if public and sessions.COOKIE_KEY not in session:
            return None
        g.admin = sessions.resume(store, session, current_app.config["IDLE_TIMEOUT"])
        if g.admin is None and sessions.COOKIE_KEY in session:
            session.clear()
            if not public:
                flash("Your session ended; please sign in again.", "warning")
        if public or g.admin:
            return None
        if not admin_exists(store):
            return redirect(url_for("setup.setup"))
        return redirect(url_for("auth.login", next=request.full_path if request.method == "GET" else None))


@blueprint.route("/login", methods=["GET", "POST"])
def login():
    store = context.store()
    if not admin_exists(store):
        return redirect(url_for("setup.setup"))
    form = LoginForm()
    client = request.remote_addr or "?"
    limiter = current_app.extensions["login_limiter"]
    status = 200
    if form.validate_on_submit():
        name = form.name.data.strip().lower()
        attempt = limiter.attempt(
            store, login_limits.ADMIN, client, name,
            lambda: accounts.authenticate_admin(store, name, form.password.data)
            and sessions.fingerprint(store, name) is not None, "web")
        if attempt.outcome is login_limits.Outcome.LOCKED:
            flash(f"Sign-in refused: {attempt.lockout.describe(limiter.clock())}. "
                  "Please wait, or ask another administrator to unlock the account.", "error")
            return render_template("login.html", form=form), 429
        if attempt.outcome is login_limits.Outcome.OK:
            sign_in(store, name)
            return redirect(local_or_dashboard(request.args.get("next")))
        flash("Wrong login name or password, or not an administrator.", "error")
        if attempt.lockout is not None:
            flash(f"Sign-in locked: {attempt.lockout.describe(limiter.clock())}.", "error")
        status = 401
    return render_template("login.html", form=form), status


@blueprint.route("/logout", methods=["POST"])
def logout():
    sessions.end(context.store(), session)
    session.clear()
    flash("Signed out.", "ok")
    return redirect(url_for("auth.login"))
