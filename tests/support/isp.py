"""The ISP's side of retrieval, on loopback: Debian's Dovecot as the ISP's
POP3/POP3S/IMAP/IMAPS server with its own passwd-file and maildirs, and a
certificate signed by a CA the test makes (so certificate checking is really
exercised: the box trusts that CA only through GATEBOX_ISP_CAFILE or the
`cafile` parameter). Mail lands in an ISP mailbox either written directly,
headers and all, as the ISP's delivery would write it (`drop`), or through
`IspSmtp`, a small SMTP server that plays the ISP's MX: it adds the envelope
header an ISP adds and writes the message into the multi-drop mailbox.

The certificate names only `host` (an IP address SAN) and isp.test; Dovecot
also listens on `other_host`, so connecting there is a certificate whose
name does not match."""

from __future__ import annotations

import email.utils
import hashlib
import itertools
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from aiosmtpd.controller import Controller

from firmware.config import Store
from firmware.mail.queue import Spool
from softpaks.mailserver.dovecot import _process_users
from softpaks.mailserver.maildir import mail_owner
from softpaks.mailserver.retrieval import RetrievalContext, multidrop

from .mailserver import let_mail_user_through
from .net import free_port, wait_for_banner
from .tools import require

DOVECOT = "/usr/sbin/dovecot"
DH_PARAMS = "/usr/share/dovecot/dh.pem"
CAFILE_ENV = "GATEBOX_ISP_CAFILE"
_drops = itertools.count()


def make_ca_and_certificate(directory: Path, names: list[str], ips: list[str]) -> tuple[Path, Path, Path]:
    """(ca.pem, server.pem, server.key): a throwaway CA and a server
    certificate it signed for the given DNS names and IP addresses."""
    require("openssl")
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca, key, csr, cert = (directory / n for n in
                                  ("ca.key", "ca.pem", "server.key", "server.csr", "server.pem"))
    ext = directory / "san.cnf"
    alt = ",".join([f"DNS:{n}" for n in names] + [f"IP:{i}" for i in ips])
    ext.write_text(f"subjectAltName={alt}\nbasicConstraints=CA:FALSE\n"
                   "extendedKeyUsage=serverAuth\n")

    def openssl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca),
            "-days", "2", "-subj", "/CN=Test ISP Root CA",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
            "-subj", f"/CN={names[0] if names else ips[0]}")
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
            "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(ext))
    key.chmod(0o600)
    return ca, cert, key


