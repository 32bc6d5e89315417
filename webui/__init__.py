"""The web admin (Flask): one blueprint per eSoft menu, plus the pages
installed SoftPaks bring (webui.softpak_pages).

`create_app(data_dir)` builds the application for one box; gunicorn serves it
through `webui.wsgi`, tests call it directly."""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path

from flask import Flask, g, session

from firmware.plugins.status import warnings
from firmware.system.update.versions import running_version

from . import auth, dashboard, help_pages, security, setup, softpak_pages
from .context import store
from .email_server import blueprint as email_server
from .menu import current_page, menu_tree
from .support import blueprint as support
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
    for blueprint in (auth.blueprint, setup.blueprint, dashboard.blueprint, help_pages.blueprint,
                      email_server, users_groups, support, system):
        app.register_blueprint(blueprint)
    security.install(app)
    auth.install(app)
    softpak_pages.install(app)

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
                "signed_in": session.get("admin"), "license_warnings": _license_warnings()}

    return app


def _license_warnings() -> list[str]:
    """Expiry warnings shown on every page an administrator sees."""
    if not session.get("admin"):
        return []
    return warnings(store())


def _secret_key(data_dir: Path) -> bytes:
    """Kept on the data partition so sessions survive a restart of the UI."""
    path = data_dir / SECRET_FILE
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes()  # another worker made it first
    with os.fdopen(fd, "wb") as out:
        out.write(key)
    return key
