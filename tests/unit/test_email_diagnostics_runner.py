"""The diagnostics runner: checks run side by side, each result comes back
as soon as its check finishes, a check past its time limit is failed then
(and its late answer dropped), and a check that raises is failed with why."""

from __future__ import annotations

import threading
import time

from firmware.mail.diagnostics import plan, run
from firmware.mail.diagnostics.result import Check, Context, failed, passed

CONTEXT = Context(settings={}, data_dir=None, resolver=None)


def test_checks_run_side_by_side():
    # Each check waits for the other: run one after the other, both would time out.
    both = threading.Barrier(2, timeout=5)

    def meet(_context):
        both.wait()
        return passed("met")
    results = list(run([Check("a", "A", meet, 5), Check("b", "B", meet, 5)], CONTEXT))
    assert sorted((r.name, r.status) for r in results) == [("a", "pass"), ("b", "pass")]


def test_each_result_comes_as_its_check_finishes():
    release = threading.Event()

    def quick(_context):
        return passed("quick")

    def held(_context):
        release.wait(5)
        return failed("held", "let it go")
    results = run([Check("held", "Held", held, 5), Check("quick", "Quick", quick, 5)], CONTEXT)
    first = next(results)
    assert first.name == "quick" and first.status == "pass"
    release.set()
    second = next(results)
    assert (second.name, second.status, second.fix) == ("held", "fail", "let it go")
    assert list(results) == []


def test_a_check_past_its_limit_fails_then_and_its_late_answer_is_dropped():
    release, answered = threading.Event(), threading.Event()

    def stuck(_context):
        release.wait(10)
        answered.set()
        return passed("too late")
    started = time.monotonic()
    results = run([Check("stuck", "Stuck", stuck, 0.3),
                   Check("fine", "Fine", lambda c: passed("ok"), 5)], CONTEXT)
    collected = [next(results), next(results)]
    took = time.monotonic() - started
    by_name = {r.name: r for r in collected}
    assert by_name["stuck"].status == "fail"
    assert "time limit of 0.3 s" in by_name["stuck"].reason and by_name["stuck"].fix
    assert took < 5
    release.set()
    assert answered.wait(5)
    assert list(results) == []   # the late "pass" never shows


def test_a_check_that_raises_is_failed_with_the_error():
    def broken(_context):
        raise KeyError("email.nothing")
    result, = run([Check("broken", "Broken", broken, 5)], CONTEXT)
    assert result.status == "fail"
    assert "KeyError" in result.reason and "email.nothing" in result.reason


def test_the_plan_follows_the_server_type():
    def names(kind, relay=""):
        return {c.name for c in plan(Context({"email.server_type": kind,
                                              "email.relay_server_address": relay}, None, None))}
    common = {"resolver", "dns_mx", "dns_mx_hosts", "dns_ptr", "dns_spf", "certificate",
              "relay_smtp"}
    assert names("relay") == common | {"lan_smtp"}
    assert names("standalone") == common
    assert names("multidrop") == common | {"isp_mailbox"}
    assert names("mirrored") == common | {"isp_mailbox"}
    assert names("etrn") == common | {"etrn"}
    assert names("mailbag") == common | {"finger"}


def test_control_characters_a_server_sent_never_reach_the_terminal():
    said = "220 \x1b[2J\x1b]0;owned\x07 hello"
    result, = run([Check("s", "S", lambda c: failed(said, "fix\x1b[0m"), 5)], CONTEXT)
    assert "\x1b" not in result.reason and "\x07" not in result.reason
    assert result.reason.endswith(" hello") and result.fix == "fix?[0m"
