"""Signature files brought to the box by hand (upload, USB stick, `gatebox
antivirus import`): checked, then placed durably in clamd's DatabaseDirectory.

Nothing about a file is trusted: its name only chooses among the names a
database may have, its size is capped before it is read, a container's
header must parse and ClamAV's own `sigtool --info` must verify it (for a
.cvd that is ClamAV's digital signature), and local signature lines must have
the syntax of their kind. A file is checked as a copy in the SoftPak's own
incoming directory, so a stick or upload changing under us changes nothing,
and it reaches the signature directory by one rename.

Kinds:
  .cvd/.cld  ClamAV's databases (signed .cvd; .cld as freshclam leaves it)
  .cud       an unsigned container built locally (`sigtool --build --unsigned`)
  .cdiff     an incremental update, applied to the unpacked base database
             with `sigtool --run-cdiff`; refused when the base is missing
  .hdb/.ndb  local hash and body signatures
"""

from __future__ import annotations

import dataclasses
import datetime
import io
import os
import re
import secrets
import shutil
import stat
import subprocess
import tarfile
from pathlib import Path

from firmware.system import durable

from . import paths
from .clamd_client import Clamd, ScannerUnavailable, parse_version

HEADER_SIZE = 512
MAGIC = b"ClamAV-VDB:"
CONTAINERS = (".cvd", ".cld", ".cud")
LOCAL_KINDS = (".hdb", ".ndb")
CDIFF = ".cdiff"
USB_OFFER_KIND = "signatures"
# main.cvd is about 160 MB today; leave room for growth, never unbounded.
MAX_CONTAINER = 512 * 1024 * 1024
MAX_CDIFF = 32 * 1024 * 1024
MAX_LOCAL = 16 * 1024 * 1024
MAX_LINE = 8192
TOOL_SECONDS = 300
COPY_CHUNK = 1024 * 1024

# Database names as ClamAV and cvdupdate name them (daily, main, bytecode,
# safebrowsing, a third party's "foo_bar"): no dots, no slashes.
DATABASE_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
LOCAL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
CDIFF_NAME = re.compile(r"([a-z][a-z0-9_]{0,31})-([0-9]{1,9})\.cdiff")

SIGNATURE_NAME = r"[A-Za-z0-9][A-Za-z0-9._\-/+!]{0,127}"
HDB_LINE = re.compile(rf"(?:[0-9a-fA-F]{{32}}|[0-9a-fA-F]{{40}}|[0-9a-fA-F]{{64}}):(?:[0-9]{{1,12}}|\*)"
                      rf":{SIGNATURE_NAME}(?::[0-9]{{1,4}}){{0,2}}")
NDB_OFFSET = r"(?:\*|[0-9]{1,10}|EOF-[0-9]{1,10}|EP[+-][0-9]{1,10}|S[0-9]{1,3}\+[0-9]{1,10}|SL\+[0-9]{1,10}|SE[0-9]{1,3})(?:,[0-9]{1,10})?"
NDB_BODY = r"[0-9a-fA-F?*(){}|\[\]\-!,~LBWlbw#]{2,}"
NDB_LINE = re.compile(rf"{SIGNATURE_NAME}:(?:[0-9]|1[0-4]):{NDB_OFFSET}:{NDB_BODY}(?::[0-9]{{1,4}}){{0,2}}")
LINE_SYNTAX = {".hdb": HDB_LINE, ".ndb": NDB_LINE}


class SignatureError(ValueError):
    """A signature file refused, with the reason for the administrator."""


@dataclasses.dataclass(frozen=True)
class Header:
    built: str
    version: int
    signatures: int
    functionality_level: int
    builder: str
    date: datetime.datetime | None


@dataclasses.dataclass(frozen=True)
class Imported:
    source: str          # the name it came with, for messages
    name: str            # the name in the signature directory
    kind: str            # "database", "update" (a .cdiff applied) or "local"
    version: int | None = None
    signatures: int | None = None

    def describe(self) -> str:
        if self.kind == "local":
            return f"{self.name}: {self.signatures} local signature(s)"
        what = "updated to" if self.kind == "update" else "version"
        return f"{self.name}: {what} {self.version} ({self.signatures} signatures)"


@dataclasses.dataclass(frozen=True)
class DatabaseFile:
    name: str
    size: int
    version: int | None
    date: datetime.datetime | None


