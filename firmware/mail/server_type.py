"""The server type the mail stack runs as, and what each type implies.

Relay hands local mail to the LAN server. Every other type keeps the
office's mailboxes on the box (the Mail Server SoftPak); Multi-drop and
Mirrored also fetch mail from the ISP's mailbox, ETRN and Mail-bagging ask
the ISP to deliver what it holds for the domain (retrieval, in the Mail
Server SoftPak)."""

from __future__ import annotations

from firmware.config.schema import (ISP_SERVER_TYPES, RETRIEVING_SERVER_TYPES,
                                    TRIGGERING_SERVER_TYPES)

MAILBOX_SERVER_TYPES = ("standalone",) + ISP_SERVER_TYPES


def in_effect(settings) -> str:
    return settings["email.server_type"]


def keeps_mailboxes(settings) -> bool:
    return in_effect(settings) in MAILBOX_SERVER_TYPES


def retrieves(settings) -> bool:
    """Fetches from the ISP's mailbox (POP3/IMAP)."""
    return in_effect(settings) in RETRIEVING_SERVER_TYPES


def triggers(settings) -> bool:
    """Asks the ISP to deliver (ETRN or finger)."""
    return in_effect(settings) in TRIGGERING_SERVER_TYPES
