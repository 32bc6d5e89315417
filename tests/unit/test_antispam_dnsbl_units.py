"""The DNS blocklist and reverse DNS layers' pure parts: query names,
answers that mean refusal of service, zone lines, the one-minute memory and
when a zone's health test falls due. The DNS itself is tested against a real
dnsmasq in tests/integration/test_antispam_dnsbl.py."""

import ipaddress

import pytest

from softpaks.antispam import dnsbl, rdns
from softpaks.antispam.recent import Recent
from softpaks.antispam.settings import DNSBL
from firmware.mail.policy import Order

ip = ipaddress.ip_address


def test_query_names_reverse_the_address_under_the_zone():
    assert dnsbl.query_name("192.0.2.7", "zen.example") == "7.2.0.192.zen.example"
    assert dnsbl.query_name("::ffff:192.0.2.7", "zen.example") == "7.2.0.192.zen.example"
    name = dnsbl.query_name("2001:db8::1", "v6.example")
    assert len(name.split(".")) == 32 + 2
    assert name == "1.0.0.0." + "0.0.0.0." * 5 + "8.b.d.0.1.0.0.2.v6.example"
    with pytest.raises(ValueError):
        dnsbl.query_name("not-an-address", "zen.example")


@pytest.mark.parametrize("answer, refusal", [
    ("127.0.0.2", False), ("127.0.0.10", False), ("127.255.255.251", False),
    ("127.255.255.252", True), ("127.255.255.254", True), ("127.255.255.255", True),
    ("10.0.0.2", True), ("192.0.2.1", True), ("::1", True),
])
def test_refusal_of_service_answers(answer, refusal):
    assert dnsbl.means_refusal(ip(answer)) is refusal


def test_zone_lines_and_their_codes():
    configured = dnsbl.zones({DNSBL: "bl.example\npbl.example=127.0.0.2-12\n"
                                     "two.example=127.0.0.2;127.0.0.4\n# a note\nnot a zone"})
    assert [z.name for z in configured] == ["bl.example", "pbl.example", "two.example"]
    default, wide, two = configured
    assert default.counts(ip("127.0.0.7")) and not default.counts(ip("127.0.0.10"))
    assert wide.counts(ip("127.0.0.10")) and not wide.counts(ip("127.0.0.13"))
    assert two.counts(ip("127.0.0.4")) and not two.counts(ip("127.0.0.3"))
    assert dnsbl.zones({DNSBL: ""}) == []


def test_recent_answers_last_a_minute():
    now = [100.0]
    recent = Recent(60, clock=lambda: now[0], max_entries=3)
    recent.put("a", 1)
    assert recent.get("a") == 1
    now[0] += 59.9
    assert recent.get("a") == 1
    now[0] += 0.2
    assert recent.get("a") is None
    for key in "bcd":
        recent.put(key, key)
    recent.put("e", "e")     # full: the oldest live ones go, never the new one
    assert recent.get("e") == "e"


def test_health_test_falls_due_hourly_and_sooner_when_broken(store):
    now = [1_000_000.0]
    monitor = dnsbl.ZoneMonitor(store, clock=lambda: now[0])
    healthy = dnsbl.ZoneHealth("bl.example", True, now[0] - 3599)
    broken = dnsbl.ZoneHealth("bl.example", False, now[0] - 599)
    assert monitor._due(None) and monitor._due(dnsbl.ZoneHealth("bl.example", None, None))
    assert not monitor._due(healthy) and not monitor._due(broken)
    now[0] += 2
    assert monitor._due(healthy) and monitor._due(broken)
    # A clock set back (checked in the future) tests again rather than never.
    assert monitor._due(dnsbl.ZoneHealth("bl.example", True, now[0] + 100))


def test_zone_status_lists_configured_zones_never_tested(store):
    store.set(DNSBL, "bl.example\nother.example=127.0.0.2-12")
    status = dnsbl.zone_status(store)
    assert [(z.zone, z.healthy, z.checked) for z in status] == [
        ("bl.example", None, None), ("other.example", None, None)]
    assert "not tested yet" in status[0].detail
    dnsbl.record_health(store, dnsbl.TestResult("other.example", False, "lists 127.0.0.1"), 5.0)
    dnsbl.record_warning(store, "bl.example", "refuses to serve this box", 6.0)
    status = {z.zone: z for z in dnsbl.zone_status(store)}
    assert (status["other.example"].healthy, status["other.example"].checked) == (False, 5.0)
    assert status["bl.example"].warning == "refuses to serve this box"
    assert status["bl.example"].warned == 6.0 and status["bl.example"].healthy is None
    assert {z.zone for z in dnsbl.needs_attention(store)} == {"bl.example", "other.example"}
    # A passed test clears the warning.
    dnsbl.record_health(store, dnsbl.TestResult("bl.example", True, "ok"), 7.0)
    status = {z.zone: z for z in dnsbl.zone_status(store)}
    assert status["bl.example"].warning == "" and status["bl.example"].warned is None


def test_checks_sit_after_the_lists_and_skip_when_asked_nothing(store):
    [check] = dnsbl.policy_checks(store)
    [reverse] = rdns.policy_checks(store)
    assert (check.name, check.stage, check.order, check.asks_dns, check.on_error) == (
        "dnsbl", "rcpt", Order.REPUTATION + 10, True, "skip")
    assert (reverse.name, reverse.stage, reverse.order, reverse.asks_dns) == (
        "reverse_dns", "rcpt", Order.REPUTATION + 20, True)


@pytest.mark.parametrize("outcome, code, enhanced", [
    (rdns.NO_PTR, 550, "5.7.25"), (rdns.UNCONFIRMED, 550, "5.7.25"),
    (rdns.TEMPFAIL, 450, "4.7.25"), (rdns.NAMED, None, None), (rdns.CONFIRMED, None, None)])
def test_reverse_dns_replies(outcome, code, enhanced):
    verdict = rdns.reply("192.0.2.7", rdns.Judgement(outcome, ("mail.example",)))
    if code is None:
        assert verdict is None
    else:
        assert (verdict.code, verdict.enhanced) == (code, enhanced)
        assert "[192.0.2.7]" in verdict.text
