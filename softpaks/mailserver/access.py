"""Who may open a mailbox over POP3/IMAP, and the words a refused client
sees. Asked on every login (by the checkpassword program Dovecot runs), so a
license lapse or a settings change takes effect at the next login."""

from __future__ import annotations

from firmware import accounts, login_limits
from firmware.mail.addresses import in_networks

from . import directory, groups

UNLICENSED = ("Mailbox access is off: the Mail Server SoftPak is not licensed on this box. "
              "Your mail is kept; ask the administrator to activate a license key "
              "(System > Licenses).")
NO_EMAIL = ("Your account has no Email permission on this box, so it has no mailbox "
            "(Users & Groups > Groups). Mail already in it is kept; ask the administrator.")
OFFSITE = ("Off-site access to POP/IMAP is not allowed on this box "
           "(Email Server > Settings > Advanced > Allow off-site access to POP/IMAP).")


def login_name(user: str, settings) -> str | None:
    """'bob' or 'bob@<a local domain>' -> 'bob'; None for other domains."""
    local, at, domain = user.strip().lower().rpartition("@")
    if not at:
        return domain
    return local if domain in directory.local_domains(settings) else None


def refusal(store, client_ip: str, settings, licensed: bool) -> str | None:
    """Why this client may not log in at all, or None."""
    if not licensed:
        return UNLICENSED
    if client_ip and not settings["email.allow_offsite_pop_imap"] and \
            not in_networks(client_ip, settings["email.trusted_networks"]):
        return OFFSITE
    return None


def sign_in(store, client_ip: str, name: str, password: str, service: str,
            limiter: login_limits.LoginLimiter = login_limits.shared) -> login_limits.Attempt:
    """The password, through the login limiter SMTP AUTH shares: a locked
    client or account is refused before its password is looked at.
    Administrators are not mail accounts and fail like unknown names."""
    return limiter.attempt(store, login_limits.MAIL, client_ip, name,
                           lambda: accounts.authenticate_mail(store, name, password), service)


def locked(attempt: login_limits.Attempt) -> bool:
    return attempt.outcome is login_limits.Outcome.LOCKED


def signed_in(attempt: login_limits.Attempt) -> bool:
    return attempt.outcome is login_limits.Outcome.OK


def account_refusal(store, name: str) -> str | None:
    """Why this account, its password checked, may not open its mailbox, or None.
    Asked only after the password so it tells strangers nothing about accounts."""
    return None if groups.has_email(store, name) else NO_EMAIL
