"""Support & Diagnostics: what the box is, and Email Diagnostics: does the
LAN mail server and the relay server answer SMTP from here."""

from __future__ import annotations

import socket
import time

from flask import Blueprint, render_template, request
from flask_wtf import FlaskForm

from firmware import __version__
from firmware.config.types import Invalid, split_host_port

from .. import context, licenses

blueprint = Blueprint("support", __name__, url_prefix="/support")

CHECKED = (("email.mail_server_address", "Mail Server Address (LAN)"),
           ("email.relay_server_address", "Relay Server Address (ISP)"))
TIMEOUT = 5.0


def smtp_greeting(address: str) -> tuple[bool, str]:
    """Connect and read the greeting: (answered with 220, what happened)."""
    try:
        host, port = split_host_port(address, 25)
    except Invalid as error:
        return False, str(error)
    started = time.monotonic()
    try:
        with socket.create_connection((host, port), timeout=TIMEOUT) as sock:
            sock.settimeout(TIMEOUT)
            banner = sock.recv(512).decode("latin-1", errors="replace").strip()
            sock.sendall(b"QUIT\r\n")
    except OSError as error:
        return False, f"no connection to {host}:{port}: {error.strerror or error}"
    took = (time.monotonic() - started) * 1000
    return banner.startswith("220"), f"{banner[:200]} ({took:.0f} ms)"


@blueprint.route("/", methods=["GET", "POST"])
def index():
    store = context.store()
    form = FlaskForm()
    results = []
    if request.method == "POST" and form.validate_on_submit():
        for key, label in CHECKED:
            address = store.get(key)
            if address:
                results.append((label, address, *smtp_greeting(address)))
            else:
                results.append((label, "(not set)", None, "not configured"))
    return render_template("support.html", form=form, results=results, version=__version__,
                           serial=licenses.serial_or_problem(),
                           server_type=store.get("email.server_type"),
                           server_enabled=store.get("email.server_enabled"))
