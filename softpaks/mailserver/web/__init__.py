"""The Mail Server SoftPak's pages of the web admin, Users & Groups: Groups,
User Mailboxes, Aliases, Auto-Responders, Distribution Lists and Forwarders.
webui mounts this blueprint for the installed SoftPak and checks on every
request that the license is active; the views keep to the same directory
and maildir functions as the `gatebox alias|list|...` commands."""

from __future__ import annotations

from . import (aliases, forwarders, groups, isp_logins, lists, mailboxes,  # noqa: F401  (routes)
               responders, retrieval)
from .blueprint import blueprint
from .remote_pop import blueprint as remote_pop_blueprint


MENU = "Users & Groups"
# view, menu label, what the page manages (shown while the SoftPak is not licensed)
PAGES = (
    ("groups", "Groups", "groups of users and the permissions they give: a mailbox needs Email"),
    ("mailboxes", "User Mailboxes", "view and delete incoming mail on a per-user basis"),
    ("aliases", "Aliases", "incoming addresses that deliver to an existing address without an account"),
    ("responders", "Auto-Responders", "automatic replies, e.g. while a user is on vacation"),
    ("lists", "Distribution Lists", "one address that delivers to two or more addresses"),
    ("forwarders", "Forwarders", "route a user's mail to another address, optionally keeping a copy"),
)


def menu_pages(softpak_id: str) -> list[dict]:
    return [{"menu": f"{MENU} > {label}", "title": f"Users: {label}", "softpak": softpak_id,
             "blueprint": blueprint, "endpoint": f"{blueprint.name}.{view}",
             "help": f"mailserver-{view}", "purpose": purpose}
            for view, label, purpose in PAGES] + [
        {"menu": "Email Server > Remote POP", "title": "Email Server: Remote POP",
         "softpak": softpak_id, "blueprint": remote_pop_blueprint,
         "endpoint": f"{remote_pop_blueprint.name}.remote_pop", "help": "mailserver-remote-pop",
         "purpose": "further POP3/IMAP mailboxes (e.g. an old ISP mailbox), each fetched into "
                    "one local user's mailbox"}]
