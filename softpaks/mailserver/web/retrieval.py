"""Retrieve now (the button of the retrieval panel on the dashboard and on
Email Server > Settings): the retrieval service of `gatebox run` runs the
session; the page waits a little for it so the result shows at once."""

from __future__ import annotations

import time

from flask import abort, flash, redirect, request, url_for
from flask_wtf import FlaskForm

from firmware.mail import server_type
from webui.safe_redirect import local_or

from ..retrieval import state
from ..retrieval.session import parts
from .blueprint import blueprint
from .common import actor, store

WAIT_SECONDS = 20.0
LOOK_SECONDS = 0.25


@blueprint.route("/retrieve-now", methods=["POST"])
def retrieve_now():
    if not FlaskForm().validate_on_submit():
        abort(400)
    box = store()
    back = redirect(local_or(request.form.get("back"), url_for("email_server.settings")))
    settings = box.snapshot()
    if not parts(settings):
        # No service would answer: say so now rather than after the wait.
        flash(f"Server type {server_type.in_effect(settings)} retrieves nothing.", "warning")
        return back
    state.request_now(box, time.time())
    box.audit(actor(), "retrieve now")
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        # Only a session that read this request clears it (a newer request
        # stays until its own session): the times are the service's clock,
        # not this process's, so they are not compared.
        runner = state.runner(box)
        if runner.requested is None:
            for line in runner.summary.splitlines() or ["Nothing to retrieve."]:
                flash(f"Retrieved: {line}", "ok")
            break
        time.sleep(LOOK_SECONDS)
    else:
        flash("Retrieve now was requested; the mail service runs it as soon as it can "
              "(the result appears below when it has).", "warning")
    return back
