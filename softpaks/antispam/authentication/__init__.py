"""Anti-Spam > DKIM & DMARC: DKIM verification, DMARC policies with
alignment, ARC, trusted forwarders, and DKIM signing of outgoing mail per
local domain (keys made on the box). See checks.py for what inbound mail
gets, signing.py and keys.py for outgoing mail."""

from __future__ import annotations

from firmware.config.types import Bool, Setting

from . import checks, signing
from .cli import COMMANDS  # noqa: F401  (the part's commands, added by hooks.py)

MENU = "Anti-Spam > DKIM & DMARC"

SETTINGS = [
    Setting(checks.DKIM_VERIFY, Bool(), True, "Verify DKIM Signatures", MENU,
            "Each signature of inbound mail (up to five) is checked against its key in DNS; the "
            "result goes into Authentication-Results and the spam score."),
    Setting(checks.DMARC_ENFORCE, Bool(), True, "Enforce DMARC Policies", MENU,
            "Mail that fails the DMARC policy of its From domain gets what the domain asks: "
            "p=reject is refused (550 5.7.1), p=quarantine is held in the spam quarantine, "
            "for the pct= share the domain names. Off: failures are only scored. Trusted "
            "forwarders' failures are always only scored."),
    Setting(checks.ARC_VERIFY, Bool(), True, "Verify ARC Chains", MENU,
            "Records whether the ARC sets of forwarders and mailing lists verify. An ARC pass "
            "from a trusted forwarder takes the score off its DMARC failure."),
    Setting(signing.SIGN, Bool(), True, "Sign Outgoing Mail", MENU,
            "Mail from Trusted Networks and signed-in users whose From address is in a local "
            "domain with keys is DKIM signed (RSA, then Ed25519)."),
]


def _m6_authentication(db):
    # DKIM keys: the private key is in DATA/antispam/dkim/<key_file>;
    # retired: when the key stopped signing (rotation), NULL while it signs.
    db.execute("""CREATE TABLE IF NOT EXISTS antispam_dkim_keys (
        domain TEXT NOT NULL, selector TEXT NOT NULL, algorithm TEXT NOT NULL,
        key_file TEXT NOT NULL, public_key TEXT NOT NULL, created REAL NOT NULL, retired REAL,
        PRIMARY KEY (domain, selector))""")
    # Trusted forwarders: an IP address or network, or a domain (verified PTR).
    db.execute("""CREATE TABLE IF NOT EXISTS antispam_trusted_forwarders (
        entry TEXT PRIMARY KEY, note TEXT NOT NULL DEFAULT '', added REAL NOT NULL)""")


MIGRATIONS = [(6, _m6_authentication)]


def policy_checks(store) -> list:
    return checks.policy_checks(store)


def signers(store) -> list:
    return [signing.Signer(store)]
