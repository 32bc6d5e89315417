"""Email Server menu: Settings, Advanced, Scheduling, Address Verification
and Messages in Queue."""

from __future__ import annotations

from firmware.config import schema

from ..settings_page import settings_view
from . import queue  # noqa: F401  (registers the queue routes on the blueprint)
from .blueprint import blueprint


ADDRESS_VERIFICATION_MENU = "Email Server > Address Verification"
ADDRESS_VERIFICATION_INTRO = (
    "What to do with mail for a local address that no user, alias, distribution list or forwarder "
    "answers to (Stand-Alone mode). The manual's sender and recipient checks (local sender exists, "
    "sender callouts, SPF, header syntax, recipient verification in Relay mode) are not in this "
    "firmware yet.")


@blueprint.route("/settings", methods=["GET", "POST"])
def settings():
    return settings_view(schema.SETTINGS_MENU)


@blueprint.route("/settings/advanced", methods=["GET", "POST"])
def advanced():
    return settings_view(schema.ADVANCED_MENU)


@blueprint.route("/scheduling", methods=["GET", "POST"])
def scheduling():
    return settings_view(schema.SCHEDULING_MENU)


@blueprint.route("/address-verification", methods=["GET", "POST"])
def address_verification():
    return settings_view(ADDRESS_VERIFICATION_MENU, intro=ADDRESS_VERIFICATION_INTRO)


@blueprint.route("/queue/settings", methods=["GET", "POST"])
def queue_settings():
    return settings_view(schema.QUEUE_MENU)
