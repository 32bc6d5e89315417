"""Value types for settings: each parses text from a form or the CLI into a
normalised value, or raises SettingError with the rule that was broken."""

from __future__ import annotations

import functools
import ipaddress
import re
import zoneinfo
from dataclasses import dataclass, field

UNLIMITED = "unlimited"

_HOST_LABEL = re.compile(r"^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)$")
_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class SettingError(ValueError):
    """A value broke a setting's rule. str() names the setting and the rule."""

    def __init__(self, key: str, rule: str):
        super().__init__(f"{key}: {rule}")
        self.key = key
        self.rule = rule


class Invalid(ValueError):
    """Raised by a type's parse(); the store adds the setting's name."""


def is_hostname(text: str, allow_underscore: bool = False) -> bool:
    if not text or len(text) > 253:
        return False
    labels = text.rstrip(".").split(".")
    for label in labels:
        if not _HOST_LABEL.match(label):
            return False
        if "_" in label and not allow_underscore:
            return False
    return True


@dataclass(frozen=True)
class Bool:
    rule: str = "must be on or off (true/false, yes/no, 1/0)"

    def parse(self, raw):
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("1", "true", "yes", "on", "y"):
            return True
        if text in ("0", "false", "no", "off", "n", ""):
            return False
        raise Invalid(self.rule)

    def render(self, value) -> str:
        return "on" if value else "off"


@dataclass(frozen=True)
class Integer:
    minimum: int = 0
    maximum: int = 1_000_000
    unlimited: bool = False

    @property
    def rule(self) -> str:
        base = f"must be a whole number from {self.minimum} to {self.maximum}"
        return base + (" or 'unlimited'" if self.unlimited else "")

    def parse(self, raw):
        if raw is None:
            raise Invalid(self.rule)
        text = str(raw).strip().lower()
        if self.unlimited and text == UNLIMITED:
            return UNLIMITED
        if not re.fullmatch(r"-?\d+", text):
            raise Invalid(self.rule)
        number = int(text)
        if not self.minimum <= number <= self.maximum:
            raise Invalid(self.rule)
        return number

    def render(self, value) -> str:
        return str(value)


@dataclass(frozen=True)
class Score:
    """A spam score threshold, or off (None)."""
    minimum: float = -1000.0
    maximum: float = 1000.0

    @property
    def rule(self) -> str:
        return f"must be a number from {self.minimum:g} to {self.maximum:g}, or off"

    def parse(self, raw):
        text = "" if raw is None else str(raw).strip().lower()
        if text in ("", "off", "none"):
            return None
        try:
            number = float(text)
        except ValueError:
            raise Invalid(self.rule) from None
        if not self.minimum <= number <= self.maximum:  # also refuses nan
            raise Invalid(self.rule)
        return number

    def render(self, value) -> str:
        return "off" if value is None else f"{value:g}"


def not_in_firmware_yet(feature: str) -> str:
    return f"'{feature}' is not in this firmware yet"


@dataclass(frozen=True)
class Choice:
    choices: tuple  # ((value, label), ...)
    # Values the manuals name that this firmware cannot do yet: shown, never
    # accepted; a stored one (from a firmware that had it) runs as `runs_as`.
    not_yet: tuple = ()
    runs_as: str = ""

    @property
    def values(self) -> list:
        return [value for value, _ in self.choices if value not in self.not_yet]

    def label(self, value) -> str:
        return dict(self.choices).get(value, str(value))

    @property
    def rule(self) -> str:
        return "must be one of " + ", ".join(self.values)

    def parse(self, raw):
        text = str(raw).strip().lower()
        if text in self.not_yet:
            raise Invalid(not_in_firmware_yet(self.label(text)))
        if text not in self.values:
            raise Invalid(self.rule)
        return text

    def render(self, value) -> str:
        return str(value)


@dataclass(frozen=True)
class NotYet:
    """A setting the manuals describe whose feature this firmware lacks. It is
    listed with its default, which is the one value accepted, so a saved
    configuration loads again; any other value is refused by name."""
    type: object
    feature: str
    keeps: object

    @property
    def rule(self) -> str:
        return not_in_firmware_yet(self.feature)

    def parse(self, raw):
        try:
            value = self.type.parse(raw)
        except Invalid:
            value = None
        if value != self.keeps:
            raise Invalid(self.rule)
        return self.keeps

    def render(self, value) -> str:
        return self.type.render(value)


