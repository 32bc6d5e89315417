#!/usr/bin/env python3
"""Relay throughput: gatebox vs. a private Postfix instance, same load, same sink.

    .venv/bin/python bench/relay_throughput.py [--messages 2000] [--rounds 1]

For each system: Postfix's smtp-source pushes N messages (20 parallel
sessions, 5 KiB each) into the relay's SMTP port; the relay queues them
durably and forwards them to Postfix's smtp-sink on loopback. The clock runs
from the start of smtp-source until the sink has counted all N messages
(end-to-end relay throughput, not just acceptance). Rates are messages/s;
the ratio is gatebox/postfix. A JSON result goes to
bench/results/relay_throughput.json.

Needs root (smtp-sink drops to the postfix user; the Postfix instance needs
root to start). This is a benchmark, not a test: it asserts nothing about
speed and exits non-zero only when a run could not complete (messages
missing at the sink, a process failed to start, ...).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
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

from postfix_instance import PostfixError, PostfixInstance  # noqa: E402

SMTP_SINK = shutil.which("smtp-sink", path="/usr/sbin:/usr/bin") or "/usr/sbin/smtp-sink"
SMTP_SOURCE = shutil.which("smtp-source", path="/usr/sbin:/usr/bin") or "/usr/sbin/smtp-source"
DOMAIN = "example.com"
SENDER = "sender@example.org"
RECIPIENT = f"user@{DOMAIN}"


class BenchError(RuntimeError):
    pass


# ---- helpers -------------------------------------------------------------------------
def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def wait_for_banner(host: str, port: int, timeout: float, proc: subprocess.Popen | None = None,
                    what: str = "server") -> str:
    """Until something on host:port answers with a 220 greeting."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise BenchError(f"{what} exited with status {proc.returncode} before answering")
        try:
            with socket.create_connection((host, port), timeout=2) as sock:
                sock.settimeout(5)
                banner = sock.recv(512).decode("ascii", "replace")
                if banner.startswith("220"):
                    try:
                        sock.sendall(b"QUIT\r\n")
                        sock.recv(512)
                    except OSError:
                        pass
                    return banner.strip()
                last_error = f"unexpected greeting {banner!r}"
        except OSError as error:
            last_error = error
        time.sleep(0.05)
    raise BenchError(f"{what} on {host}:{port} did not answer within {timeout}s ({last_error})")


def stop_process(proc: subprocess.Popen | None, timeout: float = 15.0, sig=signal.SIGTERM):
    """Stops one process we started, by its PID only."""
    if proc is None or proc.poll() is not None:
        return
    try:
        proc.send_signal(sig)
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)
    except ProcessLookupError:
        pass


# ---- the sink --------------------------------------------------------------------------
class Sink:
    """smtp-sink with its running counter (-c) read from a pipe.

    -c prints "sess=N quit=N mesg=N" records separated by CR, updated when a
    message's final "." arrives and when a session ends; a reader thread keeps
    the latest mesg count. Cheaper than a dump directory (no file per message)
    and exact."""

    _COUNTER = re.compile(rb"mesg=(\d+)")

    def __init__(self, host: str, port: int, backlog: int = 1024, max_connections: int = 256):
        self.host, self.port = host, port
        self.backlog, self.max_connections = backlog, max_connections
        self.proc: subprocess.Popen | None = None
        self.count = 0
        self._cond = threading.Condition()
        self._reader: threading.Thread | None = None
        self._stderr = b""

    def start(self):
        argv = [SMTP_SINK, "-c", "-m", str(self.max_connections)]
        if os.geteuid() == 0:
            argv += ["-u", "postfix"]
        # The last argument is the listen backlog; the default (on some
        # builds as low as 5-ish) would make connection bursts stall.
        argv += [f"{self.host}:{self.port}", str(self.backlog)]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL)
        self._reader = threading.Thread(target=self._read, name="sink-counter", daemon=True)
        self._reader.start()
        threading.Thread(target=self._drain_stderr, daemon=True).start()
        wait_for_banner(self.host, self.port, 10, self.proc, "smtp-sink")

    def _read(self):
        tail = b""
        fd = self.proc.stdout.fileno()
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            data = tail + chunk
            # Keep an incomplete last record for the next read.
            cut = data.rfind(b"\r")
            complete, tail = (data[:cut], data[cut + 1:]) if cut >= 0 else (b"", data)
            found = self._COUNTER.findall(complete)
            if found:
                with self._cond:
                    self.count = int(found[-1])
                    self._cond.notify_all()
        found = self._COUNTER.findall(tail)
        with self._cond:
            if found:
                self.count = int(found[-1])
            self._cond.notify_all()

    def _drain_stderr(self):
        self._stderr = self.proc.stderr.read()

    def wait_for(self, target: int, timeout: float) -> tuple[bool, int]:
        """Until the sink has counted target messages; (reached, count)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self.count < target:
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    break
                self._cond.wait(min(left, 0.5))
            return self.count >= target, self.count

    def wait_quiet(self, quiet: float = 1.0, timeout: float = 60.0) -> int:
        """Until the count has not moved for `quiet` seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            last, since = self.count, time.monotonic()
            while time.monotonic() < deadline:
                self._cond.wait(0.1)
                if self.count != last:
                    last, since = self.count, time.monotonic()
                elif time.monotonic() - since >= quiet:
                    break
            return self.count

    def stop(self):
        stop_process(self.proc, timeout=5)
        if self._reader is not None:
            self._reader.join(timeout=5)


