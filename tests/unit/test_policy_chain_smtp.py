"""The policy chain and the scoring pass through real SMTP sessions: smtplib
against the in-process smtpd (tests.support.gateway), with test checks in
its chain. Every refusal is seen in the log with its check's name and in
that check's counter; the score thresholds tag, hold (quarantine) and
refuse; every accepted message says what was checked."""

import re
import smtplib

import pytest

from firmware import accounts
from firmware.mail.headers import unfolded_headers
from firmware.mail.policy import Check, Order
from firmware.mail.resolver import DnsFailure
from tests.support.gateway import InProcessGateway
from tests.support.net import wait_until

UNTRUSTED = "127.0.0.2"


def header(message: bytes, name: str) -> str:
    return next((value for field, value in unfolded_headers(message) if field == name.lower()), "")


def headers_named(message: bytes, name: str) -> list:
    return [value for field, value in unfolded_headers(message) if field == name.lower()]


# Test checks: the score comes from the message, so each test says what it wants.
def score_from_message(ctx):
    value = header(ctx.message, "X-Test-Score")
    if value:
        ctx.add_symbol("TEST_SCORE", float(value), f"asked for {value}")


def breaks_when_asked(ctx):
    if header(ctx.message, "X-Test-Break"):
        raise RuntimeError("the test asked this check to break")


async def dns_fails_for_some(ctx):
    if ctx.recipient.startswith("dnsfail@"):
        raise DnsFailure(f"DNS lookup of {ctx.recipient} timed out after 5s")


TEST_CHECKS = [
    Check("test_score", "data", score_from_message, Order.CONTENT),
    Check("test_break", "data", breaks_when_asked, Order.CONTENT, on_error="skip"),
    Check("test_dns", "rcpt", dns_fails_for_some, Order.REPUTATION, on_error="tempfail",
          asks_dns=True),
]


@pytest.fixture
def gateway(tmp_path):
    box = InProcessGateway(tmp_path / "box", checks=TEST_CHECKS).start()
    yield box
    box.stop()


def client(box, source=None, port=None, helo="client.test"):
    connection = smtplib.SMTP(box.host, port or box.port, timeout=10,
                              source_address=(source, 0) if source else None)
    connection.ehlo(helo)
    return connection


def idle(box):
    wait_until(lambda: box.gateway.connections.total() == 0, what="the connections to close")


# ---- the scoring path -----------------------------------------------------------------------
THRESHOLDS = {"email.spam_tag_score": "5", "email.spam_quarantine_score": "10",
              "email.spam_reject_score": "15"}


def send(box, score=None, extra="", subject="hello", sender="a@example.com", connection=None):
    fields = f"Subject: {subject}\r\n" + (f"X-Test-Score: {score}\r\n" if score is not None else "")
    own = connection is None
    connection = connection or client(box)
    try:
        connection.sendmail(sender, ["bob@example.com"], fields + extra + "\r\nbody\r\n")
    finally:
        if own:
            connection.quit()


def test_below_every_threshold_the_message_is_accepted_as_it_came(gateway):
    gateway.configure(**THRESHOLDS)
    send(gateway, score=4.5)
    [(envelope, message)] = gateway.queued("incoming")
    assert envelope.subject == "hello"
    assert header(message, "X-Gatebox-Checks") == "total=4.5; TEST_SCORE(4.5)"
    assert header(message, "Authentication-Results") == "gatebox.localdomain; none"
    assert headers_named(message, "X-Spam-Flag") == []
    assert headers_named(message, "X-Virus-Scanned") == []


def test_the_tag_score_marks_subject_and_adds_spam_headers(gateway):
    gateway.configure(**THRESHOLDS)
    send(gateway, score=6)
    [(envelope, message)] = gateway.queued("incoming")
    assert envelope.subject == "[SPAM] hello" and header(message, "Subject") == "[SPAM] hello"
    assert header(message, "X-Spam-Flag") == "YES"
    assert header(message, "X-Spam-Score") == "6.0"
    assert header(message, "X-Spam-Status") == "Yes, score=6.0 required=5.0 tests=TEST_SCORE"
    assert "TEST_SCORE(6.0) asked for 6" in header(message, "X-Spam-Report")
    assert header(message, "X-Gatebox-Checks") == "total=6.0; TEST_SCORE(6.0)"
    assert "score=6.0 action=tag symbols=TEST_SCORE(6)" in gateway.log()


def test_the_quarantine_score_puts_the_message_in_the_quarantine_with_its_reason(gateway):
    gateway.configure(**THRESHOLDS)
    send(gateway, score=12)
    assert gateway.queued("incoming") == [] and gateway.queued("hold") == []
    [(item, message)] = gateway.quarantined()
    assert item.kind == "spam"
    assert item.reason == "spam score 12.0 >= 10.0 (quarantine score)"
    assert item.envelope.subject == "hello" and header(message, "X-Spam-Flag") == "YES"
    assert re.search(rf"{item.id}: from=<a@example.com>, .*\(quarantine: spam: spam score",
                     gateway.log())


