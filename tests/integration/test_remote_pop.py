"""Remote POP (ISMail): further POP3/IMAP accounts, each fetched into its
local recipient's mailbox, in a Stand-Alone box (no ISP server type at all)
and read back over the box's own IMAP. A broken account (the certificate's
name does not match) fails alone; hostile input is refused with the rule;
the password is never printed. Real parts: Debian's Dovecot as the remote
server, a real `gatebox run` box with its own Dovecot, imaplib."""

from __future__ import annotations

import pytest

from tests.support.box import wait_until_idle
from tests.support.isp import CAFILE_ENV, Isp
from tests.support.mailserver import PASSWORD, MailBox
from tests.support.net import wait_for_banner

OLD_BOB, OLD_CAROL = ("old.bob", "old bob secret 1"), ("old.carol", "old-carol-secret-2")


@pytest.fixture
def remote(tmp_path):
    server = Isp(tmp_path / "remote")
    server.add_user(*OLD_BOB)
    server.add_user(*OLD_CAROL)
    with server:
        yield server


@pytest.fixture
def box(tmp_path, vendor, box_serial, remote, monkeypatch):
    monkeypatch.setenv(CAFILE_ENV, str(remote.ca_file))
    made = MailBox(tmp_path / "box", vendor, users=("bob", "carol", "dave"))
    made.cli("list", "add", "sales", "dave")
    made.start()
    wait_for_banner(made.host, made.imap_port, accept=(b"* OK",))
    yield made
    made.stop()


def _add(box, remote, login, secret, recipient, protocol="pop3", tls="tls", host=None, check=True):
    return box.cli("remotepop", "add", "--protocol", protocol, "--tls", tls,
                   "--port", str(remote.port(protocol, tls)), host or remote.host, login, recipient,
                   input=secret + "\n", check=check)


def _subjects(box, user: str) -> list[bytes]:
    imap = box.imap()
    try:
        assert imap.login(user, PASSWORD)[0] == "OK"
        status, data = imap.select("INBOX", readonly=True)
        assert status == "OK", data
        if data[0] == b"0":
            return []
        _, found = imap.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        return sorted(part[1].strip() for part in found if isinstance(part, tuple))
    finally:
        imap.logout()


def test_accounts_are_fetched_into_their_recipients_mailbox_in_stand_alone(box, remote):
    assert box.cli("config", "get", "email.server_type").stdout.strip().endswith("standalone")
    _add(box, remote, *OLD_BOB, "bob", protocol="pop3", tls="tls")
    _add(box, remote, *OLD_CAROL, "carol", protocol="imap", tls="starttls")
    # Addressed to a list: Remote POP mail is the account's recipient's, whatever To says.
    remote.drop(OLD_BOB[0], remote.message(to="sales@example.com", subject="old bob mail",
                                           envelope=[("Delivered-To", "bob@example.com")]))
    remote.drop(OLD_CAROL[0], remote.message(to="carol@isp.test", subject="old carol mail"))

    printed = box.cli("retrieve", "now").stdout
    assert "remote:1: 1 fetched" in printed and "remote:2: 1 fetched" in printed, printed
    box.wait_for_mail("bob", 1)
    box.wait_for_mail("carol", 1)
    wait_until_idle(box)
    assert _subjects(box, "bob") == [b"Subject: old bob mail"]
    assert _subjects(box, "carol") == [b"Subject: old carol mail"]
    assert _subjects(box, "dave") == []
    assert remote.count(OLD_BOB[0]) == 0 and remote.count(OLD_CAROL[0]) == 0

    listed = box.cli("remotepop", "list").stdout
    assert "1: old.bob at POP3 127.0.0.1:" in listed and "-> bob" in listed
    assert "2: old.carol at IMAP" in listed and "STARTTLS" in listed
    for secret in (OLD_BOB[1], OLD_CAROL[1]):
        assert secret not in listed and secret not in printed


def test_a_certificate_for_another_name_fails_that_account_only(box, remote):
    # 127.0.0.2 is not a name on the remote server's certificate.
    _add(box, remote, *OLD_BOB, "bob", host=remote.other_host)
    _add(box, remote, *OLD_CAROL, "carol")
    remote.drop(OLD_BOB[0], remote.message(subject="stays there"))
    remote.drop(OLD_CAROL[0], remote.message(subject="fetched anyway"))

    result = box.cli("retrieve", "now", check=False)
    assert "remote:1: failed" in result.stdout and "certificate" in result.stdout.lower(), result.stdout
    assert "remote:2: 1 fetched" in result.stdout, result.stdout
    box.wait_for_mail("carol", 1)
    assert remote.count(OLD_BOB[0]) == 1

    # Checking off for that one account (the administrator's explicit choice) lets it through.
    # Turning checking off is a weaker connection: the password is given again.
    box.cli("remotepop", "set", "1", "--no-verify", "--password", input=OLD_BOB[1] + "\n")
    assert "remote:1: 1 fetched" in box.cli("retrieve", "now").stdout
    box.wait_for_mail("bob", 1)
    assert remote.count(OLD_BOB[0]) == 0


@pytest.mark.parametrize("args,secret,rule", [
    (["--port", "70000", "pop.isp.test", "old", "bob"], "pw-123456", "Port '70000': must be a number"),
    (["bad host!", "old", "bob"], "pw-123456", "Host 'bad host!': not a host name"),
    (["pop.isp.test", "old", "nobody"], "pw-123456", "Local Recipient 'nobody': no such user"),
    (["pop.isp.test", "old", "admin"], "pw-123456", "an administrator has no mailbox"),
    (["pop.isp.test", "old", "bob@elsewhere.test"], "pw-123456", "not one of this box's domains"),
    (["pop.isp.test", "old\x01x", "bob"], "pw-123456", "Login Name: must not hold"),
    (["pop.isp.test", "old", "bob"], "", "Password: must not be empty"),
])
def test_hostile_input_is_refused_with_the_rule(box, args, secret, rule):
    box.cli("user", "add", "admin", "--admin", "--password", PASSWORD, check=False)
    result = box.cli("remotepop", "add", *args, input=secret + "\n", check=False)
    assert result.returncode != 0
    assert rule in result.stderr + result.stdout, result.stderr + result.stdout
    assert box.cli("remotepop", "list").stdout.strip() == ""
