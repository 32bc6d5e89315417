"""The Anti-Spam SoftPak's blueprint, on which its page modules register their views."""

from __future__ import annotations

from flask import Blueprint

blueprint = Blueprint("antispam", __name__, url_prefix="/anti-spam", template_folder="templates")
