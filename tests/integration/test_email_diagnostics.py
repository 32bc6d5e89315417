"""Email Diagnostics against real servers on loopback: dnsmasq as the DNS,
smtp-sink as the LAN mail server, an aiosmtpd relay that wants AUTH, Dovecot
as the ISP's mailbox (tests/support/isp.py), a private Postfix for ETRN and a
finger server beside it (tests/support/isp_postfix.py). A good configuration
passes every check; in a broken one each broken part is named."""

from __future__ import annotations

import shutil
import socketserver
import subprocess
import tempfile
import threading
from pathlib import Path

import pytest

from firmware.config import Store
from firmware.mail import diagnostics
from firmware.system import tls
from tests.support.box import GATEBOX, gatebox
from tests.support.dnsmasq import DnsServer
from tests.support.isp import Isp
from tests.support.isp_postfix import FingerTrigger, IspPostfix
from tests.support.net import free_port
from tests.support.sink import RecordingServer, SmtpSink

HOSTNAME = "mx.good.test"
PUBLIC = "127.0.0.2"          # mx.good.test, with its PTR
NO_PTR = "127.0.0.9"
RELAY_LOGIN, RELAY_PASSWORD = "office", "relay-secret"

RECORDS = [
    "--local=/test/",          # authoritative: unknown names are NXDOMAIN, not REFUSED
    "--bogus-priv",
    "--mx-host=good.test,mx.good.test,10",
    f"--host-record={HOSTNAME},{PUBLIC}",
    "--txt-record=good.test,v=spf1 mx -all",
    # broken.test: its MX host has no address, and it has two SPF records.
    "--mx-host=broken.test,nowhere.broken.test,10",
    "--txt-record=broken.test,v=spf1 mx -all",
    "--txt-record=broken.test,v=spf1 +all",
]


@pytest.fixture(scope="module")
def dns_server(tmp_path_factory):
    server = DnsServer(tmp_path_factory.mktemp("dns"), RECORDS, probe=HOSTNAME).start()
    yield server
    server.stop()


@pytest.fixture
def lan_sink(tmp_path):
    sink = SmtpSink(tmp_path / "lan").start()
    yield sink
    sink.stop()


@pytest.fixture
def relay():
    server = RecordingServer(credentials=(RELAY_LOGIN, RELAY_PASSWORD)).start()
    yield server
    server.stop()


@pytest.fixture
def data(tmp_path, box_serial):
    directory = tmp_path / "box"
    gatebox(directory, "init", "--domain", "good.test")
    return directory


def configure(data, **settings):
    store = Store(data)
    try:
        store.set_many({key: str(value) for key, value in settings.items()}, actor="test")
    finally:
        store.close()


def certificate_for(data, hostname: str):
    shutil.rmtree(tls.paths(data)[0].parent, ignore_errors=True)
    tls.ensure_certificate(data, hostname)


def run(data, public_address: str = "", cafile=None, only=None) -> dict:
    store = Store(data)
    try:
        context = diagnostics.context_for(store, public_address, cafile)
    finally:
        store.close()
    checks = [c for c in diagnostics.plan(context) if only is None or c.name in only]
    results = {result.name: result for result in diagnostics.run(checks, context)}
    assert set(results) == {c.name for c in checks}
    return results


def good_relay_box(data, dns_server, lan_address: str, relay):
    configure(data, **dns_server.settings, **{
        "system.hostname": HOSTNAME, "email.server_type": "relay",
        "email.mail_server_address": lan_address,
        "email.relay_server_address": relay.address, "email.relay_server_auth": "on",
        "email.relay_server_login": RELAY_LOGIN, "email.relay_server_password": RELAY_PASSWORD})
    certificate_for(data, HOSTNAME)


def statuses(results: dict) -> dict:
    return {name: result.status for name, result in results.items()}


