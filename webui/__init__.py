"""The web admin (Flask): one blueprint per eSoft menu, plus the pages
installed SoftPaks bring (webui.softpak_pages).

`create_app(data_dir)` builds the application for one box; gunicorn serves it
through `webui.wsgi`, tests call it directly."""

from __future__ import annotations

import secrets
import sqlite3
import time
from pathlib import Path

from flask import Flask, current_app, g
from markupsafe import escape

from firmware.plugins.status import warnings
from firmware.system import durable, service_state
from firmware.system.update.versions import running_version

from . import admin_access, auth, dashboard, help_pages, security, setup, softpak_pages
from .context import admin_name, store
from .email_server import blueprint as email_server
from .menu import current_page, menu_tree
from .support import blueprint as support
from .support.email_diagnostics import blueprint as email_diagnostics
from .system import blueprint as system
from .users_groups import blueprint as users_groups

IDLE_TIMEOUT_SECONDS = 15 * 60
SECRET_FILE = "webui-secret"


def create_app(data_dir, *, secure_cookies: bool = True, idle_timeout: int = IDLE_TIMEOUT_SECONDS,
               testing: bool = False) -> Flask:
    app = Flask(__name__)
    data_dir = Path(data_dir)
    app.config.update(
        GATEBOX_DATA=data_dir,
        SECRET_KEY=_secret_key(data_dir),
        IDLE_TIMEOUT=idle_timeout,
        TESTING=testing,
        # "__Host-" makes the browser refuse the cookie unless it is Secure,
        # host-only and path=/; plain-HTTP development cannot use that prefix.
        SESSION_COOKIE_NAME="__Host-gatebox" if secure_cookies else "gatebox",
        SESSION_COOKIE_SECURE=secure_cookies,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        PERMANENT_SESSION_LIFETIME=idle_timeout,
        WTF_CSRF_TIME_LIMIT=None,  # the session's idle timeout already bounds it
        MAX_CONTENT_LENGTH=1024 * 1024,
    )
    # First: a client the box does not accept sees nothing else, not even a CSRF refusal.
    admin_access.install(app)
    for blueprint in (auth.blueprint, setup.blueprint, dashboard.blueprint, help_pages.blueprint,
                      email_server, users_groups, support, email_diagnostics, system):
        app.register_blueprint(blueprint)
    security.install(app)
    auth.install(app)
    softpak_pages.install(app)

    # Nothing else can be shown without the settings; this page at least says
    # so, and what the mail services are doing (they retry on their own).
    app.register_error_handler(sqlite3.DatabaseError, _settings_unreadable)

    @app.teardown_appcontext
    def close_store(_error):
        store = g.pop("store", None)
        if store is not None:
            store.close()

    @app.template_filter("datetime")
    def format_datetime(epoch) -> str:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch)) if epoch else "-"

    @app.context_processor
    def common():
        # The slot's stamped version: a re-stamped bundle shows what it is.
        return {"version": running_version(), "menu_tree": menu_tree, "page": current_page(),
                "signed_in": admin_name(), "license_warnings": _license_warnings()}

    return app


def _settings_unreadable(error):
    mail = service_state.read(current_app.config["GATEBOX_DATA"], service_state.MAIL)
    body = (f"<!doctype html><title>Settings unreadable</title><h1>Settings unreadable</h1>"
            f"<p>The settings database cannot be read: {escape(str(error))}.</p>"
            f"<p id=\"mail-services\">Mail services: {escape(mail['state'])}"
            f"{': ' + escape(mail['error']) if mail.get('error') else ''}</p>")
    return body, 503, {"Content-Type": "text/html; charset=utf-8", "Retry-After": "30"}


def _license_warnings() -> list[str]:
    """Expiry warnings shown on every page an administrator sees."""
    if not admin_name():
        return []
    return warnings(store())


def _secret_key(data_dir: Path) -> bytes:
    """Kept on the data partition so sessions survive a restart of the UI."""
    # Made whole or not at all, whichever worker is first: a key file left
    # empty by a power cut would leave no way to sign in.
    data_dir.mkdir(parents=True, exist_ok=True)
    return durable.create_once(data_dir / SECRET_FILE, secrets.token_bytes(32))
