"""Administrator sign-in: product accounts with administrator rights.

The session cookie is signed, Secure, HttpOnly and SameSite=Strict; it holds
the administrator's name, a fingerprint of their password hash (so a password
change or a deleted account ends every session of theirs) and the time of the
last request (the idle timeout). Until the first administrator exists, every
page leads to first-boot setup."""

from __future__ import annotations

import hashlib
import math
import time

from flask import (Blueprint, current_app, flash, redirect, render_template, request, session,
                   url_for)
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired

from firmware import accounts

from . import context
from .throttle import LoginThrottle

blueprint = Blueprint("auth", __name__)

# Reachable without signing in (static files, the sign-in and setup pages).
PUBLIC_ENDPOINTS = {"static", "auth.login", "setup.setup", "setup.license"}


class LoginForm(FlaskForm):
    name = StringField("Login Name", validators=[DataRequired()], default="admin")
    password = PasswordField("Password", validators=[DataRequired()])


def admin_exists(store) -> bool:
    return store.db.execute("SELECT 1 FROM accounts WHERE is_admin = 1 LIMIT 1").fetchone() is not None


def _fingerprint(store, name: str) -> str | None:
    row = store.db.execute("SELECT password_hash FROM accounts WHERE name = ? AND is_admin = 1",
                           [name]).fetchone()
    return hashlib.sha256(row[0].encode()).hexdigest()[:16] if row else None


def sign_in(store, name: str):
    session.clear()
    session.permanent = True
    session["admin"] = name
    session["fp"] = _fingerprint(store, name)
    session["seen"] = time.time()


def install(app):
    app.extensions["login_throttle"] = LoginThrottle()

    @app.before_request
    def require_admin():
        if request.endpoint in PUBLIC_ENDPOINTS or request.endpoint is None:
            return None
        store = context.store()
        if not admin_exists(store):
            return redirect(url_for("setup.setup"))
        name = session.get("admin")
        now = time.time()
        idle = now - session.get("seen", 0)
        if not name or idle > current_app.config["IDLE_TIMEOUT"] or \
                session.get("fp") != _fingerprint(store, name):
            if name:
                flash("Your session ended; please sign in again.", "warning")
            session.pop("admin", None)
            return redirect(url_for("auth.login", next=request.full_path if request.method == "GET" else None))
        session["seen"] = now
        return None


@blueprint.route("/login", methods=["GET", "POST"])
def login():
    store = context.store()
    if not admin_exists(store):
        return redirect(url_for("setup.setup"))
    form = LoginForm()
    client = request.remote_addr or "?"
    throttle = current_app.extensions["login_throttle"]
    status = 200
    if form.validate_on_submit():
        wait = throttle.wait_seconds(client)
        if wait > 0:
            flash(f"Too many failed sign-ins from {client}; try again in {math.ceil(wait)} seconds.",
                  "error")
            return render_template("login.html", form=form), 429
        name = form.name.data.strip().lower()
        if accounts.authenticate(store, name, form.password.data) and _fingerprint(store, name):
            throttle.succeeded(client)
            sign_in(store, name)
            return redirect(_safe_next(request.args.get("next")))
        throttle.failed(client)
        if throttle.wait_seconds(client) > 60:
            store.audit(f"{client} (web)", "sign-in locked", "", f"after failed attempts as {name}")
        flash("Wrong login name or password, or not an administrator.", "error")
        status = 401
    return render_template("login.html", form=form), status


@blueprint.route("/logout", methods=["POST"])
def logout():
    session.clear()
    flash("Signed out.", "ok")
    return redirect(url_for("auth.login"))


def _safe_next(target: str | None) -> str:
    # Only paths on this box: never an open redirect to another site.
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("dashboard.index")
