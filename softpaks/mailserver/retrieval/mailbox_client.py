"""A mailbox at the ISP over POP3 or IMAP (poplib, imaplib): TLS from the
first byte, STARTTLS/STLS, or none; the certificate checked against the
system's trusted CAs unless the account says otherwise.

GATEBOX_ISP_CAFILE (or the `cafile` parameter) adds a CA to trust besides the
system's, for an ISP with a private CA; it never turns checking off.

Each message is named by a UID stable across sessions: the POP3 UIDL, or
"UIDVALIDITY:UID" for IMAP, so what was fetched is known after a restart.
Deletions take effect at commit() (POP3 QUIT, IMAP EXPUNGE); a session that
dies before then deletes nothing."""

from __future__ import annotations

import imaplib
import os
import poplib
import re
import socket
import ssl
from dataclasses import dataclass

from . import Account

CAFILE_ENV = "GATEBOX_ISP_CAFILE"
TIMEOUT = 60.0
DEFAULT_PORTS = {("pop3", "tls"): 995, ("pop3", "starttls"): 110, ("pop3", "none"): 110,
                 ("imap", "tls"): 993, ("imap", "starttls"): 143, ("imap", "none"): 143}
_UIDVALIDITY = re.compile(rb"UIDVALIDITY (\d+)")
_FETCH_UID_SIZE = re.compile(rb"UID (\d+).*?RFC822\.SIZE (\d+)|RFC822\.SIZE (\d+).*?UID (\d+)")


class MailboxError(Exception):
    """The ISP mailbox could not be reached, logged in to, or read. The
    text is for the administrator (it never holds the password)."""


class MessageRefused(MailboxError):
    """The server refused one message (-ERR, NO) or it is over the size the
    box takes: the session is still in step and goes on with the next."""


# poplib refuses lines over 2048 octets, which real mail has (HTML on one
# line): messages are read with our own reader, whose only bound is the
# message's size cap.
_POP_MAX_LINE = 1024 * 1024


@dataclass(frozen=True)
class Listed:
    """One message in the mailbox: `uid` is stable across sessions,
    `key` is what retrieve()/delete() take in this session."""
    uid: str
    key: str
    size: int


def default_port(protocol: str, tls: str) -> int:
    """995/110 for POP3, 993/143 for IMAP."""
    return DEFAULT_PORTS[(protocol, tls)]