def test_good_relay_configuration_passes_every_check(data, dns_server, lan_sink, relay):
    good_relay_box(data, dns_server, lan_sink.address, relay)
    results = run(data, PUBLIC)
    assert statuses(results) == {name: "pass" for name in (
        "resolver", "dns_mx", "dns_mx_hosts", "dns_ptr", "dns_spf", "certificate",
        "relay_smtp", "lan_smtp")}, {n: r.reason for n, r in results.items()}
    assert "mx.good.test" in results["dns_mx"].reason
    assert PUBLIC in results["dns_mx_hosts"].reason
    assert f"authenticated as {RELAY_LOGIN}" in results["relay_smtp"].reason
    assert "v=spf1 mx -all" in results["dns_spf"].reason
    # Nothing was sent: the probe stops before DATA.
    assert relay.received == [] and lan_sink.count() == 0


def test_broken_relay_configuration_names_each_broken_part(data, dns_server, relay):
    configure(data, **dns_server.settings, **{
        "system.hostname": HOSTNAME, "email.domain": "broken.test",
        "email.server_type": "relay",
        "email.mail_server_address": f"127.0.0.1:{free_port()}",     # nothing listens
        "email.relay_server_address": relay.address, "email.relay_server_auth": "on",
        "email.relay_server_login": RELAY_LOGIN, "email.relay_server_password": "wrong"})
    certificate_for(data, "old-name.good.test")
    results = run(data, NO_PTR)
    assert statuses(results) == {
        "resolver": "pass", "dns_mx": "pass", "dns_mx_hosts": "fail", "dns_ptr": "fail",
        "dns_spf": "fail", "certificate": "fail", "relay_smtp": "fail", "lan_smtp": "fail"}
    assert "nowhere.broken.test has no A" in results["dns_mx_hosts"].reason
    assert f"{NO_PTR} has no PTR" in results["dns_ptr"].reason
    assert "2 SPF records" in results["dns_spf"].reason
    assert "old-name.good.test" in results["certificate"].reason and \
        HOSTNAME in results["certificate"].reason
    assert "authentication as 'office' failed" in results["relay_smtp"].reason
    assert "Password" in results["relay_smtp"].fix
    assert "no connection" in results["lan_smtp"].reason
    assert all(result.fix for result in results.values() if result.status == "fail")


def test_relay_wanting_auth_that_is_off_is_named(data, dns_server, lan_sink, relay):
    good_relay_box(data, dns_server, lan_sink.address, relay)
    configure(data, **{"email.relay_server_auth": "off"})
    result = run(data, PUBLIC, only={"relay_smtp"})["relay_smtp"]
    assert result.status == "fail"
    assert "wants authentication" in result.reason and "530" in result.reason
    assert "Relay Server Requires Authentication" in result.fix


def test_unreachable_dns_fails_within_the_time_limit(data, dns_server, lan_sink, relay):
    good_relay_box(data, dns_server, lan_sink.address, relay)
    # A port nothing answers on: every query waits out its budget.
    configure(data, **{"dns.nameservers": "127.0.0.1", "dns.port": free_port()})
    results = run(data, PUBLIC)
    assert results["resolver"].status == "fail"
    assert "127.0.0.1" in results["resolver"].reason
    assert "DNS Servers" in results["resolver"].fix
    assert results["dns_mx"].status == "fail"
    # The servers that do answer are still checked, side by side with the DNS waits.
    assert results["lan_smtp"].status == "pass" and results["relay_smtp"].status == "pass"
    limit = max(c.limit for c in diagnostics.plan(diagnostics.Context(
        {"email.server_type": "relay"}, data, None)))
    assert all(result.seconds <= limit + 1 for result in results.values())


def test_cli_prints_each_result_and_fails_on_a_broken_part(data, dns_server, lan_sink, relay):
    good_relay_box(data, dns_server, lan_sink.address, relay)
    good = gatebox(data, "diagnose", "--public-address", PUBLIC)
    lines = good.stdout.splitlines()
    assert lines[0].startswith("Email Diagnostics for server type relay: 8 checks")
    assert sum(line.startswith("PASS  ") for line in lines) == 8
    assert lines[-1] == "no check failed"

    configure(data, **{"email.relay_server_password": "wrong"})
    broken = gatebox(data, "diagnose", "--public-address", PUBLIC, check=False)
    assert broken.returncode == 1
    failing = [line for line in broken.stdout.splitlines() if line.startswith("FAIL  ")]
    assert failing == [next(line for line in failing if "Relay Server (ISP)" in line)]
    assert "authentication as 'office' failed" in failing[0]
    assert "fix: Correct the Login Name and Password of the Relay Server" in broken.stdout


