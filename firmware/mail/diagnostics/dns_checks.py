"""The DNS checks, asked through the box's own resolver (System > Network's
DNS Servers): does it answer, the Domain Name's MX and the MX hosts' addresses,
the PTR of the box's public address, the SPF record."""

from __future__ import annotations

import ipaddress

import dns.reversename

from firmware.mail.resolver import NXDOMAIN, DnsFailure, NoAnswer

from .result import Context, Outcome, failed, passed, warned

QUERY_SECONDS = 4.0
# Types where the Internet delivers the domain's mail to the box itself, so
# the box's address belongs among the MX hosts' (ETRN and Mail-bagging: the
# box is the primary MX, the ISP the backup that holds mail while it is away).
RECEIVING_TYPES = ("relay", "standalone", "etrn", "mailbag")

NO_DOMAIN_FIX = "Set the Domain Name (Email Server > Settings) to the office's mail domain."
RESOLVER_FIX = ("Check System > Network's DNS Servers and DNS Port: the servers must be "
                "reachable from the box and answer recursive queries.")


def _ask(context: Context, name: str, rdtype: str):
    return context.resolver.resolve_blocking(name, rdtype, context.settings, QUERY_SECONDS)


def _servers(context: Context) -> str:
    servers = context["dns.nameservers"] or "the system resolver"
    return f"{servers} port {context['dns.port']}"


def _domain(context: Context) -> str | None:
    domain = context["email.domain"]
    return None if domain in ("", "*") else domain


def resolver_answers(context: Context) -> Outcome:
    name = _domain(context) or context["system.hostname"]
    try:
        _ask(context, name, "SOA")
    except (NXDOMAIN, NoAnswer):
        pass  # an answer all the same: the resolver is there and replies
    except DnsFailure as error:
        return failed(f"{_servers(context)}: {error}", RESOLVER_FIX)
    return passed(f"{_servers(context)} answers")


def mx_hosts(context: Context) -> list[str]:
    """The MX hosts, most preferred first. Raises NXDOMAIN, NoAnswer, DnsFailure."""
    answer = _ask(context, _domain(context), "MX")
    records = sorted(answer, key=lambda r: (r.preference, str(r.exchange)))
    return [str(r.exchange).rstrip(".") for r in records]


def domain_mx(context: Context) -> Outcome:
    domain = _domain(context)
    if domain is None:
        return warned("the Domain Name is * (every domain): there is no one domain to look up",
                      NO_DOMAIN_FIX)
    try:
        hosts = mx_hosts(context)
    except NXDOMAIN:
        return failed(f"the domain {domain} does not exist in DNS (NXDOMAIN)",
                      f"Register {domain} or correct the Domain Name (Email Server > Settings).")
    except NoAnswer:
        return failed(f"{domain} has no MX record: other servers cannot find where to send "
                      "its mail",
                      f"Publish an MX record for {domain} naming the server that receives its "
                      "mail (the box, or the ISP for Multi-drop and Mirrored).")
    except DnsFailure as error:
        return failed(str(error), RESOLVER_FIX)
    return passed(f"MX of {domain}: {', '.join(hosts)}")


def _addresses(context: Context, host: str) -> list[str]:
    """A and AAAA records. A failed AAAA query counts only when there is no
    A record either: some resolvers refuse AAAA for IPv4-only names."""
    found, trouble = [], None
    for rdtype in ("A", "AAAA"):
        try:
            found += [r.address for r in _ask(context, host, rdtype)]
        except (NXDOMAIN, NoAnswer):
            continue
        except DnsFailure as error:
            trouble = trouble or error
    if not found and trouble is not None:
        raise trouble
    return found


