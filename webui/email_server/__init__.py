"""Email Server menu: Settings, Advanced, Scheduling, Address Verification
and Messages in Queue."""

from __future__ import annotations

from flask import Blueprint

from firmware.config import schema

from ..settings_page import settings_view

blueprint = Blueprint("email_server", __name__, url_prefix="/email-server")

ADDRESS_VERIFICATION_MENU = "Email Server > Address Verification"


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
    return settings_view(ADDRESS_VERIFICATION_MENU)


@blueprint.route("/queue/settings", methods=["GET", "POST"])
def queue_settings():
    return settings_view(schema.QUEUE_MENU)


from . import queue  # noqa: E402,F401  (registers the queue routes on the blueprint)
