"""Email Server > Quarantine: messages the checks held instead of
delivering (a virus found, a spam score past the quarantine threshold).
Only administrators reach this page. It searches the quarantine's index
(sender, recipient, subject, dates; newest first, a page at a time), shows
a message as escaped text with what scored, and acts on it: Release hands
it to the queue through submit, Delete removes it, as `gatebox quarantine`
does, and the active SoftPaks add their own buttons (gatebox_message_actions,
e.g. Learn as spam)."""

from __future__ import annotations

import logging
import time

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm

from firmware import plugins
from firmware.config import schema
from firmware.mail.headers import unfolded_headers
from firmware.mail.quarantine import KINDS, Quarantine, fired_rules
from firmware.mail.quarantine_index import Search
from firmware.mail.queue import NotInQueue
from firmware.mail.queue_ops import picked_up_by_rescan

from .. import context
from ..settings_page import settings_view
from .blueprint import blueprint

MAX_SHOWN_BYTES = 2 * 1024 * 1024
PAGE_SIZE = 50
ACTIONS = ("release", "delete")
SEARCH_FIELDS = ("sender", "recipient", "subject", "since", "until", "kind")
MAX_TERM = 200

log = logging.getLogger("gatebox.web")


def _quarantine() -> Quarantine:
    return Quarantine(current_app.config["GATEBOX_DATA"])


def _day(text: str, end: bool = False) -> float | None:
    """Epoch seconds of a local date YYYY-MM-DD (the day after, for `end`)."""
    try:
        day = time.strptime(text, "%Y-%m-%d")
    except ValueError:
        raise ValueError(f"'{text[:20]}' is not a date such as 2026-12-01") from None
    return time.mktime((day.tm_year, day.tm_mon, day.tm_mday + (1 if end else 0), 0, 0, 0, 0,
                        0, -1))


def _search_from(args) -> tuple[Search, dict, list[str]]:
    asked = {name: str(args.get(name, "")).strip()[:MAX_TERM] for name in SEARCH_FIELDS}
    errors = []
    since = until = None
    try:
        since = _day(asked["since"]) if asked["since"] else None
    except ValueError as error:
        errors.append(f"From date: {error}")
    try:
        until = _day(asked["until"], end=True) if asked["until"] else None
    except ValueError as error:
        errors.append(f"To date: {error}")
    kind = asked["kind"] if asked["kind"] in KINDS + ("other",) else ""
    asked["kind"] = kind
    return (Search(sender=asked["sender"], recipient=asked["recipient"], subject=asked["subject"],
                   kind=kind, since=since, until=until), asked, errors)


def _page_number() -> int:
    try:
        return max(1, min(int(request.args.get("page", "1")), 1_000_000))
    except ValueError:
        return 1


@blueprint.route("/quarantine")
def quarantine():
    search, asked, errors = _search_from(request.args)
    for message in errors:
        flash(message, "error")
    number = _page_number()
    page = _quarantine().search(search, offset=(number - 1) * PAGE_SIZE, limit=PAGE_SIZE)
    pages = max(1, -(-page.total // PAGE_SIZE))
    linked = {name: value for name, value in asked.items() if value}
    return render_template("quarantine.html", rows=page.rows, total=page.total, number=number,
                           pages=pages, asked=asked, linked=linked, kind=asked["kind"],
                           kinds=KINDS, form=FlaskForm())


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
    _apply(operation, qids)
    return redirect(url_for(".quarantine"))


def _apply(operation: str, qids: list[str]):
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


def message_actions(store) -> list:
    """The active SoftPaks' buttons that apply to a quarantined message."""
    found = []
    try:
        for batch in plugins.active_plugin_manager(store).hook.gatebox_message_actions(store=store):
            for action in batch or ():
                if "quarantine" in getattr(action, "places", ("quarantine", "mailbox")):
                    found.append(action)
    except Exception:
        # A SoftPak's buttons failing must not hide the message or the core's buttons.
        log.exception("message actions for the quarantine")
    # One button per name; the core's own names cannot be taken.
    unique = {}
    for action in found:
        if action.name not in ACTIONS:
            unique.setdefault(action.name, action)
    return list(unique.values())


@blueprint.route("/quarantine/message/<qid>")
def quarantine_message(qid: str):
    try:
        item, raw = _quarantine().load(qid)
    except NotInQueue:
        abort(404)
    text = raw[:MAX_SHOWN_BYTES].decode("utf-8", errors="replace")
    # Plain text inside <pre>, escaped: a quarantined message may be hostile.
    response = render_template("quarantine_message.html", item=item, envelope=item.envelope,
                               text=text, truncated=len(raw) > MAX_SHOWN_BYTES, size=len(raw),
                               fired=fired_rules(raw), score=_score(raw),
                               actions=message_actions(context.store()), form=FlaskForm())
    return response, 200, {"Content-Security-Policy": "default-src 'none'; style-src 'self'; "
                                                      "form-action 'self'"}


def _score(raw: bytes) -> str:
    for name, value in unfolded_headers(raw):
        if name == "x-spam-score":
            return value.strip()[:20]
    return ""


@blueprint.route("/quarantine/message/<qid>/act", methods=["POST"])
def quarantine_message_act(qid: str):
    form = FlaskForm()
    if not form.validate_on_submit():
        abort(400)
    operation = request.form.get("operation", "")
    if operation in ACTIONS:
        _apply(operation, [qid])
        return redirect(url_for(".quarantine"))
    store = context.store()
    action = next((a for a in message_actions(store) if a.name == operation), None)
    if action is None:
        abort(400)
    try:
        item, raw = _quarantine().load(qid)
    except NotInQueue:
        flash(f"{qid}: no such message in the quarantine", "error")
        return redirect(url_for(".quarantine"))
    about = {"where": "quarantine", "id": item.id, "sender": item.envelope.sender,
             "recipients": item.recipients, "actor": context.actor()}
    try:
        done = action.run(store, raw, about)
    except (ValueError, NotInQueue) as error:
        flash(f"{action.label}: {error}", "error")
    else:
        store.audit(context.actor(), f"quarantine {action.name}", qid, str(done)[:200])
        flash(f"{action.label}: {done}", "ok")
    if _still_held(qid):
        return redirect(url_for(".quarantine_message", qid=qid))
    return redirect(url_for(".quarantine"))


def _still_held(qid: str) -> bool:
    try:
        _quarantine().spool.read_envelope("hold", qid)
    except Exception:  # gone, or unreadable: either way there is nothing to show
        return False
    return True


@blueprint.route("/quarantine/settings", methods=["GET", "POST"])
def quarantine_settings():
    return settings_view(schema.QUARANTINE_MENU)
