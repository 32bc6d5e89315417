"""Administrator operations on the queue, shared by the CLI and the web UI:
list, show, hold, release, delete (optionally bouncing), purge, flush."""

from __future__ import annotations

from . import bounce
from .queue import NotInQueue, Spool
from .queue_index import QueueIndex
from .submit import submit

CHANGEABLE = ("incoming", "deferred", "hold", "corrupt")
_SORT_KEYS = {
    "id": lambda e: e.envelope.id,
    "date": lambda e: e.envelope.received,
    "from": lambda e: (e.envelope.header_from or e.envelope.sender).lower(),
}


class QueueOpError(Exception):
    pass


def picked_up_by_rescan(qid: str):
    """The announce of a process that has no line to the queue manager (the
    CLI, the web admin): the manager's periodic rescan of incoming finds it."""


class QueueOps:
    def __init__(self, spool: Spool, store, announce=picked_up_by_rescan):
        self.spool = spool
        self.store = store
        self.announce = announce

    def listing(self, sort: str = "id"):
        return sorted(self.spool.entries(), key=_SORT_KEYS[sort])

    def page(self, sort: str = "date", descending: bool = False, offset: int = 0,
             limit: int = 50, view: str = "all"):
        """One sorted page of the queue, from the index kept beside the spool
        (rebuilt from the files whenever they change), so a queue of 100,000
        messages is not read in full for every page."""
        index = QueueIndex(self.spool)
        try:
            return index.page(sort, descending, offset, limit, view)
        finally:
            index.close()

    def show(self, qid: str):
        state = self.spool.locate(qid)
        envelope, message = self.spool.load(state, qid)
        return state, envelope, message

    def apply(self, operation: str, qids, actor: str, generate_bounce: bool = False):
        done, errors = [], []
        for qid in qids:
            try:
                getattr(self, f"_{operation}")(qid, generate_bounce=generate_bounce)
            except NotInQueue:
                errors.append(f"{qid}: no such message in the queue")
                continue
            except QueueOpError as error:
                errors.append(f"{qid}: {error}")
                continue
            self.store.audit(actor, f"queue {operation}{' with bounce' if generate_bounce else ''}",
                             qid, "")
            done.append(qid)
        return done, errors

    def _state(self, qid: str) -> str:
        state = self.spool.locate(qid)
        if state == "active":
            raise QueueOpError("is being delivered right now; try again in a moment")
        return state

    def _hold(self, qid: str, **_):
        state = self._state(qid)
        if state == "hold":
            return
        if state == "corrupt":
            raise QueueOpError("is corrupt and cannot be held or delivered; delete it")
        self.spool.move(qid, state, "hold")

    def _release(self, qid: str, **_):
        state = self._state(qid)
        if state != "hold":
            raise QueueOpError(f"is not held (it is {state})")
        self.spool.move(qid, "hold", "incoming")

    def _delete(self, qid: str, generate_bounce: bool = False):
        state = self._state(qid)
        if generate_bounce and state != "corrupt":
            envelope, message = self.spool.load(state, qid)
            pending = envelope.pending
            for recipient in pending:
                recipient.status = "failed"
                recipient.detail = "5.0.0 message deleted from the queue by the administrator"
            settings = self.store.snapshot()
            dsn = bounce.bounce_submission(envelope, pending, message, settings,
                                           reason="The administrator deleted this message from the queue.")
            if dsn and pending:
                submit(self.spool, dsn, self.announce, settings)
        self.spool.remove(state, qid)

    def purge(self, actor: str) -> int:
        count = 0
        for state in CHANGEABLE:
            for qid in self.spool.ids(state):
                try:
                    self.spool.remove(state, qid)
                    count += 1
                except NotInQueue:
                    pass
        self.store.audit(actor, "queue purge", "", f"{count} message(s) deleted")
        return count

    def flush(self, actor: str) -> int:
        count = 0
        for qid in self.spool.ids("deferred"):
            try:
                self.spool.move(qid, "deferred", "incoming")
                count += 1
            except NotInQueue:
                pass
        self.store.audit(actor, "queue flush", "", f"{count} message(s)")
        return count
