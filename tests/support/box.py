"""A gatebox started with `gatebox run` on loopback ports, as the box runs it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from .net import free_port, wait_for_banner, wait_for_https

GATEBOX = [sys.executable, "-m", "firmware.cli"]


def gatebox(data: Path, *args, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run(GATEBOX + ["--data", str(data), *args], capture_output=True,
                            text=True, input=input, timeout=60)
    if check and result.returncode != 0:
        raise AssertionError(f"gatebox {' '.join(args)} failed ({result.returncode}):\n"
                             f"{result.stdout}\n{result.stderr}")
    return result


class Box:
    def __init__(self, data: Path, domain: str = "example.com", web: bool = False):
        self.data = Path(data)
        self.host = "127.0.0.1"
        self.smtp_port = free_port()
        self.submission_port = free_port()
        # The web admin (HTTPS with the box's certificate) when asked for.
        self.http_port = free_port() if web else 0
        self.process: subprocess.Popen | None = None
        self.log_path = self.data.parent / f"{self.data.name}-gatebox.log"
        gatebox(self.data, "init", "--domain", domain)
        # Fast retries so tests need not wait minutes.
        self.configure(**{"email.retry_minimum_seconds": "1", "email.retry_maximum_seconds": "2"})

    def cli(self, *args, check: bool = True, input: str | None = None):
        return gatebox(self.data, *args, check=check, input=input)

    def configure(self, **settings):
        for key, value in settings.items():
            self.cli("config", "set", key, str(value))

    def start(self):
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            GATEBOX + ["--data", str(self.data), "run", "--bind", self.host,
                       "--smtp-port", str(self.smtp_port),
                       "--submission-port", str(self.submission_port),
                       "--http-port", str(self.http_port)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        try:
            # A disabled server greets with 421, which still means it is up.
            wait_for_banner(self.host, self.smtp_port, accept=(b"220", b"421"))
        except TimeoutError:
            self.stop()
            raise AssertionError("gatebox did not start:\n" + self.log())
        if self.http_port:
            try:
                wait_for_https(self.host, self.http_port)
            except TimeoutError:
                self.stop()
                raise AssertionError("the web admin did not start:\n" + self.log())
        return self

    @property
    def web_url(self) -> str:
        return f"https://{self.host}:{self.http_port}"

    def stop(self, sig=signal.SIGTERM, timeout: float = 20.0) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        code = self.process.returncode
        self.process = None
        return code

    def kill9(self):
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)
        self.process = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def queue_ids(self, state: str) -> list[str]:
        directory = self.data / "queue" / state
        return sorted(os.listdir(directory)) if directory.exists() else []
