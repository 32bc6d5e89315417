"""What the Anti-Spam pages share: the store, the administrator's name for
the audit log, the local domains and users the per-domain and per-user
lists may name, and a form that carries only the CSRF token."""

from __future__ import annotations

from flask_wtf import FlaskForm

from firmware import accounts
from firmware.mail import route
from webui import context

EXPIRED_FORM = "The form had expired; nothing was done. Try again."


class ButtonForm(FlaskForm):
    """A button that changes something: only a CSRF token."""


def store():
    return context.store()


def actor() -> str:
    return context.actor()


def domains() -> list[str]:
    return sorted(d for d in route.local_domains(store().snapshot()) if d != "*")


def users() -> list[str]:
    return [row["name"] for row in accounts.list_users(store())]
