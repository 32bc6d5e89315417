"""Stand-alone routing of local mail: aliases, distribution lists with local
and remote members, forwarders with and without a local copy, catch-all,
auto-responders, archive copies, further local domains, loops; and Relay
mode left exactly as it was. Remote mail goes to a recording server set as
the Relay Server Address."""

import pytest

from tests.support.box import wait_until_idle
from tests.support.mailserver import MailBox
from tests.support.net import wait_until
from tests.support.sink import RecordingServer


@pytest.fixture
def remote():
    server = RecordingServer().start()
    yield server
    server.stop()


@pytest.fixture
def mail_box(tmp_path, vendor, box_serial, remote):
    box = MailBox(tmp_path / "box", vendor, **{"email.relay_server_address": remote.address})
    yield box
    box.stop()


def _received(remote, address, count=1):
    return wait_until(lambda: (lambda r: r if len(r) >= count else None)(remote.recorder.for_recipient(address)),
                      20, 0.2, f"{count} message(s) for {address} at the remote server")


def test_alias_delivers_to_its_target(mail_box):
    mail_box.cli("alias", "add", "sales", "bob")
    mail_box.start()
    mail_box.send("sales@example.com", subject="for sales")
    assert "for sales" in mail_box.wait_for_mail("bob", 1)[0]


def test_distribution_list_reaches_local_and_remote_members(mail_box, remote):
    mail_box.cli("list", "add", "team", "bob", "carol", "pjones@isp.test")
    assert "bob, carol, pjones@isp.test" in mail_box.cli("list", "show", "team").stdout
    mail_box.start()
    mail_box.send("team@example.com", subject="team news")
    mail_box.wait_for_mail("bob", 1)
    mail_box.wait_for_mail("carol", 1)
    [copy] = _received(remote, "pjones@isp.test")
    assert copy.message["List-Id"] == "<team.example.com>"
    assert copy.sender == "someone@outside.test"


def test_forwarder_without_and_with_a_local_copy(mail_box, remote):
    mail_box.cli("forwarder", "add", "bob", "bob@elsewhere.test")
    mail_box.cli("forwarder", "add", "carol", "carol@elsewhere.test", "--keep-copy")
    assert "carol -> carol@elsewhere.test  (keep a local copy)" in mail_box.cli("forwarder", "list").stdout
    mail_box.start()
    mail_box.send("bob@example.com", subject="to bob")
    mail_box.send("carol@example.com", subject="to carol")
    assert _received(remote, "bob@elsewhere.test")[0].message["Subject"] == "to bob"
    assert _received(remote, "carol@elsewhere.test")[0].message["Subject"] == "to carol"
    assert "to carol" in mail_box.wait_for_mail("carol", 1)[0]
    assert mail_box.mailbox("bob") == []


def test_unaddressable_mail_is_rejected_or_goes_to_the_chosen_user(mail_box):
    mail_box.start()
    refused = mail_box.swaks("nobody@example.com")
    assert refused.returncode != 0 and "550 5.1.1" in refused.stdout
    mail_box.configure(**{"mailserver.unaddressable": "user", "mailserver.unaddressable_user": "carol"})
    wait_until(lambda: mail_box.swaks("nobody@example.com").returncode == 0, 10, 0.5,
               "the catch-all to take effect")
    assert len(mail_box.wait_for_mail("carol", 1)) == 1


def test_auto_responder_answers_once_and_never_a_list_message(mail_box, remote):
    mail_box.cli("responder", "set", "bob", "--message", "I am on vacation.", "--subject", "Away")
    mail_box.cli("list", "add", "everyone", "bob", "carol")
    mail_box.start()
    mail_box.send("bob@example.com", sender="friend@outside.test", subject="one")
    mail_box.send("bob@example.com", sender="friend@outside.test", subject="two")
    mail_box.send("everyone@example.com", sender="other@outside.test", subject="to the list")
    mail_box.wait_for_mail("bob", 3)
    [reply] = _received(remote, "friend@outside.test")
    assert reply.sender == "" and reply.message["Auto-Submitted"] == "auto-replied"
    assert reply.message["Subject"] == "Away" and "I am on vacation." in reply.message.get_payload()
    mail_box.send("carol@example.com", sender="marker@outside.test")  # carol has no responder
    mail_box.wait_for_mail("carol", 2)
    assert len(remote.recorder.for_recipient("friend@outside.test")) == 1
    assert remote.recorder.for_recipient("other@outside.test") == []


def test_archive_keeps_a_copy_in_archive_user(mail_box):
    mail_box.configure(**{"mailserver.archive": "on"})
    mail_box.start()
    mail_box.send("bob@example.com", subject="keep me")
    mail_box.wait_for_mail("bob", 1)
    assert "keep me" in mail_box.wait_for_mail("archive-bob", 1)[0]


def test_further_local_domains_reach_the_same_users(mail_box):
    mail_box.cli("domain", "add", "example.net")
    assert mail_box.cli("domain", "list").stdout.split() == ["example.com", "(Domain", "Name)",
                                                              "example.net"]
    mail_box.start()
    mail_box.send("bob@example.net", subject="other domain")
    assert "other domain" in mail_box.wait_for_mail("bob", 1)[0]


def test_forwarding_loop_between_two_boxes_is_stopped(tmp_path, vendor, box_serial):
    first = MailBox(tmp_path / "a", vendor, domain="a.test", users=("bob", "alice"))
    second = MailBox(tmp_path / "b", vendor, domain="b.test", users=("bob",))
    try:
        first.configure(**{"email.relay_server_address": f"{second.host}:{second.smtp_port}"})
        second.configure(**{"email.relay_server_address": f"{first.host}:{first.smtp_port}"})
        first.cli("forwarder", "add", "bob", "bob@b.test", "--keep-copy")
        second.cli("forwarder", "add", "bob", "bob@a.test")
        first.start()
        second.start()
        first.send("bob@a.test", sender="alice@a.test", subject="round and round")
        # alice hears once that the message looped; bob kept exactly one copy.
        first.wait_for_mail("alice", 1)
        wait_until(lambda: "mail forwarding loop for <bob@a.test>" in first.log(), 10, 0.2,
                   "the loop in the log")
        assert len(first.mailbox("bob")) == 1
        assert second.mailbox("bob") == []
        # Nothing keeps circling: once both queues are empty and stay so,
        # still one copy and one notice.
        wait_until_idle(first, second)
        assert len(first.mailbox("alice")) == 1 and len(first.mailbox("bob")) == 1
        assert second.mailbox("bob") == []
    finally:
        first.stop()
        second.stop()


def test_relay_mode_ignores_aliases_and_keeps_relaying(tmp_path, vendor, box_serial, remote):
    box = MailBox(tmp_path / "box", vendor)
    try:
        box.cli("alias", "add", "sales", "bob")
        box.configure(**{"email.server_type": "relay", "email.mail_server_address": remote.address})
        box.start()
        box.send("sales@example.com", subject="relayed")
        [copy] = _received(remote, "sales@example.com")
        assert copy.message["Subject"] == "relayed" and "Delivered-To" not in copy.message
        assert box.mailbox("bob") == []
    finally:
        box.stop()