def test_the_reject_score_refuses_with_550(gateway):
    gateway.configure(**THRESHOLDS)
    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(gateway, score=20)
    assert refused.value.smtp_code == 550
    assert refused.value.smtp_error.startswith(b"5.7.1 Message refused as spam (spam score 20.0")
    assert gateway.queued("incoming") == [] and gateway.queued("hold") == []
    assert "check=spam_score" in gateway.log()
    assert gateway.check_counts() == {"spam_score": 1}


def test_with_the_thresholds_off_any_score_is_accepted(gateway):
    send(gateway, score=999)
    [(envelope, message)] = gateway.queued("incoming")
    assert envelope.subject == "hello" and header(message, "X-Gatebox-Checks").startswith("total=999.0")


def test_a_check_that_breaks_is_skipped_with_a_symbol_and_a_warning(gateway):
    send(gateway, score=1, extra="X-Test-Break: yes\r\n")
    [(_, message)] = gateway.queued("incoming")
    assert header(message, "X-Gatebox-Checks") == \
        "total=1.0; TEST_SCORE(1.0), TEST_BREAK_ERROR(0.0)"
    assert "warning: check test_break failed: RuntimeError: the test asked this check to break" \
        in gateway.log()


def test_authenticated_clients_are_named_in_authentication_results(gateway):
    gateway.call(accounts.add_user, gateway.store, "alice", "correct horse")
    connection = client(gateway)
    try:
        connection.login("alice", "correct horse")
        send(gateway, connection=connection)
    finally:
        connection.quit()
    [(_, message)] = gateway.queued("incoming")
    assert header(message, "Authentication-Results") == \
        "gatebox.localdomain; auth=pass smtp.auth=alice"
    assert header(message, "X-Gatebox-Checks") == "total=0.0"


def test_forged_result_headers_from_the_client_are_removed(gateway):
    forged = ("Authentication-Results: gatebox.localdomain; auth=pass smtp.auth=admin\r\n"
              "Authentication-Results: upstream.test; spf=pass\r\n"
              "X-Spam-Flag: NO\r\nX-Gatebox-Checks: total=-100.0\r\n"
              "X-Virus-Scanned: clean (ClamAV) by gatebox.localdomain\r\n")
    send(gateway, extra=forged)
    [(_, message)] = gateway.queued("incoming")
    assert headers_named(message, "Authentication-Results") == \
        ["gatebox.localdomain; none", "upstream.test; spf=pass"]
    assert headers_named(message, "X-Gatebox-Checks") == ["total=0.0"]
    assert headers_named(message, "X-Spam-Flag") == []


# ---- every refusal: its log line and its counter --------------------------------------------
def refused_at_connect(box):
    with pytest.raises(smtplib.SMTPConnectError) as refused:
        smtplib.SMTP(box.host, box.port, timeout=10)
    return refused.value.smtp_code


def server_enabled(box):
    box.configure(**{"email.server_enabled": "off"})
    try:
        return refused_at_connect(box)
    finally:
        box.configure(**{"email.server_enabled": "on"})


def max_connections(box):
    box.configure(**{"email.max_connections": "2", "email.max_connections_per_host": "unlimited"})
    held = [client(box), client(box)]
    try:
        return refused_at_connect(box)
    finally:
        for connection in held:
            connection.quit()
        idle(box)
        box.configure(**{"email.max_connections": "100", "email.max_connections_per_host": "5"})


def max_connections_per_host(box):
    box.configure(**{"email.max_connections_per_host": "1"})
    held = client(box)
    try:
        return refused_at_connect(box)
    finally:
        held.quit()
        idle(box)
        box.configure(**{"email.max_connections_per_host": "5"})


def too_many_noops(box):
    connection = client(box, source=UNTRUSTED)
    for _ in range(100):
        assert connection.noop()[0] == 250
    code, _ = connection.docmd("NOOP")
    with pytest.raises(smtplib.SMTPServerDisconnected):
        connection.noop()  # the server closed the connection after its 421
    return code


def too_many_unknown_commands(box):
    connection = client(box)
    for _ in range(20):
        assert connection.docmd("XYZZY")[0] == 500
    code, _ = connection.docmd("XYZZY")
    with pytest.raises(smtplib.SMTPServerDisconnected):
        connection.noop()
    return code


def helo_syntax(box):
    with smtplib.SMTP(box.host, box.port, timeout=10) as connection:
        return connection.ehlo("not a hostname")[0]


def helo_impersonation(box):
    with smtplib.SMTP(box.host, box.port, timeout=10, source_address=(UNTRUSTED, 0)) as connection:
        return connection.ehlo("example.com")[0]


def in_transaction(command, source=None, port=None, recipients=()):
    def scenario(box):
        with client(box, source=source, port=port) as connection:
            if not command.startswith("MAIL"):
                assert connection.mail("a@example.com")[0] == 250
            for recipient in recipients:
                assert connection.rcpt(recipient)[0] == 250
            return connection.docmd(command)[0]
    return scenario


