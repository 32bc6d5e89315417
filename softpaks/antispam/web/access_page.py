"""Anti-Spam > Access: Blocked IP Addresses, DNS RBL filters and Reverse DNS
Required, with the state of each blocklist zone (its last RFC 5782 test and
any "you may not use this list" answer) and Test zones now."""

from __future__ import annotations

import asyncio

from flask import flash, redirect, url_for

from firmware.mail import resolver
from webui.settings_page import settings_view

from .. import dnsbl
from ..settings import ACCESS_MENU
from .blueprint import blueprint
from .common import EXPIRED_FORM, ButtonForm, actor, store

INTRO = ("Decided while the client talks to the box: blocked addresses at connect, the "
         "blocklists and reverse DNS at RCPT, so the log names sender and recipient. Trusted "
         "Networks, authenticated clients and whitelisted senders skip the blocklists and "
         "reverse DNS.")
TEST_SECONDS = 60


@blueprint.route("/access", methods=["GET", "POST"])
def access():
    return settings_view(ACCESS_MENU, intro=INTRO, template="antispam/access.html",
                         zones=dnsbl.zone_status(store()), test_form=ButtonForm(formdata=None))


@blueprint.route("/access/test-zones", methods=["POST"])
def access_test_zones():
    if not ButtonForm().validate():
        flash(EXPIRED_FORM, "error")
        return redirect(url_for(".access"))
    box = store()
    settings = box.snapshot()
    try:
        tested = asyncio.run(asyncio.wait_for(
            dnsbl.test_zones(box, settings, resolver.shared()), TEST_SECONDS))
    except asyncio.TimeoutError:
        flash(f"The zone test took longer than {TEST_SECONDS} s; the table shows what was "
              "found so far.", "error")
        return redirect(url_for(".access"))
    box.audit(actor(), "test DNS blocklist zones", "",
              ", ".join(f"{z.zone} {'healthy' if z.healthy else 'broken'}" for z in tested))
    broken = [zone.zone for zone in tested if not zone.healthy]
    if not tested:
        flash("No DNS RBL filter is set: there is nothing to test.", "ok")
    elif broken:
        flash(f"Tested {len(tested)} zone(s); broken: {', '.join(broken)}.", "warning")
    else:
        flash(f"Tested {len(tested)} zone(s): all healthy.", "ok")
    return redirect(url_for(".access"))
