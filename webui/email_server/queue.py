"""Email Server > Messages in Queue: waiting, held and undeliverable mail,
sorted and paginated from the queue index; a message opens in its own window
as plain text; Delete (optionally bouncing), Release, Hold and Purge act on
the spool files through QueueOps, as `gatebox queue` does."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from wtforms import BooleanField

from firmware.mail.queue import NotInQueue

from .. import context
from ..safe_redirect import local_or
from .blueprint import blueprint

PAGE_SIZE = 50
MAX_SHOWN_BYTES = 2 * 1024 * 1024
# The queue index's views (firmware.mail.queue_index.VIEWS), as tabs.
VIEWS = {"all": "All", "waiting": "Waiting", "held": "Held", "undeliverable": "Undeliverable"}
STATE_LABELS = {"incoming": "waiting", "active": "delivering", "deferred": "deferred",
                "hold": "held", "corrupt": "corrupt"}
ACTIONS = {"delete": "deleted", "release": "released", "hold": "held"}


class QueueForm(FlaskForm):
    generate_bounce = BooleanField("On Delete, generate bounce messages")


def _int_arg(name: str, default: int) -> int:
    try:
        return max(1, int(request.args.get(name, default)))
    except ValueError:
        return default


@blueprint.route("/queue")
def queue():
    sort = request.args.get("sort", "date")
    if sort not in ("id", "date", "from"):
        sort = "date"
    descending = request.args.get("order") == "desc"
    view = request.args.get("view", "all")
    if view not in VIEWS:
        view = "all"
    page_number = _int_arg("page", 1)
    listing = context.queue_ops().page(sort, descending, (page_number - 1) * PAGE_SIZE, PAGE_SIZE,
                                       view)
    pages = max(1, -(-listing.total // PAGE_SIZE))
    if page_number > pages and listing.total:
        return redirect(url_for(".queue", sort=sort, order=request.args.get("order"), view=view,
                                page=pages))
    return render_template("queue.html", listing=listing, sort=sort, descending=descending, view=view,
                           views=VIEWS, page_number=page_number, pages=pages, form=QueueForm(),
                           state_labels=STATE_LABELS)


@blueprint.route("/queue/action", methods=["POST"])
def queue_action():
    form = QueueForm()
    form.validate_on_submit()
    back = local_or(request.form.get("back"), url_for(".queue"))
    operation = request.form.get("operation")
    qids = request.form.getlist("qid")
    if operation == "purge":
        return redirect(url_for(".purge"))
    if operation not in ACTIONS:
        abort(400)
    if not qids:
        flash("Select one or more messages first.", "error")
        return redirect(back)
    bounce = operation == "delete" and form.generate_bounce.data
    done, errors = context.queue_ops().apply(operation, qids, context.actor(), generate_bounce=bounce)
    if done:
        flash(f"{len(done)} message(s) {ACTIONS[operation]}"
              f"{', bounce sent to the senders' if bounce else ''}.", "ok")
    for message in errors:
        flash(message, "error")
    return redirect(back)


@blueprint.route("/queue/purge", methods=["GET", "POST"])
def purge():
    form = FlaskForm()
    if form.validate_on_submit():
        count = context.queue_ops().purge(context.actor())
        flash(f"Purged: {count} message(s) deleted from the queue.", "ok")
        return redirect(url_for(".queue"))
    return render_template("queue_purge.html", form=form)


@blueprint.route("/queue/message/<qid>")
def message(qid: str):
    try:
        state, envelope, raw = context.queue_ops().show(qid)
    except NotInQueue:
        abort(404)
    truncated = len(raw) > MAX_SHOWN_BYTES
    # Shown as text inside <pre> with Jinja's escaping: markup in a message is
    # displayed, never interpreted.
    text = raw[:MAX_SHOWN_BYTES].decode("utf-8", errors="replace")
    response = render_template("queue_message.html", state=STATE_LABELS.get(state, state),
                               envelope=envelope, text=text, truncated=truncated, size=len(raw))
    # This page loads nothing at all, not even the box's own script.
    return response, 200, {"Content-Security-Policy": "default-src 'none'; style-src 'self'"}
