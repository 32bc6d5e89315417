"""The Email Server menu's blueprint, on which its page modules register their views."""

from __future__ import annotations

from flask import Blueprint

blueprint = Blueprint("email_server", __name__, url_prefix="/email-server")
