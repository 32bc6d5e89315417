"""The memory the smtpd processes share: counts and remembered messages
written by one process are read by another, a restarted process starts
from nothing, and a half-written entry is never taken for a real one."""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys

from firmware.mail import smtpd_shared
from firmware.mail.duplicates import DuplicateFilter
from firmware.mail.smtpd_shared import SharedConnections, SharedDuplicates, SharedRegion
from firmware.run.smtpd_workers import default_processes

# Runs in a second process with the region's descriptor inherited, as a worker does.
OTHER_PROCESS = """
import sys
from firmware.mail.smtpd_shared import SharedConnections, SharedDuplicates, SharedRegion
fd, part, action = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
region = SharedRegion(fd, 2, part)
if action == "open":
    connections = SharedConnections(region)
    for ip in ("192.0.2.1", "192.0.2.1", "198.51.100.7"):
        connections.opened(ip)
    duplicates = SharedDuplicates(region)
    key = duplicates.key("192.0.2.1", "a@example.org", ["b@example.com"], "<m@x>", b"body")
    duplicates.remember(key, "ABCDEF0123456789012", 1000.0)
"""


def _other_process(fd: int, part: int, action: str):
    subprocess.run([sys.executable, "-c", OTHER_PROCESS, str(fd), str(part), action],
                   check=True, pass_fds=(fd,))


def _key():
    return DuplicateFilter().key("192.0.2.1", "a@example.org", ["b@example.com"], "<m@x>", b"body")


def test_what_one_process_counts_and_remembers_the_other_reads():
    fd = smtpd_shared.create(2)
    here = SharedRegion(fd, 2, 0)
    connections, duplicates = SharedConnections(here), SharedDuplicates(here)
    connections.opened("192.0.2.1")
    _other_process(fd, 1, "open")
    assert connections.from_host("192.0.2.1") == 3
    assert connections.from_host("198.51.100.7") == 1
    assert connections.from_host("203.0.113.9") == 0
    assert connections.total() == 4
    assert duplicates.lookup(_key(), 1010.0) == "ABCDEF0123456789012"
    assert duplicates.lookup(_key(), 1000.0 + duplicates.window + 1) is None
    # The other process restarted in its part: what it held is gone.
    _other_process(fd, 1, "start")
    assert connections.from_host("192.0.2.1") == 1
    assert connections.total() == 1
    assert duplicates.lookup(_key(), 1010.0) is None
    here.close()


def test_a_count_is_never_below_the_truth_and_closing_brings_it_back():
    fd = smtpd_shared.create(1)
    region = SharedRegion(fd, 1, 0)
    connections = SharedConnections(region)
    # More clients than buckets: collisions in plenty, and still no count too low.
    clients = [str(ipaddress.IPv4Address(0xC0000200 + n)) for n in range(3 * smtpd_shared.BUCKETS)]
    for n, ip in enumerate(clients):
        for _ in range(1 + n % 3):
            connections.opened(ip)
    assert all(connections.from_host(ip) >= 1 + n % 3 for n, ip in enumerate(clients))
    assert connections.total() == sum(1 + n % 3 for n in range(len(clients)))
    for n, ip in enumerate(clients):
        for _ in range(1 + n % 3):
            connections.closed(ip)
    assert connections.total() == 0
    assert all(connections.from_host(ip) == 0 for ip in clients[:100])
    region.close()


def test_a_half_written_entry_reads_as_not_there():
    fd = smtpd_shared.create(1)
    region = SharedRegion(fd, 1, 0)
    duplicates = SharedDuplicates(region)
    duplicates.remember(_key(), "ABCDEF0123456789012", 1000.0)
    assert duplicates.lookup(_key(), 1001.0) == "ABCDEF0123456789012"
    at = region.entries_at[0] + duplicates._slot(duplicates._digest(_key())) * 64  # noqa: SLF001
    region.map[at + 30] ^= 0xFF  # in the queue id: as if read in the middle of a write
    assert duplicates.lookup(_key(), 1001.0) is None
    region.close()


def test_a_part_outside_the_region_is_refused():
    fd = smtpd_shared.create(2)
    try:
        SharedRegion(fd, 2, 2)
    except ValueError as error:
        assert "part 2 of 2" in str(error)
    else:
        raise AssertionError("part 2 of a region for two processes was accepted")


def test_a_box_of_256_mb_keeps_one_smtpd_process_and_a_bigger_one_gets_one_per_core(tmp_path):
    small, big = tmp_path / "small", tmp_path / "big"
    small.write_text("MemTotal:         246512 kB\nMemFree:          100000 kB\n")
    big.write_text("MemTotal:        2048000 kB\nMemFree:          100000 kB\n")
    assert default_processes(str(small)) == 1
    assert default_processes(str(big)) == min(4, len(os.sched_getaffinity(0)))
