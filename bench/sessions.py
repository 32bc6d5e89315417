#!/usr/bin/env python3
"""500 concurrent sessions, half of them idle: gatebox vs. a private Postfix instance.

    .venv/bin/python bench/sessions.py [--idle 250] [--active 250] [--per-session 4]

Issue 18's goal: "500 concurrent sessions (half of them idle, slowloris-style)
do not stop the other half from relaying. Per-host and global caps hold, and
memory stays bounded."

For each system in turn (gatebox in relay mode, then Postfix; each delivering
to smtp-sink, as bench/relay_throughput.py runs them), with a cap of
--per-host connections per client address and a global cap of
idle + active connections:

1. **Alone:** the active sessions (from their own loopback addresses,
   127.0.2.x, --per-host each) connect, greet, wait for each other, then each
   sends --per-session messages of --size octets and quits. Measured: the
   rate at which the sink receives them, and each transaction's time from
   MAIL FROM to the 250 after the final dot.
2. **With the idle half:** the idle sessions (127.0.1.x) connect, greet with
   EHLO, then trickle one octet of a command that never ends every
   --trickle seconds, which keeps an inactivity timer from closing them
   (slowloris). Then the active half runs as in 1, and while all of them
   are connected, one more session from a new address is opened: the global
   cap should refuse it. Afterwards one more session from an idle session's
   address: the per-host cap should refuse it. Last, the idle sessions still
   open are counted.

A sampler thread sums VmRSS over the system's process tree through both
phases (bench/memory.py's sampler). Reported against the idle baseline taken
before phase 1: the growth once the idle half is connected (per idle
session), and the peak with all 500 connected.

Ratios: the rate with the idle half over the rate alone, per system (the
goal: the idle half does not stop the other, so near 1), and gatebox over
Postfix for each phase.

Postfix's global cap is its smtpd process limit: `default_process_limit` is
set to idle + active (its default of 100 would leave most of the 500 waiting
in the listen backlog), `smtpd_client_connection_count_limit` to --per-host
and `smtpd_client_event_limit_exceptions` to none, so loopback is capped too.
Postfix does not refuse a session over its process limit; it leaves it in the
backlog without a banner, and the probe records that.

Needs root (smtp-sink drops to the postfix user; Postfix needs root). A
benchmark, not a test: nothing is asserted. Exits non-zero only when the run
is invalid: a message refused or not delivered, a process failed to start or
died. Result: bench/results/sessions.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import resource
import smtplib
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO))

from address_verification import stop_everything  # noqa: E402
from memory import (  # noqa: E402
    RssSampler, add_system_args, by_process, check_systems, each_system, judge, rss_kib,
    write_result,
)
from relay_throughput import (  # noqa: E402
    RECIPIENT, SENDER, BenchError, Gatebox, Postfix, Sink, filesystem_of, free_port,
    gatebox_command, postfix_version,
)

SERVER = "127.0.0.1"
IDLE_NET, ACTIVE_NET, PROBE_NET = "127.0.1", "127.0.2", "127.0.3"
PROBE_WAIT = 5.0   # seconds a probe waits for a banner
REFUSED, ACCEPTED, NO_BANNER, CLOSED = "refused (421)", "accepted (220)", "no banner", "closed"


def source_address(net: str, index: int, per_host: int) -> str:
    """per_host sessions share each address: 127.0.N.1, 127.0.N.1, ..., 127.0.N.2, ..."""
    host = index // per_host + 1
    if host > 254:
        raise BenchError(f"more than 254 x {per_host} sessions in {net}.0/24")
    return f"{net}.{host}"


# ---- one SMTP session ---------------------------------------------------------------------
class Session:
    """A raw SMTP client on asyncio streams, bound to a source address."""

    def __init__(self, source: str, port: int, timeout: float):
        self.source, self.port, self.timeout = source, port, timeout
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> tuple[int, str]:
        self.reader, self.writer = await asyncio.wait_for(
            asyncio.open_connection(SERVER, self.port, local_addr=(self.source, 0)), self.timeout)
        return await self.reply()

    async def reply(self) -> tuple[int, str]:
        lines = []
        while True:
            line = await asyncio.wait_for(self.reader.readline(), self.timeout)
            if not line:
                return 0, "connection closed"
            lines.append(line.decode("ascii", "replace").rstrip())
            if len(line) < 4 or line[3:4] != b"-":
                break
        try:
            return int(lines[-1][:3]), " ".join(lines)
        except ValueError:
            return 0, " ".join(lines)

    async def command(self, line: str, expect: tuple[int, ...]) -> None:
        self.writer.write(line.encode("ascii") + b"\r\n")
        code, text = await self.reply()
        if code not in expect:
            raise BenchError(f"{self.source}: {line.split()[0]}: {text}")

    async def send(self, message: bytes) -> float:
        """One transaction; seconds from MAIL FROM to the 250 after the dot."""
        started = time.monotonic()
        await self.command(f"MAIL FROM:<{SENDER}>", (250,))
        await self.command(f"RCPT TO:<{RECIPIENT}>", (250, 251))
        await self.command("DATA", (354,))
        self.writer.write(message)
        code, text = await self.reply()
        if code != 250:
            raise BenchError(f"{self.source}: end of data: {text}")
        return time.monotonic() - started

    def alive(self) -> bool:
        """Still open: nothing unread says the server hung up."""
        return not (self.reader.at_eof() or self.writer.is_closing())

    def close(self):
        if self.writer is not None:
            self.writer.close()


def message(number: int, size: int) -> bytes:
    head = (f"From: <{SENDER}>\r\nTo: <{RECIPIENT}>\r\nSubject: sessions bench {number}\r\n"
            f"Date: {time.strftime('%a, %d %b %Y %H:%M:%S +0000', time.gmtime())}\r\n"
            f"Message-ID: <sessions-{os.getpid()}-{number}-{time.time_ns()}@bench.example.org>\r\n"
            f"\r\n").encode("ascii")
    line = b"x" * 76 + b"\r\n"
    body = line * max((size - len(head)) // len(line), 1)
    return head + body + b".\r\n"


async def probe(source: str, port: int) -> str:
    """What a new session from `source` is told."""
    session = Session(source, port, PROBE_WAIT)
    try:
        code, _ = await session.open()
    except (asyncio.TimeoutError, TimeoutError):
        return NO_BANNER
    except OSError:
        return CLOSED
    finally:
        session.close()
    return {220: ACCEPTED, 421: REFUSED, 0: CLOSED}.get(code, f"answered {code}")


# ---- the two halves -----------------------------------------------------------------------
class IdleHalf:
    """Sessions that greet and then trickle a command that never ends."""

    def __init__(self, count: int, per_host: int, port: int, trickle: float, timeout: float):
        self.sessions = [Session(source_address(IDLE_NET, n, per_host), port, timeout)
                         for n in range(count)]
        self.trickle = trickle
        self.errors: list[str] = []
        self._task: asyncio.Task | None = None

    async def open(self):
        async def one(session: Session):
            code, text = await session.open()
            if code != 220:
                raise BenchError(f"idle {session.source}: banner {text}")
            await session.command("EHLO idle.bench.example.org", (250,))
            session.writer.write(b"NOOP ")
        results = await asyncio.gather(*(one(s) for s in self.sessions), return_exceptions=True)
        self.errors += [f"{type(r).__name__}: {r}" for r in results if isinstance(r, BaseException)]
        self._task = asyncio.get_running_loop().create_task(self._trickle())

    async def _trickle(self):
        while True:
            await asyncio.sleep(self.trickle)
            for session in self.sessions:
                if session.writer is not None and not session.writer.is_closing():
                    session.writer.write(b"z")

    def still_open(self) -> int:
        return sum(1 for s in self.sessions if s.writer is not None and s.alive())

    def close(self):
        if self._task is not None:
            self._task.cancel()
        for session in self.sessions:
            session.close()


async def active_half(count: int, per_host: int, per_session: int, size: int, port: int,
                      timeout: float, while_all_connected=None) -> dict:
    """`count` sessions connect and greet, wait for each other (and for
    `while_all_connected`, a coroutine run at that moment), then each sends
    `per_session` messages and quits."""
    ready = asyncio.Event()
    connected = 0
    all_connected = asyncio.Event()
    latencies: list[float] = []
    errors: list[str] = []

    async def one(number: int):
        nonlocal connected
        session = Session(source_address(ACTIVE_NET, number, per_host), port, timeout)
        try:
            code, text = await session.open()
            if code != 220:
                raise BenchError(f"active {session.source}: banner {text}")
            await session.command("EHLO active.bench.example.org", (250,))
            connected += 1
            if connected == count:
                all_connected.set()
            await ready.wait()
            for k in range(per_session):
                latencies.append(await session.send(message(number * per_session + k, size)))
            await session.command("QUIT", (221,))
        except (OSError, asyncio.TimeoutError, TimeoutError, BenchError) as error:
            errors.append(f"active {number}: {type(error).__name__}: {error}")
            all_connected.set()  # do not keep the start waiting for a session that failed
        finally:
            session.close()

    tasks = [asyncio.get_running_loop().create_task(one(n)) for n in range(count)]
    probe_result = None
    try:
        await asyncio.wait_for(all_connected.wait(), timeout)
    except asyncio.TimeoutError:
        errors.append(f"only {connected} of {count} active sessions connected within {timeout}s")
    if while_all_connected is not None and not errors:
        probe_result = await while_all_connected()
    started = time.monotonic()
    ready.set()
    await asyncio.gather(*tasks)
    return {"started": started, "accepted_at": time.monotonic(), "latencies": latencies,
            "errors": errors, "probe": probe_result}


def percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(int(fraction * len(ordered)), len(ordered) - 1)]


# ---- one system ---------------------------------------------------------------------------
async def relay_phase(system, sink: Sink, args, *, while_all_connected=None) -> dict:
    expected = args.active * args.per_session
    base = await asyncio.to_thread(sink.wait_quiet, 0.5, 60)
    sent = await active_half(args.active, args.per_host, args.per_session, args.size,
                             system.port, args.timeout, while_all_connected)
    left = max(args.timeout - (time.monotonic() - sent["started"]), 1.0)
    if sent["errors"]:
        left = min(left, 5.0)  # invalid already
    reached, count = await asyncio.to_thread(sink.wait_for, base + expected, left)
    finished = time.monotonic()
    latencies = sent["latencies"]
    errors = list(sent["errors"])
    if not reached:
        errors.append(f"only {count - base} of {expected} messages reached the sink")
    return {
        "messages": expected,
        "received_by_sink": count - base,
        "seconds": round(finished - sent["started"], 3),
        "rate": round(expected / (finished - sent["started"]), 1) if reached else None,
        "accept_rate": round(len(latencies) / (sent["accepted_at"] - sent["started"]), 1),
        "transaction_ms_p50": round(percentile(latencies, 0.5) * 1000, 1) if latencies else None,
        "transaction_ms_p99": round(percentile(latencies, 0.99) * 1000, 1) if latencies else None,
        "global_cap_probe": sent["probe"],
        "errors": errors,
    }


def mb(kib: float) -> float:
    return round(kib / 1024, 1)


async def measure(system, sink: Sink, args) -> dict:
    root = system.pid()
    if root is None:
        raise BenchError(f"{system.name}: no main process")
    # Warm-up through the whole path, then the active half alone.
    base = sink.wait_quiet(quiet=0.5, timeout=30)
    with smtplib.SMTP(SERVER, system.port, timeout=args.timeout) as client:
        client.sendmail(SENDER, [RECIPIENT], message(-1, 512)[:-3])
    if not sink.wait_for(base + 1, args.timeout)[0]:
        raise BenchError(f"{system.name}: the warm-up message did not reach the sink")
    sampler = RssSampler(root, args.interval)
    sampler.start()
    idle = IdleHalf(args.idle, args.per_host, system.port, args.trickle, args.timeout)
    try:
        # The baseline comes before the active half runs alone: Postfix keeps
        # the smtpd processes that phase started (up to max_idle) and gives
        # them to the idle sessions next, so they count for the idle half.
        await asyncio.sleep(1.0)
        baseline = sampler.window(time.monotonic() - 1.0)
        alone = await relay_phase(system, sink, args)
        await idle.open()
        await asyncio.sleep(1.0)
        with_idle_samples = sampler.window(time.monotonic() - 1.0)
        loaded_from = time.monotonic()

        async def global_probe():
            return await probe(f"{PROBE_NET}.1", system.port)
        together = await relay_phase(system, sink, args, while_all_connected=global_probe)
        loaded = sampler.window(loaded_from)
        per_host = await probe(source_address(IDLE_NET, 0, args.per_host), system.port)
        still_open = idle.still_open()
    finally:
        idle.close()
        sampler.stop()
    if not baseline or not with_idle_samples or not loaded:
        raise BenchError(f"{system.name}: the sampler took no samples")

    base_rss = statistics.median(s[1] for s in baseline)
    base_anon = statistics.median(s[2] for s in baseline)
    idle_rss = statistics.median(s[1] for s in with_idle_samples)
    idle_anon = statistics.median(s[2] for s in with_idle_samples)
    peak = max(loaded, key=lambda s: s[1])
    errors = alone["errors"] + together["errors"] + idle.errors
    if system.pid() != root or rss_kib(root) is None:
        errors.append(f"{system.name}'s main process {root} is gone")
    return {
        "valid": not errors,
        "errors": errors,
        "alone": alone,
        "with_idle": together,
        "rate_ratio_with_idle_to_alone": (round(together["rate"] / alone["rate"], 3)
                                          if together["rate"] and alone["rate"] else None),
        "global_cap_probe": together["global_cap_probe"],
        "per_host_cap_probe": per_host,
        "idle_sessions": args.idle,
        "idle_still_open": still_open,
        "baseline_rss_mb": mb(base_rss),
        "idle_growth_mb": mb(idle_rss - base_rss),
        "kib_per_idle_session": round((idle_rss - base_rss) / args.idle, 1),
        "anon_kib_per_idle_session": round((idle_anon - base_anon) / args.idle, 1),
        "peak_growth_mb": mb(peak[1] - base_rss),
        "peak_anon_growth_mb": mb(peak[2] - base_anon),
        "processes_at_peak": peak[3],
        "by_process_at_peak": by_process(peak[4], baseline[-1][4]),
        "queue_after": system.queued(),
    }


def make_system(name: str, workdir: Path, sink_port: int, args):
    cap = args.idle + args.active
    if name == "gatebox":
        return Gatebox(workdir, sink_port, gatebox_command(args.gatebox),
                       settings={"email.max_connections_per_host": args.per_host,
                                 "email.max_connections": cap})
    system = Postfix(workdir, sink_port)
    system.instance.extra.update({
        "default_process_limit": str(cap),
        "smtpd_client_connection_count_limit": str(args.per_host),
        "smtpd_client_event_limit_exceptions": "",
    })
    return system


# ---- main ---------------------------------------------------------------------------------
def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--idle", type=int, default=250, help="idle sessions (default 250)")
    parser.add_argument("--active", type=int, default=250, help="relaying sessions (default 250)")
    parser.add_argument("--per-session", type=int, default=4,
                        help="messages each active session sends (default 4)")
    parser.add_argument("--size", type=int, default=5120, help="message size in octets (default 5120)")
    parser.add_argument("--per-host", type=int, default=5,
                        help="per-host connection cap of both systems (default 5)")
    parser.add_argument("--trickle", type=float, default=1.0,
                        help="seconds between the octets an idle session sends (default 1)")
    parser.add_argument("--interval", type=float, default=0.05,
                        help="seconds between RSS samples (default 0.05)")
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="seconds a phase may take before the run is invalid (default 300)")
    add_system_args(parser, "sessions.json")
    args = parser.parse_args(argv)
    check_systems(parser, args)
    if min(args.idle, args.active, args.per_session, args.per_host) < 1 or args.size < 512:
        parser.error("counts must be positive and --size at least 512")
    if max(args.idle, args.active) > 254 * args.per_host:
        parser.error("at most 254 addresses per half: raise --per-host or lower the counts")
    return args


def raise_file_limit(needed: int):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(needed, hard), hard))


def print_table(result: dict):
    print()
    print(f"{'system':8s} {'alone/s':>8s} {'w/idle/s':>9s} {'ratio':>6s} {'p99 ms':>7s} "
          f"{'KiB/idle':>9s} {'anon':>6s} {'peak MB':>8s} {'anon':>6s} {'open':>5s}  "
          f"global cap / per-host cap")
    for name, r in result["systems"].items():
        if "alone" not in r:
            print(f"{name:8s} failed: {'; '.join(r.get('errors', []))}")
            continue
        mark = "" if r["valid"] else "  INVALID"
        print(f"{name:8s} {r['alone']['rate'] or 0:8.1f} {r['with_idle']['rate'] or 0:9.1f} "
              f"{r['rate_ratio_with_idle_to_alone'] or 0:6.2f} "
              f"{r['with_idle']['transaction_ms_p99'] or 0:7.1f} {r['kib_per_idle_session']:9.1f} "
              f"{r['anon_kib_per_idle_session']:6.1f} {r['peak_growth_mb']:8.1f} "
              f"{r['peak_anon_growth_mb']:6.1f} {r['idle_still_open']:5d}  "
              f"{r['global_cap_probe']} / {r['per_host_cap_probe']}{mark}")
    for key, value in result.get("summary", {}).items():
        print(f"{key}: {value}")


def main(argv=None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("sessions: needs root (smtp-sink, the Postfix instance)", file=sys.stderr)
        return 2
    raise_file_limit(4 * (args.idle + args.active) + 256)
    workdir = Path(tempfile.mkdtemp(prefix="gatebox-bench-sessions-", dir=args.workdir))
    os.chmod(workdir, 0o755)  # the postfix user needs to reach its queue
    result = {
        "benchmark": "sessions",
        "goal": f"{args.idle + args.active} sessions, {args.idle} idle: the idle ones do not stop "
                f"the others relaying; the caps hold; memory stays bounded",
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "params": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "host": {"cpus": os.cpu_count(), "kernel": platform.release(),
                 "python": platform.python_version(), "postfix": postfix_version(),
                 "workdir_fs": filesystem_of(workdir), "loadavg_start": os.getloadavg()},
        "systems": {},
        "status": "failed",
    }
    sink = None
    exit_code = 1
    try:
        sink = Sink("127.0.0.1", free_port(), max_connections=1024)
        sink.start()
        each_system("sessions", args, workdir, sink, result, make_system,
                    lambda system: asyncio.run(measure(system, sink, args)))
        gb, pf = result["systems"].get("gatebox", {}), result["systems"].get("postfix", {})
        summary = {}
        if gb.get("valid") and pf.get("valid"):
            for phase in ("alone", "with_idle"):
                if gb[phase]["rate"] and pf[phase]["rate"]:
                    summary[f"ratio_gatebox_postfix_{phase}"] = round(
                        gb[phase]["rate"] / pf[phase]["rate"], 3)
        result["summary"] = summary
        exit_code = judge(result)
    except (BenchError, OSError) as error:
        result["error"] = str(error)
        print(f"sessions: {error}", file=sys.stderr)
    finally:
        stop_everything("sessions", None, [sink] if sink is not None else [], workdir, args.keep,
                        result)
    write_result(result, args.output)
    print_table(result)
    print(f"result: {args.output}")
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
