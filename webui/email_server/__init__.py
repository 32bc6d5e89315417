"""Email Server menu: Settings, Advanced, Scheduling, Address Verification
(address_verification.py) and Messages in Queue (queue.py)."""

from __future__ import annotations

from firmware.config import schema

from .. import context
from ..settings_page import settings_view
from ..status_panels import status_panels
from . import address_verification, quarantine, queue  # noqa: F401  (they register their routes)
from .blueprint import blueprint


@blueprint.route("/settings", methods=["GET", "POST"])
def settings():
    return settings_view(schema.SETTINGS_MENU,
                         panels=status_panels(context.store(), "email-settings"))


@blueprint.route("/settings/advanced", methods=["GET", "POST"])
def advanced():
    return settings_view(schema.ADVANCED_MENU)


@blueprint.route("/scheduling", methods=["GET", "POST"])
def scheduling():
    return settings_view(schema.SCHEDULING_MENU)


@blueprint.route("/queue/settings", methods=["GET", "POST"])
def queue_settings():
    return settings_view(schema.QUEUE_MENU)
