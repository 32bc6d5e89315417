"""The home page: mail in / out / rejected per hour over the last day, the
queue, license warnings and the firmware version."""

from __future__ import annotations

import time

from flask import Blueprint, render_template

from firmware import plugins
from firmware.licensing import granted
from firmware.mail import stats
from firmware.mail.queue_index import QueueIndex
from firmware.system import service_state

from . import chart, context
from .status_panels import status_panels

blueprint = Blueprint("dashboard", __name__)


@blueprint.route("/")
def index():
    store = context.store()
    rows = stats.hourly(store, hours=24)
    index = QueueIndex(context.spool())
    try:
        counts = index.counts()
    finally:
        index.close()
    totals = {key: sum(row[key] for row in rows) for key in stats.FIELDS}
    since = time.time() - 86400
    return render_template("dashboard.html", chart=chart.build(rows, stats.refusals_per_hour(store)), totals=totals,
                           counts=counts, queue_total=sum(counts.values()),
                           server_type=store.get("email.server_type"),
                           server_enabled=store.get("email.server_enabled"),
                           mail_state=service_state.read(store.data_dir, service_state.MAIL),
                           refusals=stats.refusals_by_check(store, since),
                           notes=_notes(store),
                           panels=status_panels(store, "dashboard"),
                           results=stats.results_by_check(store, since))


def _notes(store) -> list[str]:
    """What needs the administrator: SoftPaks whose license lapsed, and the
    active SoftPaks' own warnings."""
    notes = []
    active, manifests = store.active_softpaks(), plugins.installed_softpaks()
    for softpak in sorted(set(granted(store)) & set(manifests) - active):
        notes.append(f"The license of the {manifests[softpak].name} SoftPak has expired: what "
                     "it stored is kept, but it does nothing until a license is active again "
                     "(System > SoftPaks & Licenses).")
    for batch in plugins.active_plugin_manager(store).hook.gatebox_dashboard_notes(store=store):
        notes.extend(batch or ())
    return notes