@dataclass(frozen=True)
class Text:
    max_length: int = 255
    optional: bool = True
    rule: str = "must be text of at most 255 characters without line breaks"

    def parse(self, raw):
        text = "" if raw is None else str(raw)
        if len(text) > self.max_length or "\n" in text or "\r" in text:
            raise Invalid(self.rule)
        if not text and not self.optional:
            raise Invalid("must not be empty")
        return text

    def render(self, value) -> str:
        return value


@dataclass(frozen=True)
class Domain:
    allow_star: bool = False

    @property
    def rule(self) -> str:
        return "must be a domain name such as example.com" + (
            " or * (every domain, relay mode only)" if self.allow_star else "")

    def parse(self, raw):
        text = str(raw).strip().lower().rstrip(".")
        if self.allow_star and text == "*":
            return text
        if "." not in text or not is_hostname(text):
            raise Invalid(self.rule)
        return text

    def render(self, value) -> str:
        return value


@dataclass(frozen=True)
class Networks:
    rule: str = ("must be a comma-separated list of IP addresses and networks "
                 "(10.10.1.2, 10.10.1.0/24, fd00::/8) or *")

    def parse(self, raw):
        text = str(raw).strip()
        if text == "*":
            return "*"
        items = [item.strip() for item in re.split(r"[,\s]+", text) if item.strip()]
        result = []
        for item in items:
            try:
                network = ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise Invalid(f"{self.rule}; '{item}' is not an address or network")
            result.append(str(network) if "/" in item else item)
        return ",".join(result)

    def render(self, value) -> str:
        return value


@dataclass(frozen=True)
class AdminSources:
    """Who may reach the web admin: the Trusted Networks, anyone, or a list."""
    rule: str = ("must be 'trusted' (the Trusted Networks), 'any', or a comma-separated list of "
                 "IP addresses and networks (10.10.1.2, 10.10.1.0/24, fd00::/8)")

    def parse(self, raw):
        text = str(raw).strip()
        # Empty means the safe default, never "nobody": that would lock the
        # office out of its own box.
        if text.lower() in ("", "trusted", "trusted networks"):
            return "trusted"
        if text.lower() in ("any", "*"):
            return "any"
        try:
            return Networks().parse(text)
        except Invalid:
            raise Invalid(self.rule)

    def render(self, value) -> str:
        return value


@dataclass(frozen=True)
class HostPort:
    optional: bool = True
    rule: str = "must be a host name or IP address, optionally followed by :port (1-65535)"

    def parse(self, raw):
        text = str(raw or "").strip()
        if not text:
            if self.optional:
                return ""
            raise Invalid("must not be empty; " + self.rule)
        host, port = split_host_port(text)
        if port is not None and not 1 <= port <= 65535:
            raise Invalid(self.rule)
        try:
            ipaddress.ip_address(host)
        except ValueError:
            if not is_hostname(host):
                raise Invalid(self.rule)
        return text.lower()

    def render(self, value) -> str:
        return value


