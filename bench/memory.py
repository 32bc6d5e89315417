#!/usr/bin/env python3
"""Memory under large concurrent messages: gatebox vs. a private Postfix instance.

    .venv/bin/python bench/memory.py [--clients 20] [--size-mib 8]

Issue 18's goal: "Twenty clients each sending an 8 MB message at once grow
the box's resident memory (summed over its processes) by less than 64 MB."

For each system (gatebox in relay mode, then Postfix; each delivering to
Postfix's smtp-sink, as bench/relay_throughput.py runs them): start it, send
one small message so lazy imports and first-use allocations are done, take
the idle baseline, then let 20 smtplib clients (threads) connect, wait for
each other, and each send one 8 MiB message at once. A sampler thread sums
VmRSS over the system's process tree (the main pid and every descendant,
found through /proc/PID/task/*/children, so Postfix's on-demand smtpd,
cleanup and smtp processes are counted) every ~20 ms. Reported: peak minus
baseline (MB = 2**20 bytes), what is still resident a few seconds after the
last delivery, and the seconds from the clients' start until the sink has
counted all messages. Ratio: gatebox/postfix of the growth.

Both size limits are raised above the message size (gatebox's
email.max_message_size_mb, Postfix's message_size_limit) so neither refuses.

Needs root (smtp-sink drops to the postfix user; Postfix needs root to start).
A benchmark, not a test: the goal is reported, not asserted. Exits non-zero
only when the run is invalid: a message refused or not delivered, a process
failed to start or died. Result: bench/results/memory.json.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import random
import smtplib
import statistics
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

from address_verification import descendants, stop_everything  # noqa: E402
from postfix_instance import PostfixError  # noqa: E402
from relay_throughput import (  # noqa: E402
    RECIPIENT, SENDER, BenchError, Gatebox, Postfix, Sink, filesystem_of, free_port,
    gatebox_command, postfix_version,
)

MIB = 1024 * 1024
GOAL_MB = 64
# Both limits well above the message, so the figure is about carrying the
# message, not about refusing it.
GATEBOX_SIZE_LIMIT_MB = 32
POSTFIX_SIZE_LIMIT = 32 * MIB


# ---- resident memory of a process tree ---------------------------------------------------
def rss_kib(pid: int) -> tuple[int, int] | None:
    """(VmRSS, RssAnon) in KiB, or None once the process is gone (or a zombie)."""
    rss = anon = None
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("RssAnon:"):
                    anon = int(line.split()[1])
                    break  # RssAnon comes after VmRSS
    except (OSError, ValueError):
        return None
    return None if rss is None else (rss, anon or 0)


class RssSampler:
    """Sums VmRSS (and RssAnon) over a process tree every `interval` seconds in a
    thread. VmRSS summed over processes is the goal's measure; it counts pages
    shared between processes (libraries, Postfix's many daemons) once per
    process. RssAnon leaves out file-backed pages, so it shows what the
    message load itself allocated."""

    def __init__(self, root_pid: int, interval: float = 0.02):
        self.root_pid, self.interval = root_pid, interval
        # (t, rss, anon, processes, {pid: rss})
        self.samples: list[tuple[float, int, int, int, dict]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def sample(self) -> tuple[float, int, int, int, dict]:
        rss = anon = count = 0
        each = {}
        # Walked afresh on every sample: Postfix starts and ends smtpd and cleanup
        # processes per connection, and a cached tree would miss the new ones.
        for pid in descendants(self.root_pid):
            got = rss_kib(pid)
            if got is not None:
                rss, anon, count = rss + got[0], anon + got[1], count + 1
                each[pid] = got[0]
        row = (time.monotonic(), rss, anon, count, each)
        with self._lock:
            self.samples.append(row)
        return row

    def start(self):
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def window(self, since: float, until: float | None = None) -> list[tuple]:
        with self._lock:
            return [s for s in self.samples if s[0] >= since and (until is None or s[0] <= until)]


# ---- the load -----------------------------------------------------------------------------
def make_body(size: int, seed: int = 18) -> bytes:
    """`size` bytes of printable 76-character lines + CRLF, built once.

    Base64 of random bytes: incompressible-looking text, and no line starts
    with "." (not in the alphabet), so dot-stuffing does not change the size."""
    rng = random.Random(seed)
    full, rest = divmod(size, 78)
    text = base64.b64encode(rng.randbytes((full * 76 + 76) * 3 // 4 + 3))
    lines = [text[i * 76:(i + 1) * 76] for i in range(full)]
    if rest >= 3:  # a short last line brings the body to exactly `size`
        lines.append(text[full * 76:full * 76 + rest - 2])
    body = b"".join(line + b"\r\n" for line in lines)
    if body.startswith(b".") or b"\n." in body:
        raise BenchError("the body needs dot-stuffing; it is sent as it is")
    return body


def header(number: int) -> bytes:
    # A Message-ID per client, so no system can treat the messages as copies.
    return (f"From: <{SENDER}>\r\nTo: <{RECIPIENT}>\r\n"
            f"Subject: memory bench {number}\r\n"
            f"Date: {time.strftime('%a, %d %b %Y %H:%M:%S +0000', time.gmtime())}\r\n"
            f"Message-ID: <memory-{os.getpid()}-{number}-{time.time_ns()}@bench.example.org>\r\n"
            f"\r\n").encode("ascii")


def send_one(port: int, message: bytes, timeout: float):
    with smtplib.SMTP("127.0.0.1", port, timeout=timeout) as client:
        refused = client.sendmail(SENDER, [RECIPIENT], message)
    if refused:
        raise BenchError(f"recipient refused: {refused}")


def send_concurrently(port: int, body: bytes, clients: int, timeout: float) -> dict:
    """`clients` threads connect and greet, wait for each other, then all send
    at once; every failure is collected (the run is invalid if any)."""
    start_line = threading.Barrier(clients + 1)
    errors: list[str] = []
    accepted_at: list[float] = []
    lock = threading.Lock()

    def client(number: int):
        # Ready to send before the start line: smtplib's sendmail would scan
        # and copy each 8 MiB message with regexes while holding the GIL, which
        # stalls the sampler thread by a second or more and can hide the peak.
        # The body is CRLF text with no line starting with ".", so it goes out
        # as it is, with sendall (which releases the GIL).
        message = header(number) + body + b".\r\n"
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=timeout) as smtp:
                smtp.ehlo("client.bench.example.org")
                start_line.wait(timeout=timeout)
                code, reply = smtp.mail(SENDER)
                if code != 250:
                    raise BenchError(f"MAIL FROM: {code} {reply!r}")
                code, reply = smtp.rcpt(RECIPIENT)
                if code not in (250, 251):
                    raise BenchError(f"RCPT TO: {code} {reply!r}")
                smtp.putcmd("data")
                code, reply = smtp.getreply()
                if code != 354:
                    raise BenchError(f"DATA: {code} {reply!r}")
                smtp.sock.sendall(message)
                code, reply = smtp.getreply()
                if code != 250:
                    raise BenchError(f"end of data: {code} {reply!r}")
            with lock:
                accepted_at.append(time.monotonic())
        except (OSError, smtplib.SMTPException, threading.BrokenBarrierError, BenchError) as error:
            with lock:
                errors.append(f"client {number}: {type(error).__name__}: {error}")
            start_line.abort()  # do not keep the others waiting for a client that failed

    threads = [threading.Thread(target=client, args=(n,), name=f"client-{n}", daemon=True)
               for n in range(clients)]
    for thread in threads:
        thread.start()
    try:
        start_line.wait(timeout=timeout)
    except threading.BrokenBarrierError:
        pass
    started = time.monotonic()
    deadline = started + timeout
    for thread in threads:
        thread.join(timeout=max(deadline - time.monotonic(), 0.1))
    hung = sum(thread.is_alive() for thread in threads)
    if hung:
        errors.append(f"{hung} clients still sending after {timeout}s")
    return {"started": started, "errors": errors,
            "last_accepted": max(accepted_at) if accepted_at else None}


# ---- one measurement ----------------------------------------------------------------------
def measure(system, sink: Sink, body: bytes, args) -> dict:
    root = system.pid()
    if root is None:
        raise BenchError(f"{system.name}: no main process")
    # Warm-up: one small message through the whole path (imports, first
    # connection to the sink, queue files), then let it settle.
    base_count = sink.wait_quiet(quiet=0.5, timeout=30)
    send_one(system.port, header(-1) + b"warm-up\r\n", args.timeout)
    reached, _ = sink.wait_for(base_count + 1, args.timeout)
    if not reached:
        raise BenchError(f"{system.name}: the warm-up message did not reach the sink")
    time.sleep(args.idle)

    sampler = RssSampler(root, args.interval)
    sampler.start()
    try:
        # Baseline: the median over a second of idle samples (one sample
        # would catch whatever a timer happened to allocate just then).
        idle_from = time.monotonic()
        time.sleep(1.0)
        idle = sampler.window(idle_from)
        load_from = time.monotonic()
        base_count = sink.count
        sent = send_concurrently(system.port, body, args.clients, args.timeout)
        left = max(args.timeout - (time.monotonic() - sent["started"]), 1.0)
        if sent["errors"]:
            left = min(left, 5.0)  # the run is invalid already; no use waiting out the timeout
        delivered, count = sink.wait_for(base_count + args.clients, left)
        done_at = time.monotonic()
        # Keep sampling: the relay may still be freeing or finishing queue work.
        time.sleep(args.settle)
        settled = sampler.window(time.monotonic() - 0.5)
    finally:
        sampler.stop()
    load = sampler.window(load_from, done_at + args.settle)
    if not idle or not load or not settled:
        raise BenchError(f"{system.name}: the sampler took no samples")

    base_rss = statistics.median(s[1] for s in idle)
    base_anon = statistics.median(s[2] for s in idle)
    peak = max(load, key=lambda s: s[1])
    after = statistics.median(s[1] for s in settled)
    errors = list(sent["errors"])
    if not delivered:
        errors.append(f"only {count - base_count} of {args.clients} messages reached the sink")
    # Gatebox.pid() answers even for a dead child; a zombie has no VmRSS.
    if system.pid() != root or rss_kib(root) is None:
        errors.append(f"{system.name}'s main process {root} is gone")
    intervals = [b[0] - a[0] for a, b in zip(load, load[1:])]
    return {
        "valid": not errors,
        "errors": errors,
        "received_by_sink": count - base_count,
        "seconds": round(done_at - sent["started"], 3),
        "accept_seconds": (round(sent["last_accepted"] - sent["started"], 3)
                           if sent["last_accepted"] else None),
        "baseline_rss_mb": round(base_rss / 1024, 1),
        "peak_rss_mb": round(peak[1] / 1024, 1),
        "growth_mb": round((peak[1] - base_rss) / 1024, 1),
        "baseline_anon_mb": round(base_anon / 1024, 1),
        "anon_growth_at_peak_mb": round((peak[2] - base_anon) / 1024, 1),
        "peak_at_seconds": round(peak[0] - sent["started"], 3),  # from the start line
        "processes_idle": max(s[3] for s in idle),
        "processes_at_peak": peak[3],
        "processes_max": max(s[3] for s in load),
        "retained_mb": round((after - base_rss) / 1024, 1),
        "samples": len(load),
        "sample_interval_ms_median": round(statistics.median(intervals) * 1000, 1) if intervals else None,
        "sample_interval_ms_max": round(max(intervals) * 1000, 1) if intervals else None,
        "queue_after": system.queued(),
        # Which processes hold it: growth over each one's idle size, largest first.
        "by_process_at_peak": by_process(peak[4], idle[-1][4]),
        "by_process_retained": by_process(settled[-1][4], idle[-1][4]),
    }


def process_name(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            words = handle.read().split(b"\0")
    except OSError:
        return "?"
    # "python -m firmware ... qmgr" says less than its last words.
    return " ".join(w.decode(errors="replace").rsplit("/", 1)[-1] for w in words[:6] if w)[:80]


def by_process(rss: dict, idle: dict, top: int = 4) -> list[dict]:
    grown = sorted(((kib - idle.get(pid, 0), pid) for pid, kib in rss.items()), reverse=True)
    return [{"pid": pid, "name": process_name(pid), "growth_mb": round(kib / 1024, 1)}
            for kib, pid in grown[:top]]


# ---- main ---------------------------------------------------------------------------------
def each_system(label: str, args, workdir: Path, sink: Sink, result: dict, make_system,
                measure_one, report=None):
    """Each of args.systems in turn, so neither's memory or CPU use shows in
    the other's run: made, started, measured (its result, or why it is
    invalid, into result["systems"]) and always stopped."""
    for name in args.systems:
        system = make_system(name, workdir, sink.port, args)
        print(f"starting {name} on 127.0.0.1:{system.port} ...", flush=True)
        try:
            system.start()
            measured = measure_one(system)
        except (BenchError, PostfixError, OSError, smtplib.SMTPException) as error:
            measured = {"valid": False, "errors": [str(error)]}
        finally:
            log = system.log_tail(15)
            try:
                system.stop()
            except Exception as error:  # keep going: the sink and temp dir still need cleaning
                print(f"{label}: stopping {name}: {error}", file=sys.stderr)
        result["systems"][name] = measured
        if not measured["valid"]:
            print(f"{name}: INVALID: {'; '.join(measured['errors'][:5])}", flush=True)
            print(f"--- {name} log tail ---\n{log}", file=sys.stderr)
        elif report is not None:
            report(name, measured)


def judge(result: dict) -> int:
    """The run's status from its systems'; the exit code."""
    valid = all(r.get("valid") for r in result["systems"].values())
    result["status"] = "ok" if valid else "invalid"
    return 0 if valid else 1


def write_result(result: dict, output: Path):
    result["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    result["host"]["loadavg_end"] = os.getloadavg()
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n")


def add_system_args(parser: argparse.ArgumentParser, output: str):
    """The options every gatebox-vs-Postfix benchmark here takes."""
    parser.add_argument("--systems", default="gatebox,postfix",
                        help="comma-separated subset of gatebox,postfix")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="parent for the temp data dirs (default: the system temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, queues)")
    parser.add_argument("--gatebox", default=None,
                        help="gatebox command (default: the gatebox next to this python)")
    parser.add_argument("--output", type=Path, default=REPO / "bench" / "results" / output)


def check_systems(parser: argparse.ArgumentParser, args):
    args.systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = set(args.systems) - {"gatebox", "postfix"}
    if unknown or not args.systems:
        parser.error(f"--systems: unknown {sorted(unknown)}")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=20, help="concurrent clients (default 20)")
    parser.add_argument("--smtpd-processes", type=int, default=0,
                        help="gatebox's smtpd processes (0: as the box sizes it, one per core)")
    parser.add_argument("--size-mib", type=float, default=8.0,
                        help="body size of each message in MiB (default 8)")
    parser.add_argument("--interval", type=float, default=0.02,
                        help="seconds between RSS samples (default 0.02)")
    parser.add_argument("--idle", type=float, default=2.0,
                        help="seconds to idle after the warm-up before the baseline (default 2)")
    parser.add_argument("--settle", type=float, default=3.0,
                        help="seconds to keep sampling after the last delivery (default 3)")
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="seconds the load may take before the run is invalid (default 300)")
    add_system_args(parser, "memory.json")
    args = parser.parse_args(argv)
    check_systems(parser, args)
    if args.clients < 1 or args.size_mib <= 0:
        parser.error("--clients and --size-mib must be positive")
    if args.size_mib * MIB + 4096 > min(GATEBOX_SIZE_LIMIT_MB * MIB, POSTFIX_SIZE_LIMIT):
        parser.error(f"--size-mib: the size limits are set to {GATEBOX_SIZE_LIMIT_MB} MiB")
    return args


def make_system(name: str, workdir: Path, sink_port: int, args):
    if name == "gatebox":
        return Gatebox(workdir, sink_port, gatebox_command(args.gatebox),
                       settings={"email.max_message_size_mb": GATEBOX_SIZE_LIMIT_MB},
                       smtpd_processes=args.smtpd_processes)
    system = Postfix(workdir, sink_port)
    system.instance.extra["message_size_limit"] = str(POSTFIX_SIZE_LIMIT)
    return system


def print_table(result: dict, systems: list[str]):
    rows = [(name, result["systems"][name]) for name in systems if name in result["systems"]]
    if not rows:
        return
    print()
    print(f"{'system':8s} {'baseline':>9s} {'peak':>8s} {'growth':>8s} {'anon+':>7s} "
          f"{'retained':>9s} {'procs':>6s} {'seconds':>8s} {'gap ms':>7s}  (MB = MiB; VmRSS summed)")
    for name, r in rows:
        if "growth_mb" not in r:
            print(f"{name:8s} failed: {'; '.join(r.get('errors', []))}")
            continue
        mark = "" if r["valid"] else "  INVALID"
        print(f"{name:8s} {r['baseline_rss_mb']:9.1f} {r['peak_rss_mb']:8.1f} "
              f"{r['growth_mb']:8.1f} {r['anon_growth_at_peak_mb']:7.1f} {r['retained_mb']:9.1f} "
              f"{r['processes_max']:6d} {r['seconds']:8.2f} {r['sample_interval_ms_max'] or 0:7.0f}{mark}")
    summary = result.get("summary", {})
    if "ratio_growth_gatebox_postfix" in summary:
        print(f"ratio gatebox/postfix of RSS growth: {summary['ratio_growth_gatebox_postfix']:.2f}")
    if "ratio_anon_growth_gatebox_postfix" in summary:
        print(f"ratio gatebox/postfix of anonymous RSS growth (shared pages left out): "
              f"{summary['ratio_anon_growth_gatebox_postfix']:.2f}")
    if "goal_met" in summary:
        print(f"goal (gatebox growth < {GOAL_MB} MB): "
              f"{'met' if summary['goal_met'] else 'NOT met'} ({summary['gatebox_growth_mb']} MB)")


def main(argv=None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("memory: needs root (smtp-sink, the Postfix instance)", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="gatebox-bench-memory-", dir=args.workdir))
    os.chmod(workdir, 0o755)  # the postfix user needs to reach its queue
    body = make_body(int(args.size_mib * MIB))
    result = {
        "benchmark": "memory",
        "goal": f"{args.clients} clients x {args.size_mib:g} MiB at once: gatebox RSS growth "
                f"< {GOAL_MB} MB",
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "params": {"clients": args.clients, "body_bytes": len(body),
                   "interval": args.interval, "idle": args.idle, "settle": args.settle,
                   "timeout": args.timeout, "systems": args.systems,
                   "gatebox_max_message_size_mb": GATEBOX_SIZE_LIMIT_MB,
                   "postfix_message_size_limit": POSTFIX_SIZE_LIMIT},
        "host": {"cpus": os.cpu_count(), "kernel": platform.release(),
                 "python": platform.python_version(), "postfix": postfix_version(),
                 "workdir_fs": filesystem_of(workdir), "loadavg_start": os.getloadavg()},
        "systems": {},
        "status": "failed",
    }
    try:
        from firmware import __version__ as gatebox_version  # noqa: PLC0415
        result["host"]["gatebox"] = gatebox_version
    except ImportError:
        pass

    sink = None
    exit_code = 1
    try:
        sink = Sink("127.0.0.1", free_port())
        sink.start()
        def report(name, measured):
            print(f"{name}: +{measured['growth_mb']:.1f} MB at peak "
                  f"({measured['baseline_rss_mb']:.1f} -> {measured['peak_rss_mb']:.1f} MB), "
                  f"{measured['seconds']:.2f}s", flush=True)
        each_system("memory", args, workdir, sink, result, make_system,
                    lambda system: measure(system, sink, body, args), report)

        summary = {}
        gb, pf = result["systems"].get("gatebox", {}), result["systems"].get("postfix", {})
        if gb.get("valid"):
            summary["gatebox_growth_mb"] = gb["growth_mb"]
            summary["goal_met"] = gb["growth_mb"] < GOAL_MB
        if gb.get("valid") and pf.get("valid") and pf["growth_mb"] > 0:
            summary["ratio_growth_gatebox_postfix"] = round(gb["growth_mb"] / pf["growth_mb"], 2)
        if gb.get("valid") and pf.get("valid") and pf["anon_growth_at_peak_mb"] > 0:
            summary["ratio_anon_growth_gatebox_postfix"] = round(
                gb["anon_growth_at_peak_mb"] / pf["anon_growth_at_peak_mb"], 2)
        result["summary"] = summary
        exit_code = judge(result)
    except (BenchError, OSError) as error:
        result["error"] = str(error)
        print(f"memory: {error}", file=sys.stderr)
    finally:
        stop_everything("memory", None, [sink] if sink is not None else [], workdir, args.keep,
                        result)

    write_result(result, args.output)
    print_table(result, args.systems)
    print(f"result: {args.output}")
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
