#!/usr/bin/env python3
"""Relay throughput with every Address Verification check on, as a ratio to
the same box with all of them off.

    .venv/bin/python bench/address_verification.py [--messages 500] [--rounds 2]

One gatebox in relay mode for example.com; the client (smtp-source from
127.0.0.1) is outside Trusted Networks, or no check would judge it. The
checks that are on in the ON rounds:

  spf (+ bypass)           the sender domain's TXT record passes 127.0.0.0/8
  verify_sender_callout    outside.test's MX, a user-list server on port 25
  verify_sender_local      half the load claims boss@example.com, a local sender
  verify_recipient         manual list, LDAP list (slapd) and SMTP callout, with
                           the recipient known only to the LAN server, so all
                           three sources are asked
  deny_invalid_headers     smtp-source's From:/To:/Date:/Message-Id:

DNS comes from dnsmasq (TTL 300) through the box's one resolver, so after
the warm-up it is answered from the cache; callout answers are in the box's
verify cache. The LAN server is an aiosmtpd server with a user list that
takes DATA and counts messages: it answers the recipient callouts (and
refuses the catch-all probe, so the SMTP source decides) and is also where
the relay delivers. The clock runs from starting the load until the LAN
server has all N messages.

ON and OFF are switched with `gatebox config set` on the running box (the
settings watcher rebuilds the policy; the DNS cache lives on), each switch
followed by an untimed warm-up. After the run, the box's check_stats must
show one result per check for every message sent while ON, and none while
OFF; otherwise the run is invalid and the script exits 1.

Result: bench/results/address_verification.json. Needs root (port 25 for the
sender MX, dnsmasq, slapd). A benchmark, not a test: the 0.8 goal is
reported, not asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO))

from relay_throughput import (  # noqa: E402
    DOMAIN, SMTP_SOURCE, BenchError, Gatebox, cpu_seconds, descendants, filesystem_of,
    gatebox_command, stop_process,
)
from tests.support.callout_servers import (  # noqa: E402
    UserListHandler, UserListServer, free_port_25_address,
)
from tests.support.dnsmasq import DnsServer  # noqa: E402
from tests.support.slapd import LdapServer  # noqa: E402

OUTSIDE_DOMAIN = "outside.test"
OUTSIDE_SENDER = f"sender@{OUTSIDE_DOMAIN}"
LOCAL_SENDER = f"boss@{DOMAIN}"          # in the manual list: a local sender that exists
RECIPIENT = f"user@{DOMAIN}"             # known only to the LAN server
INTERNAL_ADDRESSES = f"{LOCAL_SENDER}\nreception@{DOMAIN}\n*@branch.{DOMAIN}"
OWN_MX_ADDRESS = "127.0.0.53"            # example.com's MX: not the client, so no SPF bypass
UNTRUSTED_ONLY = "10.0.0.0/8"            # Trusted Networks without 127.0.0.1

# --checks picks groups, to see what each costs. Verify Sender Using Local
# Domain Exists asks the recipient sources in relay mode, so it goes with them.
CHECK_GROUPS = {
    "spf": {"email.spf": "on", "email.spf_bypass": "on"},
    "sender_callout": {"email.verify_sender_callout": "on"},
    "headers": {"email.deny_invalid_headers": "on"},
    "recipient": {"email.verify_sender_local": "on", "email.verify_recipient_smtp": "on",
                  "email.verify_recipient_ldap": "on",
                  "email.internal_addresses": INTERNAL_ADDRESSES},
}
CHECKS_OFF = {key: ("" if key == "email.internal_addresses" else "off")
              for group in CHECK_GROUPS.values() for key in group}


def checks_on(groups: list[str]) -> dict:
    return {key: value for name in groups for key, value in CHECK_GROUPS[name].items()}


# ---- the LAN server: answers callouts by its user list and takes the mail --------------------
class CountingUserListHandler(UserListHandler):
    def __init__(self, users):
        super().__init__(users)
        self.count = 0
        self.cond = threading.Condition()

    async def handle_DATA(self, server, session, envelope):
        with self.cond:
            self.count += 1
            self.cond.notify_all()
        return "250 2.0.0 Ok: queued"


class LanServer(UserListServer):
    """The box's Mail Server Address, counting what it was given."""

    def __init__(self, users):
        super().__init__(users)
        self.handler = CountingUserListHandler(users)
        self.controller.handler = self.handler

    @property
    def count(self) -> int:
        with self.handler.cond:
            return self.handler.count

    def wait_for(self, target: int, timeout: float) -> tuple[bool, int]:
        deadline = time.monotonic() + timeout
        with self.handler.cond:
            while self.handler.count < target:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.handler.cond.wait(min(left, 0.5))
            return self.handler.count >= target, self.handler.count

    def wait_quiet(self, quiet: float = 1.0, timeout: float = 60.0) -> int:
        deadline = time.monotonic() + timeout
        last, since = self.count, time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.1)
            now = self.count
            if now != last:
                last, since = now, time.monotonic()
            elif time.monotonic() - since >= quiet:
                break
        return last


