"""Support & Diagnostics: what the box is (firmware, serial number, server
type), and the way to Email Diagnostics (email_diagnostics)."""

from __future__ import annotations

from flask import Blueprint, render_template

from firmware import __version__

from .. import context, licenses

blueprint = Blueprint("support", __name__, url_prefix="/support")


@blueprint.route("/")
def index():
    store = context.store()
    return render_template("support.html", version=__version__,
                           serial=licenses.serial_or_problem(),
                           server_type=store.get("email.server_type"),
                           server_enabled=store.get("email.server_enabled"))
