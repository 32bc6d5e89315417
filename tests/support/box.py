"""A gatebox started with `gatebox run` on loopback ports, as the box runs it."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from .net import free_port, wait_for_banner, wait_for_https, wait_until

GATEBOX = [sys.executable, "-m", "firmware.cli"]
# Where a message waits for the queue manager; hold and corrupt wait for the administrator.
PENDING_STATES = ("incoming", "active", "deferred")


def gatebox(data: Path, *args, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run(GATEBOX + ["--data", str(data), *args], capture_output=True,
                            text=True, input=input, timeout=60)
    if check and result.returncode != 0:
        raise AssertionError(f"gatebox {' '.join(args)} failed ({result.returncode}):\n"
                             f"{result.stdout}\n{result.stderr}")
    return result


class Box:
    def __init__(self, data: Path, domain: str = "example.com", web: bool = False,
                 settings: dict | None = None, smtpd_processes: int | None = 1):
        self.data = Path(data)
        # One unless a test asks for more (None: as the box sizes it, per core).
        # A test that polls until "the box" answers with a new setting gets
        # that answer from whichever process took its connection; with
        # several, the next connection may go to one that has not reloaded yet.
        self.smtpd_processes = smtpd_processes
        self.host = "127.0.0.1"
        self.smtp_port = free_port()
        self.submission_port = free_port()
        # The web admin (HTTPS with the box's certificate) when asked for.
        self.http_port = free_port() if web else 0
        self.process: subprocess.Popen | None = None
        self.log_path = self.data.parent / f"{self.data.name}-gatebox.log"
        gatebox(self.data, "init", "--domain", domain)
        # Fast retries so tests need not wait minutes.
        # Anti-Virus signature updates offline: a test box never reaches for the Internet.
        self.configure(**{"email.retry_minimum_seconds": "1", "email.retry_maximum_seconds": "2",
                          "antivirus.update_source": "offline", **(settings or {})})

    def cli(self, *args, check: bool = True, input: str | None = None):
        return gatebox(self.data, *args, check=check, input=input)

    def configure(self, **settings):
        """All of them in one `gatebox config set` (one transaction)."""
        if settings:
            self.cli("config", "set", *(f"{key}={value}" for key, value in settings.items()))

    def start(self):
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            GATEBOX + ["--data", str(self.data), "run", "--bind", self.host,
                       "--smtp-port", str(self.smtp_port),
                       "--submission-port", str(self.submission_port),
                       "--http-port", str(self.http_port),
                       *(["--smtpd-processes", str(self.smtpd_processes)]
                         if self.smtpd_processes else [])],
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
        """As a power cut: the stack is gone, the queue manager child included
        (it dies with its parent), before anything is started again."""
        children = child_pids(self.process.pid)
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)
        self.process = None
        wait_until(lambda: not any(is_running(pid) for pid in children), 10, 0.05,
                   "the queue manager to die with the stack")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def queue_ids(self, state: str) -> list[str]:
        directory = self.data / "queue" / state
        return sorted(os.listdir(directory)) if directory.exists() else []

    def pending(self) -> list[str]:
        return [qid for state in PENDING_STATES for qid in self.queue_ids(state)]


_RELOADED = re.compile(r"settings (?:re)?loaded \(generation (\d+), pid (\d+)\)")


_SMTPD_PROCESSES = re.compile(r"gatebox listening on .*\((\d+) smtpd process")


def settings_holders(log: str) -> int:
    """How many processes of the last start read the settings: every smtpd
    process, as its start line says, and the queue manager."""
    found = _SMTPD_PROCESSES.findall(log)
    return (int(found[-1]) if found else 1) + 1


def wait_reloaded(box: Box, processes: int | None = None, timeout: float = 30.0):
    """Until every smtpd process and the queue manager hold the database's generation
    as it is now. A process counts once, by its pid, whether it reloaded
    that generation or started with it: the queue manager starts after
    smtpd's banner is up, and under load a change made just after the
    banner is already there when it reads the settings. Any reload line
    would do for none of this: one of an earlier change may be written just
    after the new one was made."""
    with sqlite3.connect(box.data / "gatebox.db") as db:
        wanted = int(db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0])
    if processes is None:
        processes = settings_holders(box.log())
    try:
        wait_until(lambda: len({pid for generation, pid in _RELOADED.findall(box.log())
                                if int(generation) >= wanted}) >= processes,
                   timeout, 0.1, f"the box to reload generation {wanted}")
    except TimeoutError as error:
        raise TimeoutError(f"{error}; the box's log ends:\n{box.log()[-3000:]}") from None


def wait_until_idle(*boxes: Box, timeout: float = 30.0):
    """Until every accepted message has gone its way: nothing pending in any
    box's queue and no new log line across two looks in a row (a message
    moving between states, or between boxes, is seen by one look or the
    other). After that nothing more is delivered unless new mail comes."""
    def look():
        return [(bool(box.pending()), len(box.log())) for box in boxes]
    previous = [None]

    def settled():
        now = look()
        quiet = now == previous[0] and not any(pending for pending, _ in now)
        previous[0] = now
        return quiet
    wait_until(settled, timeout, interval=0.2, what="the queues to empty and stay empty")


def child_pids(pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # The command name in parentheses may hold spaces; the parent pid follows it.
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                children.append(int(entry.name))
    return children


def is_running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"
