"""The SMTP callout client against real servers on loopback: aiosmtpd with a
user list (its transcript read back), Postfix's smtp-sink refusing chosen
commands, a sender MX on port 25 found through dnsmasq, and plain sockets
that stay silent or never stop talking."""

from __future__ import annotations

import asyncio
import re
import time
import tracemalloc

import pytest

from firmware.mail import mx
from firmware.mail.resolver import Resolver
from firmware.mail.smtp_reply import LINE_LIMIT
from firmware.mail.verify.callout import (ACCEPTED, CALLOUT_PORT, REFUSED, UNREACHABLE,
                                          accepts_anything, callout, sender_mx_hosts)
from tests.support.callout_servers import (MisbehavingServer, RefusingSink, UserListServer,
                                           free_port_25_address)
from tests.support.dnsmasq import DnsServer
from tests.support.net import free_port

HELO = "gatebox.example.test"
SLACK = 0.75   # event-loop and thread scheduling on a busy 2-core machine


def ask(hosts, recipient, **kwargs):
    return asyncio.run(callout(hosts, recipient, helo=HELO, **kwargs))


def timed(coroutine):
    started = time.monotonic()
    answer = asyncio.run(coroutine)
    return answer, time.monotonic() - started


@pytest.fixture
def lan():
    server = UserListServer(["alice@lan.test", "bob@lan.test"]).start()
    yield server
    server.stop()


@pytest.fixture
def catch_all():
    server = UserListServer(catch_all=True).start()
    yield server
    server.stop()


@pytest.fixture
def sinks(tmp_path):
    started = []

    def start(**options):
        sink = RefusingSink(tmp_path / f"sink{len(started)}", **options).start()
        started.append(sink)
        return sink
    yield start
    for sink in started:
        sink.stop()


@pytest.fixture
def misbehaving():
    started = []

    def start(mode):
        server = MisbehavingServer(mode).start()
        started.append(server)
        return server
    yield start
    for server in started:
        server.stop()


# ---- the user-list server: accepted, refused, and what went over the wire ------------

def test_known_recipient_accepted_unknown_refused_and_no_data_ever_sent(lan):
    known = ask([lan.target], "alice@lan.test")
    unknown = ask([lan.target], "mallory@lan.test")

    assert known.status == ACCEPTED and known.reply.startswith("250 2.1.5")
    assert known.host == lan.label
    assert unknown.status == REFUSED
    assert unknown.reply.startswith("550 5.1.1 <mallory@lan.test>: Recipient address rejected")
    sessions = lan.finished_sessions(2)
    assert sessions == [
        [f"EHLO {HELO}", "MAIL FROM:<>", "RCPT TO:<alice@lan.test>", "QUIT"],
        [f"EHLO {HELO}", "MAIL FROM:<>", "RCPT TO:<mallory@lan.test>", "QUIT"],
    ]
    assert not any(command.startswith("DATA") for s in sessions for command in s)


def test_refusal_is_final_the_next_host_is_not_asked(sinks, lan):
    refusing = sinks(hard=["RCPT"], hard_reply="550 5.1.1 <carol@lan.test>: no such user")

    answer = ask([refusing.target, lan.target], "carol@lan.test")

    assert (answer.status, answer.host) == (REFUSED, refusing.label)
    assert answer.reply == "550 5.1.1 <carol@lan.test>: no such user"
    assert lan.sessions() == []
    assert refusing.messages() == []


# ---- hosts that decide nothing: the next host is asked --------------------------------

def test_busy_greeting_then_the_next_host_decides(sinks, lan):
    busy = sinks(soft=["CONNECT"], soft_reply="421 4.3.2 Service not available, closing")

    answer = ask([busy.target, lan.target], "bob@lan.test")

    assert (answer.status, answer.host) == (ACCEPTED, lan.label)
    assert lan.finished_sessions(1)[0][-2:] == ["RCPT TO:<bob@lan.test>", "QUIT"]


def test_temporary_rcpt_failure_then_the_next_host_decides(sinks, lan):
    greylisting = sinks(soft=["RCPT"], soft_reply="450 4.2.0 Greylisted, try again later")

    answer = ask([greylisting.target, lan.target], "mallory@lan.test")

    assert (answer.status, answer.host) == (REFUSED, lan.label)
    assert answer.reply.startswith("550 5.1.1")


def test_a_server_refusing_the_null_sender_decides_nothing(sinks, lan):
    no_bounces = sinks(hard=["MAIL"], hard_reply="550 5.7.1 We do not accept bounces")

    answer = ask([no_bounces.target, lan.target], "alice@lan.test")

    assert (answer.status, answer.host) == (ACCEPTED, lan.label)


def test_ehlo_refused_falls_back_to_helo(sinks):
    old = sinks(hard=["EHLO"])

    answer = ask([old.target], "anyone@old.test")

    assert (answer.status, answer.host) == (ACCEPTED, old.label)
    assert answer.reply == "250 2.1.5 Ok"


