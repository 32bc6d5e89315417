"""The memory estimate for clamd and the refusal when it does not fit.
/proc/meminfo is handed in as text (a 512 MB box, a 2 GB box); signature
files are sparse, so a "230 MB database" costs no disk."""

from __future__ import annotations

import os

import pytest

from softpaks.antivirus import memory

MB = 1024 * 1024


def meminfo(total_mb: int, available_mb: int | None, free_mb: int = 0, cached_mb: int = 0) -> str:
    lines = [f"MemTotal:       {total_mb * 1024:>8} kB", f"MemFree:        {free_mb * 1024:>8} kB"]
    if available_mb is not None:
        lines.append(f"MemAvailable:   {available_mb * 1024:>8} kB")
    lines += [f"Buffers:        {1024:>8} kB", f"Cached:         {cached_mb * 1024:>8} kB",
              "SwapCached:            0 kB", "HugePages_Total:       0", "Hugepagesize:       2048 kB"]
    return "\n".join(lines) + "\n"


def sparse(path, size: int):
    with open(path, "wb") as handle:
        handle.truncate(size)
    return path


@pytest.fixture
def db(tmp_path):
    directory = tmp_path / "signatures"
    directory.mkdir()
    return directory


def full_database(directory):
    """The sizes of the official files as freshclam fetches them."""
    sparse(directory / "main.cvd", 163 * MB)
    sparse(directory / "daily.cvd", 62 * MB)
    sparse(directory / "bytecode.cvd", MB // 3)


def test_total_and_available_come_from_meminfo():
    text = meminfo(total_mb=512, available_mb=300, free_mb=120)
    assert memory.total_memory(text) == 512 * MB
    assert memory.available_memory(text) == 300 * MB


def test_without_memavailable_free_memory_and_page_cache_count():
    text = meminfo(total_mb=512, available_mb=None, free_mb=100, cached_mb=50)
    assert memory.available_memory(text) == (100 + 1 + 50) * MB


def test_this_machines_meminfo_is_read_when_no_text_is_given():
    assert memory.total_memory() == os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert 0 < memory.available_memory() <= memory.total_memory()


def test_the_estimate_is_clamds_base_plus_a_factor_of_the_signature_files(db):
    assert memory.needed_memory(db) == memory.CLAMD_BASE_BYTES
    sparse(db / "main.cvd", 100 * MB)
    sparse(db / "daily.cld", 40 * MB)
    sparse(db / "local.hdb", 4 * MB)
    # Not signatures: freshclam's own state and stray files are not loaded.
    sparse(db / "freshclam.dat", 50 * MB)
    sparse(db / "notes.txt", 50 * MB)
    assert memory.signature_bytes(db) == 144 * MB
    assert memory.needed_memory(db) == memory.CLAMD_BASE_BYTES + 5 * 100 * MB + 2.5 * 44 * MB


def test_the_full_database_comes_to_about_what_clamav_needs_resident(db):
    full_database(db)
    assert 1100 * MB <= memory.needed_memory(db) <= 1300 * MB


def test_the_full_database_is_refused_on_a_512_mb_box_with_the_figures(db):
    full_database(db)
    ok, message = memory.check(db, meminfo(total_mb=512, available_mb=380))
    assert ok is False
    assert message.startswith("Not enough memory to scan for viruses")
    assert "512 MB" in message and "380 MB" in message and "96 MB" in message
    assert f"{memory.needed_memory(db) / MB:,.0f} MB" in message


def test_the_tiny_test_database_fits_a_512_mb_box(db):
    (db / "gatebox-test.hdb").write_text("44d88612fea8a8f36de82e1278abb02f:68:Gatebox.Test.EICAR\n")
    ok, message = memory.check(db, meminfo(total_mb=512, available_mb=380))
    assert ok is True
    assert message.startswith("Enough memory")


def test_the_mail_stacks_reserve_is_kept_free(db):
    full_database(db)
    needed = memory.needed_memory(db)
    just_enough = -(-(needed + memory.MAIL_STACK_RESERVE_BYTES) // (1024 * 1024))  # MB, rounded up
    assert memory.check(db, meminfo(total_mb=4096, available_mb=just_enough))[0] is True
    short_by_the_reserve = (needed + memory.MAIL_STACK_RESERVE_BYTES) // MB - 1
    assert memory.check(db, meminfo(total_mb=4096, available_mb=short_by_the_reserve))[0] is False
    assert memory.check(db, meminfo(total_mb=4096, available_mb=needed // MB + 1))[0] is False


def test_a_running_clamds_own_memory_counts_as_available_to_it(db):
    full_database(db)
    # Loaded, clamd has taken most of the 2 GB box's free memory: keep it.
    busy = meminfo(total_mb=2048, available_mb=400)
    assert memory.check(db, busy)[0] is False
    assert memory.check(db, busy, resident=1200 * MB)[0] is True
