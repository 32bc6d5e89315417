"""The local delivery agent (destination kind "local"): expands each
recipient (aliases, lists, forwarders, catch-all), writes the mailboxes,
keeps archive copies, sends auto-replies, and hands copies for remote
addresses back to the queue as new messages, as Postfix's local(8) does.

Loops are stopped, not bounced back and forth: a message that already
carries Delivered-To for the address it is being delivered to has been
here before (RFC 5321 section 6.3), so that recipient fails permanently
with 5.4.6 and the sender gets one notification."""

from __future__ import annotations

import logging
import threading

from firmware.config import Store
from firmware.mail.deliver import Result
from firmware.mail.headers import unfolded_headers
from firmware.mail.submit import Submission, submit
from firmware.plugins import active_plugin_manager

from . import autoresponder, directory, maildir, settings as keys
from .expansion import Unknown, expand
from .license import SOFTPAK_ID

log = logging.getLogger("gatebox.local")


def delivered_to(message: bytes) -> set[str]:
    return {v.strip().lower() for n, v in unfolded_headers(message) if n == "delivered-to"}


def _prepend(message: bytes, *headers: tuple[str, str]) -> bytes:
    return b"".join(f"{name}: {value}\r\n".encode() for name, value in headers) + message


class LocalDelivery:
    def __init__(self, context):
        self.data_dir = context.data_dir
        self.spool = context.spool
        self.announce = context.announce
        self._local = threading.local()
        self.owner = maildir.mail_owner()

    @property
    def store(self) -> Store:
        # Worker threads each keep their own connection to the settings database.
        store = getattr(self._local, "store", None)
        if store is None:
            store = self._local.store = Store(self.data_dir)
        return store

    def _licensed(self) -> bool:
        # Cached per settings generation and day by the plugin registry.
        return active_plugin_manager(self.store).has_plugin(SOFTPAK_ID)

    def deliver(self, destination, sender: str, recipients: list[str], message: bytes, settings,
                body_8bit: bool = False) -> dict[str, Result]:
        if not self._licensed():
            # The license lapsed moments ago and the queue manager has not
            # reloaded yet: keep the mail queued, as it will be from now on.
            return {r: Result("temp", "451 4.3.2 Mail Server SoftPak is not licensed; the message "
                                      "waits in the queue", "local") for r in recipients}
        seen_here = delivered_to(message)
        generation = getattr(settings, "generation", None)
        if generation is not None and self.store.generation() != generation:
            # smtpd may already have accepted mail under a change this
            # process has not reloaded yet (e.g. a new catch-all user).
            settings = self.store.snapshot()
        results = {}
        for recipient in recipients:
            try:
                results[recipient] = self._deliver_one(sender, recipient, message, settings,
                                                       body_8bit, seen_here)
            except Unknown as error:
                results[recipient] = Result("perm", f"550 5.1.1 <{recipient}>: {error}", "local")
            except OSError as error:
                log.error("local delivery to %s failed: %s", recipient, error)
                results[recipient] = Result("temp", f"451 4.3.0 mailbox write failed: {error}",
                                            "local")
        return results

    def _deliver_one(self, sender, recipient, message, settings, body_8bit, seen_here) -> Result:
        if recipient.lower() in seen_here:
            return Result("perm", f"554 5.4.6 mail forwarding loop for <{recipient}>", "local")
        store = self.store
        plan = expand(store, recipient, settings)
        domain = settings["email.domain"]
        done = []
        for user, via_list in plan.mailboxes:
            headers = [("Return-Path", f"<{sender}>"), ("Delivered-To", f"{user}@{domain}")]
            if via_list:
                headers.append(("List-Id", f"<{via_list}.{domain}>"))
            copy = _prepend(message, *headers)
            maildir.deliver(maildir.mailbox_path(store, self.data_dir, user, domain), copy, self.owner)
            if settings[keys.ARCHIVE]:
                maildir.deliver(maildir.mailbox_path(store, self.data_dir, f"archive-{user}", domain),
                                copy, self.owner)
            done.append(f"mailbox {user}")
        if plan.remote:
            headers = [("Delivered-To", recipient)]
            if plan.lists:
                headers.append(("List-Id", f"<{plan.lists[0]}.{domain}>"))
            qid = self._submit("forward", sender, plan.remote, _prepend(message, *headers), settings,
                               f"forwarded for <{recipient}>", body_8bit)
            done.append(f"forwarded as {qid} to {', '.join(plan.remote)}")
        for user in plan.responders:
            self._auto_reply(store, user, sender, message, settings, domain)
        return Result("sent", "250 2.0.0 delivered: " + "; ".join(done or ["nothing to do"]), "local")

    def _submit(self, origin: str, sender: str, recipients: list[str], message: bytes, settings,
                why: str, body_8bit: bool | None = None) -> str:
        return submit(self.spool, Submission(sender=sender, recipients=recipients, message=message,
                                             origin=origin, body_8bit=body_8bit, note=why),
                      self.announce, settings)

    def _auto_reply(self, store, user: str, sender: str, message: bytes, settings, domain: str):
        responder = directory.responder(store, user)
        if responder is None:
            return
        reason = autoresponder.why_not(sender, message)
        if reason is None and not autoresponder.claim(store, user, sender, settings):
            reason = f"already answered within {settings[keys.RESPONDER_DAYS]} days"
        if reason is not None:
            log.info("auto-responder of %s: no reply to <%s> (%s)", user, sender, reason)
            return
        reply = autoresponder.build_reply(responder, f"{user}@{domain}", sender, message)
        self._submit("autoreply", "", [sender], reply, settings, f"auto-reply of {user}")
