"""The policy chain in-process, with test checks: ordering, verdicts,
symbols and scores, and the failure modes (exceptions, DNS failures and
overrun time budgets, under "tempfail" and under "skip")."""

import asyncio
import logging

import pytest

from firmware.mail import scoring
from firmware.mail.policy import (STAGES, Check, Context, Order, Policy, Symbol, Verdict, reject,
                                  tempfail)
from firmware.mail.resolver import DnsFailure

SETTINGS = {"email.spam_tag_score": None, "email.spam_quarantine_score": None,
            "email.spam_reject_score": None}


def context(**fields):
    return Context(settings=dict(SETTINGS), client_ip="192.0.2.1", **fields)


def run(policy, stage, ctx):
    return asyncio.run(policy.evaluate(stage, ctx))


def recorder(name, ran, answer=None):
    def check(ctx):
        ran.append(name)
        return answer
    return check


# ---- ordering -------------------------------------------------------------------------------
@pytest.mark.parametrize("added,expected", [
    # (name, order) in the order they are added -> the order they run
    ([("c", Order.CONTENT), ("a", Order.FIRST), ("b", Order.RELAY)], ["a", "b", "c"]),
    ([("late", Order.LIMITS), ("early", Order.LIMITS)], ["late", "early"]),   # stable
    ([("between", Order.RELAY + 1), ("relay", Order.RELAY), ("local", Order.LOCAL)],
     ["relay", "between", "local"]),
])
def test_checks_run_by_position_then_in_the_order_added(added, expected):
    ran = []
    policy = Policy([Check(name, "rcpt", recorder(name, ran), order) for name, order in added])
    assert run(policy, "rcpt", context()) is None
    assert ran == expected


def test_only_the_checks_of_the_stage_run():
    ran = []
    policy = Policy([Check(f"at_{stage}", stage, recorder(stage, ran)) for stage in STAGES])
    for stage in STAGES:
        run(policy, stage, context())
    assert ran == list(STAGES)


# ---- verdicts -------------------------------------------------------------------------------
@pytest.mark.parametrize("answers,reply,check,ran_expected", [
    ([None, None], None, None, ["one", "two"]),
    ([reject("5.7.1", "no"), None], "550 5.7.1 no", "one", ["one"]),
    ([None, tempfail("4.7.1", "later")], "450 4.7.1 later", "two", ["one", "two"]),
    ([reject("5.1.1", "unknown", 553), reject("5.7.1", "never seen")], "553 5.1.1 unknown", "one",
     ["one"]),
])
def test_the_first_verdict_decides_and_names_its_check(answers, reply, check, ran_expected):
    ran = []
    policy = Policy([Check(name, "mail", recorder(name, ran, answer), Order.SYNTAX)
                     for name, answer in zip(("one", "two"), answers)])
    verdict = run(policy, "mail", context())
    assert (verdict.reply if verdict else None) == reply
    assert (verdict.check if verdict else None) == check
    assert ran == ran_expected


def test_async_checks_are_awaited():
    async def slow_reject(ctx):
        await asyncio.sleep(0)
        return reject("5.7.1", "after a wait")
    verdict = run(Policy([Check("waits", "rcpt", slow_reject)]), "rcpt", context())
    assert verdict == Verdict(550, "5.7.1", "after a wait", "waits")


@pytest.mark.parametrize("verdict,closes", [(tempfail("4.7.0", "bye", 421), True),
                                            (tempfail("4.7.0", "later", 451), False),
                                            (reject("5.7.1", "no", 554), False)])
def test_only_421_closes_the_connection(verdict, closes):
    assert verdict.closes_connection is closes


# ---- symbols and scores ---------------------------------------------------------------------
def test_symbols_add_up_and_a_new_transaction_keeps_only_the_sessions():
    def at(stage, name, score):
        return Check(name.lower(), stage, lambda ctx: ctx.add_symbol(name, score, "why") and None)
    policy = Policy([at("connect", "FROM_CONNECT", 1.5), at("helo", "FROM_HELO", 0.5),
                     at("rcpt", "FROM_RCPT", 2.0), at("data", "FROM_DATA", 3.25)])
    ctx = context()
    for stage in ("connect", "helo", "mail", "rcpt", "data"):
        assert run(policy, stage, ctx) is None
    assert [s.name for s in ctx.symbols] == ["FROM_CONNECT", "FROM_HELO", "FROM_RCPT", "FROM_DATA"]
    assert [s.stage for s in ctx.symbols] == ["connect", "helo", "rcpt", "data"]
    assert ctx.score == 7.25
    ctx.begin_transaction(dict(SETTINGS))
    assert [s.name for s in ctx.symbols] == ["FROM_CONNECT", "FROM_HELO"] and ctx.score == 2.0


