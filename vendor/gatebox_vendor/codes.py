"""Activation codes and the SQLite store the license service keeps them in.
A code is bound to the first box that redeems it; that box may ask again and
gets its key again, any other box is refused."""

from __future__ import annotations

import datetime
import json
import secrets
import sqlite3
import time
from pathlib import Path

from firmware.licensing.textform import ALPHABET, normalise

CODE_GROUPS, CODE_GROUP_SIZE = 4, 4


class CodeError(Exception):
    status = 400


class UnknownCode(CodeError):
    status = 404


class CodeUsedElsewhere(CodeError):
    status = 409


def new_code() -> str:
    groups = ["".join(secrets.choice(ALPHABET) for _ in range(CODE_GROUP_SIZE))
              for _ in range(CODE_GROUPS)]
    return "-".join(groups)


def canonical(code: str) -> str:
    text = normalise(code)
    return text.replace("O", "0").replace("I", "1").replace("L", "1")


class CodeStore:
    def __init__(self, path: str | Path):
        self.conn = sqlite3.connect(str(path), timeout=30, isolation_level=None,
                                    check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("""CREATE TABLE IF NOT EXISTS codes (
            code TEXT PRIMARY KEY, grants TEXT NOT NULL, created REAL NOT NULL,
            serial TEXT, license_key TEXT, redeemed REAL)""")

    def close(self):
        self.conn.close()

    def add(self, grants: dict, code: str | None = None) -> str:
        code = code or new_code()
        grants_json = json.dumps({k: (v.isoformat() if v else None) for k, v in grants.items()})
        self.conn.execute("INSERT INTO codes(code, grants, created) VALUES(?, ?, ?)",
                          [canonical(code), grants_json, time.time()])
        return code

    def list(self) -> list[dict]:
        cursor = self.conn.execute("SELECT code, grants, serial, redeemed FROM codes ORDER BY created")
        return [dict(zip(("code", "grants", "serial", "redeemed"), row)) for row in cursor]

    def redeem(self, code: str, serial: str, issue_key) -> str:
        """The key for this code and box; issue_key(serial, grants) makes a new one."""
        code, serial = canonical(code), serial.strip()
        if not code or not serial:
            raise CodeError("both an activation code and the box's serial number are needed")
        # IMMEDIATE: two boxes racing for one code must not both win.
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            row = self.conn.execute("SELECT grants, serial, license_key FROM codes WHERE code = ?",
                                    [code]).fetchone()
            if row is None:
                raise UnknownCode("unknown activation code; check it for typos")
            grants_json, bound_serial, key = row
            if bound_serial is not None and bound_serial != serial:
                raise CodeUsedElsewhere("this activation code was already used to activate "
                                        "another box; each code activates one box")
            if key is None:
                grants = {k: (datetime.date.fromisoformat(v) if v else None)
                          for k, v in json.loads(grants_json).items()}
                key = issue_key(serial, grants)
                self.conn.execute("UPDATE codes SET serial = ?, license_key = ?, redeemed = ? "
                                  "WHERE code = ?", [serial, key, time.time(), code])
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")
        return key
