"""route(): every recipient to one destination, branch by branch, as a table.

The settings are a plain mapping of the keys route() reads, with the
manuals' defaults; each case changes only what it is about."""

from __future__ import annotations

import pytest

from firmware.mail.route import Destination, RouteError, route

LAN = "192.0.2.10"
SMARTHOST = "198.51.100.7"


class Settings(dict):
    """A settings mapping; further_local_domains stands for what SoftPaks add
    through the local-domains hook (a config Snapshot carries it)."""
    further_local_domains: tuple = ()


def settings(further=(), **changes) -> Settings:
    values = Settings({
        "email.domain": "example.com",
        "email.server_type": "relay",
        "email.mail_server_address": LAN,
        "email.mail_server_auth": False,
        "email.mail_server_login": "",
        "email.mail_server_password": "",
        "email.relay_server_address": "",
        "email.relay_server_auth": False,
        "email.relay_server_login": "",
        "email.relay_server_password": "",
        "email.send_incoming_to": "",
        "email.forward_to_incoming_smtp": False,
    })
    for key, value in changes.items():
        values["email." + key] = value
    values.further_local_domains = tuple(further)
    return values


def lan(port=25, login="", password=""):
    return Destination("lan", LAN, port, login, password)


def mx(domain):
    return Destination("mx", domain, 25)


def smarthost(port=25, login="", password=""):
    return Destination("smarthost", SMARTHOST, port, login, password)


CASES = [
    # (name, recipient, direction, settings, expected address, expected destination)
    ("relay mode: mail for the domain goes to the LAN server",
     "bob@example.com", "inbound", settings(), "bob@example.com", lan()),
    ("the domain matches whatever its case",
     "Bob@EXAMPLE.COM", "inbound", settings(), "Bob@EXAMPLE.COM", lan()),
    ("the LAN's mail to its own domain stays on the LAN",
     "bob@example.com", "outbound", settings(), "bob@example.com", lan()),
    ("the LAN server on another port",
     "bob@example.com", "inbound", settings(mail_server_address=f"{LAN}:2525"),
     "bob@example.com", lan(port=2525)),
    ("the LAN server with authentication",
     "bob@example.com", "inbound",
     settings(mail_server_auth=True, mail_server_login="gw", mail_server_password="pw"),
     "bob@example.com", lan(login="gw", password="pw")),
    ("LAN credentials are not used while its authentication is off",
     "bob@example.com", "inbound", settings(mail_server_login="gw", mail_server_password="pw"),
     "bob@example.com", lan()),
    ("Internet mail without a Relay Server Address goes to the domain's MX",
     "carol@far.test", "outbound", settings(), "carol@far.test", mx("far.test")),
    ("the MX domain is taken in lower case",
     "carol@Far.TEST", "outbound", settings(), "carol@Far.TEST", mx("far.test")),
    ("Internet mail goes to the smarthost when one is set",
     "carol@far.test", "outbound", settings(relay_server_address=SMARTHOST),
     "carol@far.test", smarthost()),
    ("the smarthost with a port and authentication",
     "carol@far.test", "outbound",
     settings(relay_server_address=f"{SMARTHOST}:587", relay_server_auth=True,
              relay_server_login="office", relay_server_password="secret"),
     "carol@far.test", smarthost(port=587, login="office", password="secret")),
    ("smarthost credentials are not used while its authentication is off",
     "carol@far.test", "outbound",
     settings(relay_server_address=SMARTHOST, relay_server_login="office",
              relay_server_password="secret"),
     "carol@far.test", smarthost()),
    ("Domain '*': Internet mail for any domain goes in to the LAN server",
     "anyone@anywhere.test", "inbound", settings(domain="*"), "anyone@anywhere.test", lan()),
    ("Domain '*': the LAN's mail goes out by MX",
     "anyone@anywhere.test", "outbound", settings(domain="*"),
     "anyone@anywhere.test", mx("anywhere.test")),
    ("Domain '*': the LAN's mail goes out through the smarthost when set",
     "anyone@anywhere.test", "outbound", settings(domain="*", relay_server_address=SMARTHOST),
     "anyone@anywhere.test", smarthost()),
    ("Send incoming to an outside address: Internet mail is redirected there by MX",
     "bob@example.com", "inbound", settings(send_incoming_to="boss@home.test"),
     "boss@home.test", mx("home.test")),
    ("Send incoming to an outside address, through the smarthost",
     "bob@example.com", "inbound",
     settings(send_incoming_to="boss@home.test", relay_server_address=SMARTHOST),
     "boss@home.test", smarthost()),
    ("Send incoming to with Forward to incoming SMTP server: to the LAN server",
     "bob@example.com", "inbound",
     settings(send_incoming_to="boss@home.test", forward_to_incoming_smtp=True),
     "boss@home.test", lan()),
    ("Send incoming to a local address: to the LAN server",
     "bob@example.com", "inbound", settings(send_incoming_to="postmaster@example.com"),
     "postmaster@example.com", lan()),
    ("Send incoming to leaves the LAN's own mail alone",
     "bob@example.com", "outbound", settings(send_incoming_to="boss@home.test"),
     "bob@example.com", lan()),
    ("Send incoming to leaves Internet mail for other domains alone",
     "carol@far.test", "outbound", settings(send_incoming_to="boss@home.test"),
     "carol@far.test", mx("far.test")),
    ("a SoftPak's further domain counts where the box keeps mailboxes",
     "bob@example.net", "inbound", settings(further=["example.net"], server_type="standalone"),
     "bob@example.net", lan()),
    ("Relay mode ignores further domains: they are Internet mail",
     "bob@example.net", "inbound", settings(further=["example.net"]),
     "bob@example.net", mx("example.net")),
]


