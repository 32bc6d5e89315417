"""SoftPaks' status panels on core pages (the gatebox_status_panels hook),
e.g. the Mail Server's retrieval: next run, last result, Retrieve now."""

from __future__ import annotations

import logging

from firmware import plugins

log = logging.getLogger("gatebox.web")


def status_panels(store, page: str) -> list[dict]:
    panels = []
    try:
        for batch in plugins.active_plugin_manager(store).hook.gatebox_status_panels(store=store, page=page):
            panels.extend(batch or ())
    except Exception:
        # A SoftPak's panel failing must not take the core page down with it.
        log.exception("status panels of %s", page)
    return panels
