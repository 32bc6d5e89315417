"""Relay mode end to end: real clients (swaks, smtplib) -> gatebox -> real
servers on loopback (Postfix's smtp-sink, recording aiosmtpd servers)."""

import email
import smtplib
import ssl
import subprocess

import pytest

from firmware.system import tls
from tests.support.box import wait_reloaded
from tests.support.net import wait_until
from tests.support.sink import RecordingServer
from tests.support.tools import require

UNTRUSTED = "127.0.0.2"   # outside Trusted Networks in these tests


def swaks(box, *args, local=UNTRUSTED, port=None):
    require("swaks", "swaks TLS support")
    command = ["swaks", "--server", f"{box.host}:{port or box.smtp_port}", "--helo", "client.test",
               "--local-interface", local, "--timeout", "20", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def test_inbound_mail_is_relayed_to_the_lan_server(make_box, sink):
    box = make_box(**{"email.mail_server_address": sink.address,
                      "email.trusted_networks": "127.0.0.1/32"}).start()
    result = swaks(box, "--from", "alice@internet.test", "--to", "bob@example.com",
                   "--header", "Subject: hello office")
    assert result.returncode == 0, result.stdout
    assert "250 2.0.0 Ok: queued as" in result.stdout
    wait_until(lambda: sink.count() == 1, what="delivery to smtp-sink")
    dumped = sink.messages()[0]
    assert b"Subject: hello office" in dumped
    assert b"by gatebox.localdomain (gatebox) with ESMTP id" in dumped
    wait_until(lambda: not box.queue_ids("active") and not box.queue_ids("incoming"),
               what="queue to drain")
    assert "status=sent" in box.log()


@pytest.fixture
def isp_smarthost(tmp_path):
    """The ISP's relay: requires STARTTLS then AUTH, as a real smarthost would."""
    tls.ensure_certificate(tmp_path / "isp", "smtp.isp.test")
    server = RecordingServer(tls_context=tls.server_context(tmp_path / "isp"),
                             credentials=("office", "s3cret-isp")).start()
    yield server
    server.stop()


def box_behind_smarthost(make_box, lan_server, smarthost, password):
    return make_box(**{"email.mail_server_address": lan_server.address,
                       "email.trusted_networks": "127.0.0.1/32",
                       "email.relay_server_address": smarthost.address,
                       "email.relay_server_auth": "on",
                       "email.relay_server_login": "office",
                       "email.relay_server_password": password}).start()


def test_outbound_mail_goes_through_the_smarthost_with_auth(make_box, lan_server, isp_smarthost):
    box = box_behind_smarthost(make_box, lan_server, isp_smarthost, "s3cret-isp")
    result = swaks(box, "--from", "bob@example.com", "--to", "carol@far.test", local="127.0.0.1")
    assert result.returncode == 0, result.stdout
    got = wait_until(lambda: isp_smarthost.recorder.for_recipient("carol@far.test"),
                     what="delivery via the smarthost")
    assert got[0].auth_login == "office"
    assert got[0].tls, "credentials must only travel over TLS"
    assert lan_server.received == []
    shown = box.cli("config", "get", "email.relay_server_password").stdout
    assert "s3cret-isp" not in shown


def test_smarthost_with_wrong_password_keeps_the_mail_queued(make_box, lan_server, isp_smarthost):
    box = box_behind_smarthost(make_box, lan_server, isp_smarthost, "wrong")
    assert swaks(box, "--from", "bob@example.com", "--to", "carol@far.test",
                 local="127.0.0.1").returncode == 0
    wait_until(lambda: box.queue_ids("deferred"), what="message to be deferred")
    listing = box.cli("queue", "list").stdout
    assert "SASL authentication failed" in listing
    assert isp_smarthost.received == []
    # Fix the password: the running box picks it up and delivers.
    box.configure(**{"email.relay_server_password": "s3cret-isp"})
    wait_until(lambda: isp_smarthost.recorder.for_recipient("carol@far.test"), timeout=30,
               what="delivery after the password was corrected")


def test_untrusted_client_cannot_relay_but_authenticated_user_can(make_box, sink):
    box = make_box(**{"email.mail_server_address": sink.address,
                      "email.trusted_networks": "127.0.0.1/32",
                      "email.relay_server_address": sink.address}).start()
    box.cli("user", "add", "alice", "--password", "correct horse")
    denied = swaks(box, "--from", "x@internet.test", "--to", "someone@far.test")
    assert "554 5.7.1 <someone@far.test>: Relay access denied" in denied.stdout
    # Without TLS an untrusted client is not offered AUTH at all.
    plain = swaks(box, "--from", "alice@example.com", "--to", "someone@far.test",
                  "--auth", "PLAIN", "--auth-user", "alice", "--auth-password", "correct horse")
    assert plain.returncode != 0
    assert "250-AUTH" not in plain.stdout
    bad = swaks(box, "--from", "alice@example.com", "--to", "someone@far.test", "--tls",
                "--auth", "PLAIN", "--auth-user", "alice", "--auth-password", "wrong password")
    assert "535 5.7.8" in bad.stdout
    good = swaks(box, "--from", "alice@example.com", "--to", "someone@far.test", "--tls",
                 "--auth", "LOGIN", "--auth-user", "alice", "--auth-password", "correct horse")
    assert good.returncode == 0, good.stdout
    wait_until(lambda: sink.count() == 1, what="authenticated relay")
    assert b"with ESMTPSA id" in sink.messages()[0]


def test_submission_port_requires_authentication(make_box, sink):
    box = make_box(**{"email.mail_server_address": sink.address,
                      "email.trusted_networks": "127.0.0.1/32"}).start()
    result = swaks(box, "--from", "x@internet.test", "--to", "bob@example.com",
                   port=box.submission_port)
    assert "530 5.7.0 Authentication required" in result.stdout


def test_message_size_limit_follows_the_setting_without_restart(make_box, sink):
    box = make_box(**{"email.mail_server_address": sink.address}).start()
    big = "x" * 990 + "\r\n"
    body = big * 1500  # ~1.5 MB
    with smtplib.SMTP(box.host, box.smtp_port, timeout=30) as client:
        client.ehlo("client.test")
        assert client.esmtp_features["size"] == str(10 * 1024 * 1024)
        client.sendmail("a@example.com", ["bob@example.com"], "Subject: big\r\n\r\n" + body)
    box.configure(**{"email.max_message_size_mb": "1"})
    wait_reloaded(box)
    with smtplib.SMTP(box.host, box.smtp_port, timeout=30) as client:
        client.ehlo("client.test")
        assert client.esmtp_features["size"] == str(1024 * 1024)
        code, reply = client.docmd("MAIL FROM:<a@example.com> SIZE=1600000")
        assert code == 552, reply
    with smtplib.SMTP(box.host, box.smtp_port, timeout=30) as client:
        client.ehlo("client.test")
        # A client that does not announce SIZE is stopped at the end of DATA.
        assert client.mail("a@example.com")[0] == 250
        assert client.rcpt("bob@example.com")[0] == 250
        code, reply = client.data(("Subject: big\r\n\r\n" + body).encode())
        assert code == 552, reply
    wait_until(lambda: sink.count() == 1, what="the first (allowed) message")


def test_connections_per_host_are_limited(make_box, sink):
    box = make_box(**{"email.mail_server_address": sink.address,
                      "email.max_connections_per_host": "2"}).start()
    first = smtplib.SMTP(box.host, box.smtp_port, timeout=10)
    second = smtplib.SMTP(box.host, box.smtp_port, timeout=10)
    try:
        with pytest.raises(smtplib.SMTPConnectError) as refused:
            smtplib.SMTP(box.host, box.smtp_port, timeout=10)
        assert refused.value.smtp_code == 421
        assert b"Too many connections" in refused.value.smtp_error
    finally:
        first.quit()
        second.quit()
    # Once the others are gone the host may connect again.
    wait_until(lambda: smtplib.SMTP(box.host, box.smtp_port, timeout=10).quit(),
               what="a new connection after the others closed")


def test_underscore_helo_follows_the_setting(make_box, sink):
    box = make_box(**{"email.mail_server_address": sink.address}).start()
    with smtplib.SMTP(box.host, box.smtp_port, timeout=10) as client:
        code, reply = client.ehlo("file_server.office.lan")
        assert code == 501 and b"underscores" in reply
    box.configure(**{"email.allow_nonstandard_helo": "on"})
    wait_reloaded(box)
    with smtplib.SMTP(box.host, box.smtp_port, timeout=10) as client:
        code, _ = client.ehlo("file_server.office.lan")
        assert code == 250


def test_untrusted_client_using_our_name_in_helo_is_rejected(make_box, sink):
    box = make_box(**{"email.mail_server_address": sink.address,
                      "email.trusted_networks": "127.0.0.1/32"}).start()
    for name in ("example.com", "[127.0.0.1]"):
        with smtplib.SMTP(box.host, box.smtp_port, timeout=10, source_address=(UNTRUSTED, 0),
                      local_hostname="client.test") as client:
            code, reply = client.ehlo(name)
            assert code == 550 and b"5.7.1" in reply, (name, reply)
    with smtplib.SMTP(box.host, box.smtp_port, timeout=10) as client:  # trusted: fine
        assert client.ehlo("example.com")[0] == 250


def test_disabled_server_answers_421(make_box, sink):
    box = make_box(**{"email.mail_server_address": sink.address,
                      "email.server_enabled": "off"}).start()
    with pytest.raises(smtplib.SMTPConnectError) as refused:
        smtplib.SMTP(box.host, box.smtp_port, timeout=10)
    assert refused.value.smtp_code == 421


def test_permanent_failure_bounces_to_sender_with_admin_copy(make_box, lan_server):
    lan_server.recorder.reject["gone@example.com"] = "550 5.1.1 <gone@example.com>: User unknown"
    box = make_box(**{"email.mail_server_address": lan_server.address,
                      "email.trusted_networks": "127.0.0.1/32",
                      "email.forward_undeliverable_to_admin": "on",
                      "email.admin_address": "it@example.com"}).start()
    with smtplib.SMTP(box.host, box.smtp_port, timeout=10) as client:
        client.sendmail("writer@example.com", ["gone@example.com", "here@example.com"],
                        "Subject: two recipients\r\nMessage-ID: <m1@test>\r\n\r\nbody\r\n")
    wait_until(lambda: lan_server.recorder.for_recipient("writer@example.com"), what="a DSN")
    wait_until(lambda: lan_server.recorder.for_recipient("it@example.com"), what="admin copy")
    assert lan_server.recorder.for_recipient("here@example.com")
    dsn = lan_server.recorder.for_recipient("writer@example.com")[0]
    assert dsn.sender == ""
    message = dsn.message
    assert message.get_content_type() == "multipart/report"
    assert message.get_param("report-type") == "delivery-status"
    status = [p for p in message.walk() if p.get_content_type() == "message/delivery-status"][0]
    text = status.as_string()
    assert "Final-Recipient: rfc822; gone@example.com" in text
    assert "Status: 5.1.1" in text
    assert "Action: failed" in text
    headers = [p for p in message.walk() if p.get_content_type() == "text/rfc822-headers"][0]
    assert "Message-ID: <m1@test>" in headers.as_string()
    assert "here@example.com" not in text


def test_lan_server_that_requires_authentication(make_box):
    # On loopback (a trusted place) the box may log in without TLS.
    office = RecordingServer(credentials=("gateway", "lan-pass")).start()
    try:
        box = make_box(**{"email.mail_server_address": office.address,
                          "email.mail_server_auth": "on",
                          "email.mail_server_login": "gateway",
                          "email.mail_server_password": "lan-pass"}).start()
        assert swaks(box, "--from", "x@internet.test", "--to", "bob@example.com").returncode == 0
        got = wait_until(lambda: office.recorder.for_recipient("bob@example.com"),
                         what="authenticated delivery to the LAN server")
        assert got[0].auth_login == "gateway"
    finally:
        office.stop()


def test_send_at_same_time_holds_internet_mail_until_the_schedule(make_box, lan_server):
    smarthost = RecordingServer().start()
    try:
        box = make_box(**{"email.mail_server_address": lan_server.address,
                          "email.relay_server_address": smarthost.address,
                          "email.trusted_networks": "127.0.0.1/32",
                          "email.send_mode": "same_time",
                          # Every 8 hours from midnight: the next sync is hours away.
                          "email.business_schedule": "480", "email.evening_schedule": "480",
                          "email.weekend_schedule": "480"}).start()
        assert swaks(box, "--from", "bob@example.com", "--to", "out@far.test",
                     local="127.0.0.1").returncode == 0
        assert swaks(box, "--from", "x@internet.test", "--to", "in@example.com").returncode == 0
        # Incoming mail for the office is not held back by the schedule.
        wait_until(lambda: lan_server.recorder.for_recipient("in@example.com"), what="inbound mail")
        wait_until(lambda: box.queue_ids("deferred"), what="outgoing mail to wait")
        assert "waiting for the scheduled send time" in box.cli("queue", "list").stdout
        assert smarthost.received == []
        box.configure(**{"email.send_mode": "immediately"})
        box.cli("queue", "flush")
        wait_until(lambda: smarthost.recorder.for_recipient("out@far.test"), timeout=30,
                   what="outgoing mail once sending is immediate")
    finally:
        smarthost.stop()


def test_mail_older_than_the_queue_lifetime_is_returned(make_box):
    import time as clock
    from firmware.mail.queue import Envelope, Recipient, Spool, new_queue_id
    box = make_box(**{"email.mail_server_address": "127.0.0.1:9",  # the LAN server is down
                      "email.max_queue_lifetime_days": "5"})
    old = Envelope(id=new_queue_id(), sender="writer@example.com",
                   recipients=[Recipient("bob@example.com")],
                   received=clock.time() - 6 * 86400, attempts=40, next_try=0)
    Spool(box.data / "queue").write(old, b"Subject: stale\r\nMessage-ID: <stale@x>\r\n\r\nold\r\n",
                                    state="deferred")
    box.start()
    wait_until(lambda: "status=expired" in box.log(), what="the expiry")
    spool = Spool(box.data / "queue")
    wait_until(lambda: old.id not in spool.ids("deferred") + spool.ids("active"),
               what="the expired message to leave the queue")
    dsns = [e.envelope for e in spool.entries() if e.envelope.is_bounce]
    assert len(dsns) == 1 and [r.address for r in dsns[0].recipients] == ["writer@example.com"]
    _, dsn = spool.load(spool.locate(dsns[0].id), dsns[0].id)
    assert b"expired after 5 days" in dsn and b"<stale@x>" in dsn


def test_ehlo_offers_the_extensions_a_gateway_needs(make_box, sink):
    box = make_box(**{"email.mail_server_address": sink.address}).start()
    with smtplib.SMTP(box.host, box.smtp_port, timeout=10, local_hostname="pc.office.lan") as client:
        code, _ = client.ehlo()
        assert code == 250
        for extension in ("size", "8bitmime", "pipelining", "enhancedstatuscodes", "starttls", "auth"):
            assert client.has_extn(extension), extension
        assert set(client.esmtp_features["auth"].split()) == {"PLAIN", "LOGIN"}
        code, reply = client.docmd("RCPT TO:<bob@example.com>")
        assert (code, reply[:5]) == (503, b"5.5.1"), "every reply carries an enhanced status code"
    box.configure(**{"email.allow_client_auth": "off"})
    wait_reloaded(box)
    with smtplib.SMTP(box.host, box.smtp_port, timeout=10, local_hostname="pc.office.lan") as client:
        client.ehlo()
        assert not client.has_extn("auth")
        assert client.docmd("AUTH PLAIN AGFsaWNlAHBhc3N3b3Jk")[0] == 502


def test_send_incoming_email_to_one_address(make_box, lan_server):
    box = make_box(**{"email.mail_server_address": lan_server.address,
                      "email.trusted_networks": "127.0.0.1/32",
                      "email.send_incoming_to": "frontdesk@example.com",
                      "email.forward_to_incoming_smtp": "on"}).start()
    assert swaks(box, "--from", "x@internet.test", "--to", "bob@example.com").returncode == 0
    got = wait_until(lambda: lan_server.recorder.for_recipient("frontdesk@example.com"),
                     what="incoming mail redirected to one address")
    assert got[0].recipients == ["frontdesk@example.com"]
    assert lan_server.recorder.for_recipient("bob@example.com") == []
    assert "orig_to=<bob@example.com>" in box.log()