@pytest.mark.parametrize("name, recipient, direction, given, address, destination", CASES,
                         ids=[case[0] for case in CASES])
def test_route(name, recipient, direction, given, address, destination):
    assert route(recipient, direction, given) == (address, destination)


@pytest.mark.parametrize("recipient, direction, given", [
    ("bob@example.com", "inbound", settings(mail_server_address="")),
    ("anyone@anywhere.test", "inbound", settings(domain="*", mail_server_address="")),
    ("bob@example.com", "inbound",
     settings(mail_server_address="", send_incoming_to="boss@home.test",
              forward_to_incoming_smtp=True)),
], ids=["relay mode", "Domain '*'", "Forward to incoming SMTP server"])
def test_a_missing_mail_server_address_keeps_mail_waiting(recipient, direction, given):
    with pytest.raises(RouteError, match="Mail Server Address is not set") as raised:
        route(recipient, direction, given)
    assert raised.value.permanent is False


@pytest.mark.parametrize("given, named", [
    (settings(mail_server_address=f"{LAN}:smtp"), "lan address"),
    (settings(relay_server_address=f"{SMARTHOST}:x"), "smarthost address"),
], ids=["LAN server", "smarthost"])
def test_an_unusable_server_address_is_a_temporary_error_naming_it(given, named):
    recipient = "bob@example.com" if named.startswith("lan") else "carol@far.test"
    with pytest.raises(RouteError, match=f"{named} .*port must be a number") as raised:
        route(recipient, "outbound", given)
    assert raised.value.permanent is False


def test_extra_routes_are_asked_first_in_order_and_none_passes_on():
    local = Destination("local", "mailboxes", 0)
    asked = []

    def declines(recipient, direction, given):
        asked.append("declines")
        return None

    def takes_bob(recipient, direction, given):
        asked.append("takes_bob")
        return (recipient, local) if recipient.startswith("bob@") else None

    def never_reached(recipient, direction, given):
        raise AssertionError("asked after a route had decided")

    given = settings()
    assert route("bob@example.com", "inbound", given, [declines, takes_bob, never_reached]) == \
        ("bob@example.com", local)
    assert asked == ["declines", "takes_bob"]
    # Where every extra route declines, the core decides.
    assert route("carol@example.com", "inbound", given, [declines, takes_bob]) == \
        ("carol@example.com", lan())


def test_extra_routes_come_before_a_missing_mail_server_address():
    local = Destination("local", "mailboxes", 0)
    assert route("bob@example.com", "inbound", settings(mail_server_address=""),
                 [lambda r, d, s: (r, local)]) == ("bob@example.com", local)


@pytest.mark.parametrize("destination, key, label", [
    (lan(2525), f"lan:{LAN}:2525", f"{LAN}:2525"),
    (smarthost(), f"smarthost:{SMARTHOST}:25", f"{SMARTHOST}:25"),
    (mx("far.test"), "mx:far.test:25", "far.test"),
])
def test_destination_key_and_label(destination, key, label):
    assert (destination.key, destination.label) == (key, label)
