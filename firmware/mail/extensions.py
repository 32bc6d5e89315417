"""What the active SoftPaks add to the mail stack: policy checks for smtpd
and routes for the queue manager. Re-read whenever the settings generation
moves (a license activation or removal bumps it), so licensing changes take
effect in running services without a restart."""

from __future__ import annotations

from firmware import plugins

from .checks import CORE_CHECKS
from .policy import Check, Policy


def _flatten(batches) -> list:
    return [item for batch in batches for item in batch or ()]


def policy(store) -> Policy:
    manager = plugins.active_plugin_manager(store)
    extra = [c if isinstance(c, Check) else Check(c.name, c.stage, c.run, getattr(c, "order", 100))
             for c in _flatten(manager.hook.gatebox_policy_checks())]
    return Policy(CORE_CHECKS + extra)


def routes(store) -> tuple:
    """Route functions fn(recipient, direction, settings) -> (address, Destination) | None."""
    return tuple(_flatten(plugins.active_plugin_manager(store).hook.gatebox_routes()))

