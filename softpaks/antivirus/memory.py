"""Whether the box has the memory for clamd and its signatures.

clamd keeps every signature in memory. The figures are an estimate, made
from the size of the signature files, not a measurement:

- clamd itself, with no signatures: about 40 MB;
- a compressed official database (.cvd): about 5 times its file size once
  loaded (the full database, ~230 MB of .cvd files, takes ~1.2 GB resident);
- unpacked databases (.cld after incremental updates) and local signature
  files: about 2.5 times their size.

clamd runs with ConcurrentDatabaseReload off, so a reload frees the old
signatures before loading the new ones and the peak stays at the figure
above, instead of twice it. A reserve (96 MB) stays free for the mail stack
(smtpd, the queue manager, the web admin), and clamd's OOM score makes it
the one the kernel stops if memory runs out anyway.

The figures come from /proc/meminfo, i.e. the whole machine: a container's
own memory limit (cgroups) is not taken into account."""

from __future__ import annotations

from pathlib import Path

from .paths import signature_files

MB = 1024 * 1024
CLAMD_BASE_BYTES = 40 * MB
COMPRESSED_FACTOR = 5.0
UNPACKED_FACTOR = 2.5
COMPRESSED_SUFFIXES = (".cvd",)
MAIL_STACK_RESERVE_BYTES = 96 * MB
MEMINFO = Path("/proc/meminfo")


def _meminfo(meminfo: str | None) -> dict[str, int]:
    """{field: bytes} from the text of /proc/meminfo (read now unless given)."""
    text = MEMINFO.read_text() if meminfo is None else meminfo
    fields = {}
    for line in text.splitlines():
        name, _, value = line.partition(":")
        parts = value.split()
        if parts and parts[0].isdigit():
            unit = parts[1].lower() if len(parts) > 1 else ""
            fields[name.strip()] = int(parts[0]) * (1024 if unit == "kb" else 1)
    return fields


def total_memory(meminfo: str | None = None) -> int:
    """The machine's memory in bytes (MemTotal)."""
    return _meminfo(meminfo).get("MemTotal", 0)


def available_memory(meminfo: str | None = None) -> int:
    """Memory in bytes that can be had without swapping (MemAvailable; on
    kernels without it, free memory plus page cache)."""
    fields = _meminfo(meminfo)
    if "MemAvailable" in fields:
        return fields["MemAvailable"]
    return sum(fields.get(name, 0) for name in ("MemFree", "Buffers", "Cached"))


def signature_bytes(db_dir) -> int:
    """The size on disk of the signature files clamd would load."""
    return sum(path.stat().st_size for path in signature_files(db_dir))


def needed_memory(db_dir) -> int:
    """The estimated resident size in bytes of clamd with these signatures
    (see the module's description for the figures)."""
    needed = float(CLAMD_BASE_BYTES)
    for path in signature_files(db_dir):
        factor = COMPRESSED_FACTOR if path.suffix.lower() in COMPRESSED_SUFFIXES else UNPACKED_FACTOR
        needed += factor * path.stat().st_size
    return int(needed)


def megabytes(count: int) -> str:
    return f"{count / MB:,.0f} MB"


def check(db_dir, meminfo: str | None = None, resident: int = 0) -> tuple[bool, str]:
    """(ok, message): whether clamd may run with the signatures in `db_dir`.
    Refused when its estimated need exceeds the available memory less the
    mail stack's reserve. `resident` is what an already running clamd holds
    (it is available to its replacement); `meminfo` the text of /proc/meminfo
    (read now unless given)."""
    needed = needed_memory(db_dir)
    available = available_memory(meminfo) + resident
    total = total_memory(meminfo)
    spare = available - MAIL_STACK_RESERVE_BYTES
    figures = (f"the scanner needs about {megabytes(needed)} for these signatures; the box has "
               f"{megabytes(available)} available of {megabytes(total)}, and keeps "
               f"{megabytes(MAIL_STACK_RESERVE_BYTES)} for the mail stack")
    if needed > spare:
        return False, (f"Not enough memory to scan for viruses: {figures}. Add memory, or "
                       "use a smaller signature database.")
    return True, f"Enough memory: {figures}."
