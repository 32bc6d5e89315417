"""The anti-virus check: clamd scans each message at the end of DATA, before
the box answers 250, so nothing infected is ever accepted (inbound and
outbound alike, as ISMail scans "each message sent or received").

By default the whole message goes to clamd as one stream; clamd takes MIME
apart itself, attachments, base64 and archives included. With "Also Scan
Each MIME Part" (or with "Scan Entire Messages" off) each leaf part's
decoded payload is scanned on its own as well (or instead).

What the check answers, counted as antivirus=RESULT:
  clean          X-Virus-Scanned: clean (ClamAV ...) by HOST
  skipped_size   over Maximum Size to Scan: X-Virus-Scanned: skipped (size)
  infected       554 5.7.1 Message rejected: virus found (NAME)
  quarantined    250; the message goes to the quarantine store, not the queue
  scanner_failed 451 4.3.0 (When the Scanner Fails: reject temporarily)
  unscanned      X-Virus-Scanned: no (scanner unavailable) (... accept unscanned)
Notices (notices.py) follow an infected message either way.

A whitelisted sender is scanned too: the Anti-Spam lists say who is not a
spammer, not whose mail is free of viruses."""

from __future__ import annotations

import asyncio
import email
import email.message
import email.policy
import logging
import time

from firmware.mail import message_data
from firmware.mail.headers import safe_text
from firmware.mail.policy import Check, Context, Order, Verdict
from firmware.mail.submit import message_id_domain

from . import notices
from .clamd_client import Clamd, Finding, ScannerUnavailable, ScanTooLarge, parse_version
from .paths import socket_path
from .settings import (
    ACCEPT_UNSCANNED, ACTION, ENABLED, MAX_SCAN_MB, ON_FAILURE, QUARANTINE, SCAN_ENTIRE_MESSAGE,
    SCAN_PARTS,
)

CHECK_NAME = "antivirus"
HEADER = "X-Virus-Scanned"
# The chain's budget for the whole check; the scan itself gives up a little
# earlier so that its own failure mode (When the Scanner Fails) decides, not
# the chain's generic tempfail.
CHECK_BUDGET = 60.0
SCAN_SECONDS = 50.0
# How long the signature version shown in the header is reused before clamd
# is asked again (a VERSION round trip per message would double the cost).
VERSION_SECONDS = 300.0
MAX_PARTS = 500          # leaf parts scanned one by one at most; the rest ride on the whole scan
MAX_DEPTH = 20           # MIME nesting walked into (clamd's own recursion limit is 17)
NAME_LIMIT = 100

log = logging.getLogger("gatebox.antivirus")


def scan_limit(settings) -> int:
    """Octets above which a message is accepted unscanned."""
    return int(settings[MAX_SCAN_MB]) * 1024 * 1024


def scans_whole(settings) -> bool:
    return bool(settings[SCAN_ENTIRE_MESSAGE])


def scans_parts(settings) -> bool:
    return bool(settings[SCAN_PARTS]) or not settings[SCAN_ENTIRE_MESSAGE]


def decoded_parts(message: bytes, limit: int = MAX_PARTS) -> list[bytes]:
    """The decoded payload of each leaf MIME part, nested multiparts and
    attached messages walked into, empty ones left out."""
    payloads: list[bytes] = []
    _collect(email.message_from_bytes(message, policy=email.policy.compat32), payloads, limit, 0)
    return payloads


def _collect(part, payloads: list, limit: int, depth: int):
    if len(payloads) >= limit or depth > MAX_DEPTH:
        return
    if part.get_content_type() == "message/rfc822" and \
            part.get("Content-Transfer-Encoding", "").strip().lower() in ("base64",
                                                                          "quoted-printable"):
        # Not allowed by RFC 2046, and sent anyway: the attached message is
        # itself encoded, so the parser saw only its encoded text.
        encoded = email.message.Message()
        encoded["Content-Transfer-Encoding"] = part["Content-Transfer-Encoding"]
        inner = part.get_payload()
        encoded.set_payload(inner[0].as_bytes() if isinstance(inner, list) and inner else b"")
        _collect(email.message_from_bytes(encoded.get_payload(decode=True) or b"",
                                          policy=email.policy.compat32),
                 payloads, limit, depth + 1)
        return
    if part.is_multipart():
        for child in part.get_payload():
            _collect(child, payloads, limit, depth + 1)
        return
    payload = part.get_payload(decode=True)
    if payload and len(payloads) < limit:
        payloads.append(payload)


def virus_name(finding: Finding) -> str:
    # The name comes from the signature database and ends up in an SMTP reply
    # and a notice's header: printable ASCII, bounded.
    return safe_text(finding.name, NAME_LIMIT) or "unnamed"


