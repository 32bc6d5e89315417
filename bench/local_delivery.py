#!/usr/bin/env python3
"""Local delivery: gatebox (Mail Server SoftPak, stand-alone) vs. a private
Postfix handing mail to a private Dovecot over LMTP, same load, same run.

    .venv/bin/python bench/local_delivery.py [--messages 2000]

Postfix's smtp-source pushes N messages (20 sessions, 5 KiB each) to one
local user; the clock runs until N messages are in that user's Maildir new/
(end to end: accepted, queued durably, delivered). Both mailbox writers fsync
(gatebox always; Dovecot with mail_fsync = always). Rates are messages/s;
the ratio is gatebox/postfix. A JSON result goes to
bench/results/local_delivery.json. Needs root (Postfix, the mail user).
A benchmark, not a test: it fails only when a run could not complete.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO))

from postfix_instance import PostfixInstance  # noqa: E402
from relay_throughput import (SMTP_SOURCE, BenchError, free_port, gatebox_command,  # noqa: E402
                              stop_process, wait_for_banner)

DOMAIN = "example.com"
USER = "user"
SENDER = "sender@example.org"


def count_new(maildir: Path) -> int:
    try:
        return len(os.listdir(maildir / "new"))
    except FileNotFoundError:
        return 0


def drive(port: int, maildir: Path, messages: int, sessions: int, size: int, timeout: float) -> dict:
    base = count_new(maildir)
    argv = [SMTP_SOURCE, "-s", str(sessions), "-l", str(size), "-m", str(messages),
            "-f", SENDER, "-t", f"{USER}@{DOMAIN}", f"127.0.0.1:{port}"]
    started = time.monotonic()
    source = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    accepted = time.monotonic()
    if source.returncode != 0:
        raise BenchError(f"smtp-source failed: {(source.stdout + source.stderr).decode(errors='replace')}")
    while count_new(maildir) < base + messages and time.monotonic() - started < timeout:
        time.sleep(0.02)
    finished = time.monotonic()
    delivered = count_new(maildir) - base
    return {"messages": messages, "delivered": delivered, "complete": delivered >= messages,
            "accept_seconds": round(accepted - started, 3), "seconds": round(finished - started, 3),
            "rate": round(messages / (finished - started), 2) if delivered >= messages else None}


# ---- gatebox -----------------------------------------------------------------------------
class Gatebox:
    name = "gatebox"

    def __init__(self, workdir: Path):
        self.data = workdir / "gatebox-data"
        self.cmd = gatebox_command(None)
        self.port = free_port()
        self.proc = None
        self.env = dict(os.environ)

    def _gatebox(self, *args):
        done = subprocess.run([*self.cmd, "--data", str(self.data), *args], cwd=REPO, env=self.env,
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise BenchError(f"gatebox {' '.join(args)} failed:\n{done.stdout}{done.stderr}")

    def start(self, workdir: Path):
        # A vendor key made here, trusted only by this run's gatebox.
        from gatebox_vendor.signing import issue, keygen, load_private_key
        private, public = keygen(workdir / "vendor", "bench-vendor")
        self.env.update(GATEBOX_VENDOR_PUBKEYS=str(public), GATEBOX_SERIAL="GBX-BENCH-0001")
        self._gatebox("init", "--domain", DOMAIN)
        self._gatebox("license", "activate", issue(load_private_key(private), "GBX-BENCH-0001",
                                                   {"mailserver": None}, None))
        self._gatebox("config", "set", "email.server_type=standalone",
                      "email.trusted_networks=127.0.0.0/8",
                      "email.max_connections_per_host=unlimited", "email.max_connections=unlimited")
        self._gatebox("user", "add", USER, "--password", "bench-password-1")
        self.log = open(workdir / "gatebox.log", "ab")
        self.proc = subprocess.Popen(
            [*self.cmd, "--data", str(self.data), "run", "--bind", "127.0.0.1", "--smtp-port",
             str(self.port), "--submission-port", "0", "--pop3-port", "0", "--imap-port", "0"],
            cwd=REPO, env=self.env, stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        wait_for_banner("127.0.0.1", self.port, 60, self.proc, "gatebox run")

    @property
    def maildir(self) -> Path:
        return self.data / "mail" / DOMAIN / USER

    def stop(self):
        stop_process(self.proc, timeout=30)
        self.log.close()


# ---- Postfix + Dovecot LMTP ----------------------------------------------------------------
class PostfixWithLmtp(PostfixInstance):
    def write_config(self):
        super().write_config()
        with open(self.config_dir / "master.cf", "a") as master:
            master.write("lmtp      unix  -       -       n       -       -       lmtp\n")


DOVECOT_LMTP_CONF = """\
base_dir = {run}
state_dir = {root}/state
instance_name = bench-lmtp-{tag}
log_path = {root}/dovecot.log
protocols = lmtp
listen = 127.0.0.1
default_internal_user = dovecot
default_login_user = dovenull
first_valid_uid = {uid}
mail_fsync = always
passdb {{
  driver = static
  args = nopassword=y
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={mail}/%n mail=maildir:{mail}/%n
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {port}
  }}
}}
"""


class Postfix:
    name = "postfix"

    def __init__(self, workdir: Path):
        self.root = workdir / "dovecot"
        self.lmtp_port, self.port = free_port(), free_port()
        self.dovecot = None
        self.postfix = None

    def start(self, workdir: Path):
        import pwd
        mail = pwd.getpwnam("mail")
        (self.root / "state").mkdir(parents=True)
        (self.root / "mail").mkdir()
        os.chown(self.root / "mail", mail.pw_uid, mail.pw_gid)
        run = Path(tempfile.mkdtemp(prefix="bench-lmtp-"))
        self.run_dir = run
        conf = self.root / "dovecot.conf"
        conf.write_text(DOVECOT_LMTP_CONF.format(run=run, root=self.root, tag=os.getpid(),
                                                 uid=mail.pw_uid, gid=mail.pw_gid,
                                                 mail=self.root / "mail", port=self.lmtp_port))
        self.dovecot = subprocess.Popen(["/usr/sbin/dovecot", "-F", "-c", str(conf)],
                                        stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while not wait_port(self.lmtp_port):
            if time.monotonic() > deadline or self.dovecot.poll() is not None:
                raise BenchError("Dovecot LMTP did not start; see " + str(self.root / "dovecot.log"))
            time.sleep(0.05)
        self.postfix = PostfixWithLmtp(
            workdir / "postfix", smtp_port=self.port, relay_domain=DOMAIN,
            nexthop=("127.0.0.1", self.lmtp_port),
            extra={"transport_maps": f"inline:{{{DOMAIN}=lmtp:inet:127.0.0.1:{self.lmtp_port}}}",
                   "lmtp_destination_concurrency_limit": "20"})
        self.postfix.start()
        wait_for_banner("127.0.0.1", self.port, 60, None, "postfix")

    @property
    def maildir(self) -> Path:
        return self.root / "mail" / USER

    def stop(self):
        if self.postfix is not None:
            self.postfix.stop()
        stop_process(self.dovecot, timeout=20)
        shutil.rmtree(self.run_dir, ignore_errors=True)


def wait_port(port: int) -> bool:
    import socket
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", "-n", type=int, default=2000)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--size", type=int, default=5120)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--keep", action="store_true", help="keep the temp dir")
    parser.add_argument("--output", type=Path, default=REPO / "bench" / "results" / "local_delivery.json")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("local_delivery: needs root (Postfix instance, the mail user)", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="gatebox-local-bench-"))
    os.chmod(workdir, 0o755)  # Dovecot (mail user) and Postfix must pass through
    results = {}
    try:
        for system in (Gatebox(workdir), Postfix(workdir)):
            try:
                system.start(workdir)
                if args.warmup:
                    drive(system.port, system.maildir, args.warmup, min(args.sessions, args.warmup),
                          args.size, args.timeout)
                results[system.name] = drive(system.port, system.maildir, args.messages,
                                             args.sessions, args.size, args.timeout)
                print(f"{system.name}: {results[system.name]}", flush=True)
            finally:
                system.stop()
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    gb, pf = results["gatebox"].get("rate"), results["postfix"].get("rate")
    report = {"when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "machine": platform.platform(), "cpus": os.cpu_count(),
              "messages": args.messages, "sessions": args.sessions, "size": args.size,
              "results": results,
              "ratio_gatebox_postfix": round(gb / pf, 3) if gb and pf else None}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: report[k] for k in ("messages", "ratio_gatebox_postfix")}))
    return 0 if gb and pf else 1


if __name__ == "__main__":
    sys.exit(main())
