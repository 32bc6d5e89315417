"""The Content Filter records on a real settings store: the server record
from the settings, domain and user records over it (whole records, user over
domain over server), what each level and action come to for the scoring at
the end of DATA, the RCPT split of recipients whose records differ, the
cache on the settings generation, hostile stored rows, and the command."""

import pytest

from firmware.config import Store
from firmware.mail import scoring
from firmware.mail.policy import Context
from softpaks.antispam import content_filter as cf
from softpaks.antispam.content_filter import FilterError, FilterSettings

from tests.support.licensing import run_gatebox


@pytest.fixture
def box(store):
    store.set_many({"email.domain": "example.com"})
    return store


def applies(store, recipient):
    return cf.for_recipient(store, store.snapshot(), recipient)


# ---- the server record -----------------------------------------------------------
def test_the_server_record_is_the_settings_with_their_defaults(box):
    found = cf.for_recipients(box, box.snapshot(), ["bob@example.com"])
    assert found == FilterSettings(active=False, default=True, custom=False, heuristic=True,
                                   level="medium", action="mark", tag_subject=True,
                                   scope="server")
    box.set_many({cf.ACTIVE: "on", cf.LEVEL: "high", cf.ACTION: "reject"})
    found = cf.for_recipients(box, box.snapshot(), ["bob@example.com"])
    assert (found.active, found.level, found.action, found.scope) == (True, "high", "reject",
                                                                      "server")
    assert cf.for_recipients(box, box.snapshot(), []).scope == "server"


def test_settings_declare_ismail_labels_and_refuse_other_values(box):
    labels = {s.key: s.label for s in cf.SETTINGS}
    assert labels[cf.ACTIVE] == "Message Filter Active"
    assert labels[cf.HEURISTIC] == "Heuristic filter"
    assert labels[cf.ACTION] == "Filter Match Action"
    assert labels[cf.TAG_SUBJECT] == "Append [SPAM] to subject line"
    assert dict(cf.ACTIONS)["mark"] == "Mark message and deliver to recipient"
    with pytest.raises(ValueError):
        box.set(cf.LEVEL, "extreme")
    with pytest.raises(ValueError):
        box.set(cf.ACTION, "bounce")


# ---- levels and actions ------------------------------------------------------------
@pytest.mark.parametrize("level, tag, high", [("low", 8.0, 15.0), ("medium", 5.0, 10.0),
                                               ("high", 3.5, 7.0)])
@pytest.mark.parametrize("action", ["mark", "quarantine", "reject"])
def test_each_level_and_action_decides_at_its_thresholds(level, tag, high, action):
    record = FilterSettings(True, True, False, True, level, action, True, "server")
    policy = record.policy()
    higher = {"mark": scoring.TAG, "quarantine": scoring.QUARANTINE, "reject": scoring.REJECT}
    assert scoring.decide(tag - 0.1, {}, policy).kind == scoring.ACCEPT
    assert scoring.decide(tag, {}, policy).kind == scoring.TAG
    assert scoring.decide(high - 0.1, {}, policy).kind == scoring.TAG
    assert scoring.decide(high, {}, policy).kind == higher[action]
    assert scoring.decide(1000, {}, policy).kind == higher[action]


def test_tag_subject_reaches_the_policy():
    off = FilterSettings(True, True, False, True, "medium", "mark", False, "server").policy()
    assert off.tag_subject is False
    message = b"Subject: hello\r\n\r\nbody\r\n"
    action = scoring.decide(6.0, {}, off)
    marked = scoring.mark(message, action, [], [], {}, "gw.example.com", off)
    assert b"Subject: hello\r\n" in marked and b"X-Spam-Flag: YES" in marked
    on = FilterSettings(True, True, False, True, "medium", "mark", True, "server").policy()
    marked = scoring.mark(message, action, [], [], {}, "gw.example.com", on)
    assert b"Subject: [SPAM] hello\r\n" in marked


@pytest.mark.parametrize("policy", [None, scoring.SpamPolicy(tag=4.0, quarantine=9.0)],
                         ids=["the settings' thresholds", "a filter record's"])
