"""DKIM, DMARC and signing parts without DNS: organizational domains on
the real Public Suffix List, DMARC records, alignment and pct sampling,
the From domain, key generation, rotation and removal, the signer's
choice of mail, trusted forwarder entries, and the page (CSRF, escaping)."""

from __future__ import annotations

import base64
import os
import re

import dkim
import pytest

from firmware.config import Store
from firmware.config.store import Snapshot
from firmware.mail.policy import Context
from softpaks.antispam.authentication import (dkim_verify, dmarc, dns_txt, forwarders, keys,
                                              signing)
from softpaks.antispam.authentication.org_domain import (PSL_PATH, SuffixList,
                                                         organizational_domain)

from tests.support.licensing import run_gatebox
from test_webui_support import csrf_token, make_app, sign_in


# ---- organizational domains ---------------------------------------------------------
@pytest.mark.parametrize("domain, org", [
    ("example.com", "example.com"), ("mail.sales.example.com", "example.com"),
    ("shop.example.co.uk", "example.co.uk"), ("a.b.city.kawasaki.jp", "city.kawasaki.jp"),
    ("mail.shop.foo.kawasaki.jp", "shop.foo.kawasaki.jp"), ("foo.bar.test", "bar.test"),
    ("com", "com")])
def test_organizational_domains_follow_the_public_suffix_list(domain, org):
    assert PSL_PATH.exists()
    assert organizational_domain(domain) == org


def test_without_a_list_the_last_two_labels_count():
    assert SuffixList().organizational("shop.example.co.uk") == "co.uk"
    rules = SuffixList.parse("// c\nuk\nco.uk\n*.ck\n!www.ck\n")
    assert rules.organizational("a.b.example.ck") == "b.example.ck"
    assert rules.organizational("x.www.ck") == "www.ck"


# ---- DMARC --------------------------------------------------------------------------
def test_records_are_parsed_with_their_defaults_and_refusals():
    record = dmarc.parse_record(b"v=DMARC1; p=quarantine; pct=30; adkim=s; rua=mailto:x@y")
    assert (record.p, record.sp, record.pct, record.adkim, record.aspf) == \
        ("quarantine", "quarantine", 30, "s", "r")
    assert dmarc.parse_record("v=DMARC1; p=reject; sp=none; pct=900").pct == 100
    assert dmarc.parse_record("v=DMARC1; p=reject; sp=none").policy_for("a.example") == "none"
    assert dmarc.parse_record("v=DMARC1; p=bogus") is None
    assert dmarc.parse_record("v=DMARC1") is None
    assert dmarc.parse_record("p=reject; v=DMARC1") is None
    two = dns_txt.Txt((b"v=DMARC1; p=reject", b"v=DMARC1; p=none"))
    assert dmarc.pick_record(two, "x.test") is None, "several records mean no policy"
    one = dns_txt.Txt((b"v=spf1 -all", b"v=DMARC1; p=none"))
    assert dmarc.pick_record(one, "x.test").p == "none"


@pytest.mark.parametrize("head, domain", [
    (b"From: Alice <alice@Example.COM.>\r\n", "example.com"),
    (b"From: \"Bob, Jr\" <bob@sub.example.org>\r\n", "sub.example.org"),
    (b"From: a@one.test\r\nFrom: b@two.test\r\n", ""),
    (b"From: a@one.test, b@two.test\r\n", ""),
    (b"To: x@y.test\r\n", ""),
    (b"From: undisclosed\r\n", ""),
    (b"From: x@-bad-.test\r\n", "")])
def test_the_author_domain_needs_exactly_one_address(head, domain):
    assert dmarc.author_domain(head + b"\r\nbody")[0] == domain


def test_alignment_relaxed_and_strict():
    assert dmarc.aligned("mail.example.co.uk", "example.co.uk", "r")
    assert not dmarc.aligned("mail.example.co.uk", "example.co.uk", "s")
    assert not dmarc.aligned("other.co.uk", "example.co.uk", "r")
    record = dmarc.parse_record("v=DMARC1; p=reject", "example.com")
    assert dmarc.evaluate("example.com", record, ["news.example.com"], ("none", ""),
                          b"k").result == "pass"
    assert dmarc.evaluate("example.com", record, [], ("pass", "bounces.example.com"),
                          b"k").aligned_by == "spf bounces.example.com"
    failed = dmarc.evaluate("example.com", record, ["elsewhere.test"], ("fail", "example.com"),
                            b"k")
    assert (failed.result, failed.applied) == ("fail", "reject")


