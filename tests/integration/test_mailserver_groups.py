"""The Email permission on a running box: a user taken out of every group
with Email is refused at RCPT time (Address Verification: Reject), cannot
log in over IMAP nor send with SMTP authentication, and gets all of it back,
with the mail it had, when a group with Email takes it in."""

import imaplib
import smtplib
import ssl

import pytest

from tests.support.mailserver import PASSWORD, MailBox
from tests.support.net import wait_until


def rcpt_reply(box, to: str) -> tuple[int, bytes]:
    with smtplib.SMTP(box.host, box.smtp_port, timeout=30) as client:
        client.ehlo("client.outside.test")
        client.mail("someone@outside.test")
        return client.rcpt(to)


def imap_login(box, user: str):
    """The IMAP server's answer: "OK" or the refusal's text."""
    try:
        imap = box.imap()
        status = imap.login(user, PASSWORD)[0]
        imap.logout()
        return status
    except imaplib.IMAP4.error as error:
        return str(error)


def authenticated_send(box, user: str, to: str):
    with smtplib.SMTP(box.host, box.submission_port, timeout=30) as client:
        client.starttls(context=ssl._create_unverified_context())
        client.login(user, PASSWORD)
        client.sendmail(f"{user}@example.com", [to], f"Subject: from {user}\r\n\r\nhi\r\n")


def subjects(box, user: str) -> list[str]:
    imap = box.imap()
    imap.login(user, PASSWORD)
    imap.select("INBOX", readonly=True)
    _, data = imap.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    imap.logout()
    return sorted(part[1].decode().strip() for part in data if isinstance(part, tuple))


def test_without_email_permission_no_mailbox_and_back_with_mail_intact(mail_box):
    mail_box.send("carol@example.com", subject="while allowed")
    mail_box.wait_for_mail("carol", 1)
    assert rcpt_reply(mail_box, "carol@example.com")[0] == 250

    assert mail_box.cli("group", "leave", "default", "carol").stdout.strip() == \
        "default (email, new users join): bob"

    code, text = rcpt_reply(mail_box, "carol@example.com")
    assert (code, text.startswith(b"5.1.1")) == (550, True), text
    refused = mail_box.swaks("carol@example.com")
    assert refused.returncode != 0 and "550 5.1.1" in refused.stdout
    assert rcpt_reply(mail_box, "bob@example.com")[0] == 250

    refusal = imap_login(mail_box, "carol")
    assert "no Email permission" in refusal and "Mail already in it is kept" in refusal
    assert imap_login(mail_box, "bob") == "OK"
    with pytest.raises(smtplib.SMTPSenderRefused) as sending:
        authenticated_send(mail_box, "carol", "bob@example.com")
    assert sending.value.smtp_code == 550 and b"no Email permission" in sending.value.smtp_error
    assert mail_box.mailbox("carol")[0].endswith("  while allowed")   # kept, not deleted

    mail_box.cli("group", "add", "office", "--email", "--member", "carol")
    assert rcpt_reply(mail_box, "carol@example.com")[0] == 250
    mail_box.send("carol@example.com", subject="allowed again")
    mail_box.wait_for_mail("carol", 2)
    assert wait_until(lambda: imap_login(mail_box, "carol") == "OK", 20, 0.3, "IMAP login for carol")
    assert subjects(mail_box, "carol") == ["Subject: allowed again", "Subject: while allowed"]
    authenticated_send(mail_box, "carol", "bob@example.com")
    mail_box.wait_for_mail("bob", 1)


def test_catch_all_takes_mail_for_a_user_without_email_permission(tmp_path, vendor, box_serial):
    box = MailBox(tmp_path / "box", vendor, **{"mailserver.unaddressable": "user",
                                               "mailserver.unaddressable_user": "bob"})
    box.cli("group", "leave", "default", "carol")
    box.start()
    try:
        box.send("carol@example.com", subject="for carol")
        assert box.wait_for_mail("bob", 1)[0].endswith("  for carol")
        assert box.mailbox("carol") == []
    finally:
        box.stop()
