"""A login storm on the firmware image in a 256 MB guest: twenty IMAP logins
at once, ten for each of two users (STARTTLS, LOGIN, SELECT INBOX, LOGOUT) against the Mail Server
SoftPak's Dovecot, with every service of the box running. Reported: how many
logins succeeded, their p50/p99 and the storm's wall time, and the guest's
own memory figures across it (the balloon driver's statistics: the lowest
available memory, and the major page faults the storm caused, which is what
thrashing looks like), and whether the kernel killed anything for memory.

    python bench/image_logins.py [--memory 256] [--logins 20] [--rounds 3] [--accel auto|kvm|tcg]

The box is set up as an office would, in the web admin (Chromium): the
first-boot setup, the Mail Server license, the two users, and the server type
Stand-alone. A third user's login shows Dovecot ready, so the first round's
two users have had no login yet: their first checks run scrypt, later ones
find the verification remembered (firmware/verified_passwords.py). Writes
bench/results/image-logins-<arch>.json, and the guest's console and the box's
journal beside it (image-logins-console-<arch>.txt, image-logins-journal-<arch>.txt);
the JSON sums up the auth service's lines about slow logins (a turn's wait
and the check's time) per round."""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

TOP = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TOP))
sys.path.insert(0, str(TOP / "qemu"))
import boot  # noqa: E402
from tests.support import chromium  # noqa: E402
from tests.support.net import wait_until  # noqa: E402
from tests.system.conftest import (add_user, finish_first_boot_setup,  # noqa: E402
                                   imap_login_storm, issue_license)

# Dovecot takes 10 sessions per user and address (mail_max_userip_connections):
# the storm comes from two users, ten logins each.
USERS = [("bob", "bob's mailbox pw"), ("carol", "carol's mailbox pw")]
READY_USER = ("dave", "dave's mailbox pw")
SLOW_LOGIN = re.compile(r"^\[\s*([0-9.]+)\].*checkpassword: a login from \S+ waited ([0-9.]+)s "
                        r"for a turn and was checked in ([0-9.]+)s")
MB = 1024 * 1024


def set_up(machine: boot.Machine, profile: Path):
    admin_url = f"https://127.0.0.1:{machine.ports['https']}"
    with chromium.driver() as driver:
        context = chromium.launch(driver, profile, timeout_ms=120_000)
        try:
            page = context.pages[0] if context.pages else context.new_page()
            finish_first_boot_setup(page, machine, admin_url)
            page.goto(admin_url + "/system/licenses")
            serial = page.locator("#serial").inner_text().strip()
            page.fill("#key", issue_license(serial, "mailserver"))
            page.click("button[name=activate]")
            page.locator(".flash.ok").wait_for()
            for user, password in USERS + [READY_USER]:
                add_user(page, admin_url, user, password)
            page.goto(admin_url + "/email-server/settings")
            page.select_option("#email__server_type", "standalone")
            page.click("button[name=apply]")
            page.locator(".flash.ok").wait_for()
        finally:
            context.close()


def storm(machine: boot.Machine, logins: int) -> dict:
    watched, stop = [], threading.Event()

    def watch():
        while not stop.is_set():
            figures = machine.guest_memory()
            if figures:
                watched.append(figures)
    before = machine.guest_memory()
    watcher = threading.Thread(target=watch)
    watcher.start()
    started = time.monotonic()
    try:
        results = imap_login_storm(machine.ports["imap"],
                                   [USERS[n % len(USERS)] for n in range(logins)])
    finally:
        wall = time.monotonic() - started
        stop.set()
        watcher.join(30)
    after = machine.guest_memory()
    seconds = sorted(s for ok, s, _ in results if ok)
    available = [f["stat-available-memory"] for f in watched + [after]
                 if "stat-available-memory" in f]
    return {
        "logins": logins,
        "succeeded": len(seconds),
        "wall_s": round(wall, 2),
        "p50_s": round(statistics.median(seconds), 2) if seconds else None,
        "p99_s": round(seconds[min(len(seconds) - 1, int(len(seconds) * 0.99))], 2) if seconds else None,
        "lowest_available_mb": round(min(available) / MB, 1) if available else None,
        "available_before_mb": round(before.get("stat-available-memory", 0) / MB, 1),
        "errors": sorted({error for ok, _, error in results if not ok}),
        "major_faults": (after.get("stat-major-faults", 0) - before.get("stat-major-faults", 0)
                         if before and after else None),
    }


