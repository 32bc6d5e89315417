"""The Anti-Virus SoftPak's blueprint, on which its page modules register their views."""

from __future__ import annotations

from flask import Blueprint

blueprint = Blueprint("antivirus", __name__, url_prefix="/anti-virus", template_folder="templates")
