"""Turns each recipient into a destination: the LAN mail server (relay mode),
the smarthost (Relay Server Address) or the recipient domain's MX."""

from __future__ import annotations

from dataclasses import dataclass

from firmware.config.types import Invalid, split_host_port

from .addresses import domain_of


class RouteError(Exception):
    def __init__(self, text: str, permanent: bool):
        super().__init__(text)
        self.permanent = permanent


@dataclass(frozen=True)
class Destination:
    kind: str               # lan | smarthost | mx | local
    host: str               # host name, address, or the domain for mx
    port: int = 25
    login: str = ""
    password: str = ""

    @property
    def key(self) -> str:
        """Concurrency limits and connection reuse are per key."""
        return f"{self.kind}:{self.host}:{self.port}"

    @property
    def label(self) -> str:
        return f"{self.host}:{self.port}" if self.kind != "mx" else self.host


def local_domains(settings) -> set[str]:
    domain = settings["email.domain"]
    if domain == "*":
        return {"*"}
    if settings["email.server_type"] == "relay":
        # The SoftPaks' further domains (ISMail's multiple domains) count only
        # where the box keeps mailboxes: Relay mode stays as it was.
        return {domain}
    return {domain} | further_local_domains(settings)


def further_local_domains(settings) -> set[str]:
    """What the SoftPaks add through the gatebox_local_domains hook; a config
    Snapshot carries them (a plain mapping of settings has none)."""
    return set(getattr(settings, "further_local_domains", ()))


def is_local_domain(domain: str, settings) -> bool:
    domains = local_domains(settings)
    return "*" in domains or domain.lower() in domains


def _server(value: str, kind: str, login: str = "", password: str = "") -> Destination:
    try:
        host, port = split_host_port(value, 25)
    except Invalid as error:
        raise RouteError(f"{kind} address {value!r}: {error}", permanent=False) from None
    return Destination(kind, host, port, login, password)


def lan_server(settings) -> Destination:
    address = settings["email.mail_server_address"]
    if not address:
        # Temporary: the mail waits in the queue until the administrator sets it.
        raise RouteError("Mail Server Address is not set (Email Server > Settings)", permanent=False)
    auth = settings["email.mail_server_auth"]
    return _server(address, "lan", settings["email.mail_server_login"] if auth else "",
                   settings["email.mail_server_password"] if auth else "")


def internet(recipient: str, settings) -> Destination:
    relay = settings["email.relay_server_address"]
    if relay:
        auth = settings["email.relay_server_auth"]
        return _server(relay, "smarthost", settings["email.relay_server_login"] if auth else "",
                       settings["email.relay_server_password"] if auth else "")
    return Destination("mx", domain_of(recipient), 25)


def route(recipient: str, direction: str, settings, extra_routes=()) -> tuple[str, Destination]:
    """Returns (address to deliver to, destination). extra_routes are
    SoftPak route functions tried first: fn(recipient, direction, settings)
    -> (address, Destination) | None."""
    for extra in extra_routes:
        decided = extra(recipient, direction, settings)
        if decided is not None:
            return decided
    domain = domain_of(recipient)
    if settings["email.domain"] == "*":
        # Every domain is ours: Internet mail goes in to the LAN server, the
        # LAN's own mail goes out.
        if direction == "inbound":
            return recipient, lan_server(settings)
        return recipient, internet(recipient, settings)
    if is_local_domain(domain, settings):
        redirect = settings["email.send_incoming_to"]
        if redirect and direction == "inbound":
            if settings["email.forward_to_incoming_smtp"]:
                return redirect, lan_server(settings)
            if is_local_domain(domain_of(redirect), settings):
                return redirect, lan_server(settings)
            return redirect, internet(redirect, settings)
        return recipient, lan_server(settings)
    return recipient, internet(recipient, settings)
