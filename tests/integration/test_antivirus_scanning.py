"""Anti-virus scanning end to end: a box with the Anti-Virus SoftPak licensed,
run with `gatebox run` in relay mode for example.com, the LAN server a
recording SMTP server, real SMTP clients (smtplib; swaks for one message)
on loopback, and Debian's real clamd (tests/support/clamd.py) on a tiny
signature database, listening where the box looks for it
(softpaks.antivirus.paths.socket_path). The signatures live outside the
box's own signature directory, so the box does not start a clamd of its own.

Outside clients connect from 127.0.0.2 (not in Trusted Networks), the
office's own from 127.0.0.1. Signature names are never asserted: they
depend on the database."""

from __future__ import annotations

import io
import os
import re
import smtplib
import sqlite3
import subprocess
import zipfile
from email.message import EmailMessage
from email.policy import SMTP
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

import pytest

from firmware.mail.quarantine import Quarantine
from softpaks.antivirus import paths
from tests.support.box import wait_reloaded, wait_until_idle
from tests.support.clamd import ClamdProcess, eicar_bytes
from tests.support.net import wait_until

OUTSIDE_CLIENT, LAN_CLIENT = "127.0.0.2", "127.0.0.1"
OUTSIDE_SENDER, LOCAL_SENDER = "bob@outside.test", "boss@example.com"
RECIPIENT, OTHER_LOCAL, FOREIGN = "jane@example.com", "sam@example.com", "ann@elsewhere.test"
ADMIN = "it@example.com"
VIRUS_FOUND = re.compile(r"^5\.7\.1 Message rejected: virus found \(.+\)$")


# ---- messages ---------------------------------------------------------------------------
def _headers(message, subject: str, sender: str = OUTSIDE_SENDER, to: str = RECIPIENT):
    message["From"], message["To"], message["Subject"] = sender, to, subject
    message["Message-ID"] = f"<{subject.replace(' ', '-')}@test>"
    return message


def plain_attachment(subject: str, payload: bytes, **headers) -> bytes:
    message = _headers(EmailMessage(), subject, **headers)
    message.set_content("the file you asked for\n")
    message.add_attachment(payload, maintype="application", subtype="octet-stream",
                           filename="eicar.com")
    return message.as_bytes(policy=SMTP)