@dataclasses.dataclass(frozen=True)
class Status:
    engine: str
    signature_version: int | None
    signature_date: datetime.datetime | None
    files: list[DatabaseFile]
    state: str              # "running", "not running", "no signatures"
    clamd_version: str = ""

    @property
    def age(self) -> datetime.timedelta | None:
        if self.signature_date is None:
            return None
        return datetime.datetime.now(datetime.timezone.utc) - self.signature_date

    @property
    def stale(self) -> bool:
        age = self.age
        return age is None or age > datetime.timedelta(days=3)


# ---- headers -------------------------------------------------------------------
def parse_header(raw: bytes) -> Header:
    """The 512-byte header of a .cvd/.cld/.cud:
    ClamAV-VDB:build time:version:signatures:functionality level:md5:dsig:builder:build seconds"""
    if len(raw) < HEADER_SIZE or not raw.startswith(MAGIC):
        raise SignatureError("not a ClamAV database (no ClamAV-VDB header)")
    try:
        text = raw[:HEADER_SIZE].decode("ascii").rstrip(" \0\n")
    except UnicodeDecodeError:
        raise SignatureError("the database header is not plain text") from None
    fields = text.split(":")
    if len(fields) < 8 or not all(f.isdigit() for f in fields[2:5]):
        raise SignatureError("the database header is malformed")
    version, count, level = (int(f) for f in fields[2:5])
    date = None
    if len(fields) > 8 and fields[8].isdigit() and len(fields[8]) <= 12:
        try:
            date = datetime.datetime.fromtimestamp(int(fields[8]), datetime.timezone.utc)
        except (OverflowError, OSError, ValueError):
            date = None
    return Header(fields[1][:40], version, count, level, fields[7][:40], date)


def read_header(path) -> Header:
    with _open_regular(Path(path)) as handle:
        return parse_header(handle.read(HEADER_SIZE))


# ---- import ----------------------------------------------------------------------
def import_files(data_dir, sources, *, reload: bool = True) -> list[Imported]:
    """Check every file first, then install them: a refusal of one leaves the
    signature directory as it was. Asks a running clamd to reload."""
    db_dir = durable.make_directories(paths.db_dir(data_dir), 0o755)
    incoming = _fresh_incoming(data_dir)
    try:
        staged = [_stage(Path(source), incoming, db_dir) for source in sources]
        imported = [_install(item, db_dir) for item in staged]
    finally:
        shutil.rmtree(incoming, ignore_errors=True)
    if reload and imported:
        reload_clamd(data_dir)
    return imported


def apply_usb_offer(store, offer) -> list[str]:
    """A signature file on a USB stick, confirmed by the administrator."""
    if offer.kind != USB_OFFER_KIND:
        return []
    imported = import_files(store.data_dir, [offer.path], reload=False)
    return [f"Imported from USB: {item.describe()}" for item in imported] + [
        reload_clamd(store.data_dir)]


def reload_clamd(data_dir) -> str:
    """Tells a running clamd to load the signature directory again."""
    try:
        Clamd(paths.socket_path(data_dir), timeout=10.0).reload_sync()
    except ScannerUnavailable:
        return "clamd is not running; it loads the new signatures when it starts"
    return "clamd is reloading the signatures"


@dataclasses.dataclass
class _Staged:
    source: str
    path: Path            # the checked copy, ready to be renamed into place
    imported: Imported
    replaces: list[str]   # names in the signature directory it supersedes


def _fresh_incoming(data_dir) -> Path:
    base = durable.make_directories(paths.antivirus_dir(data_dir) / "incoming", 0o700)
    incoming = base / secrets.token_hex(6)
    incoming.mkdir(mode=0o700)
    return incoming


def _stage(source: Path, incoming: Path, db_dir: Path) -> _Staged:
    shown = _shown(source.name)
    suffix = Path(source.name.lower()).suffix
    try:
        if suffix in CONTAINERS:
            return _stage_container(source, shown, suffix, incoming, db_dir)
        if suffix == CDIFF:
            return _stage_cdiff(source, shown, incoming, db_dir)
        if suffix in LOCAL_KINDS:
            return _stage_local(source, shown, suffix, incoming)
    except SignatureError as error:
        raise SignatureError(f"{shown}: {error}") from None
    except OSError as error:
        raise SignatureError(f"{shown}: cannot read it ({error.strerror or error})") from None
    raise SignatureError(f"{shown}: not a signature file (.cvd, .cld, .cud, .cdiff, .hdb, .ndb)")


