"""smtpd builds on aiosmtpd's private members (firmware/mail/smtpd.py) and
replaces what its __init__ computes per connection
(firmware/mail/aiosmtpd_speedups.py). aiosmtpd is pinned for that; these
fail on an upgrade, before a changed private member fails in production."""

import importlib.metadata
import inspect
import logging

import aiosmtpd.smtp
import pytest

from firmware.mail import aiosmtpd_speedups
from firmware.mail.smtpd import GateboxSMTP

# The private members of aiosmtpd.smtp.SMTP that smtpd reads, calls or overrides.
PRIVATE_MEMBERS = ("_handle_client", "_getaddr", "_call_handler_hook", "_set_post_data_state",
                   "_create_session", "_create_envelope", "_reset_timeout", "_timeout_cb")
PRIVATE_ATTRIBUTES = ("_smtp_methods", "_handle_hooks", "_auth_methods", "_auth_require_tls",
                      "_timeout_handle", "_timeout_duration")
# ... and the streams it keeps once connected.
CONNECTED_ATTRIBUTES = ("self._reader = ", "self._writer = ")


class Handler:
    async def handle_RCPT(self, server, session, envelope, address, options):
        return "250 OK"

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        return responses


def test_the_pinned_version_is_the_one_installed():
    assert importlib.metadata.version("aiosmtpd") == "1.4.6"
    requirement = [r for r in importlib.metadata.requires("gatebox") if r.startswith("aiosmtpd")]
    assert requirement == ["aiosmtpd==1.4.6"]


@pytest.mark.parametrize("name", PRIVATE_MEMBERS)
def test_the_private_methods_smtpd_uses_exist(name):
    assert callable(getattr(aiosmtpd.smtp.SMTP, name))


def tables(server):
    return (sorted(server._smtp_methods), sorted(server._handle_hooks),
            sorted((name, impl.is_builtin) for name, impl in server._auth_methods.items()),
            server._ehlo_hook_ver)


def test_the_speedups_build_the_same_tables_as_aiosmtpd(monkeypatch):
    handler = Handler()
    fast = aiosmtpd.smtp.SMTP(handler, hostname="mx.test")
    for name in PRIVATE_ATTRIBUTES:
        assert hasattr(fast, name), name
    # The real inspect and dir, for the module and for this one construction.
    monkeypatch.setattr(aiosmtpd.smtp, "inspect", inspect)
    monkeypatch.delattr(aiosmtpd.smtp, "dir")
    slow = aiosmtpd.smtp.SMTP(handler, hostname="mx.test")
    assert tables(fast) == tables(slow)
    assert "RCPT" in fast._handle_hooks and "DATA" in fast._smtp_methods


def test_the_speedups_are_what_aiosmtpd_smtp_uses():
    assert isinstance(aiosmtpd.smtp.inspect, aiosmtpd_speedups._CachedInspect)
    assert aiosmtpd.smtp.dir is aiosmtpd_speedups.cached_dir
    # __init__ reads dir() with these prefixes only; another use would get a partial answer.
    source = inspect.getsource(aiosmtpd.smtp)
    assert source.count("dir(") == 2
    for assignment in CONNECTED_ATTRIBUTES:
        assert assignment in source, assignment
    assert 'm.startswith("handle_")' in source and 'm.startswith("smtp_")' in source
    assert issubclass(GateboxSMTP, aiosmtpd.smtp.SMTP)
    assert aiosmtpd.smtp.sanitized_log is aiosmtpd_speedups.sanitized_log
    # The command loop reaches it through the module global.
    assert "sanitized_log(log.debug" in inspect.getsource(aiosmtpd.smtp.SMTP._handle_client)
    # Every timer of a connection is armed through the one method smtpd replaces.
    assert source.count("self._timeout_handle = ") == 1


def test_sanitized_log_skips_the_sanitizing_only_when_nothing_would_be_logged(monkeypatch,
                                                                              caplog):
    sanitized = []
    monkeypatch.setattr(aiosmtpd.smtp, "sanitize", lambda data: sanitized.append(data) or "x")
    logger = logging.getLogger("test.sanitized_log")
    logger.setLevel(logging.WARNING)
    aiosmtpd.smtp.sanitized_log(logger.debug, "line %r", b"MAIL FROM:<a@b>")
    aiosmtpd.smtp.sanitized_log(logger.info, "line %r", b"RCPT TO:<a@b>")
    assert sanitized == []
    with caplog.at_level(logging.INFO, logger="test.sanitized_log"):
        aiosmtpd.smtp.sanitized_log(logger.info, "line %r", b"RCPT TO:<a@b>")
    assert sanitized == [b"RCPT TO:<a@b>"]
    assert "line 'x'" in caplog.text
