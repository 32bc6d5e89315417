"""Outbound mail by MX, resolved through a real DNS server (dnsmasq) on
loopback, delivered to Postfix's smtp-sink on port 25 of another loopback
address."""

import shutil
import smtplib
import subprocess

import pytest

from tests.support.net import free_port, wait_until
from tests.support.sink import SmtpSink
from tests.support.tools import require

MX_ADDRESS = "127.0.0.25"      # the recipient domain's mail host
DEAD_MX_ADDRESS = "127.0.0.26"  # a higher-priority MX that is down
DNSMASQ = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"


@pytest.fixture
def dns_server(tmp_path):
    require("dnsmasq")
    port = free_port()
    process = subprocess.Popen([
        DNSMASQ, "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
        "--bind-interfaces", "--listen-address=127.0.0.1", f"--port={port}",
        f"--pid-file={tmp_path / 'dnsmasq.pid'}", "--user=root",
        "--mx-host=far.test,mx1.far.test,10",
        f"--host-record=mx1.far.test,{MX_ADDRESS}",
        "--mx-host=backup.test,dead.backup.test,10",
        "--mx-host=backup.test,alive.backup.test,20",
        f"--host-record=dead.backup.test,{DEAD_MX_ADDRESS}",
        f"--host-record=alive.backup.test,{MX_ADDRESS}",
        "--local=/nx.test/",
    ], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    import dns.resolver
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers, resolver.port = ["127.0.0.1"], port

    def answers():
        try:
            return resolver.resolve("far.test", "MX")
        except Exception:
            return None
    try:
        wait_until(answers, timeout=10, what="dnsmasq to answer")
        yield port
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture
def mx_sink(tmp_path):
    server = SmtpSink(tmp_path / "mx-sink", host=MX_ADDRESS, port=25).start()
    yield server
    server.stop()


@pytest.fixture
def box(make_box, dns_server, lan_server):
    return make_box(**{"email.mail_server_address": lan_server.address,
                       "email.trusted_networks": "127.0.0.1/32",
                       "dns.nameservers": "127.0.0.1",
                       "dns.port": str(dns_server)}).start()


def send(box, recipient, sender="staff@example.com", subject="out"):
    with smtplib.SMTP(box.host, box.smtp_port, timeout=10) as client:
        client.sendmail(sender, [recipient], f"Subject: {subject}\r\n\r\nhello\r\n")


def test_outbound_mail_is_delivered_to_the_domains_mx(box, mx_sink):
    send(box, "partner@far.test", subject="by mx")
    wait_until(lambda: mx_sink.count() == 1, what="delivery to the MX host")
    assert b"Subject: by mx" in mx_sink.messages()[0]
    assert "relay=mx1.far.test[127.0.0.25]:25" in box.log()


def test_a_dead_primary_mx_falls_back_to_the_next(box, mx_sink):
    send(box, "partner@backup.test", subject="via backup")
    wait_until(lambda: mx_sink.count() == 1, what="delivery to the backup MX")
    assert "relay=alive.backup.test[127.0.0.25]:25" in box.log()


def test_nonexistent_domain_bounces_to_the_sender(box, lan_server, mx_sink):
    send(box, "nobody@nx.test", subject="lost")
    dsn = wait_until(lambda: lan_server.recorder.for_recipient("staff@example.com"),
                     what="the bounce to the sender")[0]
    assert dsn.message.get_content_type() == "multipart/report"
    assert b"nobody@nx.test" in dsn.content
    assert b"Host or domain name not found" in dsn.content
    assert mx_sink.count() == 0
