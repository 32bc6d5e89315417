"""Anti-Spam > DKIM & DMARC with a real DNS server (dnsmasq on loopback):
the keys generated on the page, the TXT records read back from the page's
HTML and published, Check DNS saying so (and saying so when a record is
missing or holds another key), and mail signed with the keys verifying
with dkimpy against what DNS serves."""

from __future__ import annotations

import base64
import html as html_text
import re

import dkim
import dns.resolver
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from firmware.config import Store
from firmware.config.store import Snapshot
from firmware.mail.policy import Context
from softpaks.antispam.authentication import keys, signing
from tests.support.dnsmasq import DnsServer
from tests.unit.test_webui_support import csrf_token, make_app, sign_in

PAGE = "/anti-spam/authentication"
ROW = re.compile(r'<code class="record-name">([^<]+)</code>.*?'
                 r'<pre class="record-value">(.*?)</pre>', re.S)


def records_on(page_html: str) -> dict[str, list[str]]:
    return {name: re.findall(r'"([^"]*)"', html_text.unescape(value))
            for name, value in ROW.findall(page_html)}


def flashes(page_html: str) -> list[str]:
    found = re.findall(r'<p class="flash \w+" role="status">(.*?)</p>', page_html)
    return [html_text.unescape(m) for m in found]


def test_check_dns_and_signatures_against_the_record_the_page_shows(tmp_path, box_serial,
                                                                     licensed):
    app = make_app(tmp_path / "data")
    client = app.test_client()
    assert sign_in(client).status_code == 302
    licensed(tmp_path / "data", antispam=None)
    token = csrf_token(client, PAGE)
    client.post(f"{PAGE}/generate", data={"csrf_token": token, "domain": "example.com"})
    shown = records_on(client.get(PAGE).get_data(as_text=True))
    assert len(shown) == 2
    rsa_name = next(name for name, strings in shown.items() if "k=rsa" in strings[0])
    ed_name = next(name for name in shown if name != rsa_name)
    assert len(shown[rsa_name]) == 2 and all(len(s) <= 255 for s in shown[rsa_name])

    # Published: the RSA record as the page splits it; the Ed25519 one with another key.
    options = ["--host-record=probe.test,127.0.0.1", "--local=/com/",
               f"--txt-record={rsa_name},{','.join(shown[rsa_name])}",
               f"--txt-record={ed_name},v=DKIM1; k=ed25519; "
               "p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="]
    server = DnsServer(tmp_path / "dns", options, probe="probe.test").start()
    try:
        store = Store(tmp_path / "data")
        try:
            for key, value in server.settings.items():
                store.set(key, value)
        finally:
            store.close()
        said = flashes(client.post(f"{PAGE}/check-dns", follow_redirects=True,
                                   data={"csrf_token": token, "domain": "example.com"})
                       .get_data(as_text=True))
        assert f"{rsa_name}: published and matches the key." in said
        assert any(s.startswith(f"{ed_name}: DNS holds a different key") for s in said)

        store = Store(tmp_path / "data")
        try:
            snapshot = store.snapshot()
            ctx = Context(settings=Snapshot(snapshot.values, snapshot.generation),
                          client_ip="127.0.0.1", trusted=True)
            message = (b"From: Alice <alice@example.com>\r\nTo: p@far.test\r\n"
                       b"Subject: published\r\n\r\nHello\r\n")
            signed = signing.Signer(store)(message, ctx) + message
            selectors = {k.selector: k for k in keys.keys(store)}
        finally:
            store.close()
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers, resolver.port = [server.host], server.port

        def dnsfunc(name, timeout=5):
            answer = resolver.resolve(name.decode().rstrip("."), "TXT")
            return b"".join(next(iter(answer)).strings)
        checker = dkim.DKIM(signed)
        assert checker.verify(0, dnsfunc=dnsfunc), "the RSA signature verifies"
        assert checker.selector.decode() + "._domainkey.example.com" == rsa_name
        assert not checker.verify(1, dnsfunc=dnsfunc), "the Ed25519 record holds another key"
        assert set(selectors) == {n.split(".")[0] for n in shown}
    finally:
        server.stop()

    # Both records as the page shows them: both signatures verify.
    options = ["--host-record=probe.test,127.0.0.1", "--local=/com/"] + [
        f"--txt-record={name},{','.join(strings)}" for name, strings in shown.items()]
    server = DnsServer(tmp_path / "dns-both", options, probe="probe.test").start()
    try:
        resolver.nameservers, resolver.port = [server.host], server.port
        checker = dkim.DKIM(signed)
        assert checker.verify(0, dnsfunc=dnsfunc) and checker.verify(1, dnsfunc=dnsfunc)
        assert checker.selector.decode() + "._domainkey.example.com" == ed_name
    finally:
        server.stop()
    # The keys the issue names: RSA 2048 and Ed25519, read from the records shown.
    rsa_key = serialization.load_der_public_key(public_key_of(shown[rsa_name]))
    assert isinstance(rsa_key, rsa.RSAPublicKey) and rsa_key.key_size == 2048
    ed_key = ed25519.Ed25519PublicKey.from_public_bytes(public_key_of(shown[ed_name]))
    assert len(ed_key.public_bytes(serialization.Encoding.Raw,
                                   serialization.PublicFormat.Raw)) == 32


def public_key_of(strings: list[str]) -> bytes:
    tags = dict(tag.strip().split("=", 1) for tag in "".join(strings).split(";") if "=" in tag)
    return base64.b64decode(tags["p"])
