"""What the Anti-Virus pages share: the store, the administrator's name for
the audit log, and a form that carries only the CSRF token."""

from __future__ import annotations

from flask_wtf import FlaskForm

from webui import context

EXPIRED_FORM = "The form had expired; nothing was done. Try again."


class ButtonForm(FlaskForm):
    """A button that changes something: only a CSRF token."""


def store():
    return context.store()


def actor() -> str:
    return context.actor()
