"""A form that carries only the CSRF token, for buttons that change
something (Test, Update Now, Pass now, Remove), and what a page says when
its token had expired."""

from __future__ import annotations

from flask_wtf import FlaskForm

EXPIRED_FORM = "The form had expired; nothing was done. Try again."


class ButtonForm(FlaskForm):
    """A button that changes something: only a CSRF token."""
