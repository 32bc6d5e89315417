"""Trusted forwarders: mailing lists and forwarding services whose mail
often fails the original sender's DMARC policy (they change the subject or
the body, or send from their own servers). Their DMARC failures are scored
(DMARC_FAIL_FORWARDER) but never rejected or quarantined.

An entry is an IP address or network (the client's address) or a domain
(the client's verified reverse DNS name, subdomains included), matched as
the Anti-Spam lists match them (lists.py, ptr.py)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from firmware.config import transaction

from .. import lists, ptr
from ..access import client_address

MAX_NOTE = 200
MAX_ENTRIES = 1000


class ForwarderError(ValueError):
    """A change refused; the text is meant for the administrator."""


@dataclass(frozen=True)
class Forwarder:
    entry: str
    note: str = ""
    added: float = 0.0


def validate(text: str) -> str:
    try:
        entry = lists.validate_entry(text)
    except lists.ListError as error:
        raise ForwarderError(str(error)) from None
    if lists.entry_kind(entry) == "address":
        raise ForwarderError(f"'{entry}': a trusted forwarder is the server that passes the "
                             "mail on: an IP address or network, or a domain its reverse DNS "
                             "name is in")
    return entry


def entries(store) -> list[Forwarder]:
    rows = store.db.execute("SELECT entry, note, added FROM antispam_trusted_forwarders "
                            "ORDER BY entry")
    return [Forwarder(*row) for row in rows]


def add(store, text: str, note: str = "", actor: str = "system") -> Forwarder:
    entry = validate(text)
    note = " ".join(str(note or "").split())[:MAX_NOTE]
    made = Forwarder(entry, note, time.time())
    with transaction(store.db):
        if store.db.execute("SELECT 1 FROM antispam_trusted_forwarders WHERE entry = ?",
                            [entry]).fetchone():
            raise ForwarderError(f"{entry} is already a trusted forwarder")
        count = store.db.execute("SELECT COUNT(*) FROM antispam_trusted_forwarders").fetchone()[0]
        if count >= MAX_ENTRIES:
            raise ForwarderError(f"at most {MAX_ENTRIES} trusted forwarders")
        store.db.execute("INSERT INTO antispam_trusted_forwarders(entry, note, added) "
                         "VALUES(?, ?, ?)", [entry, note, made.added])
        store.audit(actor, f"add trusted forwarder {entry}")
        store._bump_generation()
    return made


def remove(store, text: str, actor: str = "system") -> str:
    entry = validate(text)
    with transaction(store.db):
        if store.db.execute("DELETE FROM antispam_trusted_forwarders WHERE entry = ?",
                            [entry]).rowcount == 0:
            raise ForwarderError(f"{entry} is not a trusted forwarder")
        store.audit(actor, f"remove trusted forwarder {entry}")
        store._bump_generation()
    return entry


class Matcher:
    """The entries compiled for matching, re-read when the settings
    generation moves (every change moves it)."""

    def __init__(self, store):
        self.store = store
        self._generation = object()
        self._list = lists.ColorList()

    def compiled(self, settings) -> lists.ColorList:
        generation = getattr(settings, "generation", None)
        if generation is None or generation != self._generation:
            colored = lists.ColorList()
            for forwarder in entries(self.store):
                try:
                    colored.add(forwarder.entry)
                except ValueError:
                    continue        # a row the validation would refuse: ignore it
            self._list, self._generation = colored, generation
        return self._list

    async def match(self, ctx) -> str | None:
        """The entry the client matches, or None."""
        colored = self.compiled(ctx.settings)
        if not colored.networks and not colored.domains:
            return None
        facts = lists.Facts(client_address(ctx.client_ip))
        found = lists.match_list(colored, facts)
        if found is None and colored.domains:
            found = lists.match_list(colored, facts, await ptr.verified_names(ctx))
        return found[0] if found else None
