"""The callout answer cache (Postfix verify's times), the recipient sources
combined, and the two Address Verification value types."""

import asyncio

import pytest

from firmware.config import SettingError, Store
from firmware.mail.verify import cache as cache_module, checks, recipients
from firmware.mail.verify.cache import VerifyCache
from firmware.mail.verify.callout import CalloutAnswer


class Clock:
    def __init__(self, now=1_000_000.0):
        self.now = now

    def __call__(self):
        return self.now


@pytest.fixture
def store(tmp_path):
    store = Store.create(tmp_path / "data")
    yield store
    store.close()


def test_positive_answers_live_31_days_and_are_refreshed_after_7(store):
    clock = Clock()
    cache = VerifyCache(store, clock)
    cache.put("recipient", "Jane@Example.com", "accepted", "250 ok")
    clock.now += 6 * 86400
    answer, refresh = cache.get("recipient", "jane@example.com")
    assert (answer.status, refresh) == ("accepted", False)
    clock.now += 2 * 86400
    assert cache.get("recipient", "jane@example.com")[1] is True
    clock.now += 24 * 86400
    assert cache.get("recipient", "jane@example.com") == (None, True)


def test_negative_answers_live_3_days_and_are_refreshed_after_3_hours(store):
    clock = Clock()
    cache = VerifyCache(store, clock)
    cache.put("sender", "ghost@far.test", "refused", "550 no")
    clock.now += 2 * 3600
    assert cache.get("sender", "ghost@far.test")[1] is False
    clock.now += 2 * 3600
    answer, refresh = cache.get("sender", "ghost@far.test")
    assert answer.status == "refused" and refresh is True
    clock.now += 3 * 86400
    assert cache.get("sender", "ghost@far.test")[0] is None


def test_rows_this_code_did_not_write_are_ignored(store):
    cache = VerifyCache(store)
    store.db.execute("INSERT INTO verify_cache VALUES ('sender', 'a@b.test', 'accepted', 'x', 'soon')")
    store.db.execute("INSERT INTO verify_cache VALUES ('sender', 'c@b.test', 'maybe', 'x', 1)")
    store.db.execute("INSERT INTO verify_cache VALUES ('sender', 'd@b.test', 'accepted', 'x', ?)",
                     [10 ** 12])  # from the future: a clock that was wrong
    for address in ("a@b.test", "c@b.test", "d@b.test"):
        assert cache.get("sender", address) == (None, True)
    with pytest.raises(ValueError):
        cache.put("sender", "a@b.test", "unreachable", "timeout")


def test_concurrent_questions_share_one_callout_and_unreachable_is_not_kept(store):
    cache = VerifyCache(store)
    asked = []

    async def ask():
        asked.append(1)
        await asyncio.sleep(0.05)
        return CalloutAnswer("unreachable", "connection refused")

    async def main():
        return await asyncio.gather(*(cache.ask("recipient", "x@example.com", ask)
                                      for _ in range(5)))
    results = asyncio.run(main())
    assert len(asked) == 1
    assert all(r == ("unreachable", "connection refused", False) for r in results)
    assert cache.get("recipient", "x@example.com") == (None, True)


def test_a_stale_answer_is_used_while_it_is_asked_again(store):
    clock = Clock()
    cache = VerifyCache(store, clock)
    cache.put("recipient", "x@example.com", "accepted", "250 old")
    clock.now += 8 * 86400

    async def ask():
        return CalloutAnswer("refused", "550 gone")

    async def main():
        first = await cache.ask("recipient", "x@example.com", ask)
        await asyncio.gather(*cache_module._refreshing)
        return first
    assert asyncio.run(main()) == ("accepted", "250 old", True)
    answer, _ = cache.get("recipient", "x@example.com")
    assert (answer.status, answer.reply) == ("refused", "550 gone")


def test_manual_list_matches_addresses_and_whole_domains():
    patterns = "jane@example.com\n*@sales.example.com"
    assert recipients.in_manual_list("JANE@example.com", patterns)
    assert recipients.in_manual_list("anyone@sales.example.com", patterns)
    assert not recipients.in_manual_list("joe@example.com", patterns)
    assert not recipients.in_manual_list("jane@example.com.evil.test", patterns)


