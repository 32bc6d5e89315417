"""The left-hand menu tree, as in the eSoft manuals. Each page knows its
title ("Email Server: Settings: Advanced"), its endpoint, its help page and,
for pages a SoftPak brings, which SoftPak that is. SoftPak pages join the
menu their "menu" path names, after the core's own entries, in the order the
SoftPak lists them.

A page's sub-pages (an edit form, a message window) use endpoints named
after the page's own with a "_" suffix (mailserver.aliases_edit), so they
show the page's menu entry and help."""

from __future__ import annotations

from dataclasses import dataclass, field

from flask import request, url_for

from .softpak_pages import pages


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


def _softpak_entries(menu: str) -> tuple:
    entries = []
    for page in pages():
        path = page["menu"].split(" > ")
        if path[0] == menu:
            entries.append(Page(path[-1], page["title"], page["endpoint"], page["help"],
                                softpak=page["softpak"], depth=len(path) - 2))
    return tuple(entries)


def menu_tree() -> tuple:
    """The core's menus with the SoftPaks' entries joined in, then the menus a
    SoftPak brings of its own (Anti-Spam), before System."""
    core = _core_tree()
    labels = {menu.label for menu in core}
    own = list(dict.fromkeys(page["menu"].split(" > ")[0] for page in pages()
                             if page["menu"].split(" > ")[0] not in labels))
    joined = [Menu(menu.label, menu.pages + _softpak_entries(menu.label)) for menu in core]
    extra = [Menu(label, _softpak_entries(label)) for label in own]
    return tuple(joined[:-1] + extra + joined[-1:])


def _core_tree() -> tuple:
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
            Page("Quarantine", "Email Server: Quarantine", "email_server.quarantine",
                 "email-quarantine"),
            Page("Quarantine Settings", "Email Server: Quarantine: Settings",
                 "email_server.quarantine_settings", "email-quarantine-settings", depth=1),
        )),
        Menu("Users & Groups", (
            # Groups (and the rest of this menu) come with the Mail Server SoftPak.
            Page("Users", "Users & Groups: Users", "users_groups.users", "users"),
        )),
        Menu("Support & Diagnostics", (
            Page("Support & Diagnostics", "Support & Diagnostics", "support.index", "support"),
            Page("Email Diagnostics", "Support & Diagnostics: Email Diagnostics",
                 "email_diagnostics.index", "email-diagnostics"),
        )),
        Menu("System", (
            Page("SoftPaks & Licenses", "System: SoftPaks & Licenses", "system.licenses", "licenses"),
            Page("Administrators", "System: Administrators", "system.administrators", "administrators"),
            Page("Network", "System: Network", "system.network", "network"),
            Page("Firmware", "System: Firmware", "system.firmware", "firmware"),
            Page("Audit Log", "System: Audit Log", "system.audit", "audit"),
        )),
    )


def current_page() -> Page | None:
    """The menu entry for this request, matched by endpoint and arguments, or
    the entry whose sub-page this is."""
    pages = [page for menu in menu_tree() for page in menu.pages]
    endpoint = request.endpoint or ""
    for page in pages:
        if page.endpoint == endpoint and \
                all((request.view_args or {}).get(k) == v for k, v in page.args.items()):
            return page
    for page in pages:
        if endpoint.startswith(page.endpoint + "_"):
            return page
    return None
