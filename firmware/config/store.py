"""The settings database: one SQLite file on the data partition, opened
through sqlite-utils. A change is one transaction that also bumps the
generation number running services watch to reload.

Opening a store only checks that the schema is current; the migrations run
at `gatebox init` (Store.create) and when the box starts (Store.upgrade)."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from firmware import licensing, plugins

from . import db as database
from . import migrations
from .db import transaction
from .migrations import SchemaOutOfDate
from .registry import declarations
from .types import Invalid, SettingError

__all__ = ["Change", "Snapshot", "Store", "StoreMissing", "SchemaOutOfDate", "transaction"]

DB_NAME = "gatebox.db"


@dataclass
class Change:
    key: str
    old: object
    new: object
    warning: str | None = None


class StoreMissing(FileNotFoundError):
    """No settings database in the data directory."""


class Store:
    def __init__(self, data_dir: str | os.PathLike):
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / DB_NAME
        if not self.path.exists():
            raise StoreMissing(
                f"no settings database at {self.path}; run 'gatebox --data {self.data_dir} init' first")
        self.db = database.open(self.path)
        try:
            migrations.require_current(self.db, self.data_dir)
        except BaseException:
            self.db.conn.close()
            raise

    @classmethod
    def create(cls, data_dir: str | os.PathLike) -> "Store":
        """Create the database or bring it up to date (`gatebox init`)."""
        data_dir = Path(data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        _owner_only(data_dir / DB_NAME, create=True)
        _upgrade(data_dir / DB_NAME)
        _owner_only(data_dir / DB_NAME)
        return cls(data_dir)

    @classmethod
    def upgrade(cls, data_dir: str | os.PathLike) -> "Store":
        """Open an existing database after running its pending migrations,
        the core's and the installed SoftPaks' (`gatebox run`)."""
        path = Path(data_dir) / DB_NAME
        if not path.exists():
            raise StoreMissing(
                f"no settings database at {path}; run 'gatebox --data {data_dir} init' first")
        _owner_only(path)
        _upgrade(path)
        _owner_only(path)
        return cls(data_dir)

    def close(self):
        self.db.conn.close()
        database.close_writer(self.path)

    def transaction(self, write: bool = True):
        return transaction(self.db, write)

    # ---- settings -------------------------------------------------------
    def get(self, key: str):
        setting = _declaration(key)
        row = self.db.execute("SELECT value FROM settings WHERE key = ?", [key]).fetchone()
        return setting.default if row is None else json.loads(row[0])

    def all(self) -> dict:
        stored = {k: json.loads(v) for k, v in self.db.execute("SELECT key, value FROM settings")}
        return {key: stored.get(key, s.default) for key, s in declarations().items()}

    def snapshot(self) -> "Snapshot":
        with transaction(self.db, write=False):
            generation = self.generation()
            values = self.all()
        further = frozenset(plugins.registry().local_domains(values))
        return Snapshot(values, generation, further)

    def generation(self) -> int:
        row = self.db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
        return int(row[0]) if row else 0

    def validate(self, key: str, raw, active_softpaks: set | None = None):
        """Parse raw text into the setting's value or raise SettingError."""
        setting = _declaration(key)
        try:
            value = setting.type.parse(raw)
        except Invalid as error:
            raise SettingError(key, str(error)) from None
        needed = setting.requires.get(value)
        if needed:
            if active_softpaks is None:
                active_softpaks = self.active_softpaks()
            if needed not in active_softpaks:
                raise SettingError(key, f"'{value}' needs the {plugins.softpak_name(needed)} SoftPak, "
                                        "which is not licensed on this box")
        return value

    def set_many(self, raw_values: dict, actor: str = "system") -> list[Change]:
        """Validate every value first, then write them all in one transaction."""
        active = self.active_softpaks()
        parsed = {key: self.validate(key, raw, active) for key, raw in raw_values.items()}
        _check_combination({**self.all(), **parsed}, parsed)
        changes = []
        with transaction(self.db):
            for key, value in parsed.items():
                old = self.get(key)
                if old == value:
                    continue
                self.db.execute("INSERT INTO settings(key, value) VALUES(?, ?) ON CONFLICT(key) "
                                "DO UPDATE SET value = excluded.value", [key, json.dumps(value)])
                warn = _declaration(key).warn
                changes.append(Change(key, old, value, warn(value) if warn else None))
            if changes:
                self._bump_generation()
                for change in changes:
                    self.audit(actor, f"set {change.key}",
                               _render(change.key, change.old), _render(change.key, change.new))
        return changes

    def set(self, key: str, raw, actor: str = "system") -> Change | None:
        changes = self.set_many({key: raw}, actor)
        return changes[0] if changes else None

    def render(self, key: str, value) -> str:
        return _render(key, value)

    # ---- licensing -------------------------------------------------------
    def active_softpaks(self) -> set:
        return licensing.active_softpaks(self)

    def installed_softpaks(self) -> set:
        """What licensing needs to know of the registry (it sits below it)."""
        return set(plugins.installed_softpaks())

    # ---- bookkeeping ----------------------------------------------------
    def _bump_generation(self):
        self.db.execute(
            "INSERT INTO meta(key, value) VALUES('generation', '1') "
            "ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1")

    def touch(self):
        """Tell running services something they depend on (not a setting) changed."""
        with transaction(self.db):
            self._bump_generation()

    def audit(self, actor: str, what: str, old: str = "", new: str = ""):
        self.db.execute("INSERT INTO audit(at, actor, what, old, new) VALUES(?, ?, ?, ?, ?)",
                        [time.time(), actor, what, old, new])

    def audit_log(self, limit: int = 100) -> list[dict]:
        return list(self.db.query("SELECT * FROM audit ORDER BY id DESC LIMIT ?", [limit]))


@dataclass(frozen=True)
class Snapshot:
    """The settings at one generation, for running services. It also carries
    the further local domains the SoftPaks derive from those settings
    (gatebox_local_domains), so the mail stack never reads a SoftPak's
    setting by name."""
    values: dict
    generation: int
    further_local_domains: frozenset = field(default_factory=frozenset)

    def __getitem__(self, key):
        return self.values[key]


# The database holds the relay's and the LAN server's passwords. SQLite makes
# its -wal and -shm files with the database file's mode, so a 0600 database
# (made so before SQLite first opens it) keeps all three the service's alone;
# files from before are narrowed here, through their descriptors.
DB_COMPANIONS = ("", "-wal", "-shm")


def _owner_only(path: Path, create: bool = False):
    for suffix in DB_COMPANIONS:
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
        if create and not suffix:
            flags |= os.O_CREAT
        try:
            fd = os.open(f"{path}{suffix}", flags, 0o600)
        except FileNotFoundError:
            continue
        try:
            os.fchmod(fd, 0o600)
        finally:
            os.close(fd)


def _upgrade(path: Path):
    db = database.open(path)
    try:
        migrations.upgrade_all(db)
    finally:
        db.conn.close()


def _declaration(key: str):
    try:
        return declarations()[key]
    except KeyError:
        raise SettingError(key, "no such setting (see 'gatebox config show')") from None


def _render(key: str, value) -> str:
    return _declaration(key).type.render(value)


def _check_combination(values: dict, changed: dict):
    """Rules that involve more than one setting."""
    if values["email.domain"] == "*" and values["email.server_type"] != "relay":
        key = "email.domain" if "email.domain" in changed else "email.server_type"
        raise SettingError(key, "Domain Name '*' is allowed only in Relay mode")
