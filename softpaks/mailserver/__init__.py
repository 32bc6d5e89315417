"""The Mail Server SoftPak.

Its gate is in the core schema: `email.server_type` marks every type but
Relay with requires="mailserver", so the settings store refuses them unless
this SoftPak is active. When the license lapses the stored server type is
left as it is; services ask `is_licensed` and fall back to accepting and
keeping mail until a key brings the feature back: the local delivery agent
and routes vanish with the license, so mail for local users waits in the
queue, and Dovecot gives way to a stand-in that tells clients why.

Stand-alone mode: local domains, mailboxes (maildir), aliases, distribution
lists, forwarders, auto-responders, catch-all, archive copies (local_delivery,
expansion, routing), groups and their Email permission (groups), POP3/IMAP4
through a private Dovecot (dovecot, checkpassword, access), the Users &
Groups commands (cli) and pages (web). The hook implementations the
registry loads are in `hooks` (manifest.toml names it); whether the SoftPak
runs now is `license`."""

from __future__ import annotations

from .license import GATED_SERVER_TYPES, SOFTPAK_ID, is_licensed, server_type_runs

__all__ = ["GATED_SERVER_TYPES", "SOFTPAK_ID", "is_licensed", "server_type_runs"]
