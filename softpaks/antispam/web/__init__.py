"""The Anti-Spam SoftPak's own menu of the web admin: Access, Lists,
Greylist and Statistics. webui mounts this blueprint for the installed
SoftPak and checks on every request that the license is active; the views
keep to the same functions as the `gatebox antispam` commands."""

from __future__ import annotations

from ..license import SOFTPAK_ID
from . import (access_page, authentication_page, bayes_page, content_filter_page,  # noqa: F401
               digest_page, greylist_page, lists_page, rules_page, statistics_page)  # (routes)
from .blueprint import blueprint

MENU = "Anti-Spam"
# view, menu label, what the page manages (shown while the SoftPak is not licensed)
PAGES = (
    ("access", "Access", "Blocked IP Addresses, DNS RBL filters with the health of each zone, "
                         "and Reverse DNS Required"),
    ("lists", "Lists", "black and whitelists for the whole server, one local domain or one user"),
    ("greylist", "Greylist", "first-time senders are asked to retry; the triplets waiting, "
                             "Pass now, and the networks that skip the greylist"),
    ("statistics", "Statistics", "what each layer passed, deferred and rejected, per hour and "
                                 "per day"),
)
# Part 2's pages: each module's PAGES, (view, label, purpose) like the above.
PAGES += tuple(page for module in (content_filter_page, rules_page, bayes_page,
                                   authentication_page, digest_page) for page in module.PAGES)
# What the page says once the license has lapsed.
LAPSED = ("Its settings, black and whitelists and greylist records are kept, but it filters "
          "nothing: mail passes as if the SoftPak were not there until a license is active again.")


def menu_pages() -> list[dict]:
    return [{"menu": f"{MENU} > {label}", "title": f"Anti-Spam: {label}", "softpak": SOFTPAK_ID,
             "blueprint": blueprint, "endpoint": f"{blueprint.name}.{view}",
             "help": f"antispam-{view}", "purpose": purpose, "lapsed": LAPSED}
            for view, label, purpose in PAGES]
