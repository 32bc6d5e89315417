"""Allow Administration From (System > Network): the web admin answers only
clients the setting lets in, before any page, sign-in and first-boot setup
included. The admin listens on every address, the WAN's too; by default
only the Trusted Networks (the office's LAN) get past this."""

from __future__ import annotations

from flask import render_template, request

from firmware.mail.addresses import in_networks

from . import context

SETTING = "system.admin_allow_from"


def allowed_networks(store) -> str:
    """The networks the setting stands for, in Trusted Networks' syntax."""
    value = store.get(SETTING)
    if value == "any":
        return "*"
    if value == "trusted":
        return store.get("email.trusted_networks")
    return value


def install(app):
    @app.before_request
    def only_from_allowed_networks():
        client = request.remote_addr or ""
        if in_networks(client, allowed_networks(context.store())):
            return None
        return render_template(
            "error.html", title="Administration not allowed from here",
            message=f"This box accepts administration only from the networks set in System > "
                    f"Network > Allow Administration From (by default its Trusted Networks), "
                    f"and {client} is not among them. To change that, open the web admin from "
                    f"a computer on the office LAN, or on the box's console run "
                    f"`gatebox config set {SETTING} any` (or a list of networks)."), 403
