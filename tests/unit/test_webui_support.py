"""Helpers (no tests) for the web admin's unit tests: an app on a fresh data directory,
driven with Flask's test client, with CSRF protection on as in production."""

from __future__ import annotations

import re

from firmware import accounts
from firmware.config import Store
from firmware.system import setup_code

PASSWORD = "unit test password"


def make_app(data_dir, admin: bool = True, **options):
    from webui import create_app
    store = Store.create(data_dir)
    if admin:
        accounts.add_user(store, "admin", PASSWORD, admin=True)
    store.close()
    return create_app(data_dir, secure_cookies=False, **options)


def issue_setup_code(data_dir) -> str:
    """The one-time code first-boot setup asks for, as `gatebox setup-code` makes it."""
    store = Store(data_dir)
    try:
        return setup_code.issue(store)
    finally:
        store.close()


def csrf_token(client, path: str) -> str:
    html = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)


def sign_in(client, name: str = "admin", password: str = PASSWORD):
    token = csrf_token(client, "/login")
    return client.post("/login", data={"csrf_token": token, "name": name, "password": password})


def field_rule(html: str, field_id: str) -> str | None:
    match = re.search(rf'id="{field_id}-rule" role="alert">([^<]*)<', html)
    return match.group(1) if match else None
