"""Email Server > Quarantine: messages the checks held instead of
delivering (a virus found, a spam score past the quarantine threshold).
Only administrators reach this page; Release hands a message to the queue
through submit, Delete removes it, as `gatebox quarantine` does."""

from __future__ import annotations

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm

from firmware.config import schema
from firmware.mail.quarantine import KINDS, Quarantine
from firmware.mail.queue import NotInQueue
from firmware.mail.queue_ops import picked_up_by_rescan

from .. import context
from ..settings_page import settings_view
from .blueprint import blueprint

MAX_SHOWN_BYTES = 2 * 1024 * 1024
PAGE_SIZE = 200
ACTIONS = ("release", "delete")


def _quarantine() -> Quarantine:
    return Quarantine(current_app.config["GATEBOX_DATA"])


@blueprint.route("/quarantine")
def quarantine():
    kind = request.args.get("kind", "")
    items = _quarantine().items(kind if kind in KINDS else None)
    return render_template("quarantine.html", items=items[:PAGE_SIZE], total=len(items),
                           kind=kind if kind in KINDS else "", kinds=KINDS, form=FlaskForm())


@blueprint.route("/quarantine/action", methods=["POST"])
def quarantine_action():
    form = FlaskForm()
    if not form.validate_on_submit():
        abort(400)
    operation = request.form.get("operation")
    qids = request.form.getlist("qid")
    if operation not in ACTIONS:
        abort(400)
    if not qids:
        flash("Select one or more messages first.", "error")
        return redirect(url_for(".quarantine"))
    store = _quarantine()
    if operation == "release":
        done, errors = store.release_many(qids, context.spool(), picked_up_by_rescan,
                                          context.store(), context.actor())
        if done:
            flash(f"{len(done)} message(s) released to their recipients: "
                  + ", ".join(f"{qid} queued as {new_id}" for qid, new_id in done), "ok")
    else:
        done, errors = store.delete_many(qids, context.store(), context.actor())
        if done:
            flash(f"{len(done)} message(s) deleted from the quarantine.", "ok")
    for message in errors:
        flash(message, "error")
    return redirect(url_for(".quarantine"))


@blueprint.route("/quarantine/message/<qid>")
def quarantine_message(qid: str):
    try:
        item, raw = _quarantine().load(qid)
    except NotInQueue:
        abort(404)
    text = raw[:MAX_SHOWN_BYTES].decode("utf-8", errors="replace")
    # Plain text inside <pre>, escaped: a quarantined message may be hostile.
    response = render_template("queue_message.html", state=f"quarantined ({item.reason})",
                               envelope=item.envelope, text=text,
                               truncated=len(raw) > MAX_SHOWN_BYTES, size=len(raw))
    return response, 200, {"Content-Security-Policy": "default-src 'none'; style-src 'self'"}


@blueprint.route("/quarantine/settings", methods=["GET", "POST"])
def quarantine_settings():
    return settings_view(schema.QUARANTINE_MENU)
