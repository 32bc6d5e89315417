"""The Bayes layer on its own, on real SQLite files: the tokens, learning
(idempotent, moving between classes), chi-square combining, the held-out
accuracy after 200 spam and 200 ham from the test corpus, abstaining below
the minimum, the data check's conditions, auto-learn's margins, expiry,
reset, the message actions and the IMAPSieve files."""

import asyncio
import os
import sqlite3
import subprocess
import time

import pytest

from firmware.mail.policy import Context, Policy, Symbol
from softpaks.antispam import bayes
from softpaks.antispam.bayes import check, classify, sieve, spool, tokens
from softpaks.antispam.bayes import store as bayes_store
from softpaks.antispam.bayes.learn import learn_message
from tests.support.net import wait_until
from tests.support.spam_corpus import Corpus

TRAINED = 200
HELD_OUT = 100
REQUIRED_RATE = 0.95


def learn_all(db, messages, spam):
    for message in messages:
        db.learn(tokens.digest(message), tokens.tokens(message), spam)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    db = bayes_store.BayesStore(tmp_path_factory.mktemp("bayes"))
    corpus = Corpus(seed=11)
    learn_all(db, corpus.hams(TRAINED), False)
    learn_all(db, corpus.spams(TRAINED), True)
    yield db
    db.close()


@pytest.fixture
def box(store):
    store.set_many({"email.domain": "example.com", "antispam.content_filter": "on"})
    yield store
    bayes_store.for_data(store.data_dir).close()
    bayes_store.for_data(store.data_dir, read_only=True).close()


# ---- tokens ---------------------------------------------------------------------------
def test_osb_pairs_carry_the_distance_within_a_window_of_five():
    found = tokens.osb(["buy", "cheap", "pills", "here", "now", "today"])
    assert {"buy", "buy cheap", "buy ? pills", "buy ? ? here", "buy ? ? ? now"} <= set(found)
    assert "buy ? ? ? ? today" not in found          # six words apart: outside the window
    assert "cheap ? ? ? today" in found


def test_header_words_carry_their_field_and_html_markup_is_not_a_token():
    message = (b"From: Winner <prize@win.test>\r\nTo: bob@example.com\r\nSubject: Claim now\r\n"
               b"X-Received-Whatever: ignoredword\r\nContent-Type: text/html\r\n\r\n"
               b"<html><body><p style='color:red'>Claim your <b>prize</b></p>"
               b"<a href='http://win.test/x'>here</a></body></html>\r\n")
    found = set(tokens.token_texts(message))
    assert {"subject:claim", "subject:claim now", "from:domain:win.test", "url:win.test",
            "claim ? prize"} <= found
    assert not any("style" in t or "color" in t or "<" in t for t in found)
    assert not any("ignoredword" in t for t in found)


def test_a_huge_message_gives_a_bounded_number_of_tokens():
    words = " ".join(f"word{i}" for i in range(50_000))
    message = f"Subject: big\r\n\r\n{words}\r\n".encode()
    assert len(tokens.tokens(message)) == tokens.MAX_TOKENS


def test_the_digest_ignores_what_the_box_adds_on_the_way_in():
    message = Corpus(3).spam()
    marked = (b"X-Spam-Flag: YES\r\nReceived: from x by y\r\n" +
              message.replace(b"Subject: ", b"Subject: [SPAM] ", 1))
    assert tokens.digest(marked) == tokens.digest(message)
    assert tokens.digest(Corpus(4).spam()) != tokens.digest(message)


# ---- learning ---------------------------------------------------------------------------
def test_learning_is_idempotent_and_the_other_class_moves_the_message(tmp_path):
    db = bayes_store.BayesStore(tmp_path)
    message = Corpus(5).ham()
    digest, found = tokens.digest(message), tokens.tokens(message)
    assert db.learn(digest, found, spam=False) == "learnt"
    assert db.learn(digest, found, spam=False) == "already"
    totals = db.totals()
    assert (totals.spam, totals.ham, totals.tokens) == (0, 1, len(set(found)))
    assert db.learn(digest, found, spam=True) == "moved"
    assert (db.totals().spam, db.totals().ham) == (1, 0)
    assert all(spam_ham == (1, 0) for spam_ham in db.counts(found).values())
    assert db.learnt_as(digest) is True
    db.close()


