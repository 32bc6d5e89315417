"""What the active SoftPaks add to the mail stack: policy checks for smtpd,
routes and delivery agents for the queue manager, and services. Re-read
whenever the settings generation moves (a license activation or removal
bumps it), so licensing changes take effect in running services without a
restart. (Further local domains ride on the settings snapshot: see
firmware.config.store.Snapshot.)"""

from __future__ import annotations

from firmware import plugins

from .checks import CORE_CHECKS
from .policy import Check, Policy
from .verify.checks import address_verification_checks


def _flatten(batches) -> list:
    return [item for batch in batches for item in batch or ()]


def policy(store) -> Policy:
    manager = plugins.active_plugin_manager(store)
    extra = _flatten(manager.hook.gatebox_policy_checks(store=store))
    for check in extra:
        # A SoftPak's check must declare its stage, position and failure mode.
        if not isinstance(check, Check):
            raise TypeError(f"SoftPak policy check {check!r} is not a firmware.mail.policy.Check")
    signers = _flatten(manager.hook.gatebox_message_signers(store=store))
    return Policy(CORE_CHECKS + address_verification_checks(store) + extra, signers)


def routes(store) -> tuple:
    """Route functions fn(recipient, direction, settings) -> (address, Destination) | None."""
    return tuple(_flatten(plugins.active_plugin_manager(store).hook.gatebox_routes(store=store)))


def delivery_agents(store, context: plugins.DeliveryContext) -> dict:
    """{destination kind: agent} from the active SoftPaks (e.g. local mailboxes)."""
    agents = {}
    for batch in plugins.active_plugin_manager(store).hook.gatebox_delivery_agents(context=context):
        agents.update(batch or {})
    return agents


def services(store, options: dict) -> dict:
    """{name: service} that should run now: the licensed SoftPaks' services
    and the stand-ins of installed SoftPaks that are not licensed."""
    wanted = {}
    for manager, hook in ((plugins.active_plugin_manager(store), "gatebox_services"),
                          (plugins.registry().inactive(store), "gatebox_unlicensed_services")):
        for service in _flatten(getattr(manager.hook, hook)(store=store, options=options)):
            wanted[service.name] = service
    return wanted