def tls_context(verify: bool = True, cafile: str | None = None) -> ssl.SSLContext:
    """The system's trusted CAs plus `cafile` (or GATEBOX_ISP_CAFILE), with
    the host name checked; verify=False accepts any certificate."""
    context = ssl.create_default_context()
    extra = cafile or os.environ.get(CAFILE_ENV)
    if extra:
        context.load_verify_locations(cafile=extra)
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class MailboxClient:
    """An open session with one ISP mailbox. Use open_mailbox()."""

    def __init__(self, account: Account, timeout: float = TIMEOUT, cafile: str | None = None):
        self.account = account
        self.timeout = timeout
        self.context = tls_context(account.verify, cafile)
        self._pop: poplib.POP3 | None = None
        self._imap: imaplib.IMAP4 | None = None
        self._uidvalidity = ""

    # ---- session -----------------------------------------------------------------------
    def connect(self) -> "MailboxClient":
        account = self.account
        where = f"{account.host}:{account.port}"
        try:
            if account.protocol == "pop3":
                self._connect_pop3()
            elif account.protocol == "imap":
                self._connect_imap()
            else:
                raise MailboxError(f"unknown protocol {account.protocol!r} (pop3 or imap)")
        except ssl.SSLCertVerificationError as error:
            self.abort()
            raise MailboxError(f"{where}: the server's certificate is not trusted "
                               f"({error.verify_message or error.reason}); check the host name, "
                               "or turn certificate checking off only for a self-signed "
                               "certificate") from None
        except (ssl.SSLError, OSError, EOFError) as error:
            self.abort()
            raise MailboxError(f"{where}: cannot connect: {_describe(error)}") from None
        except (poplib.error_proto, imaplib.IMAP4.error) as error:
            self.abort()
            raise MailboxError(f"{where}: {account.protocol.upper()} login as {account.login!r} "
                               f"failed: {_describe(error)}") from None
        return self

    def _connect_pop3(self):
        account = self.account
        if account.tls == "tls":
            self._pop = poplib.POP3_SSL(account.host, account.port, timeout=self.timeout,
                                        context=self.context)
        else:
            self._pop = poplib.POP3(account.host, account.port, timeout=self.timeout)
            if account.tls == "starttls":
                self._pop.stls(self.context)
        self._pop.user(account.login)
        self._pop.pass_(account.password)

    def _connect_imap(self):
        account = self.account
        if account.tls == "tls":
            self._imap = imaplib.IMAP4_SSL(account.host, account.port, ssl_context=self.context,
                                           timeout=self.timeout)
        else:
            self._imap = imaplib.IMAP4(account.host, account.port, timeout=self.timeout)
            if account.tls == "starttls":
                self._imap.starttls(self.context)
        self._imap.login(account.login, account.password)
        status, _ = self._imap.select("INBOX")
        if status != "OK":
            raise imaplib.IMAP4.error("cannot open INBOX")
        code, value = self._imap.response("UIDVALIDITY")
        self._uidvalidity = (value[0].decode() if value and value[0] else "0")

    def _guard(self, what: str, action):
        try:
            return action()
        except MessageRefused:
            raise
        except poplib.error_proto as error:
            reply = error.args[0] if error.args else b""
            if isinstance(reply, bytes) and reply.startswith(b"-ERR"):
                raise MessageRefused(f"{self.account.host}:{self.account.port}: {what}: "
                                     f"{_describe(error)}") from None
            raise MailboxError(f"{self.account.host}:{self.account.port}: {what}: "
                               f"{_describe(error)}") from None
        except (imaplib.IMAP4.error, imaplib.IMAP4.error, OSError, EOFError, ssl.SSLError) as error:
            raise MailboxError(f"{self.account.host}:{self.account.port}: {what}: "
                               f"{_describe(error)}") from None

    @property
    def peer(self) -> str:
        """The ISP server's IP address, for the trace field and the log."""
        connection = self._pop or self._imap
        try:
            return connection.sock.getpeername()[0]
        except (AttributeError, OSError):
            return self.account.host

    # ---- messages ------------------------------------------------------------------------
    def list(self) -> list[Listed]:
        """Every message in the mailbox, oldest first."""
        if self._pop is not None:
            return self._guard("listing the mailbox", self._list_pop3)
        return self._guard("listing the mailbox", self._list_imap)

    def _list_pop3(self):
        sizes = {}
        for line in self._pop.list()[1]:
            number, size = line.split()[:2]
            sizes[number.decode()] = int(size)
        found = []
        for line in self._pop.uidl()[1]:
            number, uid = line.split()[:2]
            found.append(Listed(uid.decode("ascii", "replace"), number.decode(),
                                sizes.get(number.decode(), 0)))
        return sorted(found, key=lambda m: int(m.key))

    def _list_imap(self):
        status, data = self._imap.uid("SEARCH", None, "ALL")
        if status != "OK":
            raise imaplib.IMAP4.error(f"SEARCH failed: {data}")
        uids = [u.decode() for u in (data[0] or b"").split()]
        if not uids:
            return []
        # One range, not a list of every UID: servers bound a command's length.
        status, data = self._imap.uid("FETCH", "1:*", "(UID RFC822.SIZE)")
        if status != "OK":
            raise imaplib.IMAP4.error(f"FETCH of the sizes failed: {data}")
        sizes = {}
        for item in data:
            line = item[0] if isinstance(item, tuple) else item
            match = _FETCH_UID_SIZE.search(line or b"")
            if match:
                uid = match.group(1) or match.group(4)
                size = match.group(2) or match.group(3)
                sizes[uid.decode()] = int(size)
        return [Listed(f"{self._uidvalidity}:{uid}", uid, sizes.get(uid, 0))
                for uid in sorted(uids, key=int)]

    def count(self) -> int:
        """How many messages the mailbox holds."""
        if self._pop is not None:
            return self._guard("counting", lambda: self._pop.stat()[0])
        return len(self.list())

    def retrieve(self, key: str, limit: int) -> bytes:
        """The message's bytes as stored at the ISP (CRLF line ends), at most
        `limit` octets: a longer one raises MessageRefused, whatever size the
        server announced, so a hostile server cannot fill the box's memory."""
        if self._pop is not None:
            return self._guard(f"retrieving message {key}", lambda: self._retr_pop3(key, limit))

        def imap():
            status, data = self._imap.uid("FETCH", key, f"(BODY.PEEK[]<0.{limit + 1}>)")
            if status != "OK":
                raise MessageRefused(f"message {key}: the server refused it: {_describe(data)}")
            for item in data or ():
                if isinstance(item, tuple):
                    if len(item[1]) > limit:
                        raise MessageRefused(f"message {key} is over {limit} octets")
                    return item[1]
            raise MessageRefused(f"no message with UID {key}")
        return self._guard(f"retrieving message {key}", imap)

    def _retr_pop3(self, key: str, limit: int) -> bytes:
        pop = self._pop
        pop._putcmd(f"RETR {int(key)}")
        pop._getresp()          # raises error_proto on -ERR: the session is still in step
        parts, total = [], 0
        while True:
            line = pop.file.readline(_POP_MAX_LINE + 3)
            if not line:
                raise EOFError("the server closed the connection in the middle of a message")
            if line in (b".\r\n", b".\n"):
                return b"".join(parts)
            if not line.endswith(b"\n"):
                raise poplib.error_proto("a line of the message is too long (over 1 MB)")
            if line.startswith(b".."):
                line = line[1:]     # dot-stuffing undone
            line = line.rstrip(b"\r\n") + b"\r\n"
            total += len(line)
            if total > limit:
                # Out of step now (the rest of the message is unread): the
                # session ends; the message stays at the ISP.
                raise poplib.error_proto(f"message {key} is over {limit} octets")
            parts.append(line)

    def delete(self, key: str):
        """Marks the message deleted; it goes at commit()."""
        if self._pop is not None:
            self._guard(f"deleting message {key}", lambda: self._pop.dele(int(key)))
        else:
            self._guard(f"deleting message {key}",
                        lambda: self._imap.uid("STORE", key, "+FLAGS.SILENT", r"(\Deleted)"))

    def commit(self):
        """Makes the deletions final and ends the session."""
        if self._pop is not None:
            pop, self._pop = self._pop, None
            self._guard("ending the session (QUIT)", pop.quit)
        elif self._imap is not None:
            imap, self._imap = self._imap, None
            self._guard("expunging", imap.expunge)
            try:
                imap.logout()
            except (imaplib.IMAP4.error, OSError, EOFError):
                pass

    def abort(self):
        """Ends the session without deleting anything."""
        pop, imap, self._pop, self._imap = self._pop, self._imap, None, None
        for close in ((pop.close,) if pop else ()) + ((imap.shutdown,) if imap else ()):
            try:
                close()
            except (OSError, EOFError, imaplib.IMAP4.error):
                pass

    def __enter__(self):
        return self

    def __exit__(self, kind, value, traceback):
        # Leaving without commit() keeps every message at the ISP.
        self.abort()


def open_mailbox(account: Account, timeout: float = TIMEOUT, cafile: str | None = None) -> MailboxClient:
    """Connects and logs in (raises MailboxError with a reason). Use as
    `with open_mailbox(account) as mailbox: ...; mailbox.commit()`."""
    return MailboxClient(account, timeout, cafile).connect()


def _describe(error: BaseException) -> str:
    if isinstance(error, socket.timeout):
        return "timed out"
    text = error.args[0] if error.args else error
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return str(text) or type(error).__name__
