"""Custom rules on a real settings store (validation when saved, storage,
the `gatebox antispam rules` command, matching) and the data-stage check
with the Content Filter records that decide which rule sets run."""

import asyncio
import base64
import email.utils
import time

import pytest

from firmware.mail.policy import Context, Order, Policy
from softpaks.antispam import content_filter as cf
from softpaks.antispam.rules import GTUBE_STRING, custom, policy_checks
from softpaks.antispam.rules.checks import RulesCheck
from softpaks.antispam.rules.custom import CustomRuleError
from softpaks.antispam.rules.regex_guard import UnsafePattern, compile_safe
from softpaks.antispam.rules.rule import Message

from tests.support.licensing import run_gatebox


@pytest.fixture
def box(store):
    store.set_many({"email.domain": "example.com"})
    return store


def message(subject="Quarterly figures", body="The figures are attached.", extra="") -> bytes:
    return (f"From: Alice <alice@outside.test>\r\nTo: bob@example.com\r\nSubject: {subject}\r\n"
            f"Date: {email.utils.formatdate(usegmt=True)}\r\nMessage-ID: <a1@outside.test>\r\n"
            f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n{extra}\r\n"
            f"{body}\r\n").encode()


# ---- validation ----------------------------------------------------------------------------
@pytest.mark.parametrize("fields, field, says", [
    (("nowhere", "", "substring", "x", "1"), "target", "header, any header or the body"),
    (("header", "", "substring", "x", "1"), "header", "header's name"),
    (("header", "Bad Name", "substring", "x", "1"), "header", "header's name"),
    (("body", "", "glob", "x", "1"), "kind", "substring or a regular expression"),
    (("body", "", "substring", "   ", "1"), "pattern", "text to look for"),
    (("body", "", "substring", "a\nb", "1"), "pattern", "one line"),
    (("body", "", "regex", "([a-z", "1"), "pattern", "not a regular expression"),
    (("body", "", "regex", "x*", "1"), "pattern", "matches an empty text"),
    (("body", "", "regex", "(a+)+$", "1"), "pattern", "backtrack exponentially"),
    (("body", "", "regex", "(a|ab)*c", "1"), "pattern", "backtrack exponentially"),
    (("body", "", "regex", r"(\w)\1", "1"), "pattern", "backreferences"),
    (("body", "", "regex", ".*.*.*.*x", "1"), "pattern", "open-ended repetitions"),
    (("body", "", "regex", r"\s*\s*\s*x", "1"), "pattern", "backtracks too much"),
    (("body", "", "regex", "a" * 300, "1"), "pattern", "at most 256"),
    (("body", "", "substring", "x", "lots"), "action", "give a score"),
    (("body", "", "substring", "x", "101"), "action", "from -100 to 100"),
    (("body", "", "substring", "x", "nan"), "action", "from -100 to 100"),
])
def test_a_bad_rule_is_refused_naming_its_field(fields, field, says):
    with pytest.raises(CustomRuleError, match=says) as refused:
        custom.validate(*fields)
    assert refused.value.field == field


@pytest.mark.parametrize("pattern", [r"viagra|cialis", r"\bfree\b.*\bmoney\b", r"(buy|cheap)\s+now",
                                     r"\w+@\w+\.ru\b", r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}",
                                     r"(?-i:URGENT)", r"^\[ad\]"])
def test_ordinary_patterns_are_accepted(pattern):
    assert custom.validate("body", "", "regex", pattern, "2").pattern == pattern


def test_a_refused_pattern_is_refused_quickly():
    started = time.perf_counter()
    for pattern in ["(a+)+$", ".*.*a", r"\s*\s*\s*x", ".{0,255}.{0,255}.{0,255}x", "(a|a){1,10}$"]:
        with pytest.raises(UnsafePattern):
            compile_safe(pattern)
    assert time.perf_counter() - started < 3


def test_an_accepted_pattern_runs_in_bounded_time_on_hostile_lines():
    compiled = compile_safe(r"\w+@\w+\.com")
    hostile = "b" * (256 * 1024)
    rules = [custom.CustomRule(1, "body", "", "regex", compiled.pattern, 1.0, False),
             custom.CustomRule(2, "body", "", "regex", "b{5}", 1.0, False),
             custom.CustomRule(3, "body", "", "substring", "bbb", 1.0, False)]
    parsed = Message.of(message(body=hostile), 0.0)
    started = time.perf_counter()
    hits = custom.Compiled(rules).match(parsed)
    # The body is matched in pieces; past MATCH_SECONDS the regular
    # expressions left are skipped, and that is said; substrings still run.
    assert time.perf_counter() - started < custom.MATCH_SECONDS + 1.0
    names = [h.name for h in hits]
    assert names in (["CUSTOM_RULE_2", "CUSTOM_RULE_3"],
                     [custom.PARTIAL_SYMBOL, "CUSTOM_RULE_3"])