def test_pct_sampling_is_deterministic_and_near_its_share():
    assert dmarc.sampled(100, b"x") and not dmarc.sampled(0, b"x")
    keys_ = [f"<{n}@example.com>".encode() for n in range(2000)]
    share = sum(dmarc.sampled(25, k) for k in keys_) / len(keys_)
    assert 0.2 < share < 0.3
    assert [dmarc.sampled(25, k) for k in keys_[:50]] == [dmarc.sampled(25, k) for k in keys_[:50]]
    assert dmarc.sample_key(b"Message-ID: <a@b>\r\n\r\nx") == b"<a@b>"


def test_signatures_are_bounded_and_read_leniently():
    many = b"".join(b"DKIM-Signature: v=1; d=x%d.test; s=s; b=abc\r\n" % n for n in range(9))
    found = dkim_verify.signatures(many + b"garbage line\r\nFrom: a@b.test\r\n\r\nbody")
    assert len(found) == dkim_verify.MAX_SIGNATURES and found[0].domain == "x0.test"
    assert not dkim_verify.signatures(b"DKIM-Signature: v=1; d=\r\n\r\n")[0].tags_ok


# ---- keys and signing ---------------------------------------------------------------
def _ctx(store, **values):
    snapshot = store.snapshot()
    return Context(settings=Snapshot({**snapshot.values, **values}, snapshot.generation),
                   client_ip="127.0.0.1", trusted=True)


MESSAGE = (b"From: Alice <alice@example.com>\r\nTo: p@far.test\r\nSubject: s\r\n"
           b"Message-ID: <1@example.com>\r\n\r\nHello\r\n")


def test_keys_are_made_private_and_refused_for_foreign_domains(store):
    with pytest.raises(keys.KeyProblem, match="not a local domain"):
        keys.generate(store, "elsewhere.test")
    with pytest.raises(keys.KeyProblem, match="not a domain"):
        keys.generate(store, "../../etc")
    made = keys.generate(store, "Example.com.")
    assert [k.algorithm for k in made] == ["rsa", "ed25519"]
    assert all(k.record_name == f"{k.selector}._domainkey.example.com" for k in made)
    rsa_key = made[0]
    assert rsa_key.record_value.startswith("v=DKIM1; k=rsa; p=MII")
    assert all(len(s) <= 255 for s in rsa_key.record_strings) and len(rsa_key.record_strings) == 2
    assert "".join(rsa_key.record_strings) == rsa_key.record_value
    assert len(base64.b64decode(made[1].public_key)) == 32
    directory = keys.key_dir(store)
    assert directory.stat().st_mode & 0o777 == 0o700
    assert all((directory / k.key_file).stat().st_mode & 0o777 == 0o600 for k in made)
    assert not [p for p in os.listdir(directory) if p.endswith(".tmp")]
    with pytest.raises(keys.KeyProblem, match="rotate them instead"):
        keys.generate(store, "example.com")


def test_signed_mail_verifies_and_only_our_domains_with_keys_are_signed(store):
    signer = signing.Signer(store)
    assert signer(MESSAGE, _ctx(store)) == b""          # no keys yet
    made = keys.generate(store, "example.com")
    added = signer(MESSAGE, _ctx(store))
    assert added.count(b"DKIM-Signature:") == 2
    assert added.index(b"a=rsa-sha256") < added.index(b"a=ed25519-sha256")
    records = {k.record_name + ".": k.record_value.encode() for k in made}

    def dnsfunc(name, timeout=5):
        return records.get(name.decode())
    signed = dkim.DKIM(added + MESSAGE)
    assert signed.verify(0, dnsfunc=dnsfunc) and signed.verify(1, dnsfunc=dnsfunc)
    assert re.search(rb"h=([^;]*);", b"".join(added.split())).group(1) == \
        b"from:subject:message-id:to:from"
    assert not dkim.DKIM(added + MESSAGE.replace(b"Subject: s", b"Subject: t")).verify(
        0, dnsfunc=dnsfunc)
    assert signer(MESSAGE.replace(b"@example.com>", b"@other.test>", 1), _ctx(store)) == b""
    assert signer(MESSAGE, _ctx(store, **{signing.SIGN: False})) == b""


def test_rotation_retires_and_removal_takes_only_retired_selectors(store):
    first = keys.generate(store, "example.com")
    second = keys.rotate(store, "example.com")
    assert {k.selector for k in keys.active_keys(store, "example.com")} == \
        {k.selector for k in second}
    assert all(not k.active for k in keys.keys(store) if k.selector in {f.selector for f in first})
    with pytest.raises(keys.KeyProblem, match="still signs"):
        keys.remove(store, "example.com", second[0].selector)
    gone = keys.remove(store, "example.com", first[0].selector)
    assert not (keys.key_dir(store) / gone.key_file).exists()
    with pytest.raises(keys.KeyProblem, match="no selector"):
        keys.remove(store, "example.com", first[0].selector)
    # A key file name from the database is never followed out of the key directory.
    store.db.execute("UPDATE antispam_dkim_keys SET key_file = '../../gatebox.db'")
    with pytest.raises(keys.KeyProblem):
        keys.private_key_bytes(store, keys.keys(store)[0])