def test_an_empty_message_is_refused(tmp_path):
    with pytest.raises(ValueError, match="empty"):
        learn_message(tmp_path, b"  \r\n", True, "test", 150_000)


# ---- combining ---------------------------------------------------------------------------
def test_chi_square_combining_follows_the_evidence():
    assert classify.combine([]) == 0.5
    assert classify.combine([0.99] * 20) > 0.99
    assert classify.combine([0.01] * 20) < 0.01
    assert 0.4 < classify.combine([0.99, 0.01] * 10) < 0.6
    # Hundreds of extreme tokens neither underflow nor overflow.
    assert classify.combine([1e-6] * 500) < 0.001


@pytest.mark.parametrize("probability, symbol", [
    (0.0, "BAYES_00"), (0.03, "BAYES_05"), (0.1, "BAYES_20"), (0.3, "BAYES_40"),
    (0.5, "BAYES_50"), (0.7, "BAYES_60"), (0.9, "BAYES_80"), (0.97, "BAYES_95"),
    (0.995, "BAYES_99"), (1.0, "BAYES_99")])
def test_probabilities_map_to_spamassassins_bands(probability, symbol):
    assert classify.band(probability)[0] == symbol


def test_a_token_seen_once_says_little():
    once, often = (classify.token_probability(n, 0, 100, 100) for n in (1, 30))
    assert 0.5 < once < 0.85 < 0.98 < often
    # Damaged counts larger than the totals stay within 0..1.
    assert 0 <= classify.token_probability(500, 3, 10, 10) <= 1


def test_held_out_mail_is_classified_after_200_spam_and_200_ham(trained):
    corpus = Corpus(seed=99)        # other messages than the ones learnt
    hams = [classify.classify(trained, tokens.tokens(m)) for m in corpus.hams(HELD_OUT)]
    spams = [classify.classify(trained, tokens.tokens(m)) for m in corpus.spams(HELD_OUT)]
    ham_right = sum(v.probability < 0.5 for v in hams) / HELD_OUT
    spam_right = sum(v.probability > 0.5 for v in spams) / HELD_OUT
    assert ham_right >= REQUIRED_RATE and spam_right >= REQUIRED_RATE, (ham_right, spam_right)
    assert sum(v.score < 0 for v in hams) >= REQUIRED_RATE * HELD_OUT
    assert sum(v.score >= 2.0 for v in spams) >= REQUIRED_RATE * HELD_OUT


def test_damaged_counts_in_the_database_do_not_break_classifying(tmp_path):
    db = bayes_store.BayesStore(tmp_path)
    message = Corpus(6).spam()
    db.learn(tokens.digest(message), tokens.tokens(message), True)
    db.db.execute("UPDATE tokens SET spam = -7, ham = 99999")
    db.db.execute("UPDATE totals SET spam = -1")
    verdict = classify.classify(db, tokens.tokens(message))
    assert 0.0 <= verdict.probability <= 1.0
    assert db.totals().spam == 0
    db.close()


def test_a_damaged_count_reads_as_zero_and_a_fraction_as_its_whole_part(tmp_path):
    db = bayes_store.BayesStore(tmp_path)
    db.learn(b"e" * 32, [1, 2, 3, 4], True)
    for key, spam, ham in ((1, -7, "x"), (2, "lots", 5), (3, 2.7, -1), (4, 3, 4)):
        db.db.execute("UPDATE tokens SET spam = ?, ham = ? WHERE hash = ?", [spam, ham, key])
    assert db.counts([1, 2, 3, 4, 5]) == {1: (0, 0), 2: (0, 5), 3: (2, 0), 4: (3, 4)}
    db.close()


# ---- the check --------------------------------------------------------------------------
def data_ctx(store, message, **fields):
    ctx = Context(settings=store.snapshot(), client_ip="198.51.100.9", **fields)
    ctx.recipients = ["bob@example.com"]
    ctx.message = message
    ctx.stage = "data"
    return ctx


def run_check(made, ctx):
    result = made.run(ctx)
    if asyncio.iscoroutine(result):
        result = asyncio.run(result)
    return result


def bayes_symbols(ctx):
    return [s for s in ctx.symbols if s.name.startswith("BAYES_")]


