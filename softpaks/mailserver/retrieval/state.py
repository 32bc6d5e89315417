"""What the pages show of retrieval: per account (mail_retrieval_state) the
last run, its result and the last error; for the service
(mail_retrieval_runner) the next scheduled run, the last run's summary and
a pending Retrieve now request."""

from __future__ import annotations

from dataclasses import dataclass

from firmware.config import transaction


@dataclass(frozen=True)
class RunnerState:
    next_run: float | None
    started: float | None
    finished: float | None
    requested: float | None
    summary: str


@dataclass(frozen=True)
class AccountState:
    account: str
    last_run: float | None
    ok: bool
    fetched: int
    result: str
    last_error: str


def record_account(store, result, now: float):
    """The row of one account after a run; the last error stays until a run succeeds."""
    with transaction(store.db) as db:
        db.execute(
            "INSERT INTO mail_retrieval_state(account, last_run, ok, fetched, result, last_error) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(account) DO UPDATE SET last_run = excluded.last_run, "
            "ok = excluded.ok, fetched = excluded.fetched, result = excluded.result, "
            "last_error = CASE WHEN excluded.ok THEN '' ELSE excluded.last_error END",
            [result.account, now, int(result.ok), result.fetched, result.summary,
             "" if result.ok else result.detail])


def accounts(store) -> list[AccountState]:
    rows = store.db.execute("SELECT account, last_run, ok, fetched, result, last_error "
                            "FROM mail_retrieval_state ORDER BY account").fetchall()
    return [AccountState(a, last, bool(ok), fetched or 0, result or "", error or "")
            for a, last, ok, fetched, result, error in rows]


def runner(store) -> RunnerState:
    row = store.db.execute("SELECT next_run, started, finished, requested, summary "
                           "FROM mail_retrieval_runner WHERE id = 1").fetchone()
    return RunnerState(*row) if row else RunnerState(None, None, None, None, "")


def _update(store, **values):
    assignments = ", ".join(f"{name} = ?" for name in values)
    with transaction(store.db) as db:
        db.execute("INSERT OR IGNORE INTO mail_retrieval_runner(id) VALUES (1)")
        db.execute(f"UPDATE mail_retrieval_runner SET {assignments} WHERE id = 1", list(values.values()))


def set_next_run(store, when: float | None):
    _update(store, next_run=when)


def request_now(store, now: float):
    """Retrieve now from the web: the service picks it up on its next look."""
    _update(store, requested=now)


def started(store, now: float):
    _update(store, started=now)


def finished(store, now: float, summary: str, answered: float | None):
    """A run is over; the request it answered (if any) is cleared, unless a
    newer one came in meanwhile."""
    with transaction(store.db) as db:
        db.execute("UPDATE mail_retrieval_runner SET finished = ?, summary = ? WHERE id = 1",
                   [now, summary])
        if answered is not None:
            db.execute("UPDATE mail_retrieval_runner SET requested = NULL "
                       "WHERE id = 1 AND requested <= ?", [answered])
