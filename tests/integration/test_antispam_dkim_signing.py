"""Outgoing mail signed by a running licensed box: keys made with `gatebox
antispam dkim generate`, the TXT records it prints published in a real DNS
server (dnsmasq on loopback), a message from a Trusted Network client
caught at the smarthost, and dkimpy verifying both signatures (RSA and
Ed25519) against DNS. The box's own check, asked through the same DNS,
refuses inbound mail that fails a p=reject policy."""

from __future__ import annotations

import asyncio
import re
import smtplib

import dkim
import dns.resolver
import pytest

from firmware.config import Store
from firmware.mail.resolver import Resolver
from softpaks.antispam.authentication import keys
from tests.support.dnsmasq import DnsServer
from tests.support.net import free_port, wait_until
from tests.support.sink import RecordingServer

RECORD = re.compile(r'^  (\S+)  TXT  (.*)$', re.M)


@pytest.fixture
def smarthost():
    server = RecordingServer().start()
    yield server
    server.stop()


def records_shown(output: str) -> dict[str, str]:
    return {name: "".join(re.findall(r'"([^"]*)"', strings))
            for name, strings in RECORD.findall(output)}


def txt_option(name: str, value: str) -> str:
    return f"--txt-record={name}," + ",".join(value[i:i + 255] for i in range(0, len(value), 255))


def dns_resolver(server):
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers, resolver.port = [server.host], server.port
    return resolver


def test_outgoing_mail_is_signed_and_verifies_against_the_published_record(
        make_box, licensed, smarthost, tmp_path):
    box = make_box(**{"email.server_type": "relay",
                      "email.mail_server_address": f"127.0.0.1:{free_port()}",
                      "email.trusted_networks": "127.0.0.1/32",
                      "email.relay_server_address": smarthost.address})
    licensed(box.data, antispam=None)
    shown = records_shown(box.cli("antispam", "dkim", "generate", "example.com").stdout)
    assert len(shown) == 2 and all(n.endswith("._domainkey.example.com") for n in shown)
    assert records_shown(box.cli("antispam", "dkim", "show", "example.com").stdout) == shown
    key_files = list((box.data / "antispam" / "dkim").iterdir())
    assert len(key_files) == 2 and all(p.stat().st_mode & 0o777 == 0o600 for p in key_files)

    records = ["--host-record=probe.test,127.0.0.1", "--local=/com/", "--local=/test/",
               "--txt-record=_dmarc.far.test,v=DMARC1; p=reject"]
    records += [txt_option(name, value) for name, value in shown.items()]
    server = DnsServer(tmp_path / "dns", records, probe="probe.test").start()
    try:
        box.configure(**server.settings)
        box.start()
        with smtplib.SMTP(box.host, box.smtp_port, timeout=60) as client:
            client.sendmail("alice@example.com", ["partner@far.test"],
                            b"From: Alice <alice@example.com>\r\nTo: partner@far.test\r\n"
                            b"Subject: the contract\r\nMessage-ID: <c1@example.com>\r\n\r\n"
                            b"Signed, sealed.\r\n")
            client.sendmail("alice@example.com", ["partner@far.test"],
                            b"From: Someone <someone@elsewhere.test>\r\nTo: partner@far.test\r\n"
                            b"Subject: not ours\r\n\r\nUnsigned.\r\n")
        wait_until(lambda: len(smarthost.received) == 2, 60, what="delivery to the smarthost")
        ours, foreign = sorted(smarthost.received, key=lambda r: b"the contract" not in r.content)
        resolver = dns_resolver(server)

        def dnsfunc(name, timeout=5):
            answer = resolver.resolve(name.decode().rstrip("."), "TXT")
            return b"".join(next(iter(answer)).strings)
        signer = dkim.DKIM(ours.content)
        algorithms = [re.search(rb"a=([\w-]+)", v).group(1) for n, v in signer.headers
                      if n.lower() == b"dkim-signature"]
        assert algorithms == [b"rsa-sha256", b"ed25519-sha256"]
        assert signer.verify(0, dnsfunc=dnsfunc) and signer.verify(1, dnsfunc=dnsfunc)
        assert b"DKIM-Signature" not in foreign.content

        # Inbound mail from outside that fails far.test's p=reject is refused at DATA.
        with smtplib.SMTP(box.host, box.smtp_port, timeout=60, source_address=("127.0.0.2", 0),
                          local_hostname="mx.far.test") as client:
            with pytest.raises(smtplib.SMTPDataError) as refused_data:
                client.sendmail("bounce@far.test", ["bob@example.com"],
                                b"From: Partner <partner@far.test>\r\nTo: bob@example.com\r\n"
                                b"Subject: forged\r\n\r\nPay this invoice.\r\n")
        code, text = refused_data.value.smtp_code, refused_data.value.smtp_error
        assert (code, text.decode()) == (550, "5.7.1 Message refused: DMARC policy of far.test "
                                              "is reject and the message is not aligned")
        assert "check=dkim_dmarc" in box.log()

        # Check DNS, as the page asks it: the published records match the keys.
        store = Store(box.data)
        try:
            states = [asyncio.run(keys.published(k, Resolver(), store.snapshot())).state
                      for k in keys.keys(store, "example.com")]
        finally:
            store.close()
        assert states == ["match", "match"]

        # Rotation: new selectors sign, the old ones stay listed until removed.
        rotated = records_shown(box.cli("antispam", "dkim", "rotate", "example.com").stdout)
        assert len(rotated) == 2 and not set(rotated) & set(shown)
        listing = box.cli("antispam", "dkim", "show").stdout
        assert listing.count("retired") == 2 and listing.count("signing") == 2
        old = next(iter(shown)).split(".")[0]
        refused = box.cli("antispam", "dkim", "remove", "example.com",
                          next(iter(rotated)).split(".")[0], check=False)
        assert refused.returncode != 0 and "still signs mail" in refused.stderr
        box.cli("antispam", "dkim", "remove", "example.com", old)
        assert old not in box.cli("antispam", "dkim", "show").stdout
    finally:
        box.stop()
        server.stop()
