"""The Anti-Virus SoftPak's own menu of the web admin: Settings, Signatures
and EICAR Test. webui mounts this blueprint for the installed SoftPak and
checks on every request that the license is active; the views keep to the
same functions as the `gatebox antivirus` commands."""

from __future__ import annotations

from ..license import SOFTPAK_ID
from . import eicar_page, settings_page, signatures_page  # noqa: F401  (routes)
from .blueprint import blueprint

MENU = "Anti-Virus"
# view, menu label, what the page manages (shown while the SoftPak is not licensed)
PAGES = (
    ("settings", "Settings", "Anti-Virus Scanner Active, what happens to an infected message, "
                             "the notices, what happens when the scanner fails, and how much "
                             "memory the signatures need"),
    ("signatures", "Signatures", "the signature version and date, online updates, a mirror on "
                                 "the LAN, and importing signature files"),
    ("eicar", "EICAR Test", "sends the harmless EICAR test virus through the box and shows "
                            "what happened to it"),
)
# What the page says once the license has lapsed.
LAPSED = ("Its settings and signatures are kept, but it scans nothing: mail passes unscanned "
          "until a license is active again.")


def menu_pages() -> list[dict]:
    return [{"menu": f"{MENU} > {label}", "title": f"Anti-Virus: {label}", "softpak": SOFTPAK_ID,
             "blueprint": blueprint, "endpoint": f"{blueprint.name}.{view}",
             "help": f"antivirus-{view}", "purpose": purpose, "lapsed": LAPSED}
            for view, label, purpose in PAGES]
