#!/usr/bin/env python3
"""Relay throughput with anti-virus scanning on (clamd, tiny database) as a
ratio to scanning off, in the same run, and clamd's added latency per 5 KiB
and per 1 MiB message.

    .venv/bin/python bench/antivirus.py [--messages 300] [--large-messages 40] [--rounds 3]

One gatebox in relay mode for example.com, delivering to smtp-sink (as
bench/relay_throughput.py runs them), with the Anti-Virus SoftPak licensed
(a vendor key made at run time, as bench/policy_cost.py does) and Debian's
clamd started by the script on the tests' tiny signature database (the EICAR
file and one clamav-testfiles sample, tests/support/clamd.py), listening
where the box looks for it. A full database makes each scan dearer; the
tiny one measures the protocol, the stream and clamd's MIME and archive
parsing, which every message pays whatever the database.

ON and OFF switch `antivirus.enabled` on the running box (it reloads its
settings; the script waits for the "settings reloaded" line and sends an
untimed warm-up). For each size (5 KiB, 1 MiB) the rounds alternate ON/OFF,
OFF/ON, ... so the machine's drifting load hits both alike.

Throughput: smtp-source (20 sessions) -> gatebox -> smtp-sink, messages per
second until the sink has them all; the summary gives the medians and the
on/off ratio per size.

Latency: one smtplib session sends --latency-samples messages one after the
other and times each end of DATA (the "." until the reply), ON and OFF; the
added latency is ON minus OFF at p50 and p99. clamd's own time is also taken
directly: INSTREAM scans of the same messages over its socket (the
Anti-Virus SoftPak's client).

After the run the box's check_stats must show antivirus=clean for every
message sent while ON and no other anti-virus result; otherwise the run is
invalid (exit 1). Result: bench/results/antivirus.json. Needs root
(smtp-sink drops to the postfix user). A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import re
import smtplib
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO))

from address_verification import (  # noqa: E402
    check_counts, cpu_seconds, descendants, stop_everything,
)
from policy_cost import box_generation, wait_reloaded  # noqa: E402
from relay_throughput import (  # noqa: E402
    RECIPIENT, SENDER, BenchError, Gatebox, Sink, drive, filesystem_of, free_port,
    gatebox_command,
)
from softpaks.antivirus import paths  # noqa: E402
from softpaks.antivirus.clamd_client import Clamd  # noqa: E402
from tests.support.clamd import ClamdProcess  # noqa: E402
from tests.support.licensing import BOX_SERIAL, Vendor  # noqa: E402

SMALL, LARGE = 5 * 1024, 1024 * 1024
SIZES = {"5KiB": SMALL, "1MiB": LARGE}
# Signature updates offline: the bench must never reach for ClamAV's mirrors.
ON = {"antivirus.enabled": "on", "antivirus.update_source": "offline"}
OFF = {"antivirus.enabled": "off"}
# smtpd and the queue manager each reload the settings and log it; the
# switch is done once both have (smtpd alone decides on scanning, but the
# log line does not say which process wrote it).
RELOADING_PROCESSES = 2
_RELOADED = re.compile(r"settings reloaded \(generation (\d+)\)")


def switch(box: Gatebox, settings: dict, timeout: float = 30.0):
    """Set, then wait until every process of the running box has reloaded."""
    box.configure(settings)
    wanted = box_generation(box)
    deadline = time.monotonic() + timeout
    while sum(int(g) >= wanted for g in _RELOADED.findall(box.log.read_text(errors="replace"))) \
            < RELOADING_PROCESSES:
        if time.monotonic() > deadline:
            raise BenchError(f"gatebox did not reload generation {wanted} within {timeout}s")
        if box.proc.poll() is not None:
            raise BenchError(f"gatebox exited ({box.proc.returncode})")
        time.sleep(0.05)


# ---- the messages for the latency samples --------------------------------------------------------
def sample_message(size: int, number: int, tag: str) -> bytes:
    """A text message with a base64 attachment, about `size` octets on the
    wire; each (number, tag) its own, so the duplicate filter never answers."""
    rng = random.Random(f"{tag}-{number}")
    message = EmailMessage()
    message["From"], message["To"] = SENDER, RECIPIENT
    message["Subject"] = f"latency sample {number}"
    message["Message-ID"] = f"<av-bench-{tag}-{number}-{size}@example.org>"
    message.set_content("A message with an attachment, as office mail has.\n")
    # base64 is 4/3 of the payload; the headers and the text take the rest.
    payload = rng.randbytes(max(size * 3 // 4 - 600, 16))
    message.add_attachment(payload, maintype="application", subtype="octet-stream",
                           filename="data.bin")
    return message.as_bytes(policy=SMTP)


def percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))
    return ordered[index]


def milliseconds(values: list[float]) -> dict:
    return {"samples": len(values),
            "p50_ms": round(1000 * percentile(values, 0.50), 3) if values else None,
            "p99_ms": round(1000 * percentile(values, 0.99), 3) if values else None,
            "mean_ms": round(1000 * statistics.fmean(values), 3) if values else None}


def data_latencies(box: Gatebox, messages: list[bytes]) -> list[float]:
    """Seconds from sending the data (in one write, the final dot included)
    to the reply, one message at a time. TCP_NODELAY: Nagle's algorithm and
    delayed ACKs would otherwise add 40 ms to some replies and not others."""
    took = []
    with smtplib.SMTP("127.0.0.1", box.port, timeout=120) as client:
        client.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client.ehlo("bench.example.org")
        for message in messages:
            for command, want in ((f"MAIL FROM:<{SENDER}>", 250), (f"RCPT TO:<{RECIPIENT}>", 250),
                                  ("DATA", 354)):
                code, text = client.docmd(command)
                if code != want:
                    raise BenchError(f"{command}: {code} {text!r}")
            data = message.replace(b"\r\n.", b"\r\n..") + b".\r\n"
            started = time.perf_counter()
            client.sock.sendall(data)
            code, text = client.getreply()
            took.append(time.perf_counter() - started)
            if code != 250:
                raise BenchError(f"end of DATA: {code} {text!r}")
    return took


async def _scan_all(scanner: Clamd, messages: list[bytes]) -> list[float]:
    took = []
    for message in messages:
        started = time.perf_counter()
        finding = await scanner.scan(message)
        took.append(time.perf_counter() - started)
        if finding is not None:
            raise BenchError(f"clamd found {finding.name} in a bench message")
    return took


def scan_latencies(scanner: Clamd, messages: list[bytes]) -> list[float]:
    return asyncio.run(_scan_all(scanner, messages))


# ---- the run ----------------------------------------------------------------------------------
def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", "-n", type=int, default=300,
                        help="5 KiB messages per throughput measurement (default 300)")
    parser.add_argument("--large-messages", type=int, default=40,
                        help="1 MiB messages per throughput measurement (default 40)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="measurements per size and mode, ON and OFF alternately (default 3)")
    parser.add_argument("--sessions", type=int, default=20, help="parallel sessions (default 20)")
    parser.add_argument("--latency-samples", type=int, default=200,
                        help="5 KiB messages timed one by one per mode (default 200; 1 MiB: a fifth)")
    parser.add_argument("--warmup", type=int, default=20,
                        help="untimed messages first and after each switch (default 20)")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--workdir", type=Path, default=None,
                        help="parent of the temp dir (keep it on a real disk)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir")
    parser.add_argument("--gatebox", default=None, help="gatebox command")
    parser.add_argument("--output", type=Path, default=REPO / "bench" / "results" / "antivirus.json")
    args = parser.parse_args(argv)
    if min(args.messages, args.large_messages, args.rounds, args.warmup,
           args.latency_samples) < 1:
        parser.error("counts must be positive")
    return args


class Run:
    def __init__(self, args, box: Gatebox, sink: Sink, clamd: ClamdProcess):
        self.args, self.box, self.sink, self.clamd = args, box, sink, clamd
        self.mode = "on"
        self.sent_on = 0

    def set_mode(self, mode: str):
        if mode != self.mode:
            switch(self.box, ON if mode == "on" else OFF)
            self.mode = mode

    def warm(self, size: int):
        measured = drive(self.box, self.sink, self.args.warmup, sessions=min(self.args.sessions,
                         self.args.warmup), size=size, timeout=self.args.timeout)
        if not measured["complete"]:
            raise BenchError(f"warm-up incomplete: {measured}")
        self.count(self.args.warmup)

    def count(self, messages: int):
        if self.mode == "on":
            self.sent_on += messages

    def throughput(self, label: str, size: int, messages: int, number: int) -> dict:
        pids = descendants(self.box.pid()) + [self.clamd.pid]
        before = cpu_seconds(pids)
        measured = drive(self.box, self.sink, messages, sessions=min(self.args.sessions, messages),
                         size=size, timeout=self.args.timeout)
        after = cpu_seconds(pids)
        clamd_cpu = after.get(self.clamd.pid, 0) - before.get(self.clamd.pid, 0)
        gatebox_cpu = sum(after[p] - before.get(p, 0) for p in after if p != self.clamd.pid)
        if measured["complete"]:
            self.count(messages)
        measured.update(size=label, mode=self.mode, round=number, loadavg=os.getloadavg()[0],
                        gatebox_cpu_ms_per_message=round(1000 * gatebox_cpu / messages, 3),
                        clamd_cpu_ms_per_message=round(1000 * clamd_cpu / messages, 3))
        return measured


def summarize(rounds: list[dict]) -> dict:
    summary = {}
    for label in SIZES:
        per_size = {}
        for mode in ("on", "off"):
            rates = [r["rate"] for r in rounds if r["size"] == label and r["mode"] == mode
                     and r.get("rate")]
            per_size[mode] = {"rounds_complete": len(rates),
                              "rate_median": round(statistics.median(rates), 2) if rates else None}
        if per_size["on"]["rate_median"] and per_size["off"]["rate_median"]:
            per_size["ratio_on_off"] = round(per_size["on"]["rate_median"] /
                                             per_size["off"]["rate_median"], 3)
        summary[label] = per_size
    return summary


def added_latency(latency: dict) -> dict:
    added = {}
    for label in SIZES:
        on, off = latency.get(f"{label}_on"), latency.get(f"{label}_off")
        if on and off and on["p50_ms"] is not None and off["p50_ms"] is not None:
            added[label] = {"p50_ms": round(on["p50_ms"] - off["p50_ms"], 3),
                            "p99_ms": round(on["p99_ms"] - off["p99_ms"], 3)}
    return added


def validate(counts: dict, sent_on: int) -> list[str]:
    problems = []
    clean = counts.get("antivirus=clean", 0)
    if clean != sent_on:
        problems.append(f"antivirus=clean: {clean} counted, {sent_on} expected")
    problems += [f"{name}: {value} (no message should get this result)"
                 for name, value in counts.items()
                 if name.startswith("antivirus=") and name != "antivirus=clean" and value]
    return problems


def main(argv=None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("antivirus bench: needs root (smtp-sink)", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="gatebox-bench-av-", dir=args.workdir))
    os.chmod(workdir, 0o755)  # smtp-sink runs as the postfix user
    result = {
        "benchmark": "antivirus",
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "params": {"messages": {"5KiB": args.messages, "1MiB": args.large_messages},
                   "rounds": args.rounds, "sessions": args.sessions,
                   "latency_samples": {"5KiB": args.latency_samples,
                                       "1MiB": max(1, args.latency_samples // 5)},
                   "warmup": args.warmup, "timeout": args.timeout,
                   "switch": "antivirus.enabled on the running box",
                   "database": "tiny: EICAR and clam.exe as MD5 signatures (.hdb)"},
        "host": {"cpus": os.cpu_count(), "kernel": platform.release(),
                 "python": platform.python_version(), "workdir_fs": filesystem_of(workdir),
                 "loadavg_start": os.getloadavg()},
        "rounds": [], "latency": {}, "status": "failed",
    }
    started: list = []
    box = None
    exit_code = 1
    try:
        vendor = Vendor(workdir / "vendor-keys")
        os.environ["GATEBOX_VENDOR_PUBKEYS"] = str(vendor.public_path)
        os.environ["GATEBOX_SERIAL"] = BOX_SERIAL
        key_file = workdir / "antivirus.key"
        key_file.write_text(vendor.issue(antivirus=None) + "\n")

        sink = Sink("127.0.0.1", free_port())
        sink.start()
        started.append(sink)
        box = Gatebox(workdir, sink.port, gatebox_command(args.gatebox), settings=ON)
        box.start()
        box._gatebox("license", "activate", "--file", str(key_file))
        wait_reloaded(box)
        clamd = ClamdProcess(workdir / "clamd", socket_path=paths.socket_path(box.data))
        clamd.start()
        started.append(clamd)
        result["host"]["clamd"] = clamd.client().version_sync()
        print(f"gatebox on 127.0.0.1:{box.port}, smtp-sink :{sink.port}, "
              f"{result['host']['clamd']} at {clamd.socket_path}", flush=True)

        run = Run(args, box, sink, clamd)
        failed = False
        for label, size in SIZES.items():
            messages = args.messages if size == SMALL else args.large_messages
            run.warm(size)
            for number in range(1, args.rounds + 1):
                for mode in (("on", "off") if number % 2 else ("off", "on")):
                    if mode != run.mode:
                        run.set_mode(mode)
                        run.warm(size)
                    measured = run.throughput(label, size, messages, number)
                    result["rounds"].append(measured)
                    if not measured["complete"]:
                        failed = True
                        print(f"{label} round {number} {mode}: FAILED: "
                              f"{measured.get('error') or measured}", flush=True)
                        continue
                    print(f"{label} round {number} scanning {mode:3s}: {measured['rate']:8.1f} "
                          f"msg/s; gatebox CPU {measured['gatebox_cpu_ms_per_message']:.2f} "
                          f"ms/msg, clamd CPU {measured['clamd_cpu_ms_per_message']:.2f} ms/msg; "
                          f"load {measured['loadavg']:.1f}", flush=True)

        for label, size in SIZES.items():
            count = args.latency_samples if size == SMALL else max(1, args.latency_samples // 5)
            for mode in (("on", "off") if run.mode == "on" else ("off", "on")):
                run.set_mode(mode)
                samples = [sample_message(size, n, mode) for n in range(count)]
                took = data_latencies(box, samples)
                run.count(len(samples))
                result["latency"][f"{label}_{mode}"] = milliseconds(took)
            result["latency"][f"{label}_clamd_instream"] = milliseconds(
                scan_latencies(clamd.client(), samples))
            result["latency"][f"{label}_wire_octets"] = len(samples[0])
        result["added_latency"] = added_latency(result["latency"])

        sink.wait_quiet(quiet=1.0, timeout=60)
        result["queue_after"] = box.queued()
        box.stop()      # its last statistics reach the database on the way down
        counts = check_counts(box)
        problems = validate(counts, run.sent_on)
        result.update(check_stats=counts, messages_sent_on=run.sent_on)
        if problems:
            result["invalid"] = problems
            print("INVALID run: " + "; ".join(problems), file=sys.stderr)
        result["summary"] = summarize(result["rounds"])
        result["status"] = "invalid" if problems else "incomplete" if failed else "ok"
        exit_code = 1 if problems or failed else 0
    except (BenchError, OSError, RuntimeError, TimeoutError, subprocess.SubprocessError,
            smtplib.SMTPException) as error:
        result["error"] = f"{error.__class__.__name__}: {error}"
        print(f"antivirus bench: {error}", file=sys.stderr)
        if box is not None:
            print(f"--- gatebox log tail ---\n{box.log_tail(20)}", file=sys.stderr)
    finally:
        stop_everything("antivirus", box, started, workdir, args.keep, result)

    result["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    result["host"]["loadavg_end"] = os.getloadavg()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    for label, per_size in result.get("summary", {}).items():
        on, off = per_size["on"]["rate_median"], per_size["off"]["rate_median"]
        ratio = per_size.get("ratio_on_off")
        print(f"{label}: scanning on {on} msg/s, off {off} msg/s, ratio on/off "
              f"{ratio if ratio is not None else 'n/a'}")
    for label, added in result.get("added_latency", {}).items():
        clamd_own = result["latency"][f"{label}_clamd_instream"]
        print(f"{label}: added latency p50 {added['p50_ms']:.2f} ms, p99 {added['p99_ms']:.2f} ms "
              f"(clamd INSTREAM alone p50 {clamd_own['p50_ms']:.2f} ms, "
              f"p99 {clamd_own['p99_ms']:.2f} ms)")
    print(f"result: {args.output}")
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