def teach(store, corpus, count):
    for message in corpus.hams(count):
        bayes.learn(store, message, False, "test")
    for message in corpus.spams(count):
        bayes.learn(store, message, True, "test")


def test_it_abstains_until_enough_of_both_were_learnt(box):
    corpus = Corpus(21)
    ctx = data_ctx(box, corpus.spam())
    assert run_check(check.bayes_check(box), ctx) is None
    assert ctx.results[("bayes", "not_ready")] == 1      # nothing learnt, no database yet
    bayes_store.path_of(box.data_dir).parent.mkdir(parents=True, exist_ok=True)
    with pytest.raises(sqlite3.OperationalError):         # the classifier's connection never makes one
        bayes_store.for_data(box.data_dir, read_only=True).db
    assert not bayes_store.path_of(box.data_dir).exists()
    teach(box, corpus, 20)
    made = check.bayes_check(box)
    ctx = data_ctx(box, corpus.spam())
    assert run_check(made, ctx) is None
    assert bayes_symbols(ctx) == [] and ctx.results[("bayes", "not_ready")] == 1
    box.set_many({"antispam.bayes_min_spam": "20", "antispam.bayes_min_ham": "21"})
    ctx = data_ctx(box, corpus.spam())
    run_check(made, ctx)
    assert bayes_symbols(ctx) == []                 # one ham short
    box.set_many({"antispam.bayes_min_ham": "20"})
    spam_ctx, ham_ctx = data_ctx(box, corpus.spam()), data_ctx(box, corpus.ham())
    run_check(made, spam_ctx)
    run_check(made, ham_ctx)
    [spam_symbol], [ham_symbol] = bayes_symbols(spam_ctx), bayes_symbols(ham_ctx)
    assert spam_symbol.score >= 2.0 and "spam probability" in spam_symbol.detail
    assert ham_symbol.score < 0


@pytest.mark.parametrize("change", ["outbound", "whitelisted", "filter_off", "bayes_off"])
def test_the_check_scores_only_filtered_inbound_mail(box, change):
    corpus = Corpus(22)
    teach(box, corpus, 5)
    box.set_many({"antispam.bayes_min_spam": "5", "antispam.bayes_min_ham": "5"})
    made = check.bayes_check(box)
    ctx = data_ctx(box, corpus.spam())
    run_check(made, ctx)
    assert bayes_symbols(ctx)                       # the baseline scores
    if change == "filter_off":
        box.set_many({"antispam.content_filter": "off"})
    if change == "bayes_off":
        box.set_many({"antispam.bayes": "off"})
    ctx = data_ctx(box, corpus.spam(), trusted=change == "outbound")
    ctx.whitelisted = change == "whitelisted"
    run_check(made, ctx)
    assert bayes_symbols(ctx) == []


def test_a_locked_database_skips_the_layer_at_once_and_the_classifier_never_writes(box):
    corpus = Corpus(23)
    teach(box, corpus, 5)
    box.set_many({"antispam.bayes_min_spam": "5", "antispam.bayes_min_ham": "5"})
    policy = Policy([check.bayes_check(box)])
    reader = bayes_store.for_data(box.data_dir, read_only=True)
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        reader.db.execute("DELETE FROM tokens")
    # WAL readers wait for nobody, except a connection in exclusive locking
    # mode, which must be the only one to take its lock.
    bayes_store.for_data(box.data_dir).close()
    reader.close()
    holder = sqlite3.connect(bayes_store.path_of(box.data_dir), isolation_level=None)
    holder.execute("PRAGMA locking_mode = EXCLUSIVE")
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("UPDATE totals SET spam = spam WHERE id = 1")
    holder.execute("COMMIT")
    try:
        ctx = data_ctx(box, corpus.spam())
        started = time.monotonic()
        assert asyncio.run(policy.evaluate("data", ctx)) is None
        waited = time.monotonic() - started
    finally:
        holder.close()
    assert [s.name for s in ctx.symbols] == ["BAYES_ERROR"]
    # The writers' busy timeout is 10 s; the classifier on the event loop gives up far sooner.
    assert waited < bayes_store.BUSY_MS / 1000 / 2
    ctx = data_ctx(box, corpus.spam())
    asyncio.run(policy.evaluate("data", ctx))
    assert bayes_symbols(ctx) and bayes_symbols(ctx)[0].score > 0