def test_past_the_time_budget_regular_expressions_stop_and_say_so():
    ticks = iter(range(0, 1000, 1))
    rules = [custom.CustomRule(1, "body", "", "regex", "nothing-here", 1.0, False),
             custom.CustomRule(2, "body", "", "regex", "figures", 1.0, False),
             custom.CustomRule(3, "body", "", "substring", "figures", 1.0, False)]
    hits = custom.Compiled(rules).match(Message.of(message(), 0.0), clock=lambda: next(ticks))
    assert [h.name for h in hits] == [custom.PARTIAL_SYMBOL, "CUSTOM_RULE_3"]
    assert "stopped after" in hits[0].detail and "CUSTOM_RULE_1" in hits[0].detail


# ---- storage ---------------------------------------------------------------------------------
def test_rules_are_stored_audited_and_ids_are_never_reused(box):
    generation = box.snapshot().generation
    first = custom.add(box, "header", "Subject:", "substring", "  Cheap Meds ", "3.5",
                       "pharmacy spam", actor="admin")
    assert (first.id, first.header, first.pattern, first.score, first.symbol) == \
        (1, "Subject", "Cheap Meds", 3.5, "CUSTOM_RULE_1")
    assert box.snapshot().generation != generation
    second = custom.add(box, "body", "", "regex", r"casino\s+online", "spam")
    assert second.spam and second.effective_score == custom.SPAM_SCORE
    assert [r.id for r in custom.rules(box)] == [1, 2]
    custom.remove(box, "CUSTOM_RULE_2")
    third = custom.add(box, "headers", "ignored", "substring", "bulk", "-2")
    assert (third.id, third.header, third.score) == (3, "", -2.0)
    with pytest.raises(CustomRuleError, match="no custom rule 2"):
        custom.remove(box, 2)
    with pytest.raises(CustomRuleError, match="not a rule number"):
        custom.remove(box, "two")
    audit = " ".join(entry["what"] for entry in box.audit_log())
    assert "add custom rule 1" in audit and "remove custom rule 2" in audit


def test_a_stored_pattern_that_no_longer_compiles_is_left_out(box):
    box.db.execute("INSERT INTO antispam_custom_rules(target, header, kind, pattern, score, spam, "
                   "description, added) VALUES('body', '', 'regex', '([', 1, 0, '', 0)")
    good = custom.add(box, "body", "", "substring", "figures", "1")
    hits = custom.Compiled(custom.rules(box)).match(Message.of(message(), 0.0))
    assert [h.name for h in hits] == [good.symbol]


# ---- matching --------------------------------------------------------------------------------
@pytest.mark.parametrize("rule, fires", [
    (("header", "Subject", "substring", "QUARTERLY", "1"), True),
    (("header", "subject", "regex", r"^quarterly\s+fig", "1"), True),
    (("header", "X-Mailer", "substring", "quarterly", "1"), False),
    (("headers", "", "substring", "from: alice", "1"), True),
    (("headers", "", "regex", r"^message-id: <a1@", "1"), True),
    (("body", "", "substring", "are ATTACHED", "1"), True),
    (("body", "", "substring", "Quarterly", "1"), False),        # in the subject, not the body
    (("body", "", "regex", r"(?-i:ATTACHED)", "1"), False),
])
def test_where_and_how_a_rule_looks(rule, fires):
    made = custom.validate(*rule)
    made = custom.CustomRule(7, made.target, made.header, made.kind, made.pattern, made.score,
                             made.spam, made.description)
    hits = custom.Compiled([made]).match(Message.of(message(), 0.0))
    assert bool(hits) is fires
    if fires:
        assert hits[0].name == "CUSTOM_RULE_7" and hits[0].score == 1.0


def test_body_rules_read_the_text_of_html_and_decoded_parts():
    html = (b"From: a@outside.test\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
            base64.encodebytes(b"<p>Buy <b>cheap</b> now</p>") + b"\r\n")
    rule = custom.CustomRule(1, "body", "", "substring", "buy cheap now", 4.0, False)
    assert [h.name for h in custom.Compiled([rule]).match(Message.of(html, 0.0))] == ["CUSTOM_RULE_1"]


# ---- the check -------------------------------------------------------------------------------
def context(store, body=b"", **fields) -> Context:
    ctx = Context(store.snapshot(), "192.0.2.7", **fields)
    ctx.stage, ctx.recipients, ctx.message = "data", ["bob@example.com"], body
    return ctx


def names(ctx) -> dict:
    return {s.name: s.score for s in ctx.symbols}


def run(store, body, **fields) -> dict:
    ctx = context(store, body, **fields)
    assert RulesCheck(store)(ctx) is None
    return names(ctx)


def test_the_check_sits_after_the_content_filter_and_skips_on_error(box):
    [check] = policy_checks(box)
    assert (check.name, check.stage, check.order, check.on_error) == \
        ("antispam_rules", "data", Order.CONTENT + 10, "skip")