class HeldGreeting(socketserver.StreamRequestHandler):
    """An SMTP server that greets only once the test lets it."""
    release = threading.Event()
    connected = threading.Event()

    def handle(self):
        HeldGreeting.connected.set()
        if not HeldGreeting.release.wait(30):
            return
        self.wfile.write(b"220 held.test ESMTP\r\n")
        for line in self.rfile:
            if line.upper().startswith(b"QUIT"):
                self.wfile.write(b"221 bye\r\n")
                return
            self.wfile.write(b"250 ok\r\n")


def test_cli_prints_each_result_as_it_finishes(data, dns_server, relay):
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), HeldGreeting)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    HeldGreeting.release.clear()
    HeldGreeting.connected.clear()
    try:
        good_relay_box(data, dns_server, f"127.0.0.1:{server.server_address[1]}", relay)
        process = subprocess.Popen(GATEBOX + ["--data", str(data), "diagnose"],
                                   stdout=subprocess.PIPE, text=True)
        try:
            assert HeldGreeting.connected.wait(15)
            seen = [process.stdout.readline() for _ in range(8)]   # the heading, then 7 checks
            assert not any("Mail Server (LAN)" in line for line in seen), seen
            assert any(line.startswith("PASS  The box's certificate") for line in seen)
            HeldGreeting.release.set()
            rest = process.stdout.read()
        finally:
            process.wait(30)
        lan = next(line for line in rest.splitlines() if "Mail Server (LAN)" in line)
        assert lan.startswith("PASS  ") and "held.test" in lan
    finally:
        HeldGreeting.release.set()
        server.shutdown()
        server.server_close()


# ---- the ISP: mailbox (Multi-drop), ETRN, finger -------------------------------------------

@pytest.fixture(scope="module")
def isp():
    # Outside pytest's own temporary tree: Dovecot's auth process reads the
    # passwd-file as the dovecot user, and any other pytest run starting
    # meanwhile makes that tree's top private again.
    root = Path(tempfile.mkdtemp(prefix="diagnostics-isp-"))
    server = Isp(root / "isp")
    try:
        server.add_user("office", "isp-secret")
        server.start()
        for number in range(3):
            address = f"user{number}@good.test"
            server.drop("office", Isp.message(to=address, envelope=[("Delivered-To", address)]))
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def multidrop(data, dns_server, licensed):
    licensed(data, mailserver=None)
    configure(data, **dns_server.settings, **{"email.server_type": "multidrop"})
    return data


@pytest.mark.parametrize("protocol,security", [("pop3", "tls"), ("pop3", "starttls"),
                                               ("imap", "tls"), ("imap", "starttls")])
def test_isp_mailbox_login_and_count(multidrop, isp, protocol, security):
    configure(multidrop, **isp.box_settings("office", "isp-secret", protocol, security))
    store = Store(multidrop)
    try:
        planned = {c.name for c in diagnostics.plan(diagnostics.context_for(store))}
    finally:
        store.close()
    assert "isp_mailbox" in planned and "lan_smtp" not in planned
    result = run(multidrop, cafile=str(isp.ca_file), only={"isp_mailbox"})["isp_mailbox"]
    assert result.status == "pass", result.reason
    assert "logged in as office" in result.reason and "3 messages waiting" in result.reason
    assert isp.count("office") == 3   # looked at, nothing fetched or deleted


