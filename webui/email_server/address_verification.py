"""Email Server > Address Verification: the manual's options, what the
checks found in the last 24 hours, the LDAP address list's state with Update
Now, whether the internal server is a catch-all, and a Test box that asks
the running checks about one address."""

from __future__ import annotations

import asyncio
import ipaddress
import time

from flask import flash, redirect, url_for
from flask_wtf import FlaskForm
from wtforms import StringField

from firmware.config import schema
from firmware.mail import extensions, resolver, stats
from firmware.mail.verify import explain, ldap_sync
from firmware.mail.verify.cache import VerifyCache

from .. import context
from ..settings_page import settings_view
from .blueprint import blueprint

INTRO = ("Checks on the sender and the recipients of mail from outside (not from Trusted "
         "Networks, not authenticated). Which options appear depends on the Server Type of "
         "Email Server > Settings: recipient verification in Relay mode, unaddressable mail in "
         "Stand-Alone mode.")
DAY = 86400
TEST_SECONDS = 60


class TestForm(FlaskForm):
    address = StringField("Address")
    client_ip = StringField("Sending server's IP address (for SPF)")


class UpdateNowForm(FlaskForm):
    pass


def _catch_alls(store) -> list[str]:
    rows = store.db.query("SELECT address FROM verify_cache WHERE kind = 'catchall' AND "
                          "status = 'accepted'")
    return [row["address"].replace("/", " for ") for row in rows]


def _page(test_form=None, answers=None, test_error="", apply=False):
    store = context.store()
    return settings_view(
        schema.ADDRESS_VERIFICATION_MENU, intro=INTRO, template="address_verification.html",
        apply=apply,
        results=stats.results_by_check(store, since=time.time() - DAY), ldap=ldap_sync.status(store), catch_alls=_catch_alls(store),
        test_form=test_form or TestForm(formdata=None), update_form=UpdateNowForm(formdata=None),
        answers=answers, test_error=test_error)


@blueprint.route("/address-verification", methods=["GET", "POST"])
def address_verification():
    return _page(apply=True)


@blueprint.route("/address-verification/ldap-sync", methods=["POST"])
def ldap_update_now():
    form = UpdateNowForm()
    if not form.validate():
        flash("The form had expired; nothing was done. Try again.", "error")
        return redirect(url_for("email_server.address_verification"))
    store = context.store()
    if not store.get("email.ldap_server"):
        flash("Update Now needs an LDAP Server: enter it and click Apply first.", "error")
        return redirect(url_for("email_server.address_verification"))
    result = ldap_sync.sync(store)
    store.audit(context.actor(), "LDAP address list update", "",
                f"{result.count} addresses" if not result.error else result.error)
    if result.error:
        flash(f"The LDAP address list was not read: {result.error}", "error")
    else:
        flash(f"Read {result.count} addresses from the LDAP server.", "ok")
    return redirect(url_for("email_server.address_verification"))


@blueprint.route("/address-verification/test", methods=["POST"])
def address_test():
    form = TestForm()
    if not form.validate():
        flash("The form had expired; nothing was done. Try again.", "error")
        return redirect(url_for("email_server.address_verification"))
    store = context.store()
    address = (form.address.data or "").strip()
    client_ip = (form.client_ip.data or "").strip() or explain.OUTSIDE_CLIENT
    try:
        ipaddress.ip_address(client_ip)
    except ValueError:
        return _page(form, test_error="the sending server's IP address must be an IPv4 or IPv6 "
                                      "address such as 192.0.2.1, or empty")
    try:
        answers = asyncio.run(asyncio.wait_for(
            explain.explain(extensions.policy(store), store.snapshot(), address,
                            resolver.shared(), client_ip), TEST_SECONDS))
    except ValueError as error:
        return _page(form, test_error=str(error))
    except asyncio.TimeoutError:
        return _page(form, test_error=f"the checks took longer than {TEST_SECONDS} s")
    return _page(form, answers=answers)


@blueprint.route("/address-verification/forget", methods=["POST"])
def forget_answers():
    """After the internal server's users change, or a sender's server was
    fixed: the box otherwise believes an answer for up to 31 days."""
    form = UpdateNowForm()
    if form.validate():
        store = context.store()
        VerifyCache(store).forget()
        store.audit(context.actor(), "forget remembered address verification answers")
        flash("Forgot every remembered callout answer: the next message asks the servers again.",
              "ok")
    else:
        flash("The form had expired; nothing was done. Try again.", "error")
    return redirect(url_for("email_server.address_verification"))
