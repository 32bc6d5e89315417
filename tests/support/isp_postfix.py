"""The ISP's SMTP server for ETRN and mail-bagging: a private Postfix
instance (its own config, queue and log directories) listening on another
loopback address. Mail for the office's domain is held (defer_transports)
in a fast-flush log until ETRN or `postqueue -s` releases it; then Postfix
delivers it, from that address, to the box's SMTP port. Beside it, a finger
server that runs `postqueue -s <domain>` for each request (mail-bagging)."""

from __future__ import annotations

import re
import shutil
import socketserver
import subprocess
import tempfile
import threading
from pathlib import Path

from .net import free_port, wait_for_banner, wait_until
from .tools import require

POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"
POSTCONF = shutil.which("postconf") or "/usr/sbin/postconf"
POSTQUEUE = shutil.which("postqueue") or "/usr/sbin/postqueue"
HELD_TRANSPORT = "office"


class IspPostfix:
    def __init__(self, domain: str, box_host: str, box_port: int, host: str = "127.0.0.2"):
        require("postfix")
        self.directory = Path(tempfile.mkdtemp(prefix="gatebox-isp-postfix-"))
        self.config = self.directory / "etc"
        self.queue = self.directory / "queue"
        self.maillog = self.directory / "maillog"
        self.domain, self.host = domain, host
        self.port = free_port(host)
        self.box = f"[{box_host}]:{box_port}"
        self.started = False

    def postconf(self, *args):
        subprocess.run([POSTCONF, "-c", str(self.config), *args], check=True, capture_output=True,
                       text=True)

    def start(self):
        self.config.mkdir()
        # Debian's stock master.cf, the services made unchrooted (the private
        # queue has no copy of /etc), and the SMTP server moved to our address.
        shutil.copy("/usr/share/postfix/master.cf.dist", self.config / "master.cf")
        (self.config / "main.cf").write_text("")
        self.postconf("-e", f"queue_directory={self.queue}", f"data_directory={self.directory / 'data'}",
                      "compatibility_level=3.6", "myhostname=isp.test", "mydestination=",
                      "inet_interfaces=all", "inet_protocols=ipv4",
                      f"maillog_file={self.maillog}", f"maillog_file_prefixes={self.directory}",
                      "mynetworks=127.0.0.0/8",
                      f"relay_domains={self.domain}", f"fast_flush_domains={self.domain}",
                      f"transport_maps=inline:{{{self.domain}={HELD_TRANSPORT}:{self.box}}}",
                      f"defer_transports={HELD_TRANSPORT}", "smtp_tls_security_level=none",
                      "smtpd_tls_security_level=none", "alias_maps=", "alias_database=",
                      "local_recipient_maps=", "smtputf8_enable=no",
                      # Once deferred, no retry of its own within the test: only
                      # a trigger (ETRN, postqueue -s) delivers it.
                      "queue_run_delay=3600s", "minimal_backoff_time=3600s",
                      "maximal_backoff_time=3600s",
                      "smtp_connect_timeout=5s", "disable_dns_lookups=yes", "smtp_host_lookup=native")
        self.postconf("-F", "*/*/chroot=n")
        self.postconf("-M#", "smtp/inet")
        self.postconf("-M", f"{self.host}:{self.port}/inet={self.host}:{self.port} inet n - n - - smtpd")
        self.postconf("-M", f"{HELD_TRANSPORT}/unix={HELD_TRANSPORT} unix - - n - - smtp "
                      f"-o smtp_bind_address={self.host}")
        self.postconf("-M", "postlog/unix-dgram=postlog unix-dgram n - n - 1 postlogd")
        self.queue.mkdir()
        data = self.directory / "data"
        data.mkdir()
        shutil.chown(data, "postfix", "postfix")
        # Postfix's daemons run as the postfix user and must reach the queue:
        # the directory is outside pytest's private tree (whose top any
        # pytest session starting meanwhile makes 0700 again) and open to
        # traverse.
        self.directory.chmod(0o711)
        subprocess.run([POSTFIX, "-c", str(self.config), "check"], capture_output=True)
        result = subprocess.run([POSTFIX, "-c", str(self.config), "start"], capture_output=True, text=True)
        if result.returncode != 0:
            # postfix(1) reports to a terminal or the log only.
            raise AssertionError(f"the ISP's Postfix did not start: {result.stdout}{result.stderr}"
                                 f"{self.log()}")
        self.started = True
        wait_for_banner(self.host, self.port)
        return self

    def stop(self):
        if self.started:
            subprocess.run([POSTFIX, "-c", str(self.config), "stop"], capture_output=True, timeout=60)
            self.started = False
        shutil.rmtree(self.directory, ignore_errors=True)

    def log(self) -> str:
        return self.maillog.read_text(errors="replace") if self.maillog.exists() else ""

    def queued_for(self, address: str) -> int:
        """Messages in the ISP's queue with that recipient (`postqueue -p`)."""
        listing = subprocess.run([POSTQUEUE, "-c", str(self.config), "-p"], capture_output=True,
                                 text=True, check=True).stdout
        return len(re.findall(rf"^\s+{re.escape(address)}$", listing, re.MULTILINE))

    def wait_held(self, address: str, count: int = 1, timeout: float = 60):
        """Until Postfix has deferred it (defer_transports) into the domain's
        fast-flush log. Then the transport is opened again: with the long
        backoff nothing retries it, only a flush of the domain does (ETRN
        only hurries deferred mail, it does not override defer_transports)."""
        def held():
            return self.log().count("status=deferred (deferred transport)") >= count \
                and self.queued_for(address) >= count
        wait_until(held, timeout, interval=0.3, what=f"{count} message(s) for {address} held at the ISP")
        self.postconf("-X", "defer_transports")
        subprocess.run([POSTFIX, "-c", str(self.config), "reload"], capture_output=True, check=True)

    def flush(self, domain: str) -> str:
        result = subprocess.run([POSTQUEUE, "-c", str(self.config), "-s", domain],
                                capture_output=True, text=True, timeout=30)
        return (result.stdout + result.stderr).strip() or f"queue for {domain} flushed"


class FingerTrigger:
    """A finger server (RFC 1288) on a loopback port: the query names the
    domain whose held mail the ISP's Postfix then releases."""

    def __init__(self, isp: IspPostfix, host: str = "127.0.0.2"):
        self.isp, self.host = isp, host
        self.port = free_port(host)
        self.queries: list[str] = []
        self.server = None

    def start(self):
        trigger = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                query = self.rfile.readline(512).decode("ascii", "replace").strip()
                trigger.queries.append(query)
                if re.fullmatch(r"[a-z0-9.-]+", query) and query == trigger.isp.domain:
                    reply = trigger.isp.flush(query)
                else:
                    reply = f"finger: {query}: no such domain"
                self.wfile.write(reply.encode() + b"\r\n")

        self.server = socketserver.ThreadingTCPServer((self.host, self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self):
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
