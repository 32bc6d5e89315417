"""What the Anti-Spam pages share: the store, the administrator's name for
the audit log, the local domains and users the per-domain and per-user
lists may name, and a form that carries only the CSRF token."""

from __future__ import annotations

from firmware import accounts
from firmware.mail import route
from webui import context
from webui.button_form import EXPIRED_FORM, ButtonForm  # noqa: F401  (the pages take them from here)


def store():
    return context.store()


def actor() -> str:
    return context.actor()


def domains() -> list[str]:
    return sorted(d for d in route.local_domains(store().snapshot()) if d != "*")


def users() -> list[str]:
    return [row["name"] for row in accounts.list_users(store())]
