"""The Mail Server SoftPak's blueprint, on which its page modules register their views."""

from __future__ import annotations

from flask import Blueprint

blueprint = Blueprint("mailserver", __name__, url_prefix="/users-groups/mail",
                      template_folder="templates")