def test_isp_mailbox_wrong_password_is_named(multidrop, isp):
    configure(multidrop, **isp.box_settings("office", "wrong", "imap", "tls"))
    result = run(multidrop, cafile=str(isp.ca_file), only={"isp_mailbox"})["isp_mailbox"]
    assert result.status == "fail"
    assert "login as 'office' refused" in result.reason
    assert "Login Name and Password of the ISP mailbox" in result.fix


def test_isp_certificate_not_trusted_or_not_matching_is_named(multidrop, isp):
    configure(multidrop, **isp.box_settings("office", "isp-secret", "pop3", "tls"))
    untrusted = run(multidrop, only={"isp_mailbox"})["isp_mailbox"]
    assert untrusted.status == "fail" and "certificate is not trusted" in untrusted.reason

    configure(multidrop, **isp.box_settings("office", "isp-secret", "pop3", "tls",
                                            host=isp.other_host))
    mismatch = run(multidrop, cafile=str(isp.ca_file), only={"isp_mailbox"})["isp_mailbox"]
    assert mismatch.status == "fail" and "certificate is not trusted" in mismatch.reason
    assert isp.other_host in mismatch.reason

    configure(multidrop, **isp.box_settings("office", "isp-secret", "pop3", "tls",
                                            host=isp.other_host, verify=False))
    unchecked = run(multidrop, only={"isp_mailbox"})["isp_mailbox"]
    assert unchecked.status == "warn" and "not checked" in unchecked.reason


def test_isp_mailbox_through_the_cli_trusts_the_isp_ca_from_the_environment(
        multidrop, isp, monkeypatch):
    configure(multidrop, **isp.box_settings("office", "isp-secret", "pop3", "tls"))
    monkeypatch.setenv(diagnostics.ISP_CAFILE_ENV, str(isp.ca_file))
    output = gatebox(multidrop, "diagnose", check=False).stdout
    mailbox = next(line for line in output.splitlines() if "ISP mailbox" in line)
    assert mailbox.startswith("PASS  ") and "3 messages waiting" in mailbox


@pytest.fixture
def isp_postfix():
    server = IspPostfix("good.test", "127.0.0.1", free_port()).start()
    yield server
    server.stop()


def test_etrn_reply(data, dns_server, licensed, isp_postfix):
    licensed(data, mailserver=None)
    configure(data, **dns_server.settings, **{
        "email.server_type": "etrn", "email.isp_server": f"{isp_postfix.host}:{isp_postfix.port}"})
    good = run(data, only={"etrn"})["etrn"]
    assert good.status == "pass" and "ETRN good.test -> 25" in good.reason, good.reason

    # A domain the ISP does not hold mail for.
    configure(data, **{"email.domain": "broken.test"})
    broken = run(data, only={"etrn"})["etrn"]
    assert broken.status == "fail" and "ETRN broken.test -> 45" in broken.reason, broken.reason
    assert "ETRN Request" in broken.fix


def test_finger_reply(data, dns_server, licensed, isp_postfix):
    finger = FingerTrigger(isp_postfix).start()
    try:
        licensed(data, mailserver=None)
        configure(data, **dns_server.settings, **{
            "email.server_type": "mailbag", "email.isp_server": f"{finger.host}:{finger.port}"})
        good = run(data, only={"finger"})["finger"]
        assert good.status == "pass" and finger.queries == ["good.test"]
    finally:
        finger.stop()
    broken = run(data, only={"finger"})["finger"]
    assert broken.status == "fail" and f"{finger.host}:{finger.port}" in broken.reason
    assert "port 79" in broken.fix


def test_mirrored_checks_the_isp_server_without_a_domain_login(data, dns_server, licensed, isp):
    licensed(data, mailserver=None)
    configure(data, **dns_server.settings, **{"email.server_type": "mirrored"},
              **{k: v for k, v in isp.box_settings("", "", "imap", "tls").items()
                 if k in ("email.isp_server", "email.isp_protocol", "email.isp_tls")})
    result = run(data, cafile=str(isp.ca_file), only={"isp_mailbox"})["isp_mailbox"]
    assert result.status == "pass" and "Test ISP ready" in result.reason
    assert "each user's ISP login" in result.reason
