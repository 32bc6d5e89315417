"""Mirrored: each user has an ISP login on the Users page (here `gatebox
isp-login`), and the box fetches each user's ISP mailbox into that user's
local mailbox, read back over the box's own IMAP. Aliases and distribution
lists apply to internal and outgoing mail only, never to what is fetched
from the Internet. Real parts: Debian's Dovecot as the ISP (POP3S and IMAP
with STARTTLS, its certificate checked against the test's CA), a real
`gatebox run` box with its own Dovecot, imaplib and swaks."""

from __future__ import annotations

import pytest

from tests.support.box import wait_until_idle
from tests.support.isp import CAFILE_ENV, Isp
from tests.support.mailserver import PASSWORD, MailBox
from tests.support.net import wait_for_banner

BOB_ISP, CAROL_ISP = ("bob.office", "bob isp pass 1"), ("carol.office", "carol-isp-pass-2")


@pytest.fixture
def isp(tmp_path):
    server = Isp(tmp_path / "isp")
    server.add_user(*BOB_ISP)
    server.add_user(*CAROL_ISP)
    with server:
        yield server


def _box(tmp_path, vendor, isp, monkeypatch, protocol="pop3", tls="tls"):
    # The box trusts the ISP's private CA, as it would a public one; checking stays on.
    monkeypatch.setenv(CAFILE_ENV, str(isp.ca_file))
    box = MailBox(tmp_path / "box", vendor, users=("bob", "carol", "dave"),
                  **{"email.server_type": "mirrored",
                     **isp.box_settings("unused", "unused", protocol=protocol, tls=tls)})
    box.cli("isp-login", "set", "bob", BOB_ISP[0], input=BOB_ISP[1] + "\n")
    box.cli("isp-login", "set", "carol", CAROL_ISP[0], input=CAROL_ISP[1] + "\n")
    box.cli("alias", "add", "info", "dave")
    box.cli("list", "add", "sales", "dave", "carol")
    box.start()
    wait_for_banner(box.host, box.imap_port, accept=(b"* OK",))
    return box


def _imap_subjects(box, user: str) -> list[bytes]:
    imap = box.imap()
    try:
        assert imap.login(user, PASSWORD)[0] == "OK"
        status, data = imap.select("INBOX", readonly=True)
        assert status == "OK"
        if data[0] == b"0":
            return []
        _, found = imap.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        return sorted(part[1].strip() for part in found if isinstance(part, tuple))
    finally:
        imap.logout()


@pytest.mark.parametrize("protocol,tls", [("pop3", "tls"), ("imap", "starttls")])
def test_each_users_isp_mailbox_arrives_in_that_users_mailbox(tmp_path, vendor, box_serial, isp,
                                                              monkeypatch, protocol, tls):
    box = _box(tmp_path, vendor, isp, monkeypatch, protocol, tls)
    try:
        # As the ISP's delivery wrote them: its Delivered-To names the office address.
        isp.drop(BOB_ISP[0], isp.message(to="bob@example.com", subject="for bob",
                                         envelope=[("Delivered-To", "bob@example.com")]))
        isp.drop(CAROL_ISP[0], isp.message(to="carol@example.com", subject="for carol",
                                           envelope=[("Delivered-To", "carol@example.com")]))
        isp.drop(CAROL_ISP[0], isp.message(to="carol@example.com", subject="for carol again"))

        printed = box.cli("retrieve", "now").stdout
        assert "mirrored:bob: 1 fetched" in printed, printed
        assert "mirrored:carol: 2 fetched" in printed, printed

        box.wait_for_mail("bob", 1)
        box.wait_for_mail("carol", 2)
        wait_until_idle(box)
        assert _imap_subjects(box, "bob") == [b"Subject: for bob"]
        assert _imap_subjects(box, "carol") == [b"Subject: for carol", b"Subject: for carol again"]
        assert _imap_subjects(box, "dave") == []
        # Deleted at the ISP once queued on the box; a second run fetches nothing again.
        assert isp.count(BOB_ISP[0]) == 0 and isp.count(CAROL_ISP[0]) == 0
        again = box.cli("retrieve", "now").stdout
        assert "mirrored:bob: 0 fetched" in again and "mirrored:carol: 0 fetched" in again, again
        wait_until_idle(box)
        assert len(box.mailbox("bob")) == 1 and len(box.mailbox("carol")) == 2
    finally:
        box.stop()


def test_aliases_and_lists_apply_to_internal_mail_but_not_to_fetched_mail(tmp_path, vendor,
                                                                          box_serial, isp,
                                                                          monkeypatch):
    box = _box(tmp_path, vendor, isp, monkeypatch)
    try:
        # Fetched from bob's ISP mailbox although addressed to a list and an alias:
        # it is bob's, and only bob's.
        isp.drop(BOB_ISP[0], isp.message(to="sales@example.com", subject="fetched for the list",
                                         envelope=[("Delivered-To", "sales@example.com")],
                                         extra=[("Cc", "info@example.com")]))
        assert "mirrored:bob: 1 fetched" in box.cli("retrieve", "now").stdout
        box.wait_for_mail("bob", 1)
        wait_until_idle(box)
        assert _imap_subjects(box, "bob") == [b"Subject: fetched for the list"]
        assert _imap_subjects(box, "dave") == [] and _imap_subjects(box, "carol") == []

        # The same addresses used inside the office: the list and the alias expand.
        box.send("sales@example.com", sender="bob@example.com", subject="internal to the list")
        box.send("info@example.com", sender="bob@example.com", subject="internal to the alias")
        box.wait_for_mail("dave", 2)
        box.wait_for_mail("carol", 1)
        wait_until_idle(box)
        assert _imap_subjects(box, "dave") == [b"Subject: internal to the alias",
                                               b"Subject: internal to the list"]
        assert _imap_subjects(box, "carol") == [b"Subject: internal to the list"]
        assert _imap_subjects(box, "bob") == [b"Subject: fetched for the list"]
    finally:
        box.stop()


def test_a_wrong_isp_password_fails_that_user_only_and_no_password_is_printed(
        tmp_path, vendor, box_serial, isp, monkeypatch):
    box = _box(tmp_path, vendor, isp, monkeypatch)
    try:
        box.cli("isp-login", "set", "bob", BOB_ISP[0], input="not bob's password\n")
        isp.drop(BOB_ISP[0], isp.message(to="bob@example.com", subject="stays at the isp"))
        isp.drop(CAROL_ISP[0], isp.message(to="carol@example.com", subject="still fetched"))
        result = box.cli("retrieve", "now", check=False)
        assert "mirrored:bob: failed" in result.stdout, result.stdout
        assert "mirrored:carol: 1 fetched" in result.stdout, result.stdout
        box.wait_for_mail("carol", 1)
        assert isp.count(BOB_ISP[0]) == 1

        listed = box.cli("isp-login", "list").stdout
        assert "bob: bob.office (password stored)" in listed
        for secret in ("not bob's password", CAROL_ISP[1]):
            assert secret not in listed and secret not in result.stdout + result.stderr
    finally:
        box.stop()