class VirusScan:
    """The check's callable; one per policy build, so one client per
    settings generation."""

    def __init__(self, scanner: Clamd, clock=time.monotonic):
        self.scanner = scanner
        self.clock = clock
        self._version = ""
        self._version_at: float | None = None

    async def __call__(self, ctx: Context) -> Verdict | None:
        settings = ctx.settings
        if not settings[ENABLED] or not ctx.message or not ctx.data_complete:
            return None
        if ctx.message_length > scan_limit(settings):
            return self._skipped(ctx, f"size {ctx.message_length} over the limit "
                                      f"of {settings[MAX_SCAN_MB]} MB")
        try:
            async with asyncio.timeout(SCAN_SECONDS):
                finding = await self._scan(ctx, settings)
        except ScanTooLarge as error:
            # Below our limit but above clamd's StreamMaxLength: the same as
            # over the limit, not a scanner failure that would defer it forever.
            return self._skipped(ctx, f"clamd's stream limit: {error}")
        except (ScannerUnavailable, TimeoutError, OSError) as error:
            return self._failed(ctx, error)
        if finding is None:
            ctx.add_headers.append((HEADER, f"clean ({await self._engine()}) by "
                                            f"{message_id_domain(settings)}"))
            ctx.count_result(CHECK_NAME, "clean")
            return None
        return await self._infected(ctx, virus_name(finding))

    async def _scan(self, ctx: Context, settings) -> Finding | None:
        if scans_whole(settings):
            # A large message goes to clamd from its file, piece by piece.
            finding = await self.scanner.scan(
                message_data.chunks(ctx.message_file) if ctx.message_file else ctx.message)
            if finding is not None:
                return finding
        if scans_parts(settings):
            # Decoding needs the whole message, and parsing one of many
            # megabytes would stall every other session on the event loop.
            async with message_data.whole(ctx.message, ctx.message_file,
                                          len(ctx.message)) as message:
                parts = await asyncio.get_running_loop().run_in_executor(
                    None, decoded_parts, message)
                del message
            for payload in parts:
                finding = await self.scanner.scan(payload)
                if finding is not None:
                    return finding
        return None

    async def _engine(self) -> str:
        """'ClamAV 1.4.6/27000' (engine/signature version), asked of clamd at
        most every VERSION_SECONDS; 'ClamAV' when it would not say."""
        now = self.clock()
        if self._version_at is None or now - self._version_at >= VERSION_SECONDS:
            self._version_at = now
            try:
                engine, signatures, _ = parse_version(await self.scanner.version())
            except (ScannerUnavailable, OSError, ValueError) as error:
                log.warning("warning: antivirus: clamd VERSION failed: %s", error)
                self._version = ""
            else:
                engine = safe_text(engine, 40).removeprefix("ClamAV").strip()
                self._version = f"{engine}/{signatures}" if signatures else engine
        return f"ClamAV {self._version}".strip()

    def _skipped(self, ctx: Context, why: str) -> None:
        log.info("antivirus: not scanned (%s) client=[%s] from=<%s>", why, ctx.client_ip,
                 safe_text(ctx.sender))
        ctx.add_headers.append((HEADER, "skipped (size)"))
        ctx.count_result(CHECK_NAME, "skipped_size")
        return None

    def _failed(self, ctx: Context, error: Exception) -> Verdict | None:
        why = safe_text(str(error) or type(error).__name__)
        if ctx.settings[ON_FAILURE] == ACCEPT_UNSCANNED:
            log.warning("warning: antivirus: scanner unavailable (%s); accepted unscanned "
                        "client=[%s] from=<%s>", why, ctx.client_ip, safe_text(ctx.sender))
            ctx.add_headers.append((HEADER, "no (scanner unavailable)"))
            ctx.count_result(CHECK_NAME, "unscanned")
            return None
        log.warning("warning: antivirus: scanner unavailable (%s); deferred client=[%s] "
                    "from=<%s>", why, ctx.client_ip, safe_text(ctx.sender))
        ctx.count_result(CHECK_NAME, "scanner_failed")
        return Verdict(451, "4.3.0", "Virus scanner unavailable, try again later")

    async def _infected(self, ctx: Context, name: str) -> Verdict | None:
        quarantined = ctx.settings[ACTION] == QUARANTINE
        log.info("antivirus: virus found (%s) client=[%s] from=<%s> nrcpt=%d action=%s", name,
                 ctx.client_ip, safe_text(ctx.sender), len(ctx.recipients),
                 "quarantine" if quarantined else "reject")
        if quarantined:
            ctx.quarantine("virus", f"virus found ({name})")
            ctx.count_result(CHECK_NAME, "quarantined")
        else:
            ctx.count_result(CHECK_NAME, "infected")
        await notices.send_notices(ctx, name, quarantined)
        if quarantined:
            return None
        return Verdict(554, "5.7.1", f"Message rejected: virus found ({name})")


def virus_check(store, scanner: Clamd | None = None) -> Check:
    if scanner is None:
        scanner = Clamd(str(socket_path(store.data_dir)))
    # on_error="tempfail": a check that broke must never let mail pass unscanned.
    return Check(CHECK_NAME, "data", VirusScan(scanner), order=Order.CONTENT,
                 on_error="tempfail", budget=CHECK_BUDGET)


def policy_checks(store) -> list[Check]:
    return [virus_check(store)]