def test_any_source_that_knows_wins_and_cannot_tell_defers(store):
    settings = {"email.internal_addresses": "jane@example.com", "email.verify_recipient_ldap": True,
                "email.verify_recipient_smtp": False}
    cache = VerifyCache(store)
    decide = lambda address: asyncio.run(recipients.decide(store, cache, settings, address))
    assert decide("jane@example.com").outcome == "accept"
    # The LDAP list was never read: nobody knows joe, and one source cannot tell.
    assert decide("joe@example.com").outcome == "tempfail"
    settings["email.verify_recipient_ldap"] = False
    decision = decide("joe@example.com")
    assert decision.outcome == "refuse"
    assert "not in Email Addresses on Internal Server" in decision.explain()
    settings["email.internal_addresses"] = ""
    assert decide("joe@example.com").outcome == "none"


def test_address_list_and_ldap_server_values(store):
    change = store.set("email.internal_addresses", "Jane@Example.com, *@sales.example.com\nbob@example.com")
    assert change.new == "jane@example.com\n*@sales.example.com\nbob@example.com"
    for bad in ("jane", "*@", "a b@example.com", "x@exa mple.com", "x\x00y@example.com"):
        with pytest.raises(SettingError, match="email addresses"):
            store.set("email.internal_addresses", bad)
    assert store.set("email.ldap_server", "LDAPS://DC1.Example.com:636").new == "ldaps://dc1.example.com:636"
    assert store.set("email.ldap_server", "10.0.0.5").new == "10.0.0.5"
    for bad in ("http://dc1", "dc1:99999", "dc 1", "ldap://"):
        with pytest.raises(SettingError, match="LDAP|host name"):
            store.set("email.ldap_server", bad)


def test_answers_are_kept_in_memory_and_forget_reaches_every_process(store):
    cache = VerifyCache(store)
    cache.put("recipient", "x@example.com", "accepted", "250 ok")
    # Read back without the table: the row is gone, the answer is still in memory.
    store.db.execute("DELETE FROM verify_cache")
    assert cache.get("recipient", "x@example.com")[0].status == "accepted"
    # A fresh cache (a new policy chain) reads the table, which no longer has it.
    assert VerifyCache(store).get("recipient", "x@example.com") == (None, True)
    generation = store.generation()
    cache.forget()
    assert cache.get("recipient", "x@example.com") == (None, True)
    # Forget moves the settings generation, so running services build a new chain and cache.
    assert store.generation() > generation


def test_a_senders_mx_inside_the_office_is_never_asked():
    settings = {"email.trusted_networks": "10.0.0.0/8,127.0.0.1/32",
                     "email.mail_server_address": "192.168.7.5:25"}
    hosts = [("10.1.2.3", 25), ("127.0.0.1", 25), ("192.168.7.5", 25), ("0.0.0.0", 25),
             ("224.0.0.1", 25), ("fe80::1", 25), ("::ffff:10.9.9.9", 25), ("203.0.113.9", 25),
             ("not-an-address", 25)]
    assert checks.callout_targets(hosts, settings) == [("203.0.113.9", 25)]


def test_an_answer_kept_while_another_process_holds_the_write_lock_leaves_the_loop_serving(store):
    import sqlite3
    import time
    cache = VerifyCache(store)
    other = sqlite3.connect(store.path, timeout=1, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    longest = [0.0]

    async def main():
        writing = asyncio.get_running_loop().create_task(
            cache.put_soon("recipient", "jane@example.com", "accepted", "250 ok"))
        last = time.monotonic()
        for _ in range(100):
            await asyncio.sleep(0.01)
            now = time.monotonic()
            longest[0], last = max(longest[0], now - last), now
            # The answer serves at once from memory; other reads go on.
            assert cache.get("recipient", "jane@example.com")[0].status == "accepted"
            assert cache.get("recipient", "nobody@example.com") == (None, True)
        other.execute("COMMIT")
        await writing

    try:
        asyncio.run(main())
    finally:
        other.close()
    assert longest[0] < 0.5, f"the loop was held for {longest[0]:.2f} s"
    row = store.db.execute("SELECT status FROM verify_cache WHERE address = 'jane@example.com'")
    assert row.fetchone()[0] == "accepted"
    assert VerifyCache(store).prune() == 0