def test_a_quarantined_message_keeps_its_subject_and_reports_the_threshold_that_applied(policy):
    settings = {"email.spam_tag_score": 3.0, "email.spam_quarantine_score": 8.0,
                "email.spam_reject_score": None}
    action = scoring.decide(10.0, settings, policy)
    assert action.kind == scoring.QUARANTINE
    marked = scoring.mark(b"Subject: hello\r\n\r\nbody\r\n", action, [], [], settings,
                          "gw.example.com", policy)
    assert b"Subject: hello\r\n" in marked, "a release delivers it as it came"
    required = 3.0 if policy is None else 4.0
    assert f"X-Spam-Status: Yes, score=10.0 required={required:.1f} ".encode() in marked


def test_a_message_another_check_holds_keeps_its_subject_at_the_tag_score():
    settings = {"email.spam_tag_score": 3.0, "email.spam_quarantine_score": 8.0,
                "email.spam_reject_score": None}
    action = scoring.decide(5.0, settings, None)
    assert action.kind == scoring.TAG
    message = b"Subject: hello\r\n\r\nbody\r\n"
    tagged = scoring.mark(message, action, [], [], settings, "gw.example.com")
    assert b"Subject: [SPAM] hello\r\n" in tagged
    held = scoring.mark(message, action, [], [], settings, "gw.example.com", held=True)
    assert b"Subject: hello\r\n" in held, "a virus or DMARC quarantine releases it as it came"
    assert b"X-Spam-Status: Yes, score=5.0 " in held


# ---- precedence --------------------------------------------------------------------
def test_user_over_domain_over_server_whole_records(box):
    box.set_many({cf.ACTIVE: "on", cf.LEVEL: "low", cf.TAG_SUBJECT: "off"})
    assert applies(box, "bob@example.com").scope == "server"
    domain = cf.save(box, {"level": "high"}, domain="Example.COM")
    # The new domain record starts from what applied (the server's) and holds all fields.
    assert (domain.scope, domain.active, domain.level, domain.tag_subject) == \
        ("domain example.com", True, "high", False)
    user = cf.save(box, {"action": "quarantine"}, user="bob")
    assert (user.scope, user.level, user.action) == ("user bob@example.com", "high",
                                                     "quarantine")
    # A later server change no longer reaches the domain or the user: records are whole.
    box.set_many({cf.TAG_SUBJECT: "on", cf.LEVEL: "medium"})
    assert applies(box, "bob@example.com") == user
    assert applies(box, "BOB@Example.com.") == user
    assert applies(box, "<bob@example.com>") == user
    alice = applies(box, "alice@example.com")
    assert (alice.scope, alice.level, alice.tag_subject) == ("domain example.com", "high", False)
    assert applies(box, "someone@elsewhere.test").scope == "server"
    assert applies(box, "someone@elsewhere.test").level == "medium"
    # Clearing the user lets the domain apply again; clearing the domain the server.
    assert cf.clear(box, user="bob@example.com") == alice
    assert applies(box, "bob@example.com") == alice
    assert cf.clear(box, domain="example.com").scope == "server"
    assert applies(box, "bob@example.com").scope == "server"


def test_changes_audit_and_move_the_generation(box):
    before = box.generation()
    cf.save(box, {"content_filter": "on", "action": "reject"}, domain="example.com",
            actor="tester")
    assert box.generation() == before + 1
    what = [row["what"] for row in box.audit_log() if row["actor"] == "tester"]
    assert what and "content filter of domain example.com" in what[0]
    assert "action=reject" in what[0]
    cf.clear(box, domain="example.com", actor="tester")
    assert box.generation() == before + 2
    cf.save(box, {"level": "low"}, actor="tester")
    assert box.get(cf.LEVEL) == "low"


@pytest.mark.parametrize("scope, raw, says", [
    ({"domain": "other.test"}, {"level": "low"}, "is not a local domain of this box"),
    ({"user": "bob@other.test"}, {"level": "low"}, "is not a local domain of this box"),
    ({"domain": "not a domain"}, {"level": "low"}, "is not a domain"),
    ({"domain": "example.com", "user": "bob"}, {"level": "low"}, "not both"),
    ({}, {"level": "extreme"}, "level must be one of low, medium, high"),
    ({"domain": "example.com"}, {"action": "bounce"}, "action must be one of mark"),
    ({"domain": "example.com"}, {"heuristic": "maybe"}, "heuristic must be on or off"),
    ({"domain": "example.com"}, {"colour": "red"}, "'colour' is not a Content Filter field"),
])
def test_refused_changes_say_why_and_change_nothing(box, scope, raw, says):
    before = box.generation()
    with pytest.raises(FilterError, match=says):
        cf.save(box, raw, **scope)
    assert box.generation() == before
    assert cf.scoped_records(box) == []
    assert box.get(cf.LEVEL) == "medium"


