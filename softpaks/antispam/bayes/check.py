"""The Bayes layer at the end of DATA, and auto-learn.

`bayes` (Order.CONTENT + 20) scores untrusted inbound mail that is not
whitelisted, while the recipients' Message Filter is active and the Bayesian
Filter is on, once at least bayes_min_spam spam and bayes_min_ham ham were
learnt; before that it abstains (no symbol; the page says how many more are
needed).

`bayes_autolearn` (Order.LAST, after every symbol is in) learns, when
Auto-Learn is on, only what the other layers found very clear, with
SpamAssassin's margins: spam at 12 points or more from at least two findings,
ham at 0.1 or less; never counting the BAYES_* symbols, never when a check
failed (its *_ERROR symbol) and never for GTUBE, a test.

Classifying runs on the event loop: a few indexed reads of a bounded
database, on a read-only connection that gives up on a lock after
READ_BUSY_MS (the layer is then skipped for that message). Handing it to a
thread cost more than the work: with 20 sessions, the thread and the loop
fighting over the interpreter lock took 0.8 ms of CPU per message, four
times the classification itself, and the relay with every Anti-Spam layer
on went from 0.72 to 0.59 of the SoftPak off (bench/spam_scoring.py).
Learning writes thousands of rows, and runs in a thread: auto-learn does not
wait for its write, and past MAX_PENDING writes waiting it skips rather than
queue without bound."""

from __future__ import annotations

import concurrent.futures
import logging
import threading

from firmware.mail.policy import Check, Context, Order

from .. import content_filter
from ..message_text import MessageView, parse_cached
from . import classify, tokens
from . import store as bayes_store
from .learn import learn_message
from .settings import AUTOLEARN, BAYES, MAX_TOKENS, MIN_HAM, MIN_SPAM

CHECK_NAME = "bayes"
AUTOLEARN_NAME = "bayes_autolearn"
SPAM_MARGIN = 12.0
HAM_MARGIN = 0.1
MIN_SPAM_FINDINGS = 2
NEVER_LEARN = ("GTUBE",)
MAX_PENDING = 16

log = logging.getLogger("gatebox.smtpd")

_writer = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="bayes-learn")
_pending = 0
_pending_lock = threading.Lock()


def applies(store, ctx: Context) -> bool:
    settings = ctx.settings
    if not settings[BAYES] or ctx.may_relay or ctx.whitelisted or not ctx.message:
        return False
    return content_filter.for_recipients(store, settings, ctx.recipients).active


def readiness(totals, min_spam: int, min_ham: int) -> str:
    """'' when it votes, else what is still needed."""
    missing = []
    if totals.spam < min_spam:
        missing.append(f"{min_spam - totals.spam} more spam")
    if totals.ham < min_ham:
        missing.append(f"{min_ham - totals.ham} more ham")
    return " and ".join(missing)


def evaluate(data_dir, view: MessageView, min_spam: int, min_ham: int):
    """(Verdict or None, what is missing)."""
    db = bayes_store.for_data(data_dir, read_only=True)
    # Nothing was ever learnt: the reader does not create the file.
    learnt = db.learnt() if db.exists() else bayes_store.Learnt(0, 0)
    missing = readiness(learnt, min_spam, min_ham)
    if missing:
        return None, missing
    return classify.classify(db, tokens.view_tokens(view)), ""


def bayes_check(store) -> Check:
    def check(ctx: Context):
        if not applies(store, ctx):
            return None
        # The rules parsed this message just before: parse_cached reuses it.
        verdict, missing = evaluate(store.data_dir, parse_cached(ctx.message),
                                    ctx.settings[MIN_SPAM], ctx.settings[MIN_HAM])
        if verdict is None:
            ctx.count_result(CHECK_NAME, "not_ready")
            return None
        ctx.add_symbol(verdict.symbol, verdict.score,
                       f"spam probability {verdict.probability:.3f} from {verdict.clues} tokens")
        ctx.count_result(CHECK_NAME, verdict.symbol.lower())
        return None
    # A broken database must not hold mail back: the layer is skipped.
    return Check(CHECK_NAME, "data", check, order=Order.CONTENT + 20, on_error="skip")


def autolearn_class(symbols) -> bool | None:
    """True: learn as spam, False: as ham, None: not clear enough."""
    others = [s for s in symbols if not s.name.startswith("BAYES_")]
    if any(s.name.endswith("_ERROR") or s.name in NEVER_LEARN for s in others):
        return None
    total = sum(s.score for s in others)
    if total >= SPAM_MARGIN and len({s.name for s in others if s.score > 0}) >= MIN_SPAM_FINDINGS:
        return True
    if total <= HAM_MARGIN:
        return False
    return None


def _done(future: concurrent.futures.Future):
    global _pending
    with _pending_lock:
        _pending -= 1
    error = future.exception()
    if error is not None:
        log.warning("warning: bayes auto-learn failed: %s: %s", type(error).__name__, error)


def submit_learning(data_dir, message: bytes, spam: bool, max_tokens: int) -> bool:
    """Queue a learn for the writer thread; False when too many wait already."""
    global _pending
    with _pending_lock:
        if _pending >= MAX_PENDING:
            return False
        _pending += 1
    future = _writer.submit(learn_message, data_dir, message, spam, "auto-learn", max_tokens)
    future.add_done_callback(_done)
    return True


def autolearn_check(store) -> Check:
    def check(ctx: Context):
        if not ctx.settings[AUTOLEARN] or not ctx.data_complete or ctx.quarantine_kind == "virus":
            return None
        if not applies(store, ctx):
            return None
        spam = autolearn_class(ctx.symbols)
        if spam is None:
            return None
        if submit_learning(store.data_dir, ctx.message, spam, ctx.settings[MAX_TOKENS]):
            ctx.count_result(AUTOLEARN_NAME, "spam" if spam else "ham")
        else:
            ctx.count_result(AUTOLEARN_NAME, "busy")
        return None
    return Check(AUTOLEARN_NAME, "data", check, order=Order.LAST, on_error="skip")


def policy_checks(store) -> list:
    return [bayes_check(store), autolearn_check(store)]