# ---- the box's processes and their peak memory -----------------------------------------------
def process_name(pid: int) -> str:
    """smtpd (`gatebox run` itself), qmgr (its child), or the command line."""
    try:
        argv = [a.decode(errors="replace")
                for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if a]
    except OSError:
        return f"pid {pid}"
    for role, word in (("qmgr", "qmgr"), ("smtpd", "run")):
        if word in argv:
            return f"{role} {pid}"
    return f"{' '.join(argv)[:100]} {pid}"


def status_kib(pid: int, field: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def own_cpu_seconds() -> float:
    """This script's CPU: the LAN server (aiosmtpd) and sender MX threads, mostly."""
    times = os.times()
    return times.user + times.system


def reset_peak_rss(pids: list[int]):
    """Linux resets VmHWM to the current RSS on "5" (since 4.0), so each
    round's peak is its own."""
    for pid in pids:
        try:
            Path(f"/proc/{pid}/clear_refs").write_text("5")
        except OSError:
            pass


def peak_rss(pids: list[int]) -> dict:
    rows = {process_name(pid): {"vmhwm_kib": status_kib(pid, "VmHWM")} for pid in pids}
    total = sum(r["vmhwm_kib"] or 0 for r in rows.values())
    return {"processes": rows, "total_kib": total}


# ---- the load ---------------------------------------------------------------------------------
def drive(box: Gatebox, lan: LanServer, messages: int, *, sessions: int, size: int,
          timeout: float, local_share: float) -> dict:
    """Two smtp-source streams at once (an outside sender, and a local one
    claiming the Domain Name), their sessions and messages split by
    local_share; seconds until the LAN server has every message."""
    base = lan.wait_quiet(quiet=1.0, timeout=60)
    local_messages = round(messages * local_share)
    streams = [(OUTSIDE_SENDER, messages - local_messages), (LOCAL_SENDER, local_messages)]
    streams = [(sender, count) for sender, count in streams if count]
    started = time.monotonic()
    sources = []
    for sender, count in streams:
        share = max(1, round(sessions * count / messages))
        argv = [SMTP_SOURCE, "-s", str(min(share, count)), "-l", str(size), "-m", str(count),
                "-f", sender, "-t", RECIPIENT, f"127.0.0.1:{box.port}"]
        sources.append(subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE))
    failures = []
    try:
        for source in sources:
            left = max(timeout - (time.monotonic() - started), 1.0)
            try:
                out, err = source.communicate(timeout=left)
            except subprocess.TimeoutExpired:
                raise BenchError(f"smtp-source did not finish within {timeout}s") from None
            if source.returncode != 0:
                failures.append(f"smtp-source failed ({source.returncode}): "
                                f"{(out + err).decode(errors='replace').strip()[:500]}")
    finally:
        for source in sources:
            stop_process(source, timeout=5)
    accepted_at = time.monotonic()
    if failures:
        raise BenchError("; ".join(failures))
    left = max(timeout - (accepted_at - started), 1.0)
    reached, count = lan.wait_for(base + messages, left)
    elapsed = time.monotonic() - started
    result = {
        "messages": messages, "streams": {s: c for s, c in streams},
        "received_by_lan_server": count - base, "complete": reached,
        "accept_seconds": round(accepted_at - started, 4), "seconds": round(elapsed, 4),
        "accept_rate": round(messages / (accepted_at - started), 2),
        "rate": round(messages / elapsed, 2) if reached else None,
    }
    if not reached:
        result["queue"] = box.queued()
    return result