def test_every_host_failing_is_unreachable_with_the_last_reason(sinks):
    nobody_listens = ("127.0.0.1", free_port())
    busy = sinks(soft=["CONNECT"], soft_reply="421 4.3.2 Too busy")

    answer = ask([nobody_listens, busy.target], "alice@lan.test")

    assert answer.status == UNREACHABLE
    assert answer.host == busy.label
    assert answer.reply == f"{busy.label}: greeting 421 4.3.2 Too busy"


def test_no_hosts_is_unreachable():
    answer = ask([], "alice@lan.test")
    assert answer.status == UNREACHABLE and answer.reply


# ---- the time bound ------------------------------------------------------------------

def test_a_silent_server_costs_at_most_the_budget(misbehaving):
    silent = misbehaving("silent")
    budget = 1.5

    answer, elapsed = timed(callout([silent.target], "alice@lan.test", helo=HELO,
                                    budget=budget, per_host=10))

    assert answer.status == UNREACHABLE
    assert "no reply to greeting" in answer.reply
    assert silent.accepted == 1          # it was connected, so the bound is the clock's
    assert budget - 0.1 <= elapsed <= budget + SLACK
    silent.wait_for_client_close()
    assert silent.received == b"QUIT\r\n"


def test_a_silent_server_costs_its_per_host_limit_then_the_next_host_decides(misbehaving, lan):
    silent = misbehaving("silent")
    per_host = 1.0

    answer, elapsed = timed(callout([silent.target, lan.target], "alice@lan.test", helo=HELO,
                                    budget=20, per_host=per_host))

    assert (answer.status, answer.host) == (ACCEPTED, lan.label)
    assert per_host - 0.1 <= elapsed <= per_host + SLACK


# ---- hostile servers: bounded memory -------------------------------------------------

@pytest.mark.parametrize("mode, reason", [
    ("endless-line", f"reply line longer than {LINE_LIMIT} bytes"),
    ("endless-continuation", "reply longer than 100 lines"),
])
def test_an_endless_reply_is_unreachable_in_bounded_memory(misbehaving, mode, reason):
    hostile = misbehaving(mode)
    budget = 10.0

    tracemalloc.start()
    try:
        answer, elapsed = timed(callout([hostile.target], "alice@lan.test", helo=HELO,
                                        budget=budget))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert answer.status == UNREACHABLE
    assert reason in answer.reply
    assert elapsed < budget / 2               # given up on the limit, not on the clock
    hostile.wait_for_client_close()
    assert hostile.bytes_sent > LINE_LIMIT    # it was the limit that ended the reading
    assert peak < 1024 * 1024


# ---- the catch-all probe --------------------------------------------------------------

def test_a_catch_all_server_is_found_out(catch_all):
    answer = asyncio.run(accepts_anything(catch_all.target, "lan.test", helo=HELO))

    assert (answer.status, answer.host) == (ACCEPTED, catch_all.label)
    [session] = catch_all.finished_sessions(1)
    assert re.fullmatch(r"RCPT TO:<gatebox-probe-[0-9a-f]{16}@lan\.test>", session[2])
    assert "DATA" not in session


def test_a_user_list_server_is_no_catch_all(lan):
    first = asyncio.run(accepts_anything(lan.target, "lan.test", helo=HELO))
    second = asyncio.run(accepts_anything(lan.target, "lan.test", helo=HELO))

    assert first.status == second.status == REFUSED
    probes = [s[2] for s in lan.finished_sessions(2)]
    assert probes[0] != probes[1]             # a fresh random local part each time


# ---- the sender MX: found through DNS, asked on port 25 --------------------------------

@pytest.fixture
def sender_mx(tmp_path):
    address = free_port_25_address()
    server = UserListServer(["known@sender.test"], host=address, port=CALLOUT_PORT).start()
    dns = DnsServer(tmp_path / "dns", [
        "--local=/test/",
        "--mx-host=sender.test,mx.sender.test,10",
        f"--host-record=mx.sender.test,{address}",
    ], probe="mx.sender.test").start()
    resolver = Resolver()
    yield server, dns, resolver
    resolver.close()
    dns.stop()
    server.stop()


def test_sender_callout_to_the_mx_on_port_25(sender_mx):
    server, dns, resolver = sender_mx

    hosts = sender_mx_hosts("sender.test", dns.settings, resolver)
    known = ask(hosts, "known@sender.test")
    forged = ask(hosts, "forged@sender.test")

    assert hosts == [(server.host, 25)]
    assert server.host != "127.0.0.1"
    assert (known.status, known.host) == (ACCEPTED, f"{server.host}:25")
    assert (forged.status, forged.host) == (REFUSED, f"{server.host}:25")
    assert forged.reply.startswith("550 5.1.1 <forged@sender.test>")
    assert [s[1:] for s in server.finished_sessions(2)] == [
        ["MAIL FROM:<>", "RCPT TO:<known@sender.test>", "QUIT"],
        ["MAIL FROM:<>", "RCPT TO:<forged@sender.test>", "QUIT"],
    ]


def test_a_sender_domain_that_does_not_exist_is_a_permanent_lookup_failure(sender_mx):
    _, dns, resolver = sender_mx

    with pytest.raises(mx.LookupFailed) as failure:
        sender_mx_hosts("nowhere.test", dns.settings, resolver)

    assert failure.value.permanent
