"""TXT records asked through the box's resolver, before dkimpy needs them.

dkimpy asks DNS through a synchronous `dnsfunc`. Rather than block a thread
per lookup, the check reads the selectors and domains out of the signatures,
asks for every key at once on the event loop, and then hands dkimpy a
dnsfunc that answers from what was fetched: dkimpy itself never waits on
the network, and a name nobody fetched is answered as absent."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from firmware.config.types import is_hostname
from firmware.mail.resolver import NXDOMAIN, DnsFailure, NoAnswer

QUERY_SECONDS = 4.0
MAX_TXT_OCTETS = 8192


@dataclass(frozen=True)
class Txt:
    """What DNS said about one name: its TXT records (each record's strings
    joined), or that it has none, or that it could not be asked."""
    records: tuple[bytes, ...] = ()
    failure: str = ""               # non-empty: a temporary failure

    @property
    def failed(self) -> bool:
        return bool(self.failure)


def normal_name(name) -> str:
    if isinstance(name, bytes):
        name = name.decode("ascii", "replace")
    return str(name).strip().rstrip(".").lower()


def valid_name(name: str) -> bool:
    return is_hostname(name, allow_underscore=True)


async def txt(resolver, settings, name: str, budget: float = QUERY_SECONDS) -> Txt:
    name = normal_name(name)
    if not valid_name(name):
        return Txt()
    try:
        answer = await resolver.resolve(name, "TXT", settings, budget)
    except (NXDOMAIN, NoAnswer):
        return Txt()
    except DnsFailure as error:
        return Txt(failure=str(error))
    records = tuple(b"".join(rdata.strings)[:MAX_TXT_OCTETS] for rdata in answer)
    return Txt(records)


async def fetch_all(resolver, settings, names, budget: float = QUERY_SECONDS) -> dict[str, Txt]:
    wanted = list(dict.fromkeys(normal_name(n) for n in names))
    found = await asyncio.gather(*(txt(resolver, settings, n, budget) for n in wanted))
    return dict(zip(wanted, found))


def key_record(found: Txt) -> bytes | None:
    """The record dkimpy should read for a key name: the first that says it
    is a DKIM key, or else the first."""
    if not found.records:
        return None
    for record in found.records:
        if record.lstrip().startswith(b"v=DKIM1"):
            return record
    return found.records[0]


def served(fetched: dict[str, Txt]):
    """A dkimpy dnsfunc answering from `fetched` only."""
    def dnsfunc(name, timeout=5):
        found = fetched.get(normal_name(name))
        return key_record(found) if found is not None else None
    return dnsfunc
