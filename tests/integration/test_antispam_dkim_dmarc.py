"""DKIM, DMARC and ARC of inbound mail against a real DNS server (dnsmasq
on loopback) holding keys and _dmarc records made when the tests start:
the data-stage check in-process through the policy chain with the box's
resolver, each message with its Authentication-Results and its action.

Domains in DNS:
  signer.test   RSA key (selector rs) and Ed25519 key (ed); p=reject
  quar.test     p=quarantine
  org.test      p=reject; sp=quarantine (its subdomains use sp)
  pct0.test     p=quarantine; pct=0
  pct0r.test    p=reject; pct=0 (not sampled: the next milder policy)
  strict.test   p=reject; adkim=s (a signature of a subdomain does not align)
  slow.test     forwarded to a server that never answers
  flaky.test    p=reject, but its keys (_domainkey) are on a server that never answers
  none.test     no DMARC record
  list.test     the ARC key (selector arc) of a mailing list"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import socket

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from firmware.config.store import Snapshot
from firmware.mail import message_data, scoring
from firmware.mail.policy import Context, Policy
from firmware.mail.resolver import Resolver
from softpaks.antispam.authentication import checks, forwarders
from tests.support.dnsmasq import DnsServer


def _rsa():
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption())
    public = private.public_key().public_bytes(serialization.Encoding.DER,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    return pem, f"v=DKIM1; k=rsa; p={base64.b64encode(public).decode()}"


def _ed25519():
    private = ed25519.Ed25519PrivateKey.generate()
    seed = private.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                 serialization.NoEncryption())
    public = private.public_key().public_bytes(serialization.Encoding.Raw,
                                               serialization.PublicFormat.Raw)
    return base64.b64encode(seed), f"v=DKIM1; k=ed25519; p={base64.b64encode(public).decode()}"


def txt(name: str, value: str) -> str:
    strings = ",".join(value[i:i + 255] for i in range(0, len(value), 255))
    return f"--txt-record={name},{strings}"


@pytest.fixture(scope="module")
def silent_dns():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    yield sock.getsockname()[1]
    sock.close()


@pytest.fixture(scope="module")
def keys():
    return {"rs": _rsa(), "ed": _ed25519(), "arc": _rsa()}


@pytest.fixture(scope="module")
def dns(tmp_path_factory, keys, silent_dns):
    server = DnsServer(tmp_path_factory.mktemp("dns"), [
        "--host-record=probe.test,127.0.0.1", "--local=/test/",
        txt("rs._domainkey.signer.test", keys["rs"][1]),
        txt("ed._domainkey.signer.test", keys["ed"][1]),
        txt("arc._domainkey.list.test", keys["arc"][1]),
        txt("_dmarc.signer.test", "v=DMARC1; p=reject; rua=mailto:r@signer.test"),
        txt("_dmarc.quar.test", "v=DMARC1; p=quarantine"),
        txt("_dmarc.org.test", "v=DMARC1; p=reject; sp=quarantine"),
        txt("_dmarc.pct0.test", "v=DMARC1; p=quarantine; pct=0"),
        txt("_dmarc.pct0r.test", "v=DMARC1; p=reject; pct=0"),
        txt("_dmarc.strict.test", "v=DMARC1; p=reject; adkim=s"),
        txt("_dmarc.flaky.test", "v=DMARC1; p=reject"),
        f"--server=/slow.test/127.0.0.1#{silent_dns}",
        f"--server=/_domainkey.flaky.test/127.0.0.1#{silent_dns}",
    ], probe="probe.test").start()
    yield server
    server.stop()


def settings(dns_server, **values):
    return Snapshot({**dns_server.settings, checks.DKIM_VERIFY: True, checks.DMARC_ENFORCE: True,
                     checks.ARC_VERIFY: True, **values}, generation=1)


def message(author="alice@signer.test", body="Hello there.\r\n", extra="") -> bytes:
    return (f"From: Alice <{author}>\r\nTo: jane@example.com\r\nSubject: quarterly figures\r\n"
            f"Date: {email.utils.formatdate(usegmt=True)}\r\nMessage-ID: <{abs(hash(body))}@x.test>\r\n"
            f"{extra}MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n{body}").encode()


def signed(keys, raw: bytes, domain="signer.test", selector="rs") -> bytes:
    private = keys[selector][0]
    algorithm = b"ed25519-sha256" if selector == "ed" else b"rsa-sha256"
    return dkim.sign(raw, selector.encode(), domain.encode(), private,
                     canonicalize=(b"relaxed", b"relaxed"),
                     include_headers=[b"from", b"to", b"subject", b"date", b"message-id"],
                     signature_algorithm=algorithm) + raw


def run(store, values, raw: bytes, client_ip="192.0.2.80", spf=None, **context):
    policy = Policy(checks.policy_checks(store))
    ctx = Context(settings=values, client_ip=client_ip, resolver=Resolver(),
                  sender="bounce@outside.test", recipients=["jane@example.com"], **context)
    ctx.stage = "mail"
    if spf is not None:
        ctx.add_auth_result("spf", spf[0], smtp_mailfrom=spf[1])
    ctx.message = raw
    verdict = asyncio.run(policy.evaluate("data", ctx))
    return verdict, ctx


def results(ctx) -> str:
    return scoring.authentication_results("mx.example.com", ctx.auth_results)


def symbols(ctx) -> dict:
    return {s.name: s.score for s in ctx.symbols}


def test_signed_and_aligned_mail_passes(store, dns, keys):
    raw = signed(keys, signed(keys, message(), selector="ed"))
    verdict, ctx = run(store, settings(dns), raw)
    assert verdict is None and not ctx.quarantine_kind
    header = results(ctx)
    assert "dkim=pass header.d=signer.test header.s=rs header.b=" in header
    assert "dkim=pass header.d=signer.test header.s=ed header.b=" in header
    assert "dmarc=pass policy.dmarc=reject header.from=signer.test" in header
    assert "arc=none" in header
    assert symbols(ctx)["DKIM_VALID"] == -0.1 and "DMARC_PASS" in symbols(ctx)
    assert ctx.results[("dkim", "pass")] == 2


def test_a_tampered_message_fails_dkim_and_is_refused_for_p_reject(store, dns, keys):
    raw = signed(keys, message()).replace(b"Hello there.", b"Send money.")
    verdict, ctx = run(store, settings(dns), raw)
    assert verdict is not None and verdict.reply.startswith("550 5.7.1 ")
    assert "DMARC policy of signer.test is reject" in verdict.text
    assert verdict.check == checks.CHECK_NAME
    assert "dkim=fail header.d=signer.test header.s=rs" in results(ctx)
    assert "dmarc=fail policy.dmarc=reject header.from=signer.test" in results(ctx)
    assert symbols(ctx)["DKIM_INVALID"] == 1.0
    assert ctx.results[(checks.CHECK_NAME, "rejected")] == 1 and ctx.results[("dkim", "fail")] == 1
    # A forged header is caught the same way as a changed body.
    forged = signed(keys, message()).replace(b"Subject: quarterly", b"Subject: urgent")
    assert "dkim=fail" in results(run(store, settings(dns), forged)[1])


def test_unsigned_mail_is_refused_unless_spf_aligns(store, dns):
    verdict, ctx = run(store, settings(dns), message())
    assert verdict.code == 550 and "dkim=none" in results(ctx)
    assert symbols(ctx)["DKIM_NONE"] == 0.0
    # The SPF check's result (recorded at MAIL) for an aligned domain is enough.
    verdict, ctx = run(store, settings(dns), message(), spf=("pass", "bounce@mail.signer.test"))
    assert verdict is None and "dmarc=pass" in results(ctx)
    # An SPF pass for another domain is not aligned.
    verdict, ctx = run(store, settings(dns), message(), spf=("pass", "bounce@outside.test"))
    assert verdict.code == 550


def test_an_unaligned_signature_is_quarantined_for_p_quarantine(store, dns, keys):
    raw = signed(keys, message("bob@quar.test"))
    verdict, ctx = run(store, settings(dns), raw)
    assert verdict is None
    assert "dkim=pass header.d=signer.test" in results(ctx)
    assert "dmarc=fail policy.dmarc=quarantine header.from=quar.test" in results(ctx)
    assert (ctx.quarantine_kind, ctx.hold_reason) == \
        ("spam", "DMARC policy quarantine for quar.test")
    assert symbols(ctx)["DMARC_QUARANTINE"] == 3.0


def test_a_subdomain_takes_sp_from_the_organizational_domain(store, dns):
    verdict, ctx = run(store, settings(dns), message("carol@sales.org.test"))
    assert verdict is None and ctx.quarantine_kind == "spam"
    assert "dmarc=fail policy.dmarc=quarantine header.from=sales.org.test" in results(ctx)
    # The organizational domain itself gets p.
    assert run(store, settings(dns), message("carol@org.test"))[0].code == 550


def test_strict_alignment_wants_the_exact_domain(store, dns, keys):
    raw = signed(keys, message("dan@strict.test"), domain="signer.test")
    assert run(store, settings(dns), raw)[0].code == 550
    relaxed = run(store, settings(dns), message("dan@strict.test"),
                  spf=("pass", "x@mail.strict.test"))
    assert relaxed[0] is None, "aspf is relaxed by default"


def test_pct_zero_applies_the_milder_policy(store, dns):
    verdict, ctx = run(store, settings(dns), message("eve@pct0.test"))
    assert verdict is None and not ctx.quarantine_kind
    assert "dmarc=fail" in results(ctx) and symbols(ctx)["DMARC_FAIL"] == 1.0
    assert any("pct=0" in s.detail for s in ctx.symbols)
    verdict, ctx = run(store, settings(dns), message("eve@pct0r.test"))
    assert verdict is None and ctx.quarantine_kind == "spam"


def test_no_policy_and_enforcement_off(store, dns):
    verdict, ctx = run(store, settings(dns), message("fred@none.test"))
    assert verdict is None and "dmarc=none header.from=none.test" in results(ctx)
    off = settings(dns, **{checks.DMARC_ENFORCE: False})
    verdict, ctx = run(store, off, message())
    assert verdict is None and not ctx.quarantine_kind
    assert symbols(ctx)["DMARC_REJECT"] == 5.0 and "dmarc=fail" in results(ctx)


def test_a_trusted_forwarder_is_only_scored(store, dns, keys):
    forwarders.add(store, "192.0.2.0/24", "the office's mailing list")
    raw = signed(keys, message()).replace(b"Hello there.", b"[list footer] Hello there.")
    verdict, ctx = run(store, settings(dns), raw)
    assert verdict is None and not ctx.quarantine_kind
    assert symbols(ctx)["DMARC_FAIL_FORWARDER"] == 1.0
    assert "dmarc=fail" in results(ctx)
    # Another client still gets the policy.
    assert run(store, settings(dns), raw, client_ip="198.51.100.7")[0].code == 550


def test_dns_failures_are_temperror_and_never_refuse(store, dns, keys):
    raw = signed(keys, message("gina@slow.test"), domain="slow.test")
    verdict, ctx = run(store, settings(dns), raw)
    assert verdict is None and not ctx.quarantine_kind
    assert "dkim=temperror header.d=slow.test" in results(ctx)
    assert "dmarc=temperror header.from=slow.test" in results(ctx)
    # The policy is found but the key is not: the signature might have aligned.
    raw = signed(keys, message("ivy@flaky.test"), domain="flaky.test")
    verdict, ctx = run(store, settings(dns), raw)
    assert verdict is None and not ctx.quarantine_kind
    assert "dkim=temperror header.d=flaky.test" in results(ctx)
    assert "dmarc=temperror header.from=flaky.test" in results(ctx)
    # An aligned SPF pass decides despite the missing key.
    verdict, ctx = run(store, settings(dns), raw, spf=("pass", "b@flaky.test"))
    assert verdict is None and "dmarc=pass" in results(ctx)
    # Unsigned, the same domain's policy applies: the DNS trouble was only the keys'.
    assert run(store, settings(dns), message("ivy@flaky.test"))[0].code == 550


def test_missing_key_and_broken_from(store, dns, keys):
    raw = signed(keys, message("hal@none.test"), domain="none.test")
    verdict, ctx = run(store, settings(dns), raw)
    assert "dkim=permerror header.d=none.test" in results(ctx)
    two = message(extra="From: Mallory <m@outside.test>\r\n")
    verdict, ctx = run(store, settings(dns), two)
    assert verdict is None and "dmarc=permerror" in results(ctx)
    assert symbols(ctx)["DMARC_PERMERROR"] == 1.0


def test_whitelisted_and_outbound_mail_is_not_checked(store, dns):
    for context in ({"whitelisted": True}, {"trusted": True}, {"auth_user": "bob"}):
        verdict, ctx = run(store, settings(dns), message(), **context)
        assert verdict is None and not ctx.auth_results[1:] and not ctx.symbols, context


def test_an_arc_chain_is_verified_and_recorded(store, dns, keys):
    # The mailing list checked the original, added its ARC set and changed the body.
    original = signed(keys, message())
    arriving = (b"Authentication-Results: list.test; dkim=pass header.d=signer.test; "
                b"dmarc=pass header.from=signer.test\r\n" + original)
    arriving = arriving.replace(b"Hello there.", b"Hello there. [list footer]")
    sealed = b"".join(dkim.arc_sign(arriving, b"arc", b"list.test", keys["arc"][0],
                                    b"list.test", include_headers=[b"from", b"subject"]))
    raw = sealed + arriving
    verdict, ctx = run(store, settings(dns), raw)
    assert "arc=pass" in results(ctx) and "ARC_PASS" in symbols(ctx)
    assert verdict.code == 550, "an ARC pass alone does not override the policy"
    forwarders.add(store, "192.0.2.80")
    verdict, ctx = run(store, settings(dns), raw)
    assert verdict is None and symbols(ctx)["DMARC_FAIL_FORWARDER"] == 0.0
    broken = raw.replace(b"[list footer]", b"[changed later]")
    assert "arc=fail" in results(run(store, settings(dns), broken)[1])


def test_a_large_message_is_verified_whole_from_its_file(store, dns, keys, tmp_path):
    # smtpd hands the checks the first PREFIX octets and the file holding all.
    body = "".join(f"line {n} of a long report\r\n" for n in range(40_000))
    raw = signed(keys, message(body=body))
    assert len(raw) > 2 * message_data.PREFIX
    whole = tmp_path / "whole"
    whole.write_bytes(raw)
    verdict, ctx = run(store, settings(dns), raw[:message_data.PREFIX],
                       message_file=whole, message_file_length=len(raw))
    assert verdict is None
    assert "dkim=pass header.d=signer.test header.s=rs" in results(ctx)
    whole.write_bytes(raw.replace(b"line 39999 of", b"line 39999 0f"))
    verdict, ctx = run(store, settings(dns), raw[:message_data.PREFIX],
                       message_file=whole, message_file_length=len(raw))
    assert "dkim=fail" in results(ctx) and verdict is not None and verdict.code == 550
