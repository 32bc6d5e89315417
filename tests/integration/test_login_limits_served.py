"""Password guessing from outside, against a started box: SMTP AUTH with
smtplib over STARTTLS, POP3/IMAP through Dovecot's checkpassword path.
Clients come from 127.0.0.2, 127.0.0.3 ... (outside Trusted Networks)."""

import imaplib
import poplib
import smtplib
import ssl

import pytest

from tests.support.mailserver import PASSWORD

RIGHT = "correct horse"


def smtp_from(box, source: str) -> smtplib.SMTP:
    client = smtplib.SMTP(box.host, box.smtp_port, timeout=20, source_address=(source, 0))
    client.ehlo("client.test")
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    client.starttls(context=context)
    client.ehlo("client.test")
    return client


def auth(client: smtplib.SMTP, user: str, password: str) -> tuple[int, str]:
    """One AUTH PLAIN command (smtplib's login() would try each mechanism)."""
    client.user, client.password = user, password
    try:
        code, text = client.auth("PLAIN", client.auth_plain)
    except smtplib.SMTPAuthenticationError as error:
        code, text = error.smtp_code, error.smtp_error
    except smtplib.SMTPServerDisconnected:
        return 0, "disconnected"
    return code, text.decode() if isinstance(text, bytes) else text


def auth_once(box, source: str, user: str, password: str) -> tuple[int, str]:
    client = smtp_from(box, source)
    try:
        return auth(client, user, password)
    finally:
        client.close()


@pytest.fixture
def smtp_box(make_box):
    box = make_box(**{"email.trusted_networks": "127.0.0.1/32"})
    box.cli("user", "add", "alice", "--password", RIGHT)
    box.cli("user", "add", "boss", "--password", RIGHT, "--admin")
    return box.start()


def test_three_failed_auth_commands_close_the_session(smtp_box):
    client = smtp_from(smtp_box, "127.0.0.2")
    assert auth(client, "alice", "wrong 1")[0] == 535
    assert auth(client, "alice", "wrong 2")[0] == 535
    code, text = auth(client, "alice", "wrong 3")
    assert code == 421 and text.startswith("4.7.0"), text
    with pytest.raises(smtplib.SMTPServerDisconnected):
        client.noop()
    assert "check=auth_failure_limit" in smtp_box.log()


def test_a_guessing_client_is_locked_out_others_are_not_and_a_restart_forgives_nothing(smtp_box):
    for n in range(5):
        assert auth_once(smtp_box, "127.0.0.2", "alice", f"guess {n}")[0] == 535
    code, text = auth_once(smtp_box, "127.0.0.2", "alice", RIGHT)
    assert code == 454 and text.startswith("4.7.0") and "try again" in text, text
    assert auth_once(smtp_box, "127.0.0.3", "alice", RIGHT)[0] == 235
    smtp_box.stop()
    smtp_box.start()
    assert auth_once(smtp_box, "127.0.0.2", "alice", RIGHT)[0] == 454
    assert "mail client 127.0.0.2" in smtp_box.cli("user", "locks").stdout
    # An administrator lifts it by hand.
    assert smtp_box.cli("user", "unlock", "--client", "127.0.0.2").stdout.strip() == \
        "unlocked 127.0.0.2"
    assert auth_once(smtp_box, "127.0.0.2", "alice", RIGHT)[0] == 235


def test_an_account_guessed_from_many_clients_locks_until_unlocked(smtp_box):
    for client in range(4, 8):
        for n in range(5):
            auth_once(smtp_box, f"127.0.0.{client}", "alice", f"guess {n}")
    assert auth_once(smtp_box, "127.0.0.9", "alice", RIGHT)[0] == 454
    assert "mail account alice" in smtp_box.cli("user", "locks").stdout
    assert smtp_box.cli("user", "unlock", "alice").stdout.strip() == "unlocked alice"
    assert auth_once(smtp_box, "127.0.0.9", "alice", RIGHT)[0] == 235


def test_administrators_fail_smtp_auth_like_unknown_users(smtp_box):
    admin = auth_once(smtp_box, "127.0.0.2", "boss", RIGHT)
    unknown = auth_once(smtp_box, "127.0.0.2", "nobody", RIGHT)
    assert admin == unknown and admin[0] == 535


# ---- POP3 and IMAP through Dovecot ---------------------------------------------------------
def imap_login(box, source: str, user: str, password: str) -> str:
    imap = box.imap(source=source)
    try:
        imap.starttls()
        return imap.login(user, password)[0]
    except imaplib.IMAP4.error as error:
        return str(error)
    finally:
        try:
            imap.logout()
        except (imaplib.IMAP4.error, OSError):
            pass


def pop3_login(box, source: str, user: str, password: str) -> str:
    pop = box.pop3(source=source)
    try:
        pop.stls()
        pop.user(user)
        return pop.pass_(password).decode()
    except poplib.error_proto as error:
        return str(error)
    finally:
        try:
            pop.quit()
        except (poplib.error_proto, OSError):
            pass


def test_imap_and_pop3_guessing_is_locked_out_through_checkpassword(mail_box):
    mail_box.configure(**{"email.trusted_networks": "127.0.0.1/32",
                          "email.allow_offsite_pop_imap": "on"})
    for n in range(3):
        assert "AUTHENTICATIONFAILED" in imap_login(mail_box, "127.0.0.2", "bob", f"guess {n}")
    for n in range(2):
        assert "-ERR" in pop3_login(mail_box, "127.0.0.2", "bob", f"guess {n}")
    # Locked: the right password is refused as a temporary failure, both protocols.
    assert "UNAVAILABLE" in imap_login(mail_box, "127.0.0.2", "bob", PASSWORD)
    assert "Temporary authentication failure" in pop3_login(mail_box, "127.0.0.2", "bob", PASSWORD)
    assert imap_login(mail_box, "127.0.0.3", "bob", PASSWORD) == "OK"
    assert "mail client 127.0.0.2" in mail_box.cli("user", "locks").stdout


def test_administrators_fail_imap_and_pop3_like_unknown_users(mail_box):
    mail_box.cli("user", "add", "boss", "--password", PASSWORD, "--admin")
    assert imap_login(mail_box, "127.0.0.1", "boss", PASSWORD) == \
        imap_login(mail_box, "127.0.0.1", "nobody", PASSWORD)
    assert "AUTHENTICATIONFAILED" in imap_login(mail_box, "127.0.0.1", "boss", PASSWORD)
    assert pop3_login(mail_box, "127.0.0.1", "boss", PASSWORD) == \
        pop3_login(mail_box, "127.0.0.1", "nobody", PASSWORD)
