"""Each core check on its own, table-driven: the context that passes and the
contexts it refuses, with the reply it gives."""

import pytest

from firmware.config import Store, declarations
from firmware.mail import checks
from firmware.mail import stats as mail_stats
from firmware.mail.stats import MailStats
from firmware.mail.policy import Context, Order

DEFAULTS = {key: setting.default for key, setting in declarations().items()}
MB = 1024 * 1024


def settings(**overrides):
    return {**DEFAULTS, "email.domain": "example.com", "system.hostname": "gw.example.com",
            "email.trusted_networks": "10.0.0.0/8",
            **{key.replace("__", "."): value for key, value in overrides.items()}}


def ctx(settings_=None, **fields):
    return Context(settings=settings_ or settings(), client_ip=fields.pop("client_ip", "192.0.2.1"),
                   local_ip="192.0.2.25", **fields)


def reply(check, context):
    verdict = check(context)
    return verdict.reply if verdict is not None else None


def lines(*lengths):
    """A message whose lines are these many octets long, CRLF included."""
    return b"".join(b"x" * (n - 2) + b"\r\n" for n in lengths)


CASES = [
    # (check, context, expected reply prefix or None)
    (checks.server_enabled, ctx(), None),
    (checks.server_enabled, ctx(settings(email__server_enabled=False)), "421 4.3.2"),

    (checks.max_connections, ctx(total_connections=100), None),
    (checks.max_connections, ctx(total_connections=101), "421 4.7.0 Too many connections"),
    (checks.max_connections, ctx(settings(email__max_connections="unlimited"),
                                 total_connections=10**6), None),
    (checks.max_connections_per_host, ctx(host_connections=5), None),
    (checks.max_connections_per_host, ctx(host_connections=6),
     "421 4.7.0 Too many connections from 192.0.2.1 (limit 5)"),
    (checks.max_connections_per_host, ctx(settings(email__max_connections_per_host="unlimited"),
                                          host_connections=500), None),

    (checks.command_limits, ctx(command="NOOP", command_counts={"NOOP": 100}), None),
    (checks.command_limits, ctx(command="NOOP", command_counts={"NOOP": 60, "RSET": 41}),
     "421 4.7.0 Error: too many NOOP, RSET or VRFY"),
    (checks.command_limits, ctx(command="NOOP", command_counts={"NOOP": 500}, trusted=True), None),
    (checks.command_limits, ctx(command="MAIL", command_counts={"NOOP": 500, "MAIL": 1}), None),
    (checks.command_limits, ctx(command="BDAT", command_known=False, command_counts={"*": 20}),
     None),
    (checks.command_limits, ctx(command="BDAT", command_known=False, command_counts={"*": 21}),
     "421 4.7.0 Error: too many unknown commands"),
    (checks.command_limits, ctx(command="BDAT", command_known=False, command_counts={"*": 21},
                                trusted=True), "421 4.7.0"),

    (checks.helo_syntax, ctx(helo="mail.client.test"), None),
    (checks.helo_syntax, ctx(helo="[192.0.2.1]"), None),
    (checks.helo_syntax, ctx(helo="bad name"), "501 5.5.2 Invalid HELO name"),
    (checks.helo_syntax, ctx(helo="file_server.lan"), "501 5.5.2"),
    (checks.helo_syntax, ctx(settings(email__allow_nonstandard_helo=True), helo="file_server.lan"),
     None),
    (checks.helo_impersonation, ctx(helo="example.com"), "550 5.7.1 Client host rejected"),
    (checks.helo_impersonation, ctx(helo="[192.0.2.25]"), "550 5.7.1"),
    (checks.helo_impersonation, ctx(helo="example.com", trusted=True), None),
    (checks.helo_impersonation, ctx(helo="client.test"), None),

    (checks.declared_size, ctx(declared_size=10 * MB), None),
    (checks.declared_size, ctx(declared_size=10 * MB + 1), "552 5.3.4 Message size exceeds"),
    (checks.declared_size, ctx(), None),
    (checks.declared_size, ctx(settings(email__max_message_size_mb="unlimited"),
                               declared_size=10**12), None),

    # Room for the message and one rewrite of it above the reserve (16 MB, or
    # an eighth of a small file system).
    (checks.queue_space, ctx(), None),
    (checks.queue_space, ctx(queue_free=16 * MB, queue_capacity=10**12), None),
    (checks.queue_space, ctx(queue_free=16 * MB - 1, queue_capacity=10**12),
     "452 4.3.1 Insufficient system storage"),
    (checks.queue_space, ctx(queue_free=20 * MB, queue_capacity=10**12, declared_size=2 * MB),
     None),
    (checks.queue_space, ctx(queue_free=20 * MB, queue_capacity=10**12, declared_size=3 * MB),
     "452 4.3.1"),
    (checks.queue_space, ctx(queue_free=MB, queue_capacity=8 * MB, declared_size=0), None),
    (checks.queue_space, ctx(queue_free=MB - 1, queue_capacity=8 * MB), "452 4.3.1"),
    (checks.submission_requires_auth, ctx(port_kind="submission"), "530 5.7.0"),
    (checks.submission_requires_auth, ctx(port_kind="submission", auth_user="alice"), None),
    (checks.submission_requires_auth, ctx(port_kind="smtp"), None),
    (checks.sender_characters, ctx(sender=""), None),
    (checks.sender_characters, ctx(sender="a@b.test"), None),
    (checks.sender_characters, ctx(sender="a\rb@b.test"), "501 5.1.7"),
    (checks.sender_characters, ctx(sender='"a b"@b.test'), "501 5.1.7"),
    (checks.sender_syntax, ctx(sender=""), None),
    (checks.sender_syntax, ctx(sender="a@b.test"), None),
    (checks.sender_syntax, ctx(sender="nodomain"), "553 5.1.7"),

    (checks.max_recipients, ctx(recipients=["r@example.com"] * 999), None),
    (checks.max_recipients, ctx(recipients=["r@example.com"] * 1000), "452 4.5.3"),
    (checks.recipient_characters, ctx(recipient="bob@example.com"), None),
    (checks.recipient_characters, ctx(recipient="bob\x00@example.com", trusted=True), "501 5.1.3"),
    (checks.recipient_characters, ctx(recipient="bob\x7f@example.com"), "501 5.1.3"),
    (checks.recipient_routing, ctx(recipient="bob@example.com"), None),
    (checks.recipient_routing, ctx(recipient="x%far.test@example.com"), "550 5.7.1"),
    (checks.recipient_routing, ctx(recipient="x%far.test@example.com", trusted=True), None),
    (checks.relay_access, ctx(recipient="bob@example.com"), None),
    (checks.relay_access, ctx(recipient="x@far.test"),
     "554 5.7.1 <x@far.test>: Relay access denied"),
    (checks.relay_access, ctx(recipient="x@far.test", auth_user="alice"), None),

    (checks.message_size, ctx(data_size=10 * MB), None),
    (checks.message_size, ctx(data_size=10 * MB + 1), "552 5.3.4"),
    (checks.line_length, ctx(longest_line=1000), None),
    (checks.line_length, ctx(longest_line=1001), "500 5.5.2 Line too long"),
    (checks.line_length, ctx(settings(email__max_line_length=5000), longest_line=5000), None),
    (checks.line_length, ctx(settings(email__max_line_length="unlimited"), longest_line=10**7),
     None),
    (checks.max_hops, ctx(message=b"Received: x\r\n" * 49 + b"\r\nbody\r\n"), None),
    (checks.max_hops, ctx(message=b"Received: x\r\n" * 50 + b"\r\nbody\r\n"), "554 5.4.6"),
    (checks.bare_line_endings, ctx(message=lines(10, 20)), None),
    (checks.bare_line_endings, ctx(message=b"Subject: a\r\n\r\nx\n.\nMAIL FROM:<x>\r\n"),
     "550 5.5.2"),
    (checks.bare_line_endings, ctx(message=b"Subject: a\r\n\r\nx\r.\r\n"), "550 5.5.2"),
]