# ---- auto-learn --------------------------------------------------------------------------
def symbols(*pairs):
    return [Symbol(name, score) for name, score in pairs]


@pytest.mark.parametrize("found, learnt", [
    ((("RULE_A", 8.0), ("RULE_B", 4.5)), True),
    ((("RULE_A", 12.5),), None),                        # one finding alone is not enough
    ((("RULE_A", 8.0), ("RULE_B", 0.5), ("BAYES_99", 3.5)), None),   # Bayes does not count
    ((("BAYES_99", 3.5),), False),                      # the others found nothing: ham
    ((("RULE_A", 8.0), ("RULE_B", 6.0), ("DKIM_ERROR", 0.0)), None),  # a check failed
    ((("GTUBE", 1000.0), ("RULE_B", 6.0)), None),
    ((), False),
    ((("RULE_A", 0.1),), False),
    ((("RULE_A", 0.2),), None),
    ((("RULE_A", 3.0), ("RULE_B", -3.0)), False),
])
def test_auto_learn_keeps_spamassassins_margins(found, learnt):
    assert check.autolearn_class(symbols(*found)) is learnt


def test_auto_learn_writes_clear_cases_only_when_switched_on(box):
    corpus = Corpus(23)
    made = check.autolearn_check(box)
    db = bayes_store.for_data(box.data_dir)
    ctx = data_ctx(box, corpus.spam())
    ctx.symbols = symbols(("RULE_A", 8.0), ("RULE_B", 5.0))
    run_check(made, ctx)
    assert ctx.results[("bayes_autolearn", "spam")] == 0      # off by default
    box.set_many({"antispam.bayes_autolearn": "on"})
    ctx = data_ctx(box, corpus.spam())
    ctx.symbols = symbols(("RULE_A", 8.0), ("RULE_B", 5.0), ("BAYES_00", -1.9))
    run_check(made, ctx)
    assert ctx.results[("bayes_autolearn", "spam")] == 1
    wait_until(lambda: db.totals().spam == 1, 10, 0.05, "the auto-learnt spam")
    ctx = data_ctx(box, corpus.ham())
    run_check(made, ctx)
    wait_until(lambda: db.totals().ham == 1, 10, 0.05, "the auto-learnt ham")
    ctx = data_ctx(box, corpus.ham(), trusted=True)           # outbound: never
    run_check(made, ctx)
    assert ctx.results[("bayes_autolearn", "ham")] == 0


# ---- maintenance --------------------------------------------------------------------------
def test_learning_past_the_maximum_tokens_setting_brings_the_database_under_it(box):
    box.set_many({"antispam.bayes_max_tokens": "10000"})
    db = bayes_store.for_data(box.data_dir)
    learnt, peak = 0, 0
    # Each message of fresh words brings about 2,000 new tokens: ten pass the cap.
    for n in range(10):
        words = " ".join(f"w{n}x{i}" for i in range(500))
        bayes.learn(box, f"Subject: lesson {n}\r\n\r\n{words}\r\n".encode(), n % 2 == 0, "cli")
        learnt += 1
        peak = max(peak, db.totals().tokens)
        assert db.totals().tokens <= 10_000
    # The cap was reached (so pruning, not a small corpus, kept it there),
    # and a prune goes down to 90% of it.
    assert peak > 9_000 and db.totals().spam + db.totals().ham == learnt
    box.set_many({"antispam.bayes_max_tokens": "150000"})
    bayes.learn(box, b"Subject: one more\r\n\r\n" + b" ".join(b"z%d" % i for i in range(500)),
                True, "cli")
    assert db.totals().tokens > 10_000                            # the setting, not a constant


def test_expiry_removes_rare_old_tokens_first(tmp_path):
    db = bayes_store.BayesStore(tmp_path)
    day = 86400
    old, now = 1_000 * day, 1_100 * day
    db.learn(b"a" * 32, list(range(1, 101)), True, now=old)      # rare and old
    db.learn(b"b" * 32, list(range(101, 201)), True, now=now)    # rare but recent
    db.learn(b"c" * 32, list(range(201, 301)), True, now=old)
    db.learn(b"d" * 32, list(range(201, 301)), False, now=old)   # old but seen twice
    assert db.totals().tokens == 300
    removed = db.expire(200, now=now)
    assert removed == 300 - 180
    left = db.counts(list(range(1, 301)))
    assert not any(k in left for k in range(1, 101))              # the rare old went first
    assert all(k in left for k in range(101, 201))
    assert db.totals().tokens == 180
    assert db.expire(200, now=now) == 0                           # under the cap: nothing
    db.close()


