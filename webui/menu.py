"""The left-hand menu tree, as in the eSoft manuals. Each page knows its
title ("Email Server: Settings: Advanced"), its endpoint, its help page and,
for pages a SoftPak brings, which SoftPak that is."""

from __future__ import annotations

from dataclasses import dataclass, field

from flask import request, url_for


@dataclass(frozen=True)
class Page:
    label: str          # the entry in the menu
    title: str          # the page heading
    endpoint: str
    help: str           # name of the help page (templates/help/<help>.html)
    softpak: str = ""   # SoftPak whose license the page needs
    depth: int = 0      # 1 for sub-pages drawn indented (Settings > Advanced)
    args: dict = field(default_factory=dict)

    @property
    def url(self) -> str:
        return url_for(self.endpoint, **self.args)


@dataclass(frozen=True)
class Menu:
    label: str
    pages: tuple


MAIL_SERVER_PAGES = (
    # slug, label, what the page will manage
    ("mailboxes", "User Mailboxes", "view and delete incoming mail on a per-user basis"),
    ("aliases", "Aliases", "incoming addresses that deliver to an existing address without an account"),
    ("auto-responders", "Auto-Responders", "automatic replies, e.g. while a user is on vacation"),
    ("distribution-lists", "Distribution Lists", "one address that delivers to two or more addresses"),
    ("forwarders", "Forwarders", "route a user's mail to another address, optionally keeping a copy"),
)


def _tree() -> tuple:
    return (
        Menu("Email Server", (
            Page("Settings", "Email Server: Settings", "email_server.settings", "email-settings"),
            Page("Advanced", "Email Server: Settings: Advanced", "email_server.advanced",
                 "email-advanced", depth=1),
            Page("Scheduling", "Email Server: Scheduling", "email_server.scheduling", "email-scheduling"),
            Page("Address Verification", "Email Server: Address Verification",
                 "email_server.address_verification", "email-address-verification"),
            Page("Messages in Queue", "Email Server: Messages in Queue", "email_server.queue",
                 "email-queue"),
            Page("Queue Settings", "Email Server: Messages in Queue: Settings",
                 "email_server.queue_settings", "email-queue-settings", depth=1),
        )),
        Menu("Users & Groups", (
            Page("Users", "Users & Groups: Users", "users_groups.users", "users"),
            Page("Groups", "Users & Groups: Groups", "users_groups.groups", "groups"),
        ) + tuple(
            Page(label, f"Users & Groups: {label}", "users_groups.mail_server_page", "mail-server-pages",
                 softpak="mailserver", args={"slug": slug})
            for slug, label, _ in MAIL_SERVER_PAGES
        )),
        Menu("Support & Diagnostics", (
            Page("Support & Diagnostics", "Support & Diagnostics", "support.index", "support"),
        )),
        Menu("System", (
            Page("SoftPaks & Licenses", "System: SoftPaks & Licenses", "system.licenses", "licenses"),
            Page("Administrators", "System: Administrators", "system.administrators", "administrators"),
            Page("Network", "System: Network", "system.network", "network"),
            Page("Firmware", "System: Firmware", "system.firmware", "firmware"),
            Page("Audit Log", "System: Audit Log", "system.audit", "audit"),
        )),
    )


def menu_tree() -> tuple:
    return _tree()


def current_page() -> Page | None:
    """The menu entry for this request, matched by endpoint and arguments."""
    for menu in _tree():
        for page in menu.pages:
            if page.endpoint == request.endpoint and \
                    all((request.view_args or {}).get(k) == v for k, v in page.args.items()):
                return page
    return None


def page_for(endpoint: str, **args) -> Page:
    for menu in _tree():
        for page in menu.pages:
            if page.endpoint == endpoint and page.args == args:
                return page
    raise KeyError(endpoint)