def test_clear_refuses_what_has_no_record(box):
    with pytest.raises(FilterError, match="has no content filter record"):
        cf.clear(box, domain="example.com")
    with pytest.raises(FilterError, match="cannot be cleared"):
        cf.clear(box)


def test_a_hostile_stored_row_is_ignored_and_the_next_level_decides(box):
    cf.save(box, {"level": "high"}, domain="example.com")
    box.db.execute("INSERT INTO antispam_content_filter VALUES('user', 'bob@example.com', 1, 1, "
                   "0, 1, 'extreme''; DROP', 'mark', 1, 0)")
    box.db.execute("INSERT INTO antispam_content_filter VALUES('galaxy', 'x', 1, 1, 0, 1, "
                   "'low', 'mark', 1, 0)")
    box._bump_generation()
    assert applies(box, "bob@example.com").scope == "domain example.com"
    assert [scope for _, scope, _ in cf.scoped_records(box)] == ["example.com"]


def test_a_hostile_stored_setting_counts_as_its_default(box):
    box.set_many({cf.ACTIVE: "on", cf.ACTION: "reject"})
    box.db.execute("UPDATE settings SET value = ? WHERE key = ?", ['"extreme"', cf.ACTION])
    box.db.execute("INSERT INTO settings(key, value) VALUES(?, ?)", [cf.LEVEL, '{"x": 1}'])
    box._bump_generation()
    found = applies(box, "bob@example.com")
    assert (found.active, found.action, found.level) == (True, "mark", "medium")
    assert found.policy().reject is None


def test_records_are_cached_until_the_generation_moves(box):
    snapshot = box.snapshot()
    first = cf.records(box, snapshot)
    assert cf.records(box, snapshot) is first
    cf.save(box, {"level": "high"}, domain="example.com")
    assert cf.records(box, snapshot) is first     # the same generation: the same records
    fresh = box.snapshot()
    assert cf.records(box, fresh) is not first
    assert cf.for_recipient(box, fresh, "bob@example.com").level == "high"
    # A plain mapping of settings has no generation: read afresh each time.
    plain = dict(fresh.values)
    assert cf.records(box, plain) is not cf.records(box, plain)


# ---- the checks --------------------------------------------------------------------
def rcpt(store, recipient, accepted=(), trusted=False, auth_user=""):
    ctx = Context(settings=store.snapshot(), client_ip="198.51.100.9", trusted=trusted,
                  auth_user=auth_user)
    ctx.recipients = list(accepted)
    ctx.recipient = recipient
    return cf.SplitCheck(store)(ctx), ctx


def test_recipients_with_different_records_are_split(box):
    box.set_many({cf.ACTIVE: "on"})
    cf.save(box, {"action": "reject"}, user="carol")
    # The first recipient is always accepted.
    assert rcpt(box, "carol@example.com")[0] is None
    # Same record (the server's) for two users: one transaction.
    assert rcpt(box, "alice@example.com", ["bob@example.com"])[0] is None
    verdict, ctx = rcpt(box, "carol@example.com", ["bob@example.com"])
    assert (verdict.code, verdict.enhanced) == (452, "4.5.3")
    assert "different spam filter settings" in verdict.text
    assert ctx.results[(cf.SPLIT_CHECK_NAME, "deferred")] == 1
    assert rcpt(box, "bob@example.com", ["carol@example.com"])[0].code == 452
    # Compared with the first accepted recipient, not the last.
    assert rcpt(box, "alice@example.com", ["bob@example.com", "dave@example.com"])[0] is None


def test_equal_filtering_from_different_scopes_is_not_split(box):
    box.set_many({cf.ACTIVE: "on"})
    cf.save(box, {}, domain="example.com")      # a copy of the server's record
    assert rcpt(box, "bob@example.com", ["x@elsewhere.test"])[0] is None
    # Inactive records filter alike, whatever their other fields.
    box.set_many({cf.ACTIVE: "off"})
    cf.save(box, {"content_filter": "off", "level": "high"}, domain="example.com")
    assert rcpt(box, "bob@example.com", ["x@elsewhere.test"])[0] is None
    cf.save(box, {"content_filter": "on"}, domain="example.com")
    assert rcpt(box, "bob@example.com", ["x@elsewhere.test"])[0].code == 452