def mx_addresses(context: Context) -> Outcome:
    domain = _domain(context)
    if domain is None:
        return warned("the Domain Name is *: no MX hosts to look up", NO_DOMAIN_FIX)
    try:
        hosts = mx_hosts(context)
        addresses = {host: _addresses(context, host) for host in hosts}
    except (NXDOMAIN, NoAnswer):
        return failed(f"{domain} has no MX hosts to look up",
                      f"Publish an MX record for {domain} first (see the MX check).")
    except DnsFailure as error:
        return failed(str(error), RESOLVER_FIX)
    missing = [host for host, found in addresses.items() if not found]
    if missing:
        return failed(f"MX host {', '.join(missing)} has no A (or AAAA) record",
                      f"Publish an A record for {', '.join(missing)}, or point the MX of "
                      f"{domain} at a host that has one.")
    listing = "; ".join(f"{host} {', '.join(found)}" for host, found in addresses.items())
    public = public_address(context)
    if public and context["email.server_type"] in RECEIVING_TYPES and \
            not any(public in found for found in addresses.values()):
        return warned(f"{listing}: none is the box's public address {public}",
                      f"Mail for {domain} goes to those hosts, not to the box. Point an MX "
                      f"record at a name whose A record is {public}.")
    return passed(listing)


def public_address(context: Context) -> str:
    """The box's Internet address: as given, else the Host Name's A record."""
    if context.public_address:
        return context.public_address
    try:
        answer = _ask(context, context["system.hostname"], "A")
    except (NXDOMAIN, NoAnswer, DnsFailure):
        return ""
    return answer[0].address


def public_ptr(context: Context) -> Outcome:
    hostname = context["system.hostname"]
    address = public_address(context)
    if not address:
        if context["email.relay_server_address"]:
            return passed("the box's public address is not known; its mail leaves through the "
                          "Relay Server, whose own PTR is what receivers check")
        return warned(f"the box's public address is not known (the Host Name {hostname} has "
                      "no A record), so its PTR cannot be checked",
                      "Give the Host Name (System > Network) its public A record, or run "
                      "the diagnostics with the public address.")
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return failed(f"{address!r} is not an IP address", "Give the box's public IP address.")
    reverse = dns.reversename.from_address(address).to_text()
    try:
        names = [str(r.target).rstrip(".") for r in _ask(context, reverse, "PTR")]
    except (NXDOMAIN, NoAnswer):
        return failed(f"{address} has no PTR record: many receivers refuse mail from an "
                      "address without one",
                      f"Ask whoever owns {address} (the ISP) for a PTR record naming {hostname}.")
    except DnsFailure as error:
        return failed(str(error), RESOLVER_FIX)
    confirmed = [name for name in names if address in _addresses(context, name)]
    if not confirmed:
        return failed(f"PTR of {address} is {', '.join(names)}, whose A record is not "
                      f"{address}",
                      f"Give {names[0]} the A record {address}, or have the PTR changed to a "
                      "name that has it.")
    if hostname.lower() not in (name.lower() for name in confirmed):
        return warned(f"PTR of {address} is {', '.join(confirmed)}, not the Host Name "
                      f"{hostname} the box greets with",
                      f"Set the Host Name (System > Network) to {confirmed[0]}, or have the "
                      "PTR changed to the Host Name.")
    return passed(f"PTR of {address} is {hostname}, and {hostname} points back to it")


def spf_record(context: Context) -> Outcome:
    domain = _domain(context)
    if domain is None:
        return warned("the Domain Name is *: no SPF record to look up", NO_DOMAIN_FIX)
    suggestion = '"v=spf1 mx -all"'
    try:
        texts = [b"".join(r.strings).decode("utf-8", "replace")
                 for r in _ask(context, domain, "TXT")]
    except (NXDOMAIN, NoAnswer):
        texts = []
    except DnsFailure as error:
        return failed(str(error), RESOLVER_FIX)
    spf = [text for text in texts if text.lower() == "v=spf1" or text.lower().startswith("v=spf1 ")]
    if not spf:
        return warned(f"{domain} publishes no SPF record: receivers cannot tell forged mail "
                      "from the office's own",
                      f"Publish a TXT record for {domain} such as {suggestion} (with "
                      "include: for the ISP's relay if mail leaves through it).")
    if len(spf) > 1:
        return failed(f"{domain} publishes {len(spf)} SPF records; receivers then treat SPF as "
                      "broken (RFC 7208 permerror)",
                      "Merge them into one TXT record starting with v=spf1.")
    record = spf[0]
    terms = record.lower().split()
    if "+all" in terms or "all" in terms:
        return warned(f"SPF of {domain} is {record!r}: it allows every server on the Internet",
                      f"End the record with -all or ~all, as in {suggestion}.")
    return passed(f"SPF of {domain}: {record}")
