"""smtpd builds on aiosmtpd's private members (firmware/mail/smtpd.py) and
replaces what its __init__ computes per connection
(firmware/mail/aiosmtpd_speedups.py). aiosmtpd is pinned for that; these
fail on an upgrade, before a changed private member fails in production."""

import importlib.metadata
import inspect

import aiosmtpd.smtp
import pytest

from firmware.mail import aiosmtpd_speedups
from firmware.mail.smtpd import GateboxSMTP

# The private members of aiosmtpd.smtp.SMTP that smtpd reads, calls or overrides.
PRIVATE_MEMBERS = ("_handle_client", "_getaddr", "_call_handler_hook", "_set_post_data_state",
                   "_create_session", "_create_envelope")
PRIVATE_ATTRIBUTES = ("_smtp_methods", "_handle_hooks", "_auth_methods", "_auth_require_tls")
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