def test_nothing_is_scored_while_the_content_filter_is_off(box):
    assert run(box, message(body=GTUBE_STRING)) == {}


def test_gtube_scores_1000_whenever_the_filter_is_active(box):
    box.set_many({cf.ACTIVE: "on", cf.DEFAULT_FILTER: "off", cf.HEURISTIC: "off"})
    assert run(box, message(body=GTUBE_STRING)) == {"GTUBE": 1000.0}


@pytest.mark.parametrize("fields", [{"trusted": True}, {"auth_user": "carol"}])
def test_mail_from_clients_that_may_relay_is_not_looked_at(box, fields):
    box.set_many({cf.ACTIVE: "on"})
    assert run(box, message(body=GTUBE_STRING), **fields) == {}


def test_whitelisted_mail_is_not_looked_at(box):
    box.set_many({cf.ACTIVE: "on"})
    ctx = context(box, message(body=GTUBE_STRING))
    ctx.whitelisted = True
    RulesCheck(box)(ctx)
    assert names(ctx) == {}


def test_the_filter_type_and_heuristic_switches_choose_the_sets(box):
    no_version = message(subject="CHEAP MEDS FOR YOU TODAY").replace(b"MIME-Version: 1.0\r\n", b"")
    custom.add(box, "header", "Subject", "substring", "cheap meds", "2.5")
    box.set_many({cf.ACTIVE: "on", cf.DEFAULT_FILTER: "on", cf.CUSTOM_FILTER: "off",
                  cf.HEURISTIC: "off"})
    assert run(box, no_version) == {"MIME_NO_VERSION": 1.0}
    box.set_many({cf.DEFAULT_FILTER: "off", cf.HEURISTIC: "on"})
    assert run(box, no_version) == {"SUBJ_ALL_CAPS": 1.0}
    box.set_many({cf.HEURISTIC: "off", cf.CUSTOM_FILTER: "on"})
    assert run(box, no_version) == {"CUSTOM_RULE_1": 2.5}


def test_a_domain_record_decides_for_its_recipients(box):
    box.set_many({cf.ACTIVE: "off"})
    cf.save(box, {"content_filter": "on", "default_filter": "off", "heuristic": "on"},
            domain="example.com")
    assert run(box, message(subject="WIN A PRIZE TODAY NOW")) == {"SUBJ_ALL_CAPS": 1.0}


def test_a_new_custom_rule_is_used_once_the_generation_moves(box):
    box.set_many({cf.ACTIVE: "on", cf.CUSTOM_FILTER: "on", cf.DEFAULT_FILTER: "off",
                  cf.HEURISTIC: "off"})
    check = RulesCheck(box)
    ctx = context(box, message())
    check(ctx)
    assert names(ctx) == {}
    made = custom.add(box, "body", "", "substring", "figures", "spam")
    ctx = context(box, message())
    check(ctx)
    assert names(ctx) == {made.symbol: custom.SPAM_SCORE}
    assert "figures" in ctx.symbols[0].detail


def test_a_check_that_breaks_is_skipped_by_the_chain(box):
    box.set_many({cf.ACTIVE: "on", cf.CUSTOM_FILTER: "on"})
    box.db.execute("DROP TABLE antispam_custom_rules")
    ctx = context(box, message(body=GTUBE_STRING))
    assert asyncio.run(Policy(policy_checks(box)).evaluate("data", ctx)) is None
    assert "ANTISPAM_RULES_ERROR" in names(ctx)


# ---- the command -----------------------------------------------------------------------------
def test_the_command_adds_lists_and_removes_rules(tmp_path, box):
    data = str(tmp_path / "data")
    added = run_gatebox(data, "antispam", "rules", "add", "--header", "Subject", "--score", "3",
                        "--description", "meds", "cheap meds")
    assert added.returncode == 0, added.stderr
    assert "added CUSTOM_RULE_1: header Subject contains 'cheap meds', score 3" in added.stdout
    refused = run_gatebox(data, "antispam", "rules", "add", "--body", "--regex", "--score", "1",
                          "(a+)+")
    assert refused.returncode == 1 and "backtrack exponentially" in refused.stderr
    neither = run_gatebox(data, "antispam", "rules", "add", "--score", "1", "x")
    assert neither.returncode != 0 and "--header NAME, --any-header or --body" in neither.stderr
    listed = run_gatebox(data, "antispam", "rules", "list")
    assert listed.returncode == 0
    for name in ("GTUBE", "MIME_NO_VERSION", "FORGED_OUTLOOK_MID", "CUSTOM_RULE_1"):
        assert name in listed.stdout
    removed = run_gatebox(data, "antispam", "rules", "remove", "1")
    assert removed.returncode == 0 and "removed CUSTOM_RULE_1" in removed.stdout
    assert "CUSTOM_RULE_1" not in run_gatebox(data, "antispam", "rules", "list", "--custom").stdout
    assert custom.rules(box) == []