@pytest.mark.parametrize("name", ["lower", "WITH SPACE", "X:Y", "", "A" * 65, "1LEADING_DIGIT"])
def test_symbol_names_are_header_safe_tokens(name):
    with pytest.raises(ValueError):
        Symbol(name, 1.0)


@pytest.mark.parametrize("total,tag,quarantine,reject_at,action", [
    (100.0, None, None, None, scoring.ACCEPT),       # all thresholds off: always accept
    (4.9, 5.0, 10.0, 15.0, scoring.ACCEPT),
    (5.0, 5.0, 10.0, 15.0, scoring.TAG),
    (12.0, 5.0, 10.0, 15.0, scoring.QUARANTINE),
    (15.0, 5.0, 10.0, 15.0, scoring.REJECT),
    (12.0, 5.0, None, 15.0, scoring.TAG),            # quarantine off
    (20.0, None, None, 15.0, scoring.REJECT),
    (-3.0, -5.0, None, None, scoring.TAG),           # negative thresholds are allowed
])
def test_the_total_maps_to_one_action(total, tag, quarantine, reject_at, action):
    settings = {"email.spam_tag_score": tag, "email.spam_quarantine_score": quarantine,
                "email.spam_reject_score": reject_at}
    assert scoring.decide(total, settings).kind == action


# ---- failure modes --------------------------------------------------------------------------
def raises(ctx):
    raise KeyError("broken")


async def raises_later(ctx):
    await asyncio.sleep(0)
    raise RuntimeError("broken later")


async def dns_fails(ctx):
    raise DnsFailure("DNS lookup of x.test/A timed out after 5s")


async def hangs(ctx):
    await asyncio.Event().wait()


FAILURES = [
    # (run, asks_dns, tempfail reply, logged)
    (raises, False, "451 4.3.0 Temporary local problem, try again later", "KeyError: 'broken'"),
    (raises_later, False, "451 4.3.0 Temporary local problem, try again later",
     "RuntimeError: broken later"),
    (dns_fails, False, "451 4.4.3 Temporary DNS failure, try again later", "timed out after 5s"),
    (hangs, True, "451 4.4.3 Temporary DNS failure, try again later", "timed out after 0.05s"),
    (hangs, False, "451 4.3.0 Temporary local problem, try again later", "timed out after 0.05s"),
]


@pytest.mark.parametrize("function,asks_dns,reply,logged", FAILURES)
def test_a_failing_tempfail_check_answers_4xx_never_accept(caplog, function, asks_dns, reply,
                                                           logged):
    ran = []
    policy = Policy([Check("fragile", "rcpt", function, Order.REPUTATION, on_error="tempfail",
                           budget=0.05, asks_dns=asks_dns),
                     Check("after", "rcpt", recorder("after", ran), Order.LAST)])
    ctx = context()
    with caplog.at_level(logging.WARNING, logger="gatebox.smtpd"):
        verdict = run(policy, "rcpt", ctx)
    assert verdict.reply == reply and verdict.check == "fragile"
    assert ran == []   # the chain stops: nothing after it may accept in its place
    assert "warning: check fragile failed:" in caplog.text and logged in caplog.text
    assert ctx.symbols == []


@pytest.mark.parametrize("function,asks_dns,reply,logged", FAILURES)
def test_a_failing_skip_check_leaves_a_zero_symbol_and_the_chain_goes_on(caplog, function,
                                                                         asks_dns, reply, logged):
    ran = []
    policy = Policy([Check("optional", "data", function, Order.CONTENT, on_error="skip",
                           budget=0.05, asks_dns=asks_dns),
                     Check("after", "data", recorder("after", ran), Order.LAST)])
    ctx = context()
    with caplog.at_level(logging.WARNING, logger="gatebox.smtpd"):
        assert run(policy, "data", ctx) is None
    assert ran == ["after"]
    assert [(s.name, s.score) for s in ctx.symbols] == [("OPTIONAL_ERROR", 0.0)]
    assert logged in ctx.symbols[0].detail
    assert "warning: check optional failed:" in caplog.text


def test_a_failure_at_connect_closes_with_421():
    verdict = run(Policy([Check("at_door", "connect", raises, Order.FIRST)]), "connect", context())
    assert verdict.reply.startswith("421 4.3.0") and verdict.closes_connection


@pytest.mark.parametrize("fields,message", [
    ({"name": "Bad-Name", "stage": "rcpt"}, "lower-case"),
    ({"name": "ok", "stage": "queue"}, "unknown stage"),
    ({"name": "ok", "stage": "rcpt", "on_error": "accept"}, "on_error"),
])
def test_checks_are_declared_properly(fields, message):
    with pytest.raises(ValueError, match=message):
        Check(run=lambda ctx: None, **fields)