def test_reset_forgets_everything(tmp_path):
    db = bayes_store.BayesStore(tmp_path)
    learn_all(db, Corpus(8).spams(3), True)
    db.reset()
    assert db.totals() == bayes_store.Totals(0, 0, 0)
    db.close()


# ---- the part's API ------------------------------------------------------------------------
def test_message_actions_and_a_release_teach_the_filter(box):
    corpus = Corpus(24)
    actions = {a.name: a for a in bayes.message_actions(box)}
    assert set(actions) == {"learn_spam", "learn_ham"}
    assert actions["learn_spam"].label == "Learn as spam"
    message = corpus.spam()
    said = actions["learn_spam"].run(box, message, {"where": "mailbox", "actor": "admin"})
    assert said == "Bayes: learnt as spam."
    assert actions["learn_ham"].run(box, message, {"where": "mailbox", "actor": "admin"}) == \
        "Bayes: learnt as ham (it was learnt as spam before)."
    db = bayes_store.for_data(box.data_dir)
    assert (db.totals().spam, db.totals().ham) == (0, 1)

    class Item:
        def __init__(self, kind):
            self.kind, self.id = kind, "q1"
    bayes.on_released(box, Item("virus"), corpus.ham(), "admin")
    assert db.totals().ham == 1
    bayes.on_released(box, Item("spam"), corpus.ham(), "admin")
    assert db.totals().ham == 2


def test_dovecot_settings_bring_imapsieve_rules_and_their_files(box):
    text = "".join(bayes.dovecot_settings(box, box.data_dir))
    top = sieve.sieve_dir(box.data_dir)
    for wanted in ("sieve_plugins = sieve_imapsieve sieve_extprograms",
                   "imapsieve_mailbox1_name = Junk", "imapsieve_mailbox2_from = Junk",
                   f"imapsieve_mailbox1_before = file:{top / 'learn-spam.sieve'}",
                   f"sieve_pipe_bin_dir = {top / 'bin'}", "mail_plugins = $mail_plugins imap_sieve"):
        assert wanted in text
    assert os.access(top / "bin" / "learn-ham", os.X_OK)
    assert 'pipe :copy "learn-ham"' in (top / "learn-ham.sieve").read_text()
    assert '"Trash"' in (top / "learn-ham.sieve").read_text()


def test_the_spool_program_and_the_service_learn_a_message(box):
    bayes.dovecot_settings(box, box.data_dir)
    program = sieve.sieve_dir(box.data_dir) / "bin" / "learn-spam"
    message = Corpus(26).spam()
    # The program as Dovecot runs it: the message on stdin, no environment.
    done = subprocess.run([str(program)], input=message, env={}, capture_output=True, timeout=20)
    assert done.returncode == 0, done.stderr
    [spooled] = os.listdir(sieve.spool_dir(box.data_dir, "spam"))
    assert (sieve.spool_dir(box.data_dir, "spam") / spooled).read_bytes() == message
    assert spool.learn_spooled(box.data_dir, 150_000) == 1
    assert os.listdir(sieve.spool_dir(box.data_dir, "spam")) == []
    assert bayes_store.for_data(box.data_dir).totals().spam == 1
    # A hostile file (empty) is dropped, not retried forever.
    (sieve.spool_dir(box.data_dir, "ham") / "1.2.3").write_bytes(b"")
    assert spool.learn_spooled(box.data_dir, 150_000) == 0
    assert os.listdir(sieve.spool_dir(box.data_dir, "ham")) == []


def test_the_database_is_its_own_file_in_wal_mode(box):
    bayes.learn(box, Corpus(25).ham(), False, "test")
    path = bayes_store.path_of(box.data_dir)
    assert path.exists() and (path.stat().st_mode & 0o077) == 0
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_without_pigeonhole_dovecot_gets_no_sieve_rules(box, tmp_path):
    assert sieve.dovecot_settings(box, box.data_dir, plugins=(str(tmp_path / "absent.so"),)) == []