def _stage_container(source, shown, suffix, incoming, db_dir) -> _Staged:
    stem = Path(source.name.lower()).stem
    if not DATABASE_NAME.fullmatch(stem):
        raise SignatureError("a database is named like daily.cvd or main.cvd")
    name = stem + suffix
    copy = _copy_in(source, incoming / name, MAX_CONTAINER)
    header = read_header(copy)
    _verify_with_sigtool(copy, header)
    current = _installed_version(db_dir, stem)
    if current is not None and header.version < current[1]:
        raise SignatureError(f"version {header.version} is older than the installed "
                             f"{current[0]} (version {current[1]})")
    replaces = [stem + other for other in CONTAINERS if other != suffix]
    return _Staged(shown, copy, Imported(shown, name, "database", header.version,
                                         header.signatures), replaces)


def _stage_cdiff(source, shown, incoming, db_dir) -> _Staged:
    match = CDIFF_NAME.fullmatch(source.name.lower())
    if not match:
        raise SignatureError("an incremental update is named like daily-27500.cdiff")
    stem, version = match.group(1), int(match.group(2))
    base = _installed_version(db_dir, stem)
    if base is None:
        raise SignatureError(f"it updates the {stem} database, which this box does not have: "
                             f"import the full {stem}.cvd first")
    if base[1] != version - 1:
        raise SignatureError(f"it updates {stem} version {version - 1}, but this box has "
                             f"version {base[1]} ({base[0]}): import {stem}-{base[1] + 1}.cdiff "
                             f"or the full {stem}.cvd")
    cdiff = _copy_in(source, incoming / f"{stem}-{version}.cdiff", MAX_CDIFF)
    unpacked = incoming / "unpacked"
    unpacked.mkdir()
    _sigtool(["--unpack", str(db_dir / base[0])], cwd=unpacked,
             failure=f"the installed {base[0]} could not be unpacked")
    _sigtool(["--run-cdiff", str(cdiff)], cwd=unpacked,
             failure="ClamAV refused to apply it (a damaged or unsigned update)")
    built = _build_cld(unpacked, incoming / f"{stem}.cld", stem)
    header = read_header(built)
    if header.version != version:
        raise SignatureError(f"applied, it says version {header.version}, not {version}")
    _verify_with_sigtool(built, header)
    replaces = [stem + other for other in CONTAINERS if other != ".cld"]
    return _Staged(shown, built, Imported(shown, f"{stem}.cld", "update", header.version,
                                          header.signatures), replaces)


def _stage_local(source, shown, suffix, incoming) -> _Staged:
    stem = Path(source.name).stem
    if not LOCAL_NAME.fullmatch(stem):
        raise SignatureError("a local signature file is named with letters, digits, - and _ "
                             "only, like office.hdb")
    name = stem + suffix
    copy = _copy_in(source, incoming / name, MAX_LOCAL)
    count = _check_lines(copy.read_bytes(), LINE_SYNTAX[suffix], suffix)
    return _Staged(shown, copy, Imported(shown, name, "local", None, count), [])


def _check_lines(raw: bytes, syntax: re.Pattern, suffix: str) -> int:
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise SignatureError(f"a {suffix} file is plain ASCII text") from None
    count = 0
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if len(line) > MAX_LINE or not syntax.fullmatch(line):
            raise SignatureError(f"line {number} is not a {suffix} signature: {_shown(line[:60])}")
        count += 1
    if count == 0:
        raise SignatureError("it holds no signatures")
    return count


def _install(item: _Staged, db_dir: Path) -> Imported:
    os.replace(item.path, db_dir / item.imported.name)
    for name in item.replaces:
        try:
            os.unlink(db_dir / name)
        except FileNotFoundError:
            pass
    durable.sync_directory(db_dir)
    return item.imported


# ---- helpers ---------------------------------------------------------------------
def _shown(name: str) -> str:
    """A name as messages may show it: printable, short."""
    cleaned = "".join(c if c.isprintable() and c not in "\r\n" else "?" for c in name)
    return cleaned[:80] or "?"


def _open_regular(path: Path):
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise SignatureError("not a regular file")
    return os.fdopen(fd, "rb")


def _copy_in(source: Path, target: Path, limit: int) -> Path:
    """Copies at most `limit` bytes, refusing a larger file; fsync'd."""
    with _open_regular(source) as reader:
        if os.fstat(reader.fileno()).st_size > limit:
            raise SignatureError(f"larger than the {limit // (1024 * 1024)} MB allowed")
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o644)
        with os.fdopen(fd, "wb") as writer:
            copied = 0
            while chunk := reader.read(COPY_CHUNK):
                copied += len(chunk)
                if copied > limit:  # it grew while we read
                    raise SignatureError(f"larger than the {limit // (1024 * 1024)} MB allowed")
                writer.write(chunk)
            writer.flush()
            os.fsync(writer.fileno())
    return target


