"""The hooks a SoftPak may implement (pluggy), and what the queue manager
hands its delivery agents. Each hook returns a list (or a dict for delivery
agents); pluggy collects one per SoftPak."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pluggy

PROJECT = "gatebox"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


class SoftPakSpec:
    # Asked of every installed SoftPak, licensed or not: gatebox_settings,
    # gatebox_migrations, gatebox_menu_pages, gatebox_cli_commands and
    # gatebox_local_domains (what a SoftPak declares outlives its license).
    # The rest is asked only of the SoftPaks licensed now.

    @hookspec
    def gatebox_settings(self):
        """Setting declarations (firmware.config.types.Setting) this SoftPak adds."""

    @hookspec
    def gatebox_message_signers(self, store):
        """Callables signer(message: bytes, ctx) -> bytes that smtpd applies to
        outbound mail (a trusted or signed-in client) once it is accepted and
        not quarantined: header fields to put on top, b"" for none (e.g. a
        DKIM-Signature for a local domain). `ctx` is the policy Context."""

    @hookspec
    def gatebox_message_actions(self, store):
        """Buttons a SoftPak adds where the web admin shows one stored message
        (Email Server > Quarantine, Users & Groups > User Mailboxes): objects
        with `name` (a token), `label`, and run(store, message: bytes, about:
        dict) -> str, what was done (shown to the administrator). `about`
        holds "where" (quarantine | mailbox), "sender", "recipients", "actor"
        and, in the quarantine, "id". Raises ValueError with the reason it
        refused."""

    @hookspec
    def gatebox_quarantine_released(self, store, item, message, actor):
        """Told after a quarantined message was released (it is in the queue):
        e.g. Bayes learns it as not spam. `item` is a
        firmware.mail.quarantine.Item, `message` the held bytes. Errors are
        logged, never undo the release."""

    @hookspec
    def gatebox_dovecot_settings(self, store, data_dir):
        """Text added to the Mail Server SoftPak's dovecot.conf (plugin and
        protocol blocks), e.g. IMAPSieve rules that teach Bayes when a user
        moves mail into or out of Junk. Asked of the active SoftPaks."""

    @hookspec
    def gatebox_public_endpoints(self):
        """Names of this SoftPak's web views served without an admin sign-in
        (still only to the clients Allow Administration From admits), e.g.
        the quarantine digest's one-click release links, which carry their
        own signed token."""

    @hookspec
    def gatebox_local_domains(self, settings):
        """Further domain names the box receives mail for, read from the
        settings snapshot. The core counts them only where the box keeps
        mailboxes (every server type but Relay). Asked of installed SoftPaks
        whether licensed or not, so a lapsed license never turns the office's
        own domains into foreign ones: their mail waits in the queue."""

    # Hooks taking `store` get the running service's settings Store; an
    # implementation may leave the argument out if it does not need it.
    @hookspec
    def gatebox_policy_checks(self, store):
        """SMTP policy checks: objects with a name, a stage (connect, helo, mail,
        rcpt, data) and a check callable, added to smtpd's chain."""

    @hookspec
    def gatebox_address_exists(self, store, settings, address):
        """True or False when this SoftPak keeps the mailboxes of the
        address's domain and knows whether it names a user, alias or list;
        None when it does not answer for that address (Address Verification's
        Verify Sender Using Local Domain Exists asks)."""

    @hookspec
    def gatebox_setting_choices(self, store, key):
        """[(value, label), ...] the web form offers for a setting whose
        values come from the box's data (e.g. users with Email permission),
        or None for settings this SoftPak does not fill."""

    @hookspec
    def gatebox_dashboard_notes(self, store):
        """Warnings for the dashboard (plain text, one per problem), e.g. a
        DNS blocklist that is broken or refuses to answer the box."""

    @hookspec
    def gatebox_users_page_columns(self, store):
        """Columns this SoftPak adds to Users & Groups > Users, one small form
        per user: dicts with "heading", "endpoint" (the view the form posts
        to, given name=<user>), "fields" ([{"name", "label", "type": text |
        password}]), "values" ({user: {field: value}}; password fields are
        never filled), "notes" ({user: text shown beside}), "clear" (the
        label of a button posting operation=clear, or "") and "hint"."""

    @hookspec
    def gatebox_status_panels(self, store, page):
        """Panels a SoftPak adds to a core page, page being "dashboard" or
        "email-settings": dicts with id, title, lines (plain text) and
        optionally action_endpoint and action_label, a button that POSTs
        (with the CSRF token) to that endpoint of the SoftPak's blueprint."""

    @hookspec
    def gatebox_routes(self, store):
        """Routing rules that turn a recipient into a destination (e.g. a local mailbox)."""

    @hookspec
    def gatebox_delivery_agents(self, context):
        """{destination kind: agent} for the queue manager; an agent has
        .deliver(destination, sender, recipients, message, settings, body_8bit)
        -> {recipient: Result}. `context` is a DeliveryContext."""

    @hookspec
    def gatebox_services(self, store, options):
        """Long-running services to start with the mail stack while the SoftPak
        is licensed: objects with a `name` and async start() / stop().
        `options` holds what `gatebox run` was given (bind, ports)."""

    @hookspec
    def gatebox_unlicensed_services(self, store, options):
        """Stand-ins run while an installed SoftPak is NOT licensed, e.g. a
        listener telling mail clients why access is off and how to restore it."""

    @hookspec
    def gatebox_menu_pages(self):
        """Web admin menu entries: dicts with "menu" (the eSoft menu path),
        "title", "softpak" and, when the SoftPak brings the page itself,
        "blueprint" (a Flask blueprint, mounted for every installed SoftPak),
        "endpoint" (the view the menu entry opens), "help" (its help page,
        templates/help/<help>.html) and "purpose" (what the page is for, shown
        while the license is not active). Entries without a blueprint describe
        what the SoftPak adds to a page of the core."""

    @hookspec
    def gatebox_usb_offer_apply(self, store, offer):
        """Applies a USB offer (firmware.system.usb.offers.Offer) the
        administrator confirmed, when its kind is this SoftPak's (e.g.
        "signatures"): a list of messages saying what was done, [] when the
        kind is not its own. Raises ValueError with the reason it refused."""

    @hookspec
    def gatebox_cli_commands(self):
        """click commands or groups added to the `gatebox` command. Asked of
        every installed SoftPak: unlicensed, a command says so instead of
        vanishing."""

    @hookspec
    def gatebox_migrations(self):
        """(number, fn(db)) schema migrations for this SoftPak's own tables."""


@dataclass
class DeliveryContext:
    """What a SoftPak delivery agent may use in the queue manager process:
    the data directory, the spool (to submit forwarded copies and replies)
    and announce(qid), safe to call from any thread, so the queue manager
    picks a submitted message up at once."""
    data_dir: Path
    spool: object
    announce: object
