"""Anti-Spam > DKIM & DMARC: the verification switches, the signing keys of
each local domain with the DNS TXT record to publish (Generate, Check DNS,
Rotate, Remove an old selector) and the trusted forwarders. The buttons go
through the same functions as `gatebox antispam dkim` and `... forwarder`."""

from __future__ import annotations

import asyncio

from flask import flash, redirect, request, url_for
from flask_wtf import FlaskForm
from wtforms import StringField

from firmware.mail import resolver
from webui.settings_page import settings_view

from ..authentication import MENU, forwarders, keys
from .blueprint import blueprint
from .common import EXPIRED_FORM, ButtonForm, actor, domains, store

PAGES = [("authentication", "DKIM & DMARC",
          "DKIM verification, DMARC policies (reject, quarantine), ARC, trusted forwarders, and "
          "DKIM signing keys per local domain with the DNS record to publish")]

INTRO = ("Inbound mail's DKIM signatures, ARC chain and DMARC result go into its "
         "Authentication-Results field and its spam score. Outgoing mail from a local domain "
         "with keys is signed.")
CHECK_SECONDS = 30


class ForwarderForm(FlaskForm):
    entry = StringField("Forwarder")
    note = StringField("Note")


def _domain_rows():
    box = store()
    by_domain: dict = {name: [] for name in domains()}
    for key in keys.keys(box):
        by_domain.setdefault(key.domain, []).append(key)
    return sorted(by_domain.items())


@blueprint.route("/authentication", methods=["GET", "POST"], endpoint="authentication")
def authentication():
    return settings_view(MENU, intro=INTRO, template="antispam/authentication.html",
                         domain_rows=_domain_rows(), button=ButtonForm(formdata=None),
                         forwarder_form=ForwarderForm(formdata=None),
                         forwarders=forwarders.entries(store()))


def _checked_button() -> bool:
    if ButtonForm().validate():
        return True
    flash(EXPIRED_FORM, "error")
    return False


def _back():
    return redirect(url_for(".authentication") + "#keys")


@blueprint.route("/authentication/generate", methods=["POST"])
def authentication_generate():
    if _checked_button():
        try:
            made = keys.generate(store(), request.form.get("domain", ""), actor())
        except keys.KeyProblem as error:
            flash(str(error), "error")
        else:
            flash(f"Made the keys of {made[0].domain} (selectors "
                  f"{', '.join(k.selector for k in made)}): publish their TXT records in DNS.",
                  "ok")
    return _back()


@blueprint.route("/authentication/rotate", methods=["POST"])
def authentication_rotate():
    if _checked_button():
        try:
            made = keys.rotate(store(), request.form.get("domain", ""), actor())
        except keys.KeyProblem as error:
            flash(str(error), "error")
        else:
            flash(f"New keys for {made[0].domain} (selectors "
                  f"{', '.join(k.selector for k in made)}); the old selectors no longer sign. "
                  "Publish the new records; remove the old ones once mail signed with them "
                  "has been read (a few days).", "ok")
    return _back()


@blueprint.route("/authentication/remove", methods=["POST"])
def authentication_remove():
    if _checked_button():
        try:
            gone = keys.remove(store(), request.form.get("domain", ""),
                               request.form.get("selector", ""), actor())
        except keys.KeyProblem as error:
            flash(str(error), "error")
        else:
            flash(f"Removed selector {gone.selector} of {gone.domain}; its DNS record "
                  f"{gone.record_name} may go.", "ok")
    return _back()


@blueprint.route("/authentication/check-dns", methods=["POST"])
def authentication_check_dns():
    if not _checked_button():
        return _back()
    box = store()
    domain = request.form.get("domain", "").strip().lower()
    wanted = [k for k in keys.keys(box, domain) if k.active]
    if not wanted:
        flash(f"{domain or 'That domain'} has no keys to check.", "error")
        return _back()
    settings = box.snapshot()

    async def ask():
        return await asyncio.gather(*(keys.published(k, resolver.shared(), settings)
                                      for k in wanted))
    try:
        found = asyncio.run(asyncio.wait_for(ask(), CHECK_SECONDS))
    except asyncio.TimeoutError:
        flash(f"DNS did not answer within {CHECK_SECONDS} s.", "error")
        return _back()
    for key, state in zip(wanted, found):
        if state.state == "match":
            flash(f"{key.record_name}: published and matches the key.", "ok")
        elif state.state == "missing":
            flash(f"{key.record_name}: not in DNS yet. Publish the record shown.", "warning")
        elif state.state == "differs":
            flash(f"{key.record_name}: DNS holds a different key; publish the record shown. "
                  f"({state.detail})", "error")
        else:
            flash(f"{key.record_name}: DNS could not be asked: {state.detail}", "error")
    return _back()


@blueprint.route("/authentication/forwarders/add", methods=["POST"])
def authentication_forwarder_add():
    form = ForwarderForm()
    if not form.validate():
        flash(EXPIRED_FORM, "error")
        return redirect(url_for(".authentication") + "#forwarders")
    try:
        made = forwarders.add(store(), form.entry.data or "", form.note.data or "", actor())
    except forwarders.ForwarderError as error:
        flash(str(error), "error")
    else:
        flash(f"Added trusted forwarder {made.entry}.", "ok")
    return redirect(url_for(".authentication") + "#forwarders")


@blueprint.route("/authentication/forwarders/remove", methods=["POST"])
def authentication_forwarder_remove():
    if _checked_button():
        try:
            gone = forwarders.remove(store(), request.form.get("entry", ""), actor())
        except forwarders.ForwarderError as error:
            flash(str(error), "error")
        else:
            flash(f"Removed trusted forwarder {gone}.", "ok")
    return redirect(url_for(".authentication") + "#forwarders")
