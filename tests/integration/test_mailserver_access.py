"""Mailboxes read back through the private Dovecot: swaks -> the box ->
imaplib and poplib (login, list, fetch, delete); off-site access; a license
lapse and its cure."""

import imaplib
import poplib
import ssl
import subprocess
import sys

import pytest

from tests.support.mailserver import PASSWORD, MailBox
from tests.support.net import free_port, wait_for_banner, wait_until


def test_mail_sent_with_swaks_is_read_back_over_imap_and_pop3(mail_box):
    mail_box.send("bob@example.com", subject="first")
    mail_box.send("Bob@Example.com", subject="second")
    mail_box.wait_for_mail("bob", 2)

    imap = mail_box.imap()
    assert imap.login("bob", PASSWORD)[0] == "OK"
    assert imap.select("INBOX") == ("OK", [b"2"])
    _, found = imap.search(None, "ALL")
    assert found == [b"1 2"]
    _, data = imap.fetch("1", "(RFC822)")
    first = data[0][1]
    assert b"Delivered-To: bob@example.com" in first and b"This is a test mailing" in first
    deleted = b"first" if b"Subject: first" in first else b"second"
    imap.store("1", "+FLAGS", "\\Deleted")
    imap.expunge()
    assert imap.select("INBOX") == ("OK", [b"1"])
    imap.logout()

    pop = mail_box.pop3()
    pop.user("bob")
    assert pop.pass_(PASSWORD).startswith(b"+OK")
    count, _ = pop.stat()
    assert count == 1
    _, lines, _ = pop.retr(1)
    assert (b"Subject: second" if deleted == b"first" else b"Subject: first") in lines
    pop.dele(1)
    pop.quit()
    assert mail_box.mailbox("bob") == []


def test_imap_over_ssl_from_the_first_byte(mail_box):
    mail_box.send("bob@example.com", subject="over imaps")
    mail_box.wait_for_mail("bob", 1)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE   # the box's self-signed certificate
    with imaplib.IMAP4_SSL(mail_box.host, mail_box.imaps_port, ssl_context=context, timeout=20) as imap:
        assert imap.sock.version().startswith("TLS")
        assert imap.login("bob", PASSWORD)[0] == "OK"
        assert imap.select("INBOX") == ("OK", [b"1"])
        _, data = imap.fetch("1", "(RFC822)")
        assert b"Subject: over imaps" in data[0][1]


def test_wrong_password_and_unknown_user_are_refused(mail_box):
    imap = mail_box.imap()
    with pytest.raises(imaplib.IMAP4.error):
        imap.login("bob", "not-the-password")
    with pytest.raises(imaplib.IMAP4.error):
        mail_box.imap().login("nosuchuser", PASSWORD)
    pop = mail_box.pop3()
    pop.user("carol")
    with pytest.raises(poplib.error_proto):
        pop.pass_("wrong-password")


def test_off_site_clients_are_refused_unless_allowed(mail_box):
    mail_box.configure(**{"email.trusted_networks": "127.0.0.1/32"})
    imap = mail_box.imap(source="127.0.0.2")
    imap.starttls()  # from another address Dovecot takes passwords only over TLS
    with pytest.raises(imaplib.IMAP4.error, match="Off-site access to POP/IMAP is not allowed"):
        imap.login("bob", PASSWORD)
    pop = mail_box.pop3(source="127.0.0.2")
    pop.stls()
    pop.user("bob")
    with pytest.raises(poplib.error_proto, match="Off-site access to POP/IMAP is not allowed"):
        pop.pass_(PASSWORD)
    # From a trusted address the same login works.
    assert mail_box.imap().login("bob", PASSWORD)[0] == "OK"

    mail_box.configure(**{"email.allow_offsite_pop_imap": "on"})
    imap = mail_box.imap(source="127.0.0.2")
    imap.starttls()
    assert imap.login("bob", PASSWORD)[0] == "OK"


def test_license_lapse_keeps_mail_and_a_new_key_brings_access_back(mail_box):
    mail_box.send("bob@example.com", subject="before the lapse")
    mail_box.wait_for_mail("bob", 1)

    mail_box.cli("license", "remove", mail_box.license_id)

    def imap_refusal():
        try:
            mail_box.imap().login("bob", PASSWORD)
        except imaplib.IMAP4.error as error:
            return str(error)
        except OSError:
            return None  # Dovecot is giving way to the stand-in
        return None

    def pop3_refusal():
        try:
            pop = mail_box.pop3()
            pop.user("bob")
            pop.pass_(PASSWORD)
        except poplib.error_proto as error:
            return str(error)
        except OSError:
            return None
        return None
    for attempt in (imap_refusal, pop3_refusal):
        message = wait_until(lambda: (lambda m: m if m and "not licensed" in m else None)(attempt()),
                             20, 0.3, "a refusal that says the SoftPak is not licensed")
        assert "Mail Server SoftPak is not licensed" in message and "Your mail is kept" in message

    # Mail is still accepted, and kept in the queue rather than lost.
    mail_box.send("bob@example.com", subject="during the lapse")
    wait_until(lambda: mail_box.queue_ids("deferred"), 20, 0.3, "the message to wait in the queue")

    mail_box.license_id = mail_box.activate(expiry="2099-12-31")
    mail_box.wait_for_mail("bob", 2, timeout=30)

    def logs_in():
        try:
            imap = mail_box.imap()
            return imap.login("bob", PASSWORD)[0] == "OK" and imap
        except (imaplib.IMAP4.error, OSError):
            return False
    imap = wait_until(logs_in, 20, 0.3, "IMAP access to come back")
    imap.select("INBOX")
    _, data = imap.fetch("1:*", "(BODY[HEADER.FIELDS (SUBJECT)])")
    subjects = sorted(part[1].strip() for part in data if isinstance(part, tuple))
    assert subjects == [b"Subject: before the lapse", b"Subject: during the lapse"]


def test_run_options_choose_the_mailbox_ports(tmp_path, vendor, box_serial):
    box = MailBox(tmp_path / "box", vendor)
    imap_port = free_port()
    log = open(tmp_path / "run.log", "wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "firmware.cli", "--data", str(box.data), "run", "--bind", box.host,
         "--smtp-port", str(box.smtp_port), "--submission-port", "0", "--pop3-port", "0",
         "--imap-port", str(imap_port)], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_banner(box.host, box.smtp_port)
        imap = imaplib.IMAP4(box.host, imap_port, timeout=20)
        assert imap.login("carol", PASSWORD)[0] == "OK"
        imap.logout()
        with pytest.raises(OSError):
            poplib.POP3(box.host, box.pop3_port, timeout=5)  # --pop3-port 0 turned POP3 off
    finally:
        process.terminate()
        process.wait(20)
        log.close()