def split_host_port(text: str, default_port: int | None = None):
    """'host', 'host:25', '[::1]:25', '::1' -> (host, port)."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, port = text.split(":")
    else:
        host, port = text, ""
    if port:
        if not port.isdigit():
            raise Invalid("port must be a number")
        return host, int(port)
    return host, default_port


@dataclass(frozen=True)
class AddressList:
    rule: str = "must be a comma-separated list of IP addresses, or empty"

    def parse(self, raw):
        items = [item.strip() for item in re.split(r"[,\s]+", str(raw or "")) if item.strip()]
        for item in items:
            try:
                ipaddress.ip_address(item)
            except ValueError:
                raise Invalid(f"{self.rule}; '{item}' is not an IP address")
        return ",".join(items)

    def render(self, value) -> str:
        return value


@dataclass(frozen=True)
class Email:
    optional: bool = True
    rule: str = "must be an email address such as postmaster@example.com"

    def parse(self, raw):
        text = str(raw or "").strip()
        if not text and self.optional:
            return ""
        local, at, domain = text.rpartition("@")
        if not at or not local or not is_hostname(domain) or re.search(r"[\s<>()\[\],;:\"]", local):
            raise Invalid(self.rule)
        return text

    def render(self, value) -> str:
        return value


@dataclass(frozen=True)
class AddressPatterns:
    """Email addresses one per line (commas and spaces also separate), and
    *@domain for every address at a domain. Stored one per line, lower case."""
    max_items: int = 5000
    rule: str = ("must be email addresses such as jane@example.com, or *@example.com, "
                 "one per line")
    multiline = True    # a text area in the web form

    def parse(self, raw):
        items = [i for i in re.split(r"[\s,;]+", str(raw or "").lower()) if i]
        if len(items) > self.max_items:
            raise Invalid(f"at most {self.max_items} addresses")
        for item in items:
            local, at, domain = item.rpartition("@")
            if (not at or not local or not is_hostname(domain) or
                    (local != "*" and (re.search(r"[\s<>()\[\],;:\"*\\]", local)
                                       or any(ord(c) < 0x21 or ord(c) == 0x7F for c in local)))):
                raise Invalid(f"{self.rule}; '{item[:80]}' is not one")
        return "\n".join(dict.fromkeys(items))

    def render(self, value) -> str:
        return value


@dataclass(frozen=True)
class LdapServer:
    """host[:port] of an LDAP server, or ldap://host[:port] / ldaps://host[:port]."""
    rule: str = ("must be a host name or IP address, optionally with :port, "
                 "or ldap://host[:port] or ldaps://host[:port]")

    def parse(self, raw):
        text = str(raw or "").strip()
        if not text:
            return ""
        scheme, sep, rest = text.partition("://")
        if not sep:
            scheme, rest = "", text
        elif scheme.lower() not in ("ldap", "ldaps"):
            raise Invalid(self.rule)
        try:
            HostPort(optional=False).parse(rest.rstrip("/"))
        except Invalid:
            raise Invalid(self.rule) from None
        return (f"{scheme.lower()}://" if scheme else "") + rest.rstrip("/").lower()

    def render(self, value) -> str:
        return value


@dataclass(frozen=True)
class Days:
    rule: str = "must be a comma-separated list of days: " + ",".join(DAYS)

    def parse(self, raw):
        items = [d.strip().lower()[:3] for d in str(raw).split(",") if d.strip()]
        if not items or any(d not in DAYS for d in items):
            raise Invalid(self.rule)
        return ",".join(d for d in DAYS if d in items)

    def render(self, value) -> str:
        return value


@dataclass(frozen=True)
class TimeRange:
    rule: str = "must be a range of hours HH:MM-HH:MM with the start before the end, e.g. 08:00-17:00"

    def parse(self, raw):
        text = str(raw).strip()
        start, _, end = text.partition("-")
        a, b = _TIME.match(start.strip()), _TIME.match(end.strip())
        if not a or not b or (int(a[1]), int(a[2])) >= (int(b[1]), int(b[2])):
            raise Invalid(self.rule)
        return f"{start.strip()}-{end.strip()}"

    def render(self, value) -> str:
        return value


@functools.cache
def _time_zones() -> frozenset:
    return frozenset(zoneinfo.available_timezones()) | {"UTC"}


@dataclass(frozen=True)
class TimeZone:
    rule: str = "must be a time zone name such as Europe/Berlin, America/New_York or UTC"

    def parse(self, raw):
        text = str(raw or "").strip()
        # Zone names are case-sensitive file names; accept any case, keep the real one.
        for name in _time_zones():
            if name.lower() == text.lower():
                return name
        raise Invalid(self.rule)

    def render(self, value) -> str:
        return value


@dataclass(frozen=True)
class Secret:
    """A credential the box must replay to another server (so it cannot be
    hashed); never printed back."""
    rule: str = "must be at most 255 characters without line breaks"

    def parse(self, raw):
        text = "" if raw is None else str(raw)
        if len(text) > 255 or "\n" in text or "\r" in text:
            raise Invalid(self.rule)
        return text

    def render(self, value) -> str:
        return "********" if value else ""


@dataclass
class Setting:
    key: str
    type: object
    default: object
    label: str
    menu: str
    help: str = ""
    warn: object = None          # callable(value) -> str | None
    requires: dict = field(default_factory=dict)  # value -> softpak id needed
    visible_when: tuple | None = None  # (other_key, (values...)) for the web form

    @property
    def secret(self) -> bool:
        return isinstance(self.type, Secret)