# ---- the systems under test ----------------------------------------------------------------
class Gatebox:
    name = "gatebox"

    def __init__(self, workdir: Path, sink_port: int, gatebox_cmd: list[str],
                 settings: dict | None = None, smtpd_processes: int = 0):
        self.data = workdir / "gatebox-data"
        self.smtpd_processes = smtpd_processes  # 0: as the box sizes it
        self.log = workdir / "gatebox.log"
        self.sink_port = sink_port
        self.cmd = gatebox_cmd
        # `settings` adds to or replaces these (bench/address_verification.py).
        self.settings = {"email.server_type": "relay", "email.domain": DOMAIN,
                         "email.mail_server_address": f"127.0.0.1:{sink_port}",
                         "email.trusted_networks": "127.0.0.0/8",
                         "email.max_connections_per_host": "unlimited",
                         "email.max_connections": "unlimited", **(settings or {})}
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self._log_handle = None
        self.banner = ""

    def _gatebox(self, *args):
        done = subprocess.run([*self.cmd, "--data", str(self.data), *args], cwd=REPO,
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise BenchError(f"gatebox {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
        return done.stdout

    def start(self):
        self._gatebox("init", "--domain", DOMAIN)
        self.configure(self.settings)
        self._log_handle = open(self.log, "ab")
        self.proc = subprocess.Popen(
            [*self.cmd, "--data", str(self.data), "run", "--bind", "127.0.0.1",
             "--smtp-port", str(self.port), "--submission-port", "0",
             "--smtpd-processes", str(self.smtpd_processes)],
            cwd=REPO, stdin=subprocess.DEVNULL, stdout=self._log_handle, stderr=subprocess.STDOUT)
        self.banner = wait_for_banner("127.0.0.1", self.port, 60, self.proc, "gatebox run")

    def configure(self, settings: dict):
        self._gatebox("config", "set", *(f"{key}={value}" for key, value in settings.items()))

    def queued(self) -> dict:
        counts = {}
        for state in ("incoming", "active", "deferred", "hold", "corrupt"):
            try:
                counts[state] = len(os.listdir(self.data / "queue" / state))
            except FileNotFoundError:
                counts[state] = 0
        return counts

    def pid(self):
        return self.proc.pid if self.proc else None

    def log_tail(self, lines=20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def stop(self):
        stop_process(self.proc, timeout=20)
        if self._log_handle:
            self._log_handle.close()
            self._log_handle = None


class Postfix:
    name = "postfix"

    def __init__(self, workdir: Path, sink_port: int):
        self.port = free_port()
        self.instance = PostfixInstance(workdir / "postfix", smtp_port=self.port,
                                        relay_domain=DOMAIN, nexthop=("127.0.0.1", sink_port))
        self.banner = ""

    def start(self):
        self.instance.start()
        self.banner = wait_for_banner("127.0.0.1", self.port, 60, None, "postfix smtpd")

    def queued(self) -> dict:
        return self.instance.queue_counts()

    def pid(self):
        return self.instance.master_pid()

    def log_tail(self, lines=20) -> str:
        return self.instance.log_tail(lines)

    def stop(self):
        self.instance.stop()


# ---- one measurement ---------------------------------------------------------------------
def descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        found.append(parent)
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                todo += [int(c) for c in (task / "children").read_text().split()]
            except (OSError, ValueError):
                pass
    return found


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """User + system CPU time of each process (and of its children that
    have exited), from /proc/PID/stat."""
    ticks = os.sysconf("SC_CLK_TCK")
    seconds = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        # After the command: state is field 3, utime/stime 14/15, cutime/cstime 16/17.
        seconds[pid] = sum(int(fields[i - 3]) for i in (14, 15, 16, 17)) / ticks
    return seconds


def tree_cpu_seconds(root: int | None) -> float | None:
    """CPU time of a process tree, its reaped children included (Postfix's
    smtpd processes come and go). None without a root process."""
    if root is None:
        return None
    return sum(cpu_seconds(descendants(root)).values())


def drive(system, sink: Sink, messages: int, *, sessions: int, size: int, timeout: float) -> dict:
    """smtp-source -> system -> sink; seconds until the sink has all messages,
    and the CPU time the system spent on them."""
    base = sink.wait_quiet(quiet=1.0, timeout=60)
    cpu_before = tree_cpu_seconds(system.pid())
    argv = [SMTP_SOURCE, "-s", str(sessions), "-l", str(size), "-m", str(messages),
            "-f", SENDER, "-t", RECIPIENT, f"127.0.0.1:{system.port}"]
    started = time.monotonic()
    source = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    try:
        out, err = source.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop_process(source, timeout=5)
        out, err = source.communicate()
        raise BenchError(f"smtp-source against {system.name} did not finish within {timeout}s")
    accepted_at = time.monotonic()
    if source.returncode != 0:
        raise BenchError(f"smtp-source against {system.name} failed ({source.returncode}): "
                         f"{(out + err).decode(errors='replace').strip()}")
    left = max(timeout - (accepted_at - started), 1.0)
    reached, count = sink.wait_for(base + messages, left)
    finished = time.monotonic()
    cpu_after = tree_cpu_seconds(system.pid())
    received = count - base
    elapsed = finished - started
    result = {
        "messages": messages,
        "received_by_sink": received,
        "complete": reached,
        "accept_seconds": round(accepted_at - started, 4),
        "seconds": round(elapsed, 4),
        "accept_rate": round(messages / (accepted_at - started), 2),
        "rate": round(messages / elapsed, 2) if reached else None,
    }
    if cpu_before is not None and cpu_after is not None:
        result["cpu_ms_per_message"] = round((cpu_after - cpu_before) * 1000 / messages, 3)
    if not reached:
        result["queue"] = system.queued()
    return result


# ---- main ----------------------------------------------------------------------------------
def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", "-n", type=int, default=2000,
                        help="messages per measurement (default 2000)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="measurements per system, interleaved (default 1)")
    parser.add_argument("--sessions", type=int, default=20, help="smtp-source -s (default 20)")
    parser.add_argument("--size", type=int, default=5120, help="smtp-source -l bytes (default 5120)")
    parser.add_argument("--warmup", type=int, default=20,
                        help="untimed messages sent through each system first (default 20; 0: none)")
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="seconds one measurement may take before it counts as failed")
    parser.add_argument("--systems", default="gatebox,postfix",
                        help="comma-separated subset of gatebox,postfix")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="parent for the temp data dirs (default: the system temp dir; "
                             "use a disk-backed filesystem, fsync cost is part of the result)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, queues)")
    parser.add_argument("--smtpd-processes", type=int, default=0,
                        help="gatebox's smtpd processes (0: as the box sizes it, one per core)")
    parser.add_argument("--gatebox", default=None,
                        help="gatebox command (default: the gatebox next to this python, "
                             "else python -m firmware.cli)")
    parser.add_argument("--py-spy", type=Path, default=None, metavar="FILE",
                        help="profile every gatebox process with py-spy (non-blocking sampling) "
                             "during its measurements and write a flamegraph SVG (or .txt: "
                             "collapsed stacks)")
    parser.add_argument("--py-spy-gil", action="store_true",
                        help="with --py-spy: sample only the thread holding the GIL")
    parser.add_argument("--output", type=Path, default=REPO / "bench" / "results" / "relay_throughput.json")
    args = parser.parse_args(argv)
    args.systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = set(args.systems) - {"gatebox", "postfix"}
    if unknown or not args.systems:
        parser.error(f"--systems: unknown {sorted(unknown)}")
    if args.messages < 1 or args.rounds < 1:
        parser.error("--messages and --rounds must be positive")
    return args


def gatebox_command(explicit: str | None) -> list[str]:
    if explicit:
        return explicit.split()
    beside = Path(sys.executable).parent / "gatebox"
    if beside.exists():
        return [str(beside)]
    return [sys.executable, "-m", "firmware.cli"]


def postfix_version() -> str:
    try:
        return subprocess.run(["postconf", "-d", "-h", "mail_version"], capture_output=True,
                              text=True).stdout.strip()
    except OSError:
        return ""


def filesystem_of(path: Path) -> str:
    try:
        return subprocess.run(["stat", "-f", "-c", "%T", str(path)], capture_output=True,
                              text=True).stdout.strip()
    except OSError:
        return ""


def start_py_spy(pid: int, output: Path, gil: bool = False) -> subprocess.Popen:
    fmt = "raw" if output.suffix == ".txt" else "flamegraph"
    py_spy = Path(sys.executable).parent / "py-spy"
    argv = [str(py_spy) if py_spy.exists() else "py-spy", "record", "--pid", str(pid),
            "--nonblocking", "--subprocesses", "--rate", "200", "--format", fmt,
            "--output", str(output)]
    if gil:
        argv.append("--gil")
    output.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    time.sleep(1.0)  # attach
    return proc


def summarize(rounds: list[dict], systems: list[str]) -> dict:
    summary = {}
    for name in systems:
        rates = [r[name]["rate"] for r in rounds if name in r and r[name].get("rate")]
        cpu = [r[name]["cpu_ms_per_message"] for r in rounds
               if name in r and r[name].get("rate") and "cpu_ms_per_message" in r[name]]
        summary[name] = {
            "cpu_ms_per_message_median": round(statistics.median(cpu), 3) if cpu else None,
            "rounds_complete": len(rates),
            "rate_median": round(statistics.median(rates), 2) if rates else None,
            "rate_min": min(rates) if rates else None,
            "rate_max": max(rates) if rates else None,
        }
    gb, pf = summary.get("gatebox", {}), summary.get("postfix", {})
    if gb.get("rate_median") and pf.get("rate_median"):
        summary["ratio_gatebox_postfix"] = round(gb["rate_median"] / pf["rate_median"], 3)
    return summary


def main(argv=None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0 and "postfix" in args.systems:
        print("relay_throughput: the Postfix instance needs root (or use --systems gatebox)",
              file=sys.stderr)
        return 2
    for tool in (SMTP_SINK, SMTP_SOURCE):
        if not os.access(tool, os.X_OK):
            print(f"relay_throughput: {tool} not found (install postfix)", file=sys.stderr)
            return 2

    workdir = Path(tempfile.mkdtemp(prefix="gatebox-bench-", dir=args.workdir))
    os.chmod(workdir, 0o755)  # the postfix user needs to reach its queue
    result = {
        "benchmark": "relay_throughput",
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "params": {"messages": args.messages, "rounds": args.rounds, "sessions": args.sessions,
                   "smtpd_processes": args.smtpd_processes,
                   "size": args.size, "warmup": args.warmup, "timeout": args.timeout,
                   "systems": args.systems, "profiled": bool(args.py_spy),
                   "profile_gil_only": bool(args.py_spy and args.py_spy_gil)},
        "host": {"cpus": os.cpu_count(), "kernel": platform.release(),
                 "python": platform.python_version(), "postfix": postfix_version(),
                 "workdir_fs": filesystem_of(workdir), "loadavg_start": os.getloadavg()},
        "rounds": [],
        "status": "failed",
    }
    sink = None
    systems: dict = {}
    spy = None
    exit_code = 1
    try:
        sink = Sink("127.0.0.1", free_port())
        sink.start()
        result["sink"] = {"port": sink.port, "backlog": sink.backlog}
        if "gatebox" in args.systems:
            systems["gatebox"] = Gatebox(workdir, sink.port, gatebox_command(args.gatebox),
                                         smtpd_processes=args.smtpd_processes)
        if "postfix" in args.systems:
            systems["postfix"] = Postfix(workdir, sink.port)
        for name, system in systems.items():
            print(f"starting {name} on 127.0.0.1:{system.port} ...", flush=True)
            system.start()
            if args.warmup:
                drive(system, sink, args.warmup, sessions=min(args.sessions, args.warmup),
                      size=args.size, timeout=args.timeout)
        try:
            from firmware import __version__ as gatebox_version  # noqa: PLC0415
            result["host"]["gatebox"] = gatebox_version
        except ImportError:
            pass

        failed = False
        for number in range(1, args.rounds + 1):
            row = {"round": number}
            for name, system in systems.items():
                if name == "gatebox" and args.py_spy and spy is None:
                    spy = start_py_spy(system.pid(), args.py_spy, args.py_spy_gil)
                try:
                    measured = drive(system, sink, args.messages, sessions=args.sessions,
                                     size=args.size, timeout=args.timeout)
                except BenchError as error:
                    measured = {"messages": args.messages, "complete": False, "error": str(error),
                                "rate": None}
                if name == "gatebox" and spy is not None and number == args.rounds:
                    stop_process(spy, timeout=60, sig=signal.SIGINT)
                row[name] = measured
                if not measured["complete"]:
                    failed = True
                    print(f"round {number} {name}: FAILED: "
                          f"{measured.get('error') or 'only %d of %d messages reached the sink' % (measured.get('received_by_sink', 0), args.messages)}"
                          f" queue={measured.get('queue')}", flush=True)
                    print(system.log_tail(15), file=sys.stderr)
                else:
                    print(f"round {number} {name:8s}: {measured['rate']:8.1f} msg/s end-to-end "
                          f"({measured['seconds']:.2f}s; all accepted after "
                          f"{measured['accept_seconds']:.2f}s = {measured['accept_rate']:.1f} msg/s; "
                          f"{measured.get('cpu_ms_per_message', '?')} ms CPU per message)",
                          flush=True)
            if "gatebox" in row and "postfix" in row and row["gatebox"]["rate"] and row["postfix"]["rate"]:
                row["ratio_gatebox_postfix"] = round(row["gatebox"]["rate"] / row["postfix"]["rate"], 3)
            result["rounds"].append(row)

        for name, system in systems.items():
            result.setdefault("queue_after", {})[name] = system.queued()
        result["summary"] = summarize(result["rounds"], list(systems))
        result["status"] = "incomplete" if failed else "ok"
        exit_code = 1 if failed else 0
    except (BenchError, PostfixError, OSError) as error:
        result["error"] = str(error)
        print(f"relay_throughput: {error}", file=sys.stderr)
        for system in systems.values():
            print(f"--- {system.name} log tail ---\n{system.log_tail(15)}", file=sys.stderr)
    finally:
        stop_process(spy, timeout=60, sig=signal.SIGINT)
        for system in reversed(list(systems.values())):
            try:
                system.stop()
            except Exception as error:  # keep stopping the rest
                print(f"relay_throughput: stopping {system.name}: {error}", file=sys.stderr)
        if sink is not None:
            sink.stop()
        if args.keep:
            result["workdir"] = str(workdir)
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    result["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    result["host"]["loadavg_end"] = os.getloadavg()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    summary = result.get("summary", {})
    if summary:
        print()
        for name in systems:
            s = summary[name]
            rate = f"{s['rate_median']:.1f} msg/s" if s["rate_median"] else "n/a"
            cpu = s.get("cpu_ms_per_message_median")
            print(f"{name:8s} median {rate}  ({s['rounds_complete']}/{args.rounds} rounds complete)"
                  + (f", {cpu} ms CPU per message" if cpu else ""))
        if "ratio_gatebox_postfix" in summary:
            print(f"ratio gatebox/postfix: {summary['ratio_gatebox_postfix']:.3f}")
    print(f"result: {args.output}")
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