@pytest.mark.parametrize("trusted, auth_user", [(True, ""), (False, "alice")])
def test_clients_that_may_relay_are_not_split(box, trusted, auth_user):
    cf.save(box, {"content_filter": "on", "action": "reject"}, user="carol")
    assert rcpt(box, "carol@example.com", ["bob@example.com"], trusted, auth_user)[0] is None


def data(store, recipients, whitelisted=False, trusted=False):
    ctx = Context(settings=store.snapshot(), client_ip="198.51.100.9", trusted=trusted)
    ctx.recipients = list(recipients)
    ctx.whitelisted = whitelisted
    assert cf.PolicyCheck(store)(ctx) is None
    return ctx.spam_policy


def test_the_data_check_sets_the_recipients_policy(box):
    assert data(box, ["bob@example.com"]) is None           # the filter is off
    cf.save(box, {"content_filter": "on", "level": "low", "action": "quarantine",
                  "tag_subject": "off"}, user="bob")
    policy = data(box, ["bob@example.com"])
    assert (policy.tag, policy.quarantine, policy.reject, policy.tag_subject) == \
        (8.0, 15.0, None, False)
    assert "user bob@example.com" in policy.name
    assert data(box, ["alice@example.com"]) is None
    box.set_many({cf.ACTIVE: "on", cf.ACTION: "reject", cf.LEVEL: "high"})
    policy = data(box, ["alice@example.com"])
    assert (policy.tag, policy.quarantine, policy.reject) == (3.5, None, 7.0)
    box.set_many({cf.ACTION: "mark"})
    policy = data(box, ["alice@example.com"])
    assert (policy.tag, policy.quarantine, policy.reject) == (3.5, None, None)


def test_whitelisted_and_outbound_mail_gets_no_policy(box):
    box.set_many({cf.ACTIVE: "on", cf.ACTION: "reject"})
    assert data(box, ["bob@example.com"]) is not None
    assert data(box, ["bob@example.com"], whitelisted=True) is None
    assert data(box, ["bob@example.com"], trusted=True) is None


def test_the_checks_sit_at_the_content_position():
    from firmware.mail.policy import Order
    checks = {check.name: check for check in cf.policy_checks(None)}
    assert checks[cf.SPLIT_CHECK_NAME].stage == "rcpt"
    assert checks[cf.CHECK_NAME].stage == "data"
    assert {check.order for check in checks.values()} == {Order.CONTENT}


# ---- the command -------------------------------------------------------------------
def test_the_command_sets_shows_and_clears(tmp_path, box_serial):
    data_dir = tmp_path / "cli"
    made = Store.create(data_dir)
    made.set_many({"email.domain": "example.com"})
    made.close()
    result = run_gatebox(data_dir, "antispam", "filter", "set", "--domain", "example.com",
                         "content_filter=on", "level=high", "action=quarantine", check=True)
    assert "Content Filter of domain example.com" in result.stdout
    assert "quarantine from 7" in result.stdout
    shown = run_gatebox(data_dir, "antispam", "filter", "show", "--user", "bob", check=True)
    assert "Content Filter of domain example.com (no record of its own" in shown.stdout
    assert "level           high" in shown.stdout
    server = run_gatebox(data_dir, "antispam", "filter", "show", check=True)
    assert "Content Filter of server" in server.stdout
    assert "overridden for domain example.com" in server.stdout
    refused = run_gatebox(data_dir, "antispam", "filter", "set", "level=extreme")
    assert refused.returncode != 0 and "level must be one of low, medium, high" in refused.stderr
    refused = run_gatebox(data_dir, "antispam", "filter", "set", "--domain", "other.test",
                          "level=low")
    assert refused.returncode != 0 and "is not a local domain" in refused.stderr
    cleared = run_gatebox(data_dir, "antispam", "filter", "clear", "--domain", "example.com",
                          check=True)
    assert "the record of server applies now" in cleared.stdout
    refused = run_gatebox(data_dir, "antispam", "filter", "clear")
    assert refused.returncode != 0