def max_recipients(box):
    with client(box) as connection:
        connection.mail("a@example.com")
        for n in range(1000):
            assert connection.rcpt(f"r{n}@example.com")[0] == 250
        return connection.rcpt("one-too-many@example.com")[0]


def data(content: bytes, settings=None):
    def scenario(box):
        if settings:
            box.configure(**settings)
        with client(box) as connection:
            connection.mail("a@example.com")
            connection.rcpt("bob@example.com")
            assert connection.docmd("DATA")[0] == 354
            connection.send(content + b".\r\n")  # as written: no dot-stuffing, no CRLF repair
            return connection.getreply()[0]
    return scenario


REFUSALS = [
    # (check, scenario, reply code, the command in the log line)
    ("server_enabled", server_enabled, 421, "CONNECT"),
    ("max_connections", max_connections, 421, "CONNECT"),
    ("max_connections_per_host", max_connections_per_host, 421, "CONNECT"),
    ("command_limits", too_many_noops, 421, "NOOP"),
    ("command_limits", too_many_unknown_commands, 421, "XYZZY"),
    ("helo_syntax", helo_syntax, 501, "EHLO"),
    ("helo_impersonation", helo_impersonation, 550, "EHLO"),
    ("declared_size", in_transaction("MAIL FROM:<a@example.com> SIZE=999999999999"), 552, "MAIL"),
    ("submission_requires_auth", None, 530, "MAIL"),   # filled in below: needs the port
    ("sender_characters", in_transaction("MAIL FROM:<a\x00b@example.com>"), 501, "MAIL"),
    ("sender_syntax", in_transaction("MAIL FROM:<no-domain>"), 553, "MAIL"),
    ("max_recipients", max_recipients, 452, "RCPT"),
    ("recipient_characters", in_transaction('RCPT TO:<"a\x01b"@example.com>'), 501, "RCPT"),
    ("recipient_routing", in_transaction("RCPT TO:<x%far.test@example.com>", source=UNTRUSTED),
     550, "RCPT"),
    ("relay_access", in_transaction("RCPT TO:<x@far.test>", source=UNTRUSTED), 554, "RCPT"),
    ("test_dns", in_transaction("RCPT TO:<dnsfail@example.com>"), 451, "RCPT"),
    ("message_size", data(b"Subject: big\r\n\r\n" + (b"y" * 998 + b"\r\n") * 1100,
                          {"email.max_message_size_mb": "1"}), 552, "DATA"),
    ("line_length", data(b"Subject: long\r\n\r\n" + b"y" * 1500 + b"\r\n"), 500, "DATA"),
    ("max_hops", data(b"Received: from a by b\r\n" * 50 + b"Subject: loop\r\n\r\nx\r\n"), 554,
     "DATA"),
    ("bare_line_endings", data(b"Subject: smuggle\r\n\r\nx\n.\nMAIL FROM:<s@far.test>\r\n"), 550,
     "DATA"),
    ("spam_score", data(b"Subject: spam\r\nX-Test-Score: 50\r\n\r\nx\r\n",
                        {"email.spam_reject_score": "15"}), 550, "DATA"),
]


def test_every_refusal_is_logged_with_its_check_and_counted(gateway):
    expected_counts: dict = {}
    for check, scenario, code, what in REFUSALS:
        if check == "submission_requires_auth":
            scenario = in_transaction("MAIL FROM:<a@example.com>", source=UNTRUSTED,
                                      port=gateway.submission_port)
        before = gateway.log().count(f"check={check}")
        assert scenario(gateway) == code, check
        lines = [line for line in gateway.log().splitlines() if line.endswith(f"check={check}")]
        assert len(lines) == before + 1, (check, lines)
        assert re.search(rf"NOQUEUE: reject: {what} from unknown\[127\.0\.0\.[12]\]: {code} "
                         rf"\d\.\d+\.\d+ .*; from=<.*> to=<.*> proto=E?SMTP helo=<.*> "
                         rf"check={check}$", lines[-1]), lines[-1]
        expected_counts[check] = expected_counts.get(check, 0) + 1
        idle(gateway)
    assert gateway.check_counts() == expected_counts
    assert gateway.queued("incoming") == []
    assert "warning: check test_dns failed: DNS lookup of dnsfail@example.com timed out" \
        in gateway.log()


def test_the_log_line_does_not_carry_control_characters_from_the_client(gateway):
    with smtplib.SMTP(gateway.host, gateway.port, timeout=10) as connection:
        assert connection.ehlo("evil\x01host\x1b[2J")[0] == 501
    line = next(l for l in gateway.log().splitlines() if l.endswith("check=helo_syntax"))
    assert "helo=<evil?host?[2J>" in line and "\x01" not in line and "\x1b" not in line


def test_data_lines_up_to_the_setting_are_accepted(gateway):
    gateway.configure(**{"email.max_line_length": "5000"})
    with client(gateway) as connection:
        connection.sendmail("a@example.com", ["bob@example.com"],
                            b"Subject: wide\r\n\r\n" + b"w" * 4998 + b"\r\n")
    [(_, message)] = gateway.queued("incoming")
    assert b"w" * 4998 + b"\r\n" in message
