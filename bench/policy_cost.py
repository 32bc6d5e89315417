#!/usr/bin/env python3
"""Relay throughput with every layer of the Anti-Spam SoftPak part 1 on, as a
ratio to the same box with the SoftPak off.

    .venv/bin/python bench/policy_cost.py [--messages 500] [--rounds 3]

One gatebox in relay mode for example.com, delivering to smtp-sink (as
bench/relay_throughput.py runs them); the client (smtp-source from
127.0.0.1, sender@outside.test -> user@example.com) is outside Trusted
Networks, or no layer would judge it. ON, every layer judges every message
and lets it through:

  blocked IPs      antispam.blocked_ips: a few entries, none the client
  lists            server black and whitelist entries (IPs, a domain, an
                   address), none matching; the domain entry makes the lists
                   ask for the client's verified PTR name
  DNSBL            two zones served by dnsmasq, healthy by RFC 5782
                   (2.0.0.127 listed, 1.0.0.127 not), the client not listed
  reverse DNS      required and forward-confirmed: 127.0.0.1 has the PTR
                   client.bench.test, which resolves back to it
  greylist         on, the one triplet (127.0.0.0/24, sender, recipient)
                   passed beforehand with `gatebox antispam greylist pass`

OFF is the same box with its Anti-Spam license removed (`gatebox license
remove ID`); ON activates the same key again (`gatebox license activate
--file`). Both bump the settings generation, so the running box rebuilds its
policy (the DNS cache, the settings, the lists and the greylist records live
on); the script waits for the box's "settings reloaded" line and sends an
untimed warm-up after each switch. The license is made at run time: a vendor
key pair in the temp dir, trusted through GATEBOX_VENDOR_PUBKEYS, for the
serial set in GATEBOX_SERIAL (as the tests' licensing fixtures do). No key
is written anywhere else.

After the run the box's check_stats must show dnsbl=passed, reverse_dns=passed
and greylist=passed once for every message sent while ON, blocked_ips=passed at
least that often (it counts connections), no refusal or deferral, and both
zones healthy; otherwise the run is invalid and the script exits 1.

Result: bench/results/policy_cost.json. Needs root (dnsmasq; smtp-sink drops
to the postfix user). A benchmark, not a test: the 0.8 goal is reported, not
asserted.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import sqlite3
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

from address_verification import (  # noqa: E402
    OUTSIDE_SENDER, RECIPIENT, UNTRUSTED_ONLY, check_counts, cpu_seconds, descendants, drive,
    own_cpu_seconds, peak_rss, process_name, reset_peak_rss, stop_everything, summarize,
    write_and_report,
)
from relay_throughput import (  # noqa: E402
    BenchError, Gatebox, Sink, filesystem_of, free_port, gatebox_command,
)
from tests.support.dnsmasq import DnsServer  # noqa: E402
from tests.support.licensing import BOX_SERIAL, Vendor  # noqa: E402

ZONES = ("bl1.bench.test", "bl2.bench.test")
CLIENT_NAME = "client.bench.test"
BLOCKED_IPS = "192.0.2.66\n198.51.100.0/24\n203.0.113.10-203.0.113.20\n2001:db8:bad::/48"
LIST_ENTRIES = [("--black", "192.0.2.99"), ("--black", "spam.example"),
                ("--black", "bulk@spam.example"), ("--white", "198.51.100.77")]
ANTISPAM_ON = {
    "antispam.blocked_ips": BLOCKED_IPS,
    "antispam.dnsbl": "\n".join(ZONES),
    "antispam.reverse_dns_required": "on",
    "antispam.reverse_dns_forward_confirmed": "on",
    "antispam.greylist": "on",
    # Part 2's signature checks are on by default; bench/spam_scoring.py
    # measures them with the rest of part 2. Off here, so this ratio is part
    # 1's. DMARC is evaluated whatever the settings (its result goes into
    # Authentication-Results): the sender's domain has no record, so it costs
    # one lookup answered "no such name", and counts dmarc=none.
    "antispam.dkim_verify": "off",
    "antispam.arc_verify": "off",
}
RCPT_LAYERS = ("dnsbl", "reverse_dns", "greylist")
ALWAYS_EVALUATED = ("dmarc=none",)


def dns_records() -> list[str]:
    records = ["--local=/bench.test/", "--local=/0.0.127.in-addr.arpa/", "--local=/outside.test/",
               f"--host-record={CLIENT_NAME},127.0.0.1",
               f"--ptr-record=1.0.0.127.in-addr.arpa,{CLIENT_NAME}"]
    # RFC 5782's test entry, so each zone passes its health test.
    records += [f"--address=/2.0.0.127.{zone}/127.0.0.2" for zone in ZONES]
    return records


# ---- the license and the switch -----------------------------------------------------------
_RELOADED = re.compile(r"settings reloaded \(generation (\d+)\)")
_ACTIVATED = re.compile(r"license ([0-9A-Z-]+)")


def box_generation(box: Gatebox) -> int:
    with sqlite3.connect(box.data / "gatebox.db", timeout=10) as db:
        row = db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
    return int(row[0]) if row else 0


def wait_reloaded(box: Gatebox, timeout: float = 30.0):
    """Until the running box has reloaded the database's current generation
    (several changes in a row may reach it as one reload)."""
    wanted = box_generation(box)
    deadline = time.monotonic() + timeout
    while True:
        seen = [int(g) for g in _RELOADED.findall(box.log.read_text(errors="replace"))]
        if seen and max(seen) >= wanted:
            return
        if time.monotonic() > deadline:
            raise BenchError(f"gatebox did not reload generation {wanted} within {timeout}s")
        if box.proc.poll() is not None:
            raise BenchError(f"gatebox exited ({box.proc.returncode})")
        time.sleep(0.1)


class License:
    def __init__(self, box: Gatebox, key_file: Path):
        self.box, self.key_file, self.id = box, key_file, None

    def activate(self):
        out = self.box._gatebox("license", "activate", "--file", str(self.key_file))
        found = _ACTIVATED.search(out)
        if found is None:
            raise BenchError(f"no license id in: {out!r}")
        self.id = found.group(1)

    def remove(self):
        self.box._gatebox("license", "remove", self.id)


def switch(box: Gatebox, licence: License, mode: str):
    if mode == "on":
        licence.activate()
    else:
        licence.remove()
    wait_reloaded(box)


def antispam_active(box: Gatebox) -> bool:
    out = box._gatebox("softpak", "list")
    row = next((line.split() for line in out.splitlines() if line.startswith("antispam ")), [])
    return len(row) > 4 and row[4] == "yes"


# ---- proof that the layers ran ------------------------------------------------------------
def zone_health(box: Gatebox) -> dict:
    with sqlite3.connect(box.data / "gatebox.db", timeout=10) as db:
        return {zone: {"healthy": healthy, "detail": detail}
                for zone, healthy, detail in db.execute(
                    "SELECT zone, healthy, detail FROM dnsbl_zones ORDER BY zone")}


def validate(counts: dict, sent_on: int, zones: dict) -> list[str]:
    problems = [f"{layer}=passed: {counts.get(f'{layer}=passed', 0)} counted, {sent_on} expected"
                for layer in RCPT_LAYERS if counts.get(f"{layer}=passed", 0) != sent_on]
    if counts.get("blocked_ips=passed", 0) < sent_on:
        problems.append(f"blocked_ips=passed: {counts.get('blocked_ips=passed', 0)} counted, "
                        f"at least {sent_on} expected")
    problems += [f"{name}: {value} (no message should get this result)"
                 for name, value in counts.items()
                 if value and ("=" not in name or name.split("=", 1)[1] != "passed")
                 and name not in ALWAYS_EVALUATED]
    problems += [f"zone {zone} is not healthy ({zones.get(zone, {}).get('detail', 'never tested')})"
                 for zone in ZONES if not zones.get(zone, {}).get("healthy")]
    if not sent_on or not any(counts.get(f"{layer}=passed") for layer in RCPT_LAYERS):
        problems.append("no layer counted anything: the SoftPak did not filter")
    return problems


# ---- main ---------------------------------------------------------------------------------
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
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--workdir", type=Path, default=None,
                        help="parent of the temp dir (keep it on a real disk)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (and the key in it)")
    parser.add_argument("--gatebox", default=None, help="gatebox command")
    parser.add_argument("--output", type=Path,
                        default=REPO / "bench" / "results" / "policy_cost.json")
    args = parser.parse_args(argv)
    if args.messages < 1 or args.rounds < 1 or args.warmup < 1:
        parser.error("--messages, --rounds and --warmup must be positive")
    return args


def measure(box: Gatebox, sink: Sink, args, mode: str, number: int) -> dict:
    pids = descendants(box.pid())
    reset_peak_rss(pids)
    cpu_before, own_before = cpu_seconds(pids), own_cpu_seconds()
    try:
        measured = drive(box, sink, args.messages, sessions=args.sessions, size=args.size,
                         timeout=args.timeout, local_share=0)
    except BenchError as error:
        measured = {"messages": args.messages, "complete": False, "error": str(error),
                    "rate": None}
    cpu_after = cpu_seconds(pids)
    by_process = {process_name(pid): round(cpu_after[pid] - cpu_before.get(pid, 0), 3)
                  for pid in cpu_after}
    cpu = sum(by_process.values())
    measured.update(round=number, mode=mode, peak_rss=peak_rss(pids),
                    gatebox_cpu_seconds=round(cpu, 3), gatebox_cpu_seconds_by_process=by_process,
                    bench_process_cpu_seconds=round(own_cpu_seconds() - own_before, 3),
                    gatebox_cpu_ms_per_message=round(1000 * cpu / args.messages, 3),
                    loadavg=os.getloadavg()[0])
    return measured


def main(argv=None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("policy_cost: needs root (dnsmasq, smtp-sink)", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="gatebox-bench-pc-", dir=args.workdir))
    os.chmod(workdir, 0o755)  # smtp-sink runs as the postfix user
    result = {
        "benchmark": "policy_cost",
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "params": {"messages": args.messages, "rounds": args.rounds, "sessions": args.sessions,
                   "size": args.size, "warmup": args.warmup, "timeout": args.timeout,
                   "switch": "license (gatebox license activate / remove)",
                   "antispam_on": ANTISPAM_ON, "lists": LIST_ENTRIES, "zones": ZONES,
                   "sender": OUTSIDE_SENDER, "recipient": RECIPIENT,
                   "trusted_networks": UNTRUSTED_ONLY},
        "host": {"cpus": os.cpu_count(), "kernel": platform.release(),
                 "python": platform.python_version(), "workdir_fs": filesystem_of(workdir),
                 "loadavg_start": os.getloadavg()},
        "rounds": [], "status": "failed",
    }
    started: list = []     # servers to stop, in start order
    box = None
    exit_code = 1
    sent_on = 0
    try:
        # The development license: the box and every `gatebox` command inherit these.
        vendor = Vendor(workdir / "vendor-keys")
        os.environ["GATEBOX_VENDOR_PUBKEYS"] = str(vendor.public_path)
        os.environ["GATEBOX_SERIAL"] = BOX_SERIAL
        key_file = workdir / "antispam.key"
        key_file.write_text(vendor.issue(antispam=None) + "\n")

        sink = Sink("127.0.0.1", free_port())
        sink.start()
        started.append(sink)
        dns = DnsServer(workdir / "dns", dns_records(), probe=CLIENT_NAME).start()
        started.append(dns)
        box = Gatebox(workdir, sink.port, gatebox_command(args.gatebox),
                      settings={"email.trusted_networks": UNTRUSTED_ONLY,
                                **{k: str(v) for k, v in dns.settings.items()}})
        print(f"starting gatebox on 127.0.0.1:{box.port}; smtp-sink :{sink.port}, "
              f"DNS {dns.host}:{dns.port}", flush=True)
        box.start()
        try:
            from firmware import __version__ as gatebox_version  # noqa: PLC0415
            result["host"]["gatebox"] = gatebox_version
        except ImportError:
            pass

        licence = License(box, key_file)
        licence.activate()
        box.configure(ANTISPAM_ON)
        for color, entry in LIST_ENTRIES:
            box._gatebox("antispam", "list", "add", color, entry)
        box._gatebox("antispam", "greylist", "pass", "127.0.0.1", OUTSIDE_SENDER, RECIPIENT)
        wait_reloaded(box)
        if not antispam_active(box):
            raise BenchError("the Anti-Spam SoftPak is not active after activating the key")

        def warm(label: str, mode: str):
            nonlocal sent_on
            measured = drive(box, sink, args.warmup, sessions=min(args.sessions, args.warmup),
                             size=args.size, timeout=args.timeout, local_share=0)
            if not measured["complete"]:
                raise BenchError(f"warm-up ({label}) incomplete: {measured}")
            if mode == "on":
                sent_on += args.warmup

        warm("first, SoftPak on", "on")
        mode_now = "on"
        failed = False
        for number in range(1, args.rounds + 1):
            # on off, off on, on off...: the machine's load drifts, and a
            # fixed order would hand the drift to one side.
            for mode in (("on", "off") if number % 2 else ("off", "on")):
                if mode != mode_now:
                    switch(box, licence, mode)
                    mode_now = mode
                    warm(f"after switching {mode}", mode)
                measured = measure(box, sink, args, mode, number)
                if mode == "on" and measured["complete"]:
                    sent_on += args.messages
                result["rounds"].append(measured)
                if not measured["complete"]:
                    failed = True
                    print(f"round {number} {mode:3s}: FAILED: {measured.get('error') or measured}",
                          flush=True)
                    print(box.log_tail(15), file=sys.stderr)
                else:
                    print(f"round {number} antispam {mode:3s}: {measured['rate']:8.1f} msg/s "
                          f"end-to-end ({measured['seconds']:.2f}s; accepted after "
                          f"{measured['accept_seconds']:.2f}s); peak RSS "
                          f"{measured['peak_rss']['total_kib'] / 1024:.1f} MiB; gatebox CPU "
                          f"{measured['gatebox_cpu_ms_per_message']:.2f} ms/msg; "
                          f"load {measured['loadavg']:.1f}", flush=True)

        result["queue_after"] = box.queued()
        box.stop()      # its last statistics reach the database on the way down
        counts = check_counts(box)
        zones = zone_health(box)
        problems = validate(counts, sent_on, zones)
        result.update(check_stats=counts, messages_sent_on=sent_on, dnsbl_zones=zones)
        print(f"\ncheck_stats after the run (messages sent with the SoftPak on: {sent_on}):")
        for name, value in counts.items():
            print(f"  {name:34s} {value}")
        print("dnsbl zones: " + ", ".join(f"{z} {'healthy' if h['healthy'] else 'NOT healthy'}"
                                          for z, h in zones.items()))
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
        print(f"policy_cost: {error}", file=sys.stderr)
        if box is not None:
            print(f"--- gatebox log tail ---\n{box.log_tail(20)}", file=sys.stderr)
    finally:
        stop_everything("policy_cost", box, started, workdir, args.keep, result)

    write_and_report(result, args, "antispam", "the layers did not all run")
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
