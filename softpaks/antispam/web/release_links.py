"""The quarantine digest's one-click links, /quarantine/link/<token>.

No admin sign-in: the signed token is the proof (digest/tokens.py). Only
the clients Allow Administration From admits reach it, as every page of the
web admin. A GET only shows the message and one button, because mail
scanners and link previews fetch links by themselves; the POST (with its
CSRF token) acts, once. A tampered or malformed link is refused with 400,
an expired, used or no longer held one with 410."""

from __future__ import annotations

import logging

from flask import render_template, request

from firmware.mail.quarantine import Quarantine
from firmware.mail.queue import NotInQueue
from webui import context

from .. import lists
from ..digest import actions, tokens
from .blueprint import blueprint
from .common import ButtonForm

ENDPOINT = "release_link"
TITLES = {"release": "Release a message held as spam",
          "allow": "Release a message and always allow its sender"}
BUTTONS = {"release": "Release", "allow": "Release and always allow this sender"}

log = logging.getLogger("gatebox.antispam")


def _refused(text: str, status: int):
    return render_template("antispam/release_link_refused.html", message=text), status


def _held(grant: tokens.Grant):
    """The row of the recipient's held copy, or None when it is gone."""
    quarantine = Quarantine(context.store().data_dir)
    index = quarantine.index()
    try:
        row = index.get(grant.item)
    finally:
        index.close()
    if row is None or row.kind != "spam" or \
            grant.recipient.lower() not in (r.lower() for r in row.recipients):
        return None
    return row


def release_link(token: str):
    store = context.store()
    try:
        grant = tokens.verify(store.data_dir, token)
    except tokens.TokenRefused as refused:
        return _refused(str(refused), refused.status)
    if tokens.was_used(store, grant):
        return _refused("This link was already used: each link works once.", 410)
    row = _held(grant)
    if row is None:
        return _refused("This message is no longer in the quarantine: it was released, "
                        "deleted or has expired.", 410)
    form = ButtonForm()
    if request.method == "POST":
        if not form.validate():
            return _refused("The page had expired; nothing was done. Open the link from the "
                            "digest again.", 400)
        return _act(store, grant, row)
    return render_template("antispam/release_link.html", title=TITLES[grant.action],
                           button=BUTTONS[grant.action], row=row, grant=grant, form=form)


def _act(store, grant: tokens.Grant, row):
    try:
        tokens.claim(store, grant)
    except tokens.TokenRefused as refused:
        return _refused(str(refused), refused.status)
    actor = f"{grant.recipient} (digest link)"
    try:
        if grant.action == "allow":
            done = actions.release_and_allow(store, grant.item, row.sender, actor,
                                             user=grant.recipient)
        else:
            done = f"released as {actions.release(store, grant.item, actor, [grant.recipient])}"
    except NotInQueue:
        return _refused("This message is no longer in the quarantine: it was released, "
                        "deleted or has expired.", 410)
    except (lists.ListError, ValueError) as error:
        tokens.unclaim(store, grant)
        return _refused(f"Nothing was done: {error}.", 400)
    except OSError as error:
        tokens.unclaim(store, grant)
        log.error("digest link for %s could not release it: %s", grant.item, error)
        return _refused("The message could not be released just now; try the link again "
                        "later.", 503)
    log.info("%s: %s by digest link of <%s>", grant.item, done, grant.recipient)
    return render_template("antispam/release_link_done.html", row=row, grant=grant,
                           allowed=grant.action == "allow")


@blueprint.record_once
def _register(state):
    # At the web root, outside the blueprint's /anti-spam prefix: the digest's
    # links are https://<host>/quarantine/link/<token>. The endpoint keeps the
    # blueprint's name, so the license check and PUBLIC_ENDPOINTS see it as ours.
    state.app.add_url_rule("/quarantine/link/<token>", f"{blueprint.name}.{ENDPOINT}",
                           release_link, methods=["GET", "POST"])