def _sigtool(arguments: list[str], *, cwd=None, failure: str) -> str:
    try:
        done = subprocess.run(["sigtool", *arguments], cwd=cwd, capture_output=True, text=True,
                              errors="replace", timeout=TOOL_SECONDS)
    except FileNotFoundError:
        raise SignatureError("ClamAV's sigtool is not installed on this box") from None
    except subprocess.TimeoutExpired:
        raise SignatureError(f"{failure} (sigtool took too long)") from None
    output = done.stdout + done.stderr
    if done.returncode != 0 or "ERROR" in output:
        reason = next((line.split("ERROR:", 1)[1].strip() for line in output.splitlines()
                       if "ERROR:" in line), "")
        raise SignatureError(f"{failure}{': ' + _shown(reason) if reason else ''}")
    return output


def _verify_with_sigtool(path: Path, header: Header) -> None:
    output = _sigtool([f"--info={path}"], failure="ClamAV's check of the database failed")
    if f"Version: {header.version}" not in output:
        raise SignatureError("ClamAV's check of the database does not match its header")


def _installed_version(db_dir: Path, stem: str) -> tuple[str, int] | None:
    """The newest installed container of that database: (file name, version)."""
    found = []
    for suffix in CONTAINERS:
        path = db_dir / (stem + suffix)
        try:
            found.append((read_header(path).version, path.name))
        except (OSError, SignatureError):
            continue
    if not found:
        return None
    version, name = max(found)
    return name, version


def _build_cld(unpacked: Path, target: Path, stem: str) -> Path:
    """What freshclam makes of a database with a .cdiff applied: the new
    <stem>.info's first line as the header, then a tar of the files with the
    .info first."""
    info = unpacked / f"{stem}.info"
    try:
        first = info.read_bytes().split(b"\n", 1)[0].strip()
    except OSError:
        raise SignatureError(f"the update left no {stem}.info") from None
    if not first.startswith(MAGIC) or len(first) > HEADER_SIZE:
        raise SignatureError(f"the updated {stem}.info has no database header")
    names = sorted(p.name for p in unpacked.iterdir() if p.is_file() and p.name != info.name)
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name in [info.name] + names:
            tar.add(unpacked / name, arcname=name, recursive=False)
    with open(target, "wb") as out:
        out.write(first.ljust(HEADER_SIZE, b" "))
        out.write(archive.getvalue())
        out.flush()
        os.fsync(out.fileno())
    return target


# ---- status ----------------------------------------------------------------------
def engine_version() -> str:
    try:
        done = subprocess.run(["sigtool", "--version"], capture_output=True, text=True,
                              timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    engine = done.stdout.strip().split("/", 1)[0]
    return engine[len("ClamAV "):] if engine.startswith("ClamAV ") else engine


def database_files(data_dir) -> list[DatabaseFile]:
    found = []
    for path in paths.signature_files(paths.db_dir(data_dir)):
        header = None
        if path.suffix.lower() in CONTAINERS:
            try:
                header = read_header(path)
            except (OSError, SignatureError):
                header = None
        found.append(DatabaseFile(path.name, path.stat().st_size,
                                  header.version if header else None,
                                  header.date if header else None))
    return found


def status(data_dir, clamd: Clamd | None = None) -> Status:
    """Engine and signature versions: clamd's own answer when it runs, else
    the newest daily database's header (and the installed sigtool)."""
    files = database_files(data_dir)
    daily = [f for f in files if Path(f.name).stem == "daily" and f.version is not None]
    newest = max(daily, key=lambda f: f.version, default=None)
    version = newest.version if newest else None
    date = newest.date if newest else None
    clamd = clamd or Clamd(paths.socket_path(data_dir), timeout=3.0)
    try:
        raw = clamd.version_sync()
    except ScannerUnavailable:
        raw, state, engine = "", ("not running" if files else "no signatures"), ""
    else:
        state = "running"
        engine, running_version, running_date = parse_version(raw)
        # clamd reports the daily .cvd/.cld it loaded; a local .cud it does not name.
        if running_version is not None and (version is None or running_version >= version):
            version, date = running_version, running_date or date
    return Status(engine or engine_version(), version, date, files, state, raw)