@pytest.mark.parametrize("check,context,expected", CASES,
                         ids=[f"{c.__name__}-{n}" for n, (c, _, _) in enumerate(CASES)])
def test_core_check(check, context, expected):
    answer = reply(check, context)
    if expected is None:
        assert answer is None
    else:
        assert answer is not None and answer.startswith(expected), answer


def test_every_core_check_is_named_staged_and_placed():
    names = [c.name for c in checks.CORE_CHECKS]
    assert len(names) == len(set(names))
    assert {c.run for c in checks.CORE_CHECKS} >= {check for check, _, _ in CASES}
    assert all(isinstance(c.order, Order) for c in checks.CORE_CHECKS)
    # Past a size or line limit the data was not kept: those checks come first.
    data = [c.name for c in sorted((c for c in checks.CORE_CHECKS if c.stage == "data"),
                                   key=lambda c: c.order)]
    assert data[:2] == ["message_size", "line_length"]


def test_refusals_are_counted_per_check_and_added_up_across_flushes(tmp_path):
    store = Store.create(tmp_path / "box")
    try:
        now = [7200.0 * 100 + 5]
        counter = MailStats(store, clock=lambda: now[0])
        counter.count_check("relay_access")
        counter.count_check("relay_access")
        counter.count_check("line_length")
        counter.flush()
        counter.count_check("relay_access")
        now[0] += 3600  # the next hour: its own row
        counter.count_check("relay_access")
        counter.flush()
        assert mail_stats.check_counts(store) == {"relay_access": 4, "line_length": 1}
        assert mail_stats.check_counts(store, since=now[0]) == {"relay_access": 1}
    finally:
        store.close()