def zip_attachment(subject: str, payload: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("docs/invoice.com", payload)
    message = _headers(EmailMessage(), subject)
    message.set_content("invoice attached\n")
    message.add_attachment(buffer.getvalue(), maintype="application", subtype="zip",
                           filename="invoice.zip")
    return message.as_bytes(policy=SMTP)


def nested_base64(subject: str, payload: bytes) -> bytes:
    alternative = MIMEMultipart("alternative")
    alternative.attach(MIMEText("plain"))
    alternative.attach(MIMEText("<p>html</p>", "html"))
    inner = MIMEMultipart("mixed")
    inner.attach(alternative)
    inner.attach(MIMEApplication(payload, "x-msdownload", Name="setup.exe"))  # base64
    outer = _headers(MIMEMultipart("mixed"), subject)
    outer.attach(MIMEText("see inside"))
    outer.attach(inner)
    return outer.as_bytes(policy=SMTP)


# ---- the box ------------------------------------------------------------------------------
@pytest.fixture
def antivirus_box(make_box, lan_server, vendor, box_serial, tmp_path):
    """make(**settings) -> (box, clamd): a licensed box with scanning on and
    a running clamd at the box's socket."""
    started = []

    def make(**settings):
        box = make_box(**{"email.server_type": "relay",
                          "email.mail_server_address": lan_server.address,
                          "email.trusted_networks": "127.0.0.1/32"})
        box.cli("license", "activate", vendor.issue(antivirus=None))
        box.configure(**{"antivirus.enabled": "on", **settings})
        clamd = ClamdProcess(tmp_path / "clamd", socket_path=paths.socket_path(box.data)).start()
        started.append(clamd)
        return box.start(), clamd

    yield make
    for clamd in started:
        clamd.remove()


def send(box, message: bytes, sender=OUTSIDE_SENDER, recipients=(RECIPIENT,),
         client=OUTSIDE_CLIENT) -> tuple[int, str]:
    """The reply to the end of DATA."""
    with smtplib.SMTP(box.host, box.smtp_port, timeout=120, source_address=(client, 0),
                      local_hostname="mx.test") as smtp:
        smtp.ehlo("mx.test")
        assert smtp.docmd(f"MAIL FROM:<{sender}>")[0] == 250
        for recipient in recipients:
            assert smtp.docmd(f"RCPT TO:<{recipient}>")[0] == 250
        code, text = smtp.data(message)
        return code, text.decode()


def counted(box, name: str) -> int:
    with sqlite3.connect(box.data / "gatebox.db", timeout=10) as db:
        row = db.execute("SELECT SUM(count) FROM check_stats WHERE name = ?", [name]).fetchone()
    return row[0] or 0


def wait_counted(box, **wanted):
    """antivirus=RESULT counters, as the box's statistics write them."""
    wait_until(lambda: all(counted(box, f"antivirus={k}") == v for k, v in wanted.items()),
               30, 0.2, f"the counters {wanted}")


def at_lan(lan_server, subject: str):
    return [r for r in lan_server.received if r.message["Subject"] == subject]


def notices(lan_server) -> list:
    """What the box wrote itself and delivered: from the null sender."""
    return [r for r in lan_server.received if r.sender == ""]


def reconfigure(box, **settings):
    """Set, then wait until the running box has reloaded them."""
    box.configure(**settings)
    wait_reloaded(box)


# ---- the tests ------------------------------------------------------------------------------
def test_infected_mail_is_rejected_in_every_wrapping_and_clean_mail_passes(antivirus_box,
                                                                            lan_server):
    box, _ = antivirus_box()
    infected = [plain_attachment("plain", eicar_bytes()),
                zip_attachment("zipped", eicar_bytes()),
                nested_base64("nested", eicar_bytes())]
    for message in infected:
        code, text = send(box, message)
        assert code == 554 and VIRUS_FOUND.match(text), (code, text)
    # swaks, another real client, with the file as an attachment of its own making.
    sample = box.data.parent / "sample.com"
    sample.write_bytes(eicar_bytes())
    swaks = subprocess.run(
        ["swaks", "--server", f"{box.host}:{box.smtp_port}", "--local-interface", OUTSIDE_CLIENT,
         "--from", OUTSIDE_SENDER, "--to", RECIPIENT, "--header", "Subject: by swaks",
         "--attach", f"@{sample}", "--timeout", "120"],
        capture_output=True, text=True, timeout=180)
    assert swaks.returncode != 0 and re.search(r"<\** 554 5\.7\.1 Message rejected: virus found",
                                               swaks.stdout), swaks.stdout
    code, text = send(box, plain_attachment("clean one", b"just a text file\n" * 20))
    assert code == 250, text
    wait_until(lambda: at_lan(lan_server, "clean one"), 30, 0.2, "the clean message at the LAN")
    [clean] = at_lan(lan_server, "clean one")
    assert clean.message["X-Virus-Scanned"].startswith("clean (ClamAV ")
    wait_counted(box, infected=4, clean=1)
    wait_until_idle(box)
    assert [r.message["Subject"] for r in lan_server.received] == ["clean one"]
    assert "antivirus: virus found (" in box.log()


def test_a_virus_past_the_part_smtpd_keeps_in_memory_is_found_in_either_scan(antivirus_box,
                                                                              lan_server):
    # smtpd keeps the first 256 KiB in memory and the whole message on disk:
    # clamd gets the file, the parts scan reads it back whole.
    box, _ = antivirus_box(**{"antivirus.scan_entire_message": "off",
                              "antivirus.scan_parts": "on"})
    message = _headers(EmailMessage(), "large and infected")
    message.set_content("a long report\n" * 60_000)
    message.add_attachment(eicar_bytes(), maintype="application", subtype="octet-stream",
                           filename="eicar.com")
    raw = message.as_bytes(policy=SMTP)
    assert raw.index(b"eicar.com") > 3 * 256 * 1024
    code, text = send(box, raw)
    assert code == 554 and VIRUS_FOUND.match(text), (code, text)
    reconfigure(box, **{"antivirus.scan_entire_message": "on", "antivirus.scan_parts": "off"})
    code, text = send(box, raw)
    assert code == 554 and VIRUS_FOUND.match(text), (code, text)
    wait_counted(box, infected=2)
    assert not [n for n in os.listdir(box.data / "queue" / "tmp") if n.startswith("data-")]


def test_quarantine_keeps_the_message_out_of_the_queue_and_notices_go_where_the_settings_say(
        antivirus_box, lan_server):
    box, _ = antivirus_box(**{"antivirus.action": "quarantine",
                              "antivirus.notify_recipient": "on",
                              "antivirus.notify_sender": "on",
                              "antivirus.notify_admin": "on",
                              "email.admin_address": ADMIN})
    # From outside: the forged-looking outside sender is never told.
    code, text = send(box, zip_attachment("from outside", eicar_bytes()))
    assert code == 250, text
    # From the LAN, to a local and a foreign recipient: the local sender is
    # told, the local recipient too, the foreign one is not.
    code, text = send(box, plain_attachment("from the lan", eicar_bytes(), sender=LOCAL_SENDER,
                                            to=FOREIGN),
                      sender=LOCAL_SENDER, recipients=(OTHER_LOCAL, FOREIGN), client=LAN_CLIENT)
    assert code == 250, text
    held = Quarantine(box.data).items()
    assert sorted(item.kind for item in held) == ["virus", "virus"]
    assert all(item.reason.startswith("virus found (") for item in held)
    # Not in the queue: what reaches the LAN server are the notices alone.
    wait_until(lambda: len(notices(lan_server)) == 5, 30, 0.2, "five notices at the LAN server")
    wait_until_idle(box)
    assert box.pending() == []
    told = sorted(r.recipients[0] for r in notices(lan_server))
    assert told == sorted([RECIPIENT, ADMIN, OTHER_LOCAL, LOCAL_SENDER, ADMIN])
    assert all(len(r.recipients) == 1 for r in notices(lan_server))
    assert len(lan_server.received) == 5
    for notice in notices(lan_server):
        assert eicar_bytes() not in notice.content
        assert notice.message["Auto-Submitted"] == "auto-generated"
    wait_counted(box, quarantined=2)


def test_notices_are_off_unless_asked_for(antivirus_box, lan_server):
    box, _ = antivirus_box()
    code, _ = send(box, plain_attachment("no notice", eicar_bytes()), sender=LOCAL_SENDER,
                   client=LAN_CLIENT)
    assert code == 554
    # A clean message after it: once it has arrived, a notice queued before it would have too.
    assert send(box, plain_attachment("after", b"clean\n"))[0] == 250
    wait_until(lambda: at_lan(lan_server, "after"), 30, 0.2, "the clean message")
    wait_until_idle(box)
    assert notices(lan_server) == []
    assert [r.message["Subject"] for r in lan_server.received] == ["after"]


def test_scanner_down_defers_then_accepts_unscanned_when_set(antivirus_box, lan_server):
    box, clamd = antivirus_box()
    clamd.stop()
    code, text = send(box, plain_attachment("while down", b"clean\n"))
    assert (code, text) == (451, "4.3.0 Virus scanner unavailable, try again later")
    reconfigure(box, **{"antivirus.on_failure": "accept"})
    code, text = send(box, plain_attachment("accepted unscanned", b"clean\n"))
    assert code == 250, text
    wait_until(lambda: at_lan(lan_server, "accepted unscanned"), 30, 0.2, "the message")
    [accepted] = at_lan(lan_server, "accepted unscanned")
    assert accepted.message["X-Virus-Scanned"] == "no (scanner unavailable)"
    wait_counted(box, scanner_failed=1, unscanned=1)
    assert "antivirus: scanner unavailable" in box.log()


def test_a_message_over_the_size_limit_is_skipped_and_counted(antivirus_box, lan_server):
    box, _ = antivirus_box(**{"antivirus.max_scan_mb": "1"})
    big = plain_attachment("too big to scan", eicar_bytes() + b"\n" + b"x" * (1200 * 1024))
    code, text = send(box, big)
    assert code == 250, text
    wait_until(lambda: at_lan(lan_server, "too big to scan"), 60, 0.2, "the big message")
    [delivered] = at_lan(lan_server, "too big to scan")
    assert delivered.message["X-Virus-Scanned"] == "skipped (size)"
    # Below the limit the same file is found.
    assert send(box, plain_attachment("small", eicar_bytes()))[0] == 554
    wait_counted(box, skipped_size=1, infected=1)