# ---- switching the checks on the running box --------------------------------------------------
_RELOADED = re.compile(r"settings reloaded \(generation (\d+)\)")


def reloads_logged(box: Gatebox) -> int:
    try:
        return len(_RELOADED.findall(box.log.read_text(errors="replace")))
    except FileNotFoundError:
        return 0


def switch(box: Gatebox, settings: dict, timeout: float = 30.0):
    """Set, then wait until the running box says it reloaded its settings."""
    before = reloads_logged(box)
    box.configure(settings)
    deadline = time.monotonic() + timeout
    while reloads_logged(box) <= before:
        if time.monotonic() > deadline:
            raise BenchError(f"gatebox did not reload its settings within {timeout}s")
        if box.proc.poll() is not None:
            raise BenchError(f"gatebox exited ({box.proc.returncode})")
        time.sleep(0.1)


def wait_for_ldap_list(box: Gatebox, timeout: float = 30.0) -> int:
    """Until the box has read the LDAP address list once (else the LDAP
    source cannot tell, and recipient verification would lean on SMTP alone)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with sqlite3.connect(box.data / "gatebox.db", timeout=10) as db:
            synced = db.execute("SELECT COUNT(*) FROM ldap_sync WHERE succeeded IS NOT NULL").fetchone()[0]
            count = db.execute("SELECT COUNT(*) FROM ldap_addresses").fetchone()[0]
        if synced and count:
            return count
        time.sleep(0.2)
    raise BenchError(f"the LDAP address list was not read within {timeout}s")


# ---- proof that the checks ran -------------------------------------------------------------
def check_counts(box: Gatebox) -> dict:
    with sqlite3.connect(box.data / "gatebox.db", timeout=10) as db:
        return dict(db.execute("SELECT name, SUM(count) FROM check_stats GROUP BY name "
                               "ORDER BY name").fetchall())


def verify_cache_rows(box: Gatebox) -> list:
    with sqlite3.connect(box.data / "gatebox.db", timeout=10) as db:
        return [{"kind": k, "address": a, "status": s}
                for k, a, s in db.execute("SELECT kind, address, status FROM verify_cache "
                                          "ORDER BY kind, address")]


def expected_counts(on_streams: dict, groups: list[str]) -> dict:
    outside = on_streams.get(OUTSIDE_SENDER, 0)
    local = on_streams.get(LOCAL_SENDER, 0)
    total = outside + local
    by_group = {"spf": {"spf=pass": total},
                "sender_callout": {"verify_sender_callout=accepted": outside},
                "headers": {"deny_invalid_headers=valid": total},
                "recipient": {"verify_recipient=accept": total,
                              "verify_sender_local=exists": local}}
    return {name: want for group in groups for name, want in by_group[group].items()}


def validate(counts: dict, expected: dict) -> list[str]:
    problems = [f"{name}: {counts.get(name, 0)} counted, {want} expected"
                for name, want in expected.items() if want and counts.get(name, 0) != want]
    problems += [f"{name}: {value} (no message should get this result)"
                 for name, value in counts.items() if name not in expected and value]
    if not any(counts.get(name) for name in expected):
        problems.append("no check counted anything: the checks did not run")
    return problems


# ---- main -------------------------------------------------------------------------------------
def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", "-n", type=int, default=500,
                        help="messages per measurement (default 500)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="measurements per mode, ON and OFF alternately (default 3)")
    parser.add_argument("--sessions", type=int, default=20, help="parallel sessions (default 20)")
    parser.add_argument("--size", type=int, default=5120, help="message size (default 5120)")
    parser.add_argument("--warmup", type=int, default=40,
                        help="untimed messages first and after each switch (default 40)")
    parser.add_argument("--local-share", type=float, default=0.5,
                        help="share of the load from the local sender boss@example.com "
                             "(default 0.5; 0: all from sender@outside.test)")
    parser.add_argument("--checks", default=",".join(CHECK_GROUPS),
                        help="comma-separated groups on in the ON rounds (default all: "
                             f"{','.join(CHECK_GROUPS)})")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--workdir", type=Path, default=None,
                        help="parent of the temp dir (keep it on a real disk)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir")
    parser.add_argument("--gatebox", default=None, help="gatebox command")
    parser.add_argument("--output", type=Path,
                        default=REPO / "bench" / "results" / "address_verification.json")
    args = parser.parse_args(argv)
    if args.messages < 1 or args.rounds < 1 or args.warmup < 1:
        parser.error("--messages, --rounds and --warmup must be positive")
    if not 0 <= args.local_share <= 1:
        parser.error("--local-share must be between 0 and 1")
    args.checks = [c.strip() for c in args.checks.split(",") if c.strip()]
    unknown = set(args.checks) - set(CHECK_GROUPS)
    if unknown or not args.checks:
        parser.error(f"--checks: unknown {sorted(unknown)}; choose from {', '.join(CHECK_GROUPS)}")
    return args


def summarize(rounds: list[dict]) -> dict:
    summary = {}
    for mode in ("on", "off"):
        rows = [r for r in rounds if r["mode"] == mode]
        rates = [r["rate"] for r in rows if r.get("rate")]
        peaks = [r["peak_rss"]["total_kib"] for r in rows if r.get("peak_rss")]
        cpu = [r["gatebox_cpu_ms_per_message"] for r in rows if r.get("rate")]
        summary[mode] = {"rounds_complete": len(rates),
                         "rate_median": round(statistics.median(rates), 2) if rates else None,
                         "rate_min": min(rates) if rates else None,
                         "rate_max": max(rates) if rates else None,
                         "peak_rss_total_kib_max": max(peaks) if peaks else None,
                         "cpu_ms_per_message_median":
                             round(statistics.median(cpu), 3) if cpu else None}
    if summary["on"]["rate_median"] and summary["off"]["rate_median"]:
        summary["ratio_on_off"] = round(summary["on"]["rate_median"] /
                                        summary["off"]["rate_median"], 3)
        summary["goal"] = 0.8
        summary["goal_met"] = summary["ratio_on_off"] >= 0.8
    if summary["on"]["cpu_ms_per_message_median"] and summary["off"]["cpu_ms_per_message_median"]:
        # The rate ratio a CPU-bound box would show, less moved by the
        # machine's other load than the rates themselves.
        summary["cpu_ratio_off_on"] = round(summary["off"]["cpu_ms_per_message_median"] /
                                            summary["on"]["cpu_ms_per_message_median"], 3)
    return summary



def stop_everything(name: str, box, started: list, workdir: Path, keep: bool, result: dict):
    """Stop the box and every server started, in reverse, whatever fails;
    remove the work directory unless asked to keep it."""
    if box is not None:
        try:
            box.stop()
        except Exception as error:  # keep stopping the rest
            print(f"{name}: stopping gatebox: {error}", file=sys.stderr)
    for server in reversed(started):
        try:
            server.stop()
        except Exception as error:  # keep stopping the rest
            print(f"{name}: stopping {server.__class__.__name__}: {error}", file=sys.stderr)
    if keep:
        result["workdir"] = str(workdir)
        print(f"kept {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)


def write_and_report(result: dict, args, mode_word: str, invalid_why: str):
    """Write the JSON result and print the medians, the on/off ratio and its verdict."""
    result["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    result["host"]["loadavg_end"] = os.getloadavg()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    summary = result.get("summary", {})
    if summary:
        print()
        for mode in ("on", "off"):
            s = summary[mode]
            rate = f"{s['rate_median']:.1f} msg/s" if s["rate_median"] else "n/a"
            rss = (f"{s['peak_rss_total_kib_max'] / 1024:.1f} MiB"
                   if s["peak_rss_total_kib_max"] else "n/a")
            cpu = s["cpu_ms_per_message_median"]
            print(f"{mode_word} {mode:3s}: median {rate}, peak RSS {rss}, gatebox CPU "
                  f"{cpu if cpu is not None else 'n/a'} ms/msg "
                  f"({s['rounds_complete']}/{args.rounds} rounds complete)")
        if "ratio_on_off" in summary:
            verdict = (f"INVALID run, {invalid_why}" if result.get("invalid") else
                       "met" if summary["goal_met"] else "NOT met")
            print(f"ratio on/off: {summary['ratio_on_off']:.3f} (goal >= 0.8: {verdict})")
        if "cpu_ratio_off_on" in summary:
            print(f"CPU per message, off/on: {summary['cpu_ratio_off_on']:.3f}")
    print(f"result: {args.output}")


def main(argv=None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("address_verification: needs root (port 25, dnsmasq, slapd)", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="gatebox-bench-av-", dir=args.workdir))
    result = {
        "benchmark": "address_verification",
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "params": {"messages": args.messages, "rounds": args.rounds, "sessions": args.sessions,
                   "size": args.size, "warmup": args.warmup, "local_share": args.local_share,
                   "timeout": args.timeout, "check_groups": args.checks,
                   "checks_on": checks_on(args.checks), "recipient": RECIPIENT,
                   "senders": [OUTSIDE_SENDER, LOCAL_SENDER],
                   "trusted_networks": UNTRUSTED_ONLY},
        "host": {"cpus": os.cpu_count(), "kernel": platform.release(),
                 "python": platform.python_version(), "workdir_fs": filesystem_of(workdir),
                 "loadavg_start": os.getloadavg()},
        "rounds": [], "status": "failed",
    }
    started: list = []     # everything to stop, in start order
    box = None
    exit_code = 1
    on_streams = {OUTSIDE_SENDER: 0, LOCAL_SENDER: 0}

    def sent_while_on(measured: dict):
        for sender, count in measured["streams"].items():
            on_streams[sender] += count

    try:
        mx_address = free_port_25_address()
        sender_mx = UserListServer([OUTSIDE_SENDER], host=mx_address, port=25).start()
        started.append(sender_mx)
        lan = LanServer([RECIPIENT]).start()
        started.append(lan)
        dns = DnsServer(workdir / "dns", [
            f"--txt-record={OUTSIDE_DOMAIN},v=spf1 ip4:127.0.0.0/8 -all",
            f"--mx-host={OUTSIDE_DOMAIN},mx.{OUTSIDE_DOMAIN},10",
            f"--host-record=mx.{OUTSIDE_DOMAIN},{mx_address}",
            f"--txt-record={DOMAIN},v=spf1 ip4:127.0.0.0/8 -all",
            f"--mx-host={DOMAIN},mx.{DOMAIN},10",
            f"--host-record=mx.{DOMAIN},{OWN_MX_ADDRESS}",
        ], probe=f"mx.{OUTSIDE_DOMAIN}").start()
        started.append(dns)
        ldap = LdapServer(workdir / "ldap").start()
        started.append(ldap)

        base_settings = {"email.mail_server_address": lan.label,
                         "email.trusted_networks": UNTRUSTED_ONLY,
                         **{k: str(v) for k, v in dns.settings.items()},
                         **{k: ("on" if v is True else "off" if v is False else v)
                            for k, v in ldap.settings(security="none").items()}}
        box = Gatebox(workdir, lan.port, gatebox_command(args.gatebox),
                      settings={**base_settings, **CHECKS_OFF,
                                **checks_on(args.checks)})
        print(f"starting gatebox on 127.0.0.1:{box.port}; LAN server {lan.label}, "
              f"sender MX {mx_address}:25, DNS {dns.host}:{dns.port}, LDAP {ldap.address}",
              flush=True)
        box.start()
        if "recipient" in args.checks:
            result["ldap_addresses"] = wait_for_ldap_list(box)
        try:
            from firmware import __version__ as gatebox_version  # noqa: PLC0415
            result["host"]["gatebox"] = gatebox_version
        except ImportError:
            pass

        def warm(label: str, mode: str):
            measured = drive(box, lan, args.warmup, sessions=min(args.sessions, args.warmup),
                             size=args.size, timeout=args.timeout, local_share=args.local_share)
            if not measured["complete"]:
                raise BenchError(f"warm-up ({label}) incomplete: {measured}")
            if mode == "on":
                sent_while_on(measured)

        warm("first, checks on", "on")
        mode_now = "on"
        failed = False
        for number in range(1, args.rounds + 1):
            # on off, off on, on off...: the machine's load drifts, and a
            # fixed order would hand the drift to one side.
            for mode in (("on", "off") if number % 2 else ("off", "on")):
                if mode != mode_now:
                    switch(box, {**CHECKS_OFF, **checks_on(args.checks)} if mode == "on" else CHECKS_OFF)
                    mode_now = mode
                    warm(f"after switching {mode}", mode)
                pids = descendants(box.pid())
                reset_peak_rss(pids)
                cpu_before, own_before = cpu_seconds(pids), own_cpu_seconds()
                try:
                    measured = drive(box, lan, args.messages, sessions=args.sessions,
                                     size=args.size, timeout=args.timeout,
                                     local_share=args.local_share)
                except BenchError as error:
                    measured = {"messages": args.messages, "complete": False,
                                "error": str(error), "rate": None}
                cpu_after = cpu_seconds(pids)
                by_process = {process_name(pid): round(cpu_after[pid] - cpu_before.get(pid, 0), 3)
                              for pid in cpu_after}
                cpu = sum(by_process.values())
                measured.update(round=number, mode=mode, peak_rss=peak_rss(pids),
                                gatebox_cpu_seconds=round(cpu, 3),
                                gatebox_cpu_seconds_by_process=by_process,
                                bench_process_cpu_seconds=round(own_cpu_seconds() - own_before, 3),
                                gatebox_cpu_ms_per_message=round(1000 * cpu / args.messages, 3),
                                loadavg=os.getloadavg()[0])
                if mode == "on" and "streams" in measured:
                    sent_while_on(measured)
                result["rounds"].append(measured)
                if not measured["complete"]:
                    failed = True
                    print(f"round {number} {mode:3s}: FAILED: {measured.get('error') or measured}",
                          flush=True)
                    print(box.log_tail(15), file=sys.stderr)
                else:
                    print(f"round {number} checks {mode:3s}: {measured['rate']:8.1f} msg/s "
                          f"end-to-end ({measured['seconds']:.2f}s; accepted after "
                          f"{measured['accept_seconds']:.2f}s); peak RSS "
                          f"{measured['peak_rss']['total_kib'] / 1024:.1f} MiB "
                          f"({len(pids)} processes); gatebox CPU "
                          f"{measured['gatebox_cpu_ms_per_message']:.2f} ms/msg; "
                          f"load {measured['loadavg']:.1f}", flush=True)

        result["queue_after"] = box.queued()
        box.stop()      # its last statistics reach the database on the way down
        counts = check_counts(box)
        expected = expected_counts(on_streams, args.checks)
        problems = validate(counts, expected)
        result["check_stats"] = counts
        result["check_stats_expected"] = expected
        result["verify_cache"] = verify_cache_rows(box)
        print("\ncheck_stats after the run (messages sent with the checks on: "
              f"{sum(on_streams.values())}):")
        for name, value in counts.items():
            print(f"  {name:34s} {value}")
        print("verify_cache: " + ", ".join(f"{r['kind']} {r['address']} {r['status']}"
                                           for r in result["verify_cache"]))
        if problems:
            result["invalid"] = problems
            print("INVALID run: " + "; ".join(problems), file=sys.stderr)
        result["summary"] = summarize(result["rounds"])
        if problems:
            result["summary"]["goal_met"] = None
        result["status"] = "invalid" if problems else "incomplete" if failed else "ok"
        exit_code = 1 if problems or failed else 0
    except (BenchError, OSError, RuntimeError, TimeoutError, subprocess.SubprocessError) as error:
        result["error"] = f"{error.__class__.__name__}: {error}"
        print(f"address_verification: {error}", file=sys.stderr)
        if box is not None:
            print(f"--- gatebox log tail ---\n{box.log_tail(20)}", file=sys.stderr)
    finally:
        stop_everything("address_verification", box, started, workdir, args.keep, result)

    write_and_report(result, args, "checks", "the checks did not all run")
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
