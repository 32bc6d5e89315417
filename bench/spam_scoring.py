#!/usr/bin/env python3
"""Per-message spam scoring time, gatebox against SpamAssassin in the same
run on the same messages, and the relay throughput with every Anti-Spam
layer on as a ratio to the SoftPak off.

    .venv/bin/python bench/spam_scoring.py [--messages 1000] [--relay-messages 500] [--rounds 3]

Scoring. The same --messages messages (half ham, half spam, interleaved;
tests/support/spam_corpus.py with a fixed seed) are scored one at a time:

  gatebox      in process, the Anti-Spam SoftPak's data-stage checks as the
               policy chain runs them at the end of DATA (the Content Filter
               record, the Default, Custom and Heuristic rules, Bayes trained
               on 200 spam and 200 ham from another seed, DKIM, DMARC and ARC
               with lookups answered by a dnsmasq on loopback), then the
               decision and the marking (scoring.decide and scoring.mark);
  SpamAssassin Debian's spamd on a loopback port, local tests only (-L, no
               DNS or network tests), no user configuration (-x), its own
               site config, Bayes and home directory under the temp dir and
               Bayes trained with sa-learn on the same 200 + 200 messages;
               each message goes through a new `spamc` process (the way an
               MTA's content filter hook calls it), timed from start to exit.

Both report p50, p99 and mean per message, and the ratio spamd/gatebox.
Goal (issue 15): gatebox's p99 below spamd's and below 50 ms.

Relay. One gatebox in relay mode for example.com delivering to smtp-sink
(bench/policy_cost.py's set-up: smtp-source from 127.0.0.1 outside Trusted
Networks, the part 1 layers on with their DNS) with every part 2 layer on as
well: Message Filter Active with Default, Custom and Heuristic, Bayes
trained (200/200, learnt into the box's own database before it starts),
DKIM/DMARC/ARC verification. OFF removes the Anti-Spam license on the
running box, ON activates it again (the box reloads; an untimed warm-up
follows each switch). Goal: ON at least 0.7 of OFF.

The run is invalid (exit 1) when a scoring pass refused a message, when
SpamAssassin answered an error, or when the part 1 layers did not count
every message sent while ON (proof the SoftPak filtered). Result:
bench/results/spam_scoring.json. Needs root (dnsmasq; smtp-sink drops to
the postfix user; spamd drops to nobody). A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import socket
import statistics
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
    OUTSIDE_SENDER, RECIPIENT, UNTRUSTED_ONLY, check_counts, drive, stop_everything, summarize,
)
from policy_cost import (  # noqa: E402
    ANTISPAM_ON, LIST_ENTRIES, License, antispam_active, dns_records, measure, switch,
    validate, wait_reloaded, zone_health,
)
from relay_throughput import (  # noqa: E402
    BenchError, Gatebox, Sink, filesystem_of, free_port, gatebox_command, stop_process,
)
from tests.support.dnsmasq import DnsServer  # noqa: E402
from tests.support.licensing import BOX_SERIAL, Vendor  # noqa: E402
from tests.support.spam_corpus import Corpus  # noqa: E402

SPAMD = shutil.which("spamd", path="/usr/sbin:/usr/bin") or "/usr/sbin/spamd"
SPAMC = shutil.which("spamc", path="/usr/bin:/usr/sbin") or "/usr/bin/spamc"
SA_LEARN = shutil.which("sa-learn", path="/usr/bin:/usr/sbin") or "/usr/bin/sa-learn"
MEASURED_SEED, TRAINING_SEED = 15, 7
TRAINING = 200                  # spam and ham each: Bayes votes from 200/200 (issue 15)
CLIENT = "198.51.100.9"
# Every part 2 layer on. The level and action do not change the cost: the
# rules, Bayes and DKIM run whenever the filter is active; "mark" lets every
# message through so the relay measures delivery, not refusals.
PART2_ON = {
    "antispam.content_filter": "on", "antispam.default_filter": "on",
    "antispam.custom_filter": "on", "antispam.heuristic": "on", "antispam.level": "medium",
    "antispam.action": "mark", "antispam.tag_subject": "on", "antispam.bayes": "on",
    "antispam.dkim_verify": "on", "antispam.dmarc_enforce": "on", "antispam.arc_verify": "on",
}
SPAM_DOMAINS_DNS = ["--local=/test/", "--local=/example.com/", "--local=/example.org/"]


# ---- numbers ---------------------------------------------------------------------------
def percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))]


def timings(values: list[float]) -> dict:
    return {"samples": len(values),
            "p50_ms": round(1000 * percentile(values, 0.50), 3) if values else None,
            "p99_ms": round(1000 * percentile(values, 0.99), 3) if values else None,
            "max_ms": round(1000 * max(values), 3) if values else None,
            "mean_ms": round(1000 * statistics.fmean(values), 3) if values else None}


# ---- the corpus --------------------------------------------------------------------------
def corpus(count: int, seed: int) -> list[tuple[bool, bytes]]:
    """(is_spam, message), ham and spam alternating."""
    made = Corpus(seed)
    return [(number % 2 == 1, made.spam() if number % 2 else made.ham())
            for number in range(count)]


def training() -> list[tuple[bool, bytes]]:
    made = Corpus(TRAINING_SEED)
    return [(True, m) for m in made.spams(TRAINING)] + [(False, m) for m in made.hams(TRAINING)]


# ---- gatebox in process ------------------------------------------------------------------
def gatebox_store(data: Path, dns: DnsServer, settings: dict):
    from firmware.config import Store
    store = Store.create(data)
    store.set_many({"email.domain": "example.com", "email.server_type": "relay",
                    "dns.nameservers": dns.host, "dns.port": str(dns.port), **settings})
    return store


def learn_all(store, messages):
    from softpaks.antispam import bayes
    for is_spam, message in messages:
        bayes.learn(store, message, is_spam, "bench")


def gatebox_scores(store, messages: list[tuple[bool, bytes]]) -> dict:
    """Seconds per message for the data-stage checks, decide and mark; and
    what each message came to."""
    from firmware.mail import scoring
    from firmware.mail.policy import Context, Policy
    from firmware.mail.resolver import Resolver
    from softpaks.antispam import hooks

    checks = [c for c in hooks.gatebox_policy_checks(store) if c.stage == "data"]
    policy = Policy(checks)
    resolver = Resolver()
    settings = store.snapshot()

    async def score_all():
        took, kinds, refused, scores = [], [], [], []
        for number, (is_spam, message) in enumerate(messages):
            ctx = Context(settings=settings, client_ip=CLIENT, helo="mx.outside.test",
                          resolver=resolver)
            ctx.sender, ctx.recipients = OUTSIDE_SENDER, [RECIPIENT]
            ctx.message, ctx.data_size = message, len(message)
            started = time.perf_counter()
            verdict = await policy.evaluate("data", ctx)
            action = scoring.decide(ctx.score, ctx.settings, ctx.spam_policy)
            scoring.mark(message, action, ctx.symbols, ctx.auth_results, ctx.settings,
                         "gw.example.com", ctx.spam_policy)
            took.append(time.perf_counter() - started)
            if verdict is not None:
                refused.append(f"message {number}: {verdict.reply}")
            kinds.append((is_spam, action.kind))
            scores.append(ctx.score)
        return took, kinds, refused, scores
    took, kinds, refused, scores = asyncio.run(score_all())
    return {"seconds": took, "outcomes": kinds, "refused": refused, "scores": scores,
            "checks": [c.name for c in checks]}


# ---- SpamAssassin ------------------------------------------------------------------------
class Spamd:
    """Debian's spamd on a loopback port with its own configuration, home
    and Bayes database; stopped by its PID."""

    def __init__(self, workdir: Path):
        self.dir = workdir / "spamassassin"
        self.site = self.dir / "site"
        self.home = self.dir / "home"
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.log = self.dir / "spamd.log"

    def prepare(self, trained: list[tuple[bool, bytes]]):
        for path in (self.site, self.home, self.home / "bayes"):
            path.mkdir(parents=True, exist_ok=True)
        # SpamAssassin's rules from the package, the plugins Debian loads
        # (the *.pre files live in the site config directory); local.cf only
        # turns off what needs the network and fixes where Bayes lives.
        for path in Path("/etc/spamassassin").glob("*.pre"):
            shutil.copy(path, self.site / path.name)
        if Path("/etc/spamassassin/65_debian.cf").exists():
            shutil.copy("/etc/spamassassin/65_debian.cf", self.site / "65_debian.cf")
        (self.site / "local.cf").write_text(
            f"bayes_path {self.home}/bayes/bayes\n"
            "bayes_file_mode 0777\nbayes_auto_learn 0\nuse_bayes 1\n"
            "skip_rbl_checks 1\nuse_razor2 0\nuse_pyzor 0\ndns_available no\n"
            "required_score 5.0\nreport_safe 0\n")
        for name in ("spam", "ham"):
            folder = self.dir / f"train-{name}"
            folder.mkdir(exist_ok=True)
            for number, (is_spam, message) in enumerate(trained):
                if is_spam == (name == "spam"):
                    (folder / f"{number}.eml").write_bytes(message)
            subprocess.run([SA_LEARN, f"--{name}", "--siteconfigpath", str(self.site),
                            "--dbpath", str(self.home / "bayes" / "bayes"), "-L", "--no-sync",
                            str(folder)], check=True, capture_output=True, timeout=600)
        subprocess.run([SA_LEARN, "--sync", "--siteconfigpath", str(self.site),
                        "--dbpath", str(self.home / "bayes" / "bayes")], check=True, capture_output=True,
                       timeout=600)
        if os.geteuid() == 0:
            # spamd's children run as nobody: they read the Bayes database.
            for root, dirs, files in os.walk(self.dir):
                for name in dirs + files:
                    os.chmod(os.path.join(root, name), 0o777 if name in dirs else 0o666)
            os.chmod(self.dir, 0o777)

    def start(self):
        log = open(self.log, "ab")
        argv = [SPAMD, "--listen", f"127.0.0.1:{self.port}", "-L", "-x",
                "--siteconfigpath", str(self.site), "--helper-home-dir", str(self.home),
                "--max-children", "1", "--min-children", "1", "--syslog", "stderr",
                "--pidfile", str(self.dir / "spamd.pid")]
        if os.geteuid() == 0:
            argv += ["--username", "nobody"]
        self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"spamd exited ({self.proc.returncode}):\n{self.tail()}")
            if self.ping():
                return self
            time.sleep(0.2)
        raise BenchError(f"spamd did not answer PING within 120s:\n{self.tail()}")

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
                sock.sendall(b"PING SPAMC/1.5\r\n\r\n")
                return b"PONG" in sock.recv(256)
        except OSError:
            return False

    def tail(self, lines: int = 15) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self):
        stop_process(self.proc, timeout=20)

    def scores(self, messages: list[tuple[bool, bytes]]) -> dict:
        took, outcomes, errors = [], [], []
        for number, (is_spam, message) in enumerate(messages):
            started = time.perf_counter()
            done = subprocess.run([SPAMC, "-d", "127.0.0.1", "-p", str(self.port), "-x",
                                   "-s", str(4 * 1024 * 1024)],
                                  input=message, capture_output=True, timeout=120)
            took.append(time.perf_counter() - started)
            if done.returncode != 0 or b"X-Spam-Status:" not in done.stdout:
                errors.append(f"message {number}: spamc exit {done.returncode} "
                              f"{done.stderr[:200]!r}")
                outcomes.append((is_spam, None))
                continue
            outcomes.append((is_spam, b"X-Spam-Flag: YES" in done.stdout))
        return {"seconds": took, "outcomes": outcomes, "errors": errors}


def accuracy(outcomes, spam_if) -> dict:
    spam = [spam_if(o) for is_spam, o in outcomes if is_spam and o is not None]
    ham = [spam_if(o) for is_spam, o in outcomes if not is_spam and o is not None]
    return {"spam_caught": f"{sum(spam)}/{len(spam)}",
            "ham_marked": f"{sum(ham)}/{len(ham)}"}


# ---- the relay -------------------------------------------------------------------------------
def relay(args, workdir: Path, result: dict, started: list) -> tuple[list, list]:
    """The relay rounds; returns (problems, failures)."""
    vendor = Vendor(workdir / "vendor-keys")
    os.environ["GATEBOX_VENDOR_PUBKEYS"] = str(vendor.public_path)
    os.environ["GATEBOX_SERIAL"] = BOX_SERIAL
    key_file = workdir / "antispam.key"
    key_file.write_text(vendor.issue(antispam=None) + "\n")
    sink = Sink("127.0.0.1", free_port())
    sink.start()
    started.append(sink)
    dns = DnsServer(workdir / "relay-dns", dns_records() + ["--local=/example.com/"],
                    probe="client.bench.test").start()
    started.append(dns)
    box = Gatebox(workdir, sink.port, gatebox_command(args.gatebox),
                  settings={"email.trusted_networks": UNTRUSTED_ONLY,
                            **{k: str(v) for k, v in dns.settings.items()}})
    started.append(box)
    box.start()
    licence = License(box, key_file)
    licence.activate()
    box.configure({**ANTISPAM_ON, **PART2_ON})
    for color, entry in LIST_ENTRIES:
        box._gatebox("antispam", "list", "add", color, entry)
    box._gatebox("antispam", "greylist", "pass", "127.0.0.1", OUTSIDE_SENDER, RECIPIENT)
    # Bayes learns into the box's own database (its own file; the box reads it as it runs).
    from firmware.config import Store
    box_store = Store(box.data)
    try:
        learn_all(box_store, training())
    finally:
        box_store.close()
    wait_reloaded(box)
    if not antispam_active(box):
        raise BenchError("the Anti-Spam SoftPak is not active after activating the key")
    sent_on = 0

    def warm(mode: str):
        nonlocal sent_on
        measured = drive(box, sink, args.warmup, sessions=min(args.sessions, args.warmup),
                         size=args.size, timeout=args.timeout, local_share=0)
        if not measured["complete"]:
            raise BenchError(f"warm-up ({mode}) incomplete: {measured}")
        if mode == "on":
            sent_on += args.warmup

    warm("on")
    mode_now, failures = "on", []
    for number in range(1, args.rounds + 1):
        for mode in (("on", "off") if number % 2 else ("off", "on")):
            if mode != mode_now:
                switch(box, licence, mode)
                mode_now = mode
                warm(mode)
            measured = measure(box, sink, args, mode, number)
            result["relay"]["rounds"].append(measured)
            if not measured["complete"]:
                failures.append(f"round {number} {mode}: {measured.get('error')}")
                print(f"relay round {number} {mode}: FAILED {measured.get('error')}", flush=True)
                continue
            if mode == "on":
                sent_on += args.messages
            print(f"relay round {number} antispam {mode:3s}: {measured['rate']:8.1f} msg/s "
                  f"(gatebox CPU {measured['gatebox_cpu_ms_per_message']:.2f} ms/msg, "
                  f"load {measured['loadavg']:.1f})", flush=True)
    scored = box.log.read_text(errors="replace").count(" action=")
    box.stop()
    counts = check_counts(box)
    # Part 2's checks count what they found (rules matched, a Bayes band, dkim=none): every
    # message sent while ON must have one of each (warm-ups add more), proof they ran.
    part2 = {name: value for name, value in counts.items()
             if name.split("=", 1)[0] in PART2_CHECKS}
    problems = validate({name: value for name, value in counts.items() if name not in part2},
                        sent_on, zone_health(box))
    for check in PART2_CHECKS:
        seen = sum(value for name, value in part2.items() if name.split("=", 1)[0] == check)
        if seen < sent_on:
            problems.append(f"{check}: {seen} results counted, at least {sent_on} expected")
    summary = summarize(result["relay"]["rounds"])
    summary.pop("goal_met", None)
    summary["goal"] = 0.7
    if summary.get("ratio_on_off") is not None:
        summary["goal_met"] = summary["ratio_on_off"] >= 0.7 and not problems
    result["relay"].update(summary=summary, check_stats=counts, messages_sent_on=sent_on,
                           scored_log_lines=scored)
    return problems, failures


PART2_CHECKS = ("antispam_rules", "bayes", "dkim", "dmarc")


# ---- main ----------------------------------------------------------------------------------
def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", "-n", type=int, default=1000,
                        help="messages scored by each system (default 1000)")
    parser.add_argument("--relay-messages", type=int, default=500,
                        help="messages per relay measurement (default 500; 0: no relay part)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="relay measurements per mode, ON and OFF alternately (default 3)")
    parser.add_argument("--sessions", type=int, default=20, help="relay sessions (default 20)")
    parser.add_argument("--size", type=int, default=5120, help="relay message size (default 5120)")
    parser.add_argument("--warmup", type=int, default=40,
                        help="untimed relay messages first and after each switch (default 40)")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--no-spamd", action="store_true", help="gatebox's scoring alone")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="parent of the temp dir (keep it on a real disk)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir")
    parser.add_argument("--gatebox", default=None, help="gatebox command")
    parser.add_argument("--output", type=Path,
                        default=REPO / "bench" / "results" / "spam_scoring.json")
    args = parser.parse_args(argv)
    if args.messages < 1 or args.rounds < 1 or args.warmup < 1 or args.relay_messages < 0:
        parser.error("counts must be positive")
    return args


def report(result: dict):
    scoring = result.get("scoring", {})
    gate, sa = scoring.get("gatebox"), scoring.get("spamassassin")
    print()
    for name, found in (("gatebox", gate), ("spamd+spamc", sa)):
        if found:
            t = found["timing"]
            print(f"{name:12s} p50 {t['p50_ms']:8.2f} ms  p99 {t['p99_ms']:8.2f} ms  "
                  f"mean {t['mean_ms']:8.2f} ms  ({t['samples']} messages; spam caught "
                  f"{found['accuracy']['spam_caught']}, ham marked {found['accuracy']['ham_marked']})")
    if "ratio" in scoring:
        ratio = scoring["ratio"]
        print(f"spamd/gatebox: p50 {ratio['p50']:.1f}x, p99 {ratio['p99']:.1f}x; goal (p99 below "
              f"spamd's and below 50 ms): {'met' if scoring['goal_met'] else 'NOT met'}")
    relay_summary = result.get("relay", {}).get("summary")
    if relay_summary:
        for mode in ("on", "off"):
            s = relay_summary[mode]
            print(f"relay antispam {mode:3s}: median {s['rate_median']} msg/s, CPU "
                  f"{s['cpu_ms_per_message_median']} ms/msg ({s['rounds_complete']} rounds)")
        if "ratio_on_off" in relay_summary:
            print(f"relay ratio on/off: {relay_summary['ratio_on_off']:.3f} (goal >= 0.7: "
                  f"{'met' if relay_summary.get('goal_met') else 'NOT met'})")
        if "cpu_ratio_off_on" in relay_summary:
            print(f"relay CPU per message, off/on: {relay_summary['cpu_ratio_off_on']:.3f}")
    print(f"status: {result['status']}; result: {result['output']}")


def main(argv=None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("spam_scoring: needs root (dnsmasq, smtp-sink, spamd)", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="gatebox-bench-spam-", dir=args.workdir))
    os.chmod(workdir, 0o755)  # smtp-sink and spamd's children run as other users
    result = {
        "benchmark": "spam_scoring",
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "params": {"messages": args.messages, "measured_seed": MEASURED_SEED,
                   "training": {"seed": TRAINING_SEED, "spam": TRAINING, "ham": TRAINING},
                   "relay_messages": args.relay_messages, "rounds": args.rounds,
                   "sessions": args.sessions, "size": args.size, "warmup": args.warmup,
                   "part2_on": PART2_ON},
        "host": {"cpus": os.cpu_count(), "kernel": platform.release(),
                 "python": platform.python_version(), "workdir_fs": filesystem_of(workdir),
                 "loadavg_start": os.getloadavg()},
        "scoring": {}, "relay": {"rounds": []}, "status": "failed", "output": str(args.output),
    }
    started: list = []
    problems, failures = [], []
    exit_code = 1
    try:
        messages = corpus(args.messages, MEASURED_SEED)
        trained = training()
        result["params"]["mean_message_octets"] = round(statistics.fmean(len(m) for _, m in messages))

        dns = DnsServer(workdir / "dns", SPAM_DOMAINS_DNS + [
            "--host-record=probe.bench.test,127.0.0.1"], probe="probe.bench.test").start()
        started.append(dns)
        store = gatebox_store(workdir / "scoring-data", dns, PART2_ON)
        try:
            learn_all(store, trained)
            print(f"gatebox: scoring {len(messages)} messages in process", flush=True)
            gatebox_scores(store, messages[:20])            # warm: imports, compiled rules
            gate = gatebox_scores(store, messages)
        finally:
            store.close()
        problems += gate["refused"]
        result["scoring"]["gatebox"] = {
            "timing": timings(gate["seconds"]), "checks": gate["checks"],
            "accuracy": accuracy(gate["outcomes"], lambda kind: kind != "accept"),
            "mean_score_spam": round(statistics.fmean(
                s for (is_spam, _), s in zip(gate["outcomes"], gate["scores"]) if is_spam), 2),
            "mean_score_ham": round(statistics.fmean(
                s for (is_spam, _), s in zip(gate["outcomes"], gate["scores"]) if not is_spam), 2)}

        if not args.no_spamd:
            spamd = Spamd(workdir)
            print("spamassassin: training Bayes with sa-learn, starting spamd", flush=True)
            spamd.prepare(trained)
            started.append(spamd)
            spamd.start()
            spamd.scores(messages[:20])                     # warm: the child has compiled its rules
            print(f"spamassassin: scoring {len(messages)} messages through spamc", flush=True)
            sa = spamd.scores(messages)
            problems += sa["errors"][:20]
            result["scoring"]["spamassassin"] = {
                "timing": timings(sa["seconds"]),
                "accuracy": accuracy(sa["outcomes"], bool)}
            spamd.stop()
            g, s = result["scoring"]["gatebox"]["timing"], result["scoring"]["spamassassin"]["timing"]
            result["scoring"]["ratio"] = {"p50": round(s["p50_ms"] / g["p50_ms"], 2),
                                          "p99": round(s["p99_ms"] / g["p99_ms"], 2),
                                          "mean": round(s["mean_ms"] / g["mean_ms"], 2)}
            result["scoring"]["goal_met"] = g["p99_ms"] < s["p99_ms"] and g["p99_ms"] < 50

        if args.relay_messages:
            args.messages = args.relay_messages      # measure() reads it
            more_problems, failures = relay(args, workdir, result, started)
            problems += more_problems
        result["status"] = "invalid" if problems else "incomplete" if failures else "ok"
        if problems:
            result["invalid"] = problems
            print("INVALID run: " + "; ".join(problems[:10]), file=sys.stderr)
        exit_code = 1 if problems or failures else 0
    except (BenchError, OSError, RuntimeError, TimeoutError, subprocess.SubprocessError) as error:
        result["error"] = f"{error.__class__.__name__}: {error}"
        print(f"spam_scoring: {error}", file=sys.stderr)
    finally:
        stop_everything("spam_scoring", None, started, workdir, args.keep, result)
    result["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    result["host"]["loadavg_end"] = os.getloadavg()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    report(result)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