def oom_task_tables(console: str) -> list[list[str]]:
    """The kernel's table of every task at each OOM kill (vm.oom_dump_tasks):
    which processes held the memory, in pages (rss) and bytes (pgtables)."""
    tables, current = [], None
    for line in console.splitlines():
        text = line.split("] ", 1)[-1].strip() if line.lstrip().startswith("[") else line.strip()
        if text.startswith("Tasks state (memory values in pages)"):
            current = []
            tables.append(current)
        elif current is not None and text.startswith("["):
            current.append(text)
        elif current is not None and current:
            current = None
    return tables


def slow_logins(lines: list[tuple[float, float, float]]) -> dict:
    """The auth service's slow logins (journal time, wait for a turn, check):
    whether a storm waits in the queue or in the checks."""
    if not lines:
        return {"count": 0}
    waits, checks = sorted(w for _, w, _ in lines), sorted(c for _, _, c in lines)
    return {"count": len(lines), "wait_max_s": waits[-1], "wait_median_s": statistics.median(waits),
            "check_max_s": checks[-1], "check_median_s": statistics.median(checks),
            "lines": [list(line) for line in lines]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="x86_64")
    parser.add_argument("--memory", type=int, default=256)
    parser.add_argument("--logins", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--accel", default="auto", choices=("auto", "kvm", "tcg"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="gatebox-bench-logins-") as scratch:
        machine = boot.Machine(Path(scratch), args.arch, memory_mb=args.memory, accel=args.accel,
                               memory_stats=True,
                               seed={"email.domain": "example.com"})
        try:
            machine.start_first_boot()
            health = machine.wait_healthy(900)
            set_up(machine, Path(scratch) / "chromium")
            wait_until(lambda: imap_login_storm(machine.ports["imap"], [READY_USER])[0][0],
                       timeout=300, interval=2, what="dave's first IMAP login")
            rounds = [storm(machine, args.logins) for _ in range(args.rounds)]
            console = machine.console().decode(errors="replace")
        finally:
            machine.stop()
        journal = machine.data_journal(Path(scratch) / "journal.txt").read_text(errors="replace")
    slow = [tuple(float(v) for v in m.groups()) for m in map(SLOW_LOGIN.match, journal.splitlines())
            if m]
    results = {"arch": args.arch, "accel": machine.accel, "memory_mb": args.memory,
               "health_at_boot": health.strip(), "rounds": rounds,
               "out_of_memory_kills": console.count("Out of memory: Killed process"),
               "out_of_memory_lines": [line.strip() for line in console.splitlines()
                                       if "Out of memory" in line or "invoked oom-killer" in line],
               "out_of_memory_tasks": oom_task_tables(console),
               "slow_logins": slow_logins(slow)}
    out = TOP / "bench" / "results" / f"image-logins-{args.arch}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    # The whole console, for what the figures do not say (the kernel's
    # memory report at a kill, the services' own lines).
    out.with_name(f"image-logins-console-{args.arch}.txt").write_text(console)
    out.with_name(f"image-logins-journal-{args.arch}.txt").write_text(journal)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    print(f"{args.logins} IMAP logins at once in a {args.memory} MB guest ({machine.accel}): "
          + "; ".join(f"{r['succeeded']}/{r['logins']} in {r['wall_s']} s, p99 {r['p99_s']} s, "
                      f"lowest available {r['lowest_available_mb']} MB, "
                      f"{r['major_faults']} major faults" for r in rounds)
          + f"; OOM kills: {results['out_of_memory_kills']}")
    return 0 if all(r["succeeded"] == r["logins"] for r in rounds) else 1


if __name__ == "__main__":
    sys.exit(main())