class Isp:
    """A private Dovecot as the ISP. Use as a context manager or start()/stop().

    isp = Isp(tmp_path / "isp"); isp.add_user("office", "secret"); isp.start()
    isp.drop("office", isp.message(to="bob@example.com", envelope=[("Delivered-To", "bob@example.com")]))
    box.configure(**isp.box_settings("office", "secret", protocol="pop3", tls="tls"))
    """

    def __init__(self, root: Path, host: str = "127.0.0.1", other_host: str = "127.0.0.2"):
        require("dovecot", "dovecot imap", "dovecot pop3", "openssl")
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        let_mail_user_through(self.root)
        self.root.chmod(0o755)
        self.host, self.other_host = host, other_host
        self.ports = {("pop3", "none"): free_port(host), ("pop3", "tls"): free_port(host),
                      ("imap", "none"): free_port(host), ("imap", "tls"): free_port(host)}
        self.ca_file, self.cert_file, self.key_file = make_ca_and_certificate(
            self.root / "tls", ["isp.test"], [host])
        self.passwd = self.root / "passwd"
        self.passwd.write_text("")
        self.users: dict[str, str] = {}
        self.process: subprocess.Popen | None = None
        self.owner = mail_owner()
        tag = hashlib.sha1(str(self.root.resolve()).encode()).hexdigest()[:10]
        self.base_dir = Path(tempfile.gettempdir()) / f"isp-dovecot-{tag}"

    # ---- accounts and mailboxes ------------------------------------------------------
    def add_user(self, login: str, password: str) -> Path:
        """A mailbox at the ISP; returns its Maildir."""
        self.users[login] = password
        home = self.root / "home" / login
        for sub in ("cur", "new", "tmp"):
            (home / "Maildir" / sub).mkdir(parents=True, exist_ok=True)
        for path in [self.root / "home", home, *(home / "Maildir").rglob("*"), home / "Maildir"]:
            os.chown(path, self.owner.uid, self.owner.gid)
        (self.root / "home").chmod(0o755)
        self.passwd.write_text("".join(
            f"{user}:{{PLAIN}}{secret}:{self.owner.uid}:{self.owner.gid}::{self.root / 'home' / user}::\n"
            for user, secret in self.users.items()))
        return home / "Maildir"

    def maildir(self, login: str) -> Path:
        return self.root / "home" / login / "Maildir"

    @staticmethod
    def message(to: str = "someone@example.com", sender: str = "alice@outside.test",
                subject: str = "hello", body: str = "Hello.\r\n", envelope=(),
                message_id: str | None = None, extra=()) -> bytes:
        """A message as the ISP's mailbox holds it: the envelope header lines
        the ISP added on top (`envelope`: (name, value) pairs, topmost first),
        then the sender's own header (`extra` may carry forged lines)."""
        message_id = message_id or email.utils.make_msgid(domain="outside.test")
        lines = [f"{name}: {value}" for name, value in envelope]
        lines += [f"Return-Path: <{sender}>", f"From: {sender}", f"To: {to}",
                  f"Subject: {subject}", f"Message-ID: {message_id}",
                  f"Date: {email.utils.formatdate()}"]
        lines += [f"{name}: {value}" for name, value in extra]
        return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()

    def drop(self, login: str, message: bytes) -> str:
        """Writes MESSAGE into LOGIN's ISP mailbox as a delivery agent does
        (tmp/, then rename into new/); returns the file name."""
        maildir = self.maildir(login)
        name = f"{time.time():.6f}.P{os.getpid()}Q{next(_drops)}.isp"
        temporary = maildir / "tmp" / name
        with open(temporary, "wb") as handle:
            handle.write(message)
            handle.flush()
            os.fsync(handle.fileno())
        os.chown(temporary, self.owner.uid, self.owner.gid)
        os.rename(temporary, maildir / "new" / name)
        return name

    def stored(self, login: str) -> list[bytes]:
        """The messages still in LOGIN's ISP mailbox (not yet deleted)."""
        maildir = self.maildir(login)
        return [path.read_bytes() for sub in ("new", "cur") for path in sorted((maildir / sub).iterdir())]

    def count(self, login: str) -> int:
        return len(self.stored(login))

    # ---- addresses for the box -----------------------------------------------------------
    def port(self, protocol: str, tls: str) -> int:
        """The port for a protocol and connection security (STARTTLS/STLS
        is offered on the plain port)."""
        return self.ports[(protocol, "tls" if tls == "tls" else "none")]

    def box_settings(self, login: str, password: str, protocol: str = "pop3", tls: str = "tls",
                     host: str | None = None, verify: bool = True) -> dict:
        """The email.isp_* settings for a box fetching LOGIN's mailbox."""
        return {"email.isp_server": f"{host or self.host}:{self.port(protocol, tls)}",
                "email.isp_protocol": protocol, "email.isp_tls": tls,
                "email.isp_tls_verify": "on" if verify else "off",
                "email.isp_login": login, "email.isp_password": password}

    def environment(self) -> dict:
        """Environment for a box process so it trusts this ISP's CA."""
        return {CAFILE_ENV: str(self.ca_file)}

    # ---- the server -------------------------------------------------------------------------
    @property
    def log_path(self) -> Path:
        return self.root / "dovecot.log"

    def config_text(self) -> str:
        internal, login, internal_group = _process_users()
        listen = ", ".join(dict.fromkeys([self.host, self.other_host]))
        lines = [
            f"base_dir = {self.base_dir}",
            f"state_dir = {self.root / 'state'}",
            f"instance_name = isp-{self.base_dir.name}",
            f"listen = {listen}",
            "protocols = imap pop3",
            f"log_path = {self.log_path}",
            f"default_internal_user = {internal}",
            f"default_login_user = {login}",
            f"default_internal_group = {internal_group}",
            f"first_valid_uid = {self.owner.uid}",
            f"first_valid_gid = {self.owner.gid}",
            "login_greeting = Test ISP ready.",
            "auth_mechanisms = plain login",
            # Connection security "none" must be testable too.
            "disable_plaintext_auth = no",
            "ssl = yes",
            f"ssl_cert = <{self.cert_file}",
            f"ssl_key = <{self.key_file}",
            "mail_location = maildir:~/Maildir",
            "pop3_uidl_format = %08Xu%08Xv",
            "passdb {", "  driver = passwd-file", f"  args = scheme=PLAIN {self.passwd}", "}",
            "userdb {", "  driver = passwd-file", f"  args = {self.passwd}", "}",
            "service imap-login {",
            f"  inet_listener imap {{\n    port = {self.ports[('imap', 'none')]}\n  }}",
            f"  inet_listener imaps {{\n    port = {self.ports[('imap', 'tls')]}\n    ssl = yes\n  }}",
            "}",
            "service pop3-login {",
            f"  inet_listener pop3 {{\n    port = {self.ports[('pop3', 'none')]}\n  }}",
            f"  inet_listener pop3s {{\n    port = {self.ports[('pop3', 'tls')]}\n    ssl = yes\n  }}",
            "}",
        ]
        if os.path.exists(DH_PARAMS):
            lines.append(f"ssl_dh = <{DH_PARAMS}")
        if os.geteuid() != 0:
            lines += [f"service {name} {{\n  chroot =\n}}" for name in ("anvil", "imap-login", "pop3-login")]
        return "\n".join(lines) + "\n"

    def start(self) -> "Isp":
        (self.root / "state").mkdir(exist_ok=True)
        self.base_dir.mkdir(exist_ok=True, mode=0o755)
        config = self.root / "dovecot.conf"
        config.write_text(self.config_text())
        with open(self.log_path, "ab") as early:
            self.process = subprocess.Popen([DOVECOT, "-F", "-c", str(config)], stdin=subprocess.DEVNULL,
                                            stdout=early, stderr=early, start_new_session=True)
        try:
            for (protocol, tls), port in self.ports.items():
                if tls == "none":
                    wait_for_banner(self.host, port, accept=(b"+OK", b"* OK"))
                else:
                    _wait_for_listen(self.host, port)
        except TimeoutError:
            self.stop()
            raise AssertionError("the ISP's Dovecot did not start:\n" + self.log())
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self):
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def _wait_for_listen(host: str, port: int, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection((host, port), timeout=2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port}")


class IspSmtp:
    """The ISP's MX for the office domain: every message it accepts goes
    into one ISP mailbox (multi-drop) with the envelope header this ISP
    writes on top, one line per envelope recipient, as Postfix's local
    delivery writes Delivered-To (and X-Original-To) or qmail/Exim write
    Delivered-To/Envelope-To. Used for the auto-detect probe.

    `headers`: the header names to write, topmost first, e.g.
    ("X-Envelope-To",) or ("Delivered-To", "X-Original-To"). A name given as
    "Received" writes a Received line with "for <rcpt>"; one holding a colon
    is a whole line, {rcpt} replaced ("Delivered-To: office@isp.test")."""

    def __init__(self, isp: Isp, login: str, headers=("X-Original-To",), host: str | None = None):
        self.isp, self.login, self.headers = isp, login, tuple(headers)
        self.host = host or isp.host
        self.port = free_port(self.host)
        self.accepted: list[tuple[str, list[str]]] = []
        self.controller = Controller(self, hostname=self.host, port=self.port)

    async def handle_DATA(self, server, session, envelope):
        content = envelope.original_content or envelope.content
        # One copy per recipient, each with its own envelope lines, as
        # Postfix's local delivery writes a multi-drop mailbox.
        for recipient in envelope.rcpt_tos:
            lines = [f"Return-Path: <{envelope.mail_from}>"]
            for name in self.headers:
                if name.lower() == "received":
                    lines.append(f"Received: from {session.host_name or 'unknown'} by mx.isp.test "
                                 f"with ESMTP for <{recipient}>; {email.utils.formatdate()}")
                elif ":" in name:
                    lines.append(name.replace("{rcpt}", recipient))
                else:
                    lines.append(f"{name}: {recipient}")
            self.isp.drop(self.login, ("\r\n".join(lines) + "\r\n").encode() + content)
        self.accepted.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 2.0.0 delivered to the multi-drop mailbox"

    def start(self) -> "IspSmtp":
        self.controller.start()
        return self

    def stop(self):
        self.controller.stop()


def retrieval_context(data_dir: Path, now: float | None = None) -> RetrievalContext:
    """What a retrieval run in its own process needs, for a box's data
    directory. New mail is not announced: the running queue manager's rescan
    finds it (it is durable in incoming either way)."""
    store = Store(data_dir)
    return RetrievalContext(store, Spool(Path(data_dir) / "queue"), lambda qid: None,
                            store.snapshot(), time.time() if now is None else now)


def retrieval_process(data_dir: Path, isp: Isp, **popen) -> subprocess.Popen:
    """A child process running one Multi-drop session for the box at
    DATA_DIR, trusting the ISP's CA; it prints each result's summary."""
    return subprocess.Popen([sys.executable, "-m", "tests.support.isp", str(data_dir)],
                            env={**os.environ, **isp.environment()}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **popen)


if __name__ == "__main__":
    for result in multidrop.run(retrieval_context(Path(sys.argv[1]))):
        print(result.summary, flush=True)
