"""Anti-Spam > Quarantine Digest: how long spam is kept, when the daily
digest goes out and where its links lead; Send now, as `gatebox antispam
digest send`. The links themselves are served by release_links."""

from __future__ import annotations

from flask import flash, redirect, url_for

from webui.settings_page import settings_view

from ..digest import service
from ..digest.digest_mail import base_url, lifetime_days
from ..digest.settings import MENU
from . import release_links  # noqa: F401  (the links' view)
from .blueprint import blueprint
from .common import EXPIRED_FORM, ButtonForm, store

PAGES = [("digest", "Quarantine Digest",
          "the lifetime of quarantined spam and a daily digest to each recipient, with "
          "one-click links to release a message or always allow its sender")]

INTRO = ("Spam held in the quarantine (Filter Match Action: Quarantine) is kept one copy per "
         "recipient. Once a day each recipient with held spam can get a digest listing it, "
         "with a Release link and a Release and always allow this sender link per message. "
         "A link works once, until the message expires, without signing in, and only from the "
         "networks Allow Administration From admits.")


@blueprint.route("/digest", methods=["GET", "POST"], endpoint="digest")
def digest_page():
    box = store()
    settings = box.snapshot()
    last = box.db.execute("SELECT day, finished, sent FROM antispam_digest_runs "
                          "ORDER BY started DESC LIMIT 1").fetchone()
    return settings_view(MENU, intro=INTRO, template="antispam/digest.html",
                         link_base=base_url(settings), days=lifetime_days(settings),
                         last=last, send_form=ButtonForm())


@blueprint.route("/digest/send", methods=["POST"])
def digest_send():
    if not ButtonForm().validate():
        flash(EXPIRED_FORM, "error")
        return redirect(url_for(".digest"))
    mails, listed = service.send_now(store())
    flash(f"{mails} digest(s) queued, listing {listed} message(s).", "ok")
    return redirect(url_for(".digest"))
