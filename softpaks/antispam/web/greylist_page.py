"""Anti-Spam > Greylist: the settings, the triplets waiting for their retry
with their age and a Pass now button each, the client networks that have
passed often enough to skip the greylist, and the counts."""

from __future__ import annotations

import time

from flask import abort, flash, redirect, request, url_for

from webui.settings_page import settings_view

from .. import greylist
from ..settings import GREYLIST_MENU
from .blueprint import blueprint
from .common import EXPIRED_FORM, ButtonForm, actor, store

INTRO = ("Mail from a (client network, sender, recipient) the box has not seen is deferred "
         "once with 451 4.7.1; real mail servers retry, most spam software does not. The "
         "network is the client's /24 (IPv4) or /64 (IPv6), so a pool of outbound servers "
         "passes as one. Trusted Networks, authenticated clients and whitelisted senders are "
         "exempt.")


def age(seconds: float) -> str:
    """'3 min', '2 h 5 min', '4 d 1 h' : how long a triplet has waited."""
    minutes = max(int(seconds // 60), 0)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


@blueprint.route("/greylist", methods=["GET", "POST"], endpoint="greylist")
def greylist_page():
    box = store()
    now = time.time()
    pending = [(row, age(row.age), age(row.passes_in) if row.passes_in else "")
               for row in greylist.pending(box, now)]
    return settings_view(GREYLIST_MENU, intro=INTRO, template="antispam/greylist.html",
                         pending=pending, networks=greylist.whitelisted_networks(box, now),
                         counts=greylist.counts(box, now), pass_form=ButtonForm())


@blueprint.route("/greylist/pass", methods=["POST"])
def greylist_pass():
    if not ButtonForm().validate():
        flash(EXPIRED_FORM, "error")
        return redirect(url_for(".greylist"))
    triplet = [request.form.get(name, "") for name in ("network", "sender", "recipient")]
    if not triplet[0] or not triplet[2]:
        abort(400)
    try:
        passed = greylist.pass_now(store(), *triplet, actor=actor())
    except ValueError as error:
        flash(str(error), "error")
    else:
        flash(f"Passed {passed.network}, <{passed.sender}> to <{passed.recipient}>: its next "
              "attempt is accepted.", "ok")
    return redirect(url_for(".greylist"))