def test_forwarder_entries(store):
    assert forwarders.add(store, "192.0.2.7/24").entry == "192.0.2.0/24"
    assert forwarders.add(store, "Lists.Example.org", "the list").entry == "lists.example.org"
    for bad, rule in (("jane@example.org", "server that passes"), ("lists.example.org", "already"),
                      ("*.example.org", "write the domain alone")):
        with pytest.raises(forwarders.ForwarderError, match=rule):
            forwarders.add(store, bad)
    assert [f.entry for f in forwarders.entries(store)] == ["192.0.2.0/24", "lists.example.org"]
    forwarders.remove(store, "192.0.2.0/24")
    with pytest.raises(forwarders.ForwarderError, match="not a trusted forwarder"):
        forwarders.remove(store, "192.0.2.0/24")


# ---- the page -----------------------------------------------------------------------
@pytest.fixture
def page(tmp_path, box_serial, licensed):
    app = make_app(tmp_path / "data")
    client = app.test_client()
    assert sign_in(client).status_code == 302
    licensed(tmp_path / "data", antispam=None)
    client.data_dir = tmp_path / "data"
    return client


def _stored(client, work):
    store = Store(client.data_dir)
    try:
        return work(store)
    finally:
        store.close()


def test_the_page_generates_keys_shows_records_and_keeps_csrf(page):
    html = page.get("/anti-spam/authentication").get_data(as_text=True)
    assert "Verify DKIM Signatures" in html and "Enforce DMARC Policies" in html
    assert 'data-domain="example.com"' in html and "Generate keys" in html
    refused = page.post("/anti-spam/authentication/generate", data={"domain": "example.com"})
    assert refused.status_code == 400 and not _stored(page, lambda s: keys.keys(s))
    token = csrf_token(page, "/anti-spam/authentication")
    page.post("/anti-spam/authentication/generate",
              data={"csrf_token": token, "domain": "example.com"})
    made = _stored(page, lambda s: keys.keys(s))
    html = page.get("/anti-spam/authentication").get_data(as_text=True)
    for key in made:
        assert key.record_name in html
        for part in key.record_strings:
            assert f'"{part}"' in html
    assert "Check DNS" in html and "Rotate" in html
    page.post("/anti-spam/authentication/rotate",
              data={"csrf_token": token, "domain": "example.com"})
    html = page.get("/anti-spam/authentication").get_data(as_text=True)
    assert html.count("Remove old selector") == 2
    assert page.get("/help/antispam-authentication").status_code == 200


def test_the_page_adds_and_removes_forwarders_escaped(page):
    token = csrf_token(page, "/anti-spam/authentication")
    page.post("/anti-spam/authentication/forwarders/add",
              data={"csrf_token": token, "entry": "lists.example.org",
                    "note": "<script>alert(1)</script>"})
    html = page.get("/anti-spam/authentication").get_data(as_text=True)
    assert 'data-entry="lists.example.org"' in html
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)" in html
    bad = page.post("/anti-spam/authentication/forwarders/add", follow_redirects=True,
                    data={"csrf_token": token, "entry": "<b>x</b>"}).get_data(as_text=True)
    assert "<b>x</b>" not in bad and "is not an IP address" in bad
    assert page.post("/anti-spam/authentication/forwarders/remove",
                     data={"entry": "lists.example.org"}).status_code == 400
    assert _stored(page, lambda s: len(forwarders.entries(s))) == 1    # no token: nothing done
    page.post("/anti-spam/authentication/forwarders/remove",
              data={"csrf_token": token, "entry": "lists.example.org"})
    assert _stored(page, lambda s: forwarders.entries(s)) == []


# ---- the commands -------------------------------------------------------------------
def test_the_forwarder_and_dkim_commands(store):
    data = store.data_dir
    added = run_gatebox(data, "antispam", "forwarder", "add", "lists.example.org", "--note",
                        "the list", check=True)
    assert "added trusted forwarder lists.example.org" in added.stdout
    refused = run_gatebox(data, "antispam", "forwarder", "add", "jane@example.org")
    assert refused.returncode != 0 and "server that passes" in refused.stderr
    shown = run_gatebox(data, "antispam", "forwarder", "show", check=True)
    assert shown.stdout.startswith("lists.example.org ") and "the list" in shown.stdout
    run_gatebox(data, "antispam", "forwarder", "remove", "lists.example.org", check=True)
    assert forwarders.entries(store) == []
    foreign = run_gatebox(data, "antispam", "dkim", "generate", "elsewhere.test")
    assert foreign.returncode != 0 and "not a local domain" in foreign.stderr
    assert keys.keys(store) == []
