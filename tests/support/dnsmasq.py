"""A real DNS server (dnsmasq) on a loopback port, answering only from the
records a test gives it, as tests/integration/test_mx_delivery.py runs it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import dns.resolver

from .net import free_port, wait_until
from .tools import require

DNSMASQ = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"


class DnsServer:
    """records: dnsmasq options such as "--mx-host=far.test,mx1.far.test,10"
    and "--host-record=mx1.far.test,127.0.0.25"; probe: a name with an A
    record, asked until the server answers."""

    def __init__(self, directory: Path, records: list[str], probe: str,
                 host: str = "127.0.0.1", ttl: int = 300):
        self.directory = Path(directory)
        self.ttl = ttl
        self.records = list(records)
        self.probe = probe
        self.host = host
        self.port = free_port(host)
        self.process: subprocess.Popen | None = None

    def start(self) -> "DnsServer":
        require("dnsmasq")
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen([
            DNSMASQ, "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
            "--bind-interfaces", f"--listen-address={self.host}", f"--port={self.port}",
            f"--pid-file={self.directory / 'dnsmasq.pid'}", "--user=root",
            # dnsmasq gives its own records a TTL of 0 unless told: nothing would be cached.
            f"--local-ttl={self.ttl}", *self.records,
        ], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers, resolver.port = [self.host], self.port

        def answers():
            try:
                return resolver.resolve(self.probe, "A", lifetime=1)
            except Exception:
                return None
        try:
            wait_until(answers, timeout=10, what="dnsmasq to answer")
        except TimeoutError:
            self.stop()
            raise
        return self

    @property
    def settings(self) -> dict:
        return {"dns.nameservers": self.host, "dns.port": self.port}

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None
