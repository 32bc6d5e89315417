"""The box's own certificate (firmware/system/tls.py), which SMTP STARTTLS
and the web admin present: readable and matching its key, valid now and for a
while yet, and naming the Host Name the box greets with."""

from __future__ import annotations

import datetime

from cryptography import x509
from cryptography.x509.oid import NameOID

from firmware.system import tls

from .result import Context, Outcome, failed, passed, warned

EXPIRY_WARNING = datetime.timedelta(days=30)
REPLACE_FIX = ("Install a certificate for the Host Name, or remove the box's self-signed one "
               "so that the box makes a new one when it next starts.")


def names_of(cert: x509.Certificate) -> list[str]:
    try:
        alternative = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        names = alternative.value.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        names = []
    if not names:
        names = [attribute.value for attribute in
                 cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return [str(name) for name in names]


def matches(hostname: str, name: str) -> bool:
    hostname, name = hostname.lower().rstrip("."), name.lower().rstrip(".")
    if name.startswith("*."):
        head, _, rest = hostname.partition(".")
        return bool(head) and rest == name[2:]
    return hostname == name


def box_certificate(context: Context) -> Outcome:
    cert_path, key_path = tls.paths(context.data_dir)
    problem = tls.pair_problem(cert_path, key_path)
    if problem == "missing":
        return warned("the box has no certificate yet",
                      "Start the box (gatebox run): it makes a self-signed certificate.")
    if problem:
        return failed(f"the certificate: {problem}", REPLACE_FIX)
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    now = datetime.datetime.now(datetime.timezone.utc)
    begins, ends = cert.not_valid_before_utc, cert.not_valid_after_utc
    hostname = context["system.hostname"]
    names = names_of(cert)
    self_signed = cert.issuer == cert.subject
    kind = "self-signed certificate" if self_signed else "certificate"
    if now < begins:
        return failed(f"the {kind} is not valid before {begins:%Y-%m-%d %H:%M} UTC",
                      "Check the box's clock (System > Network: Time Zone, NTP), or install "
                      "a certificate valid now.")
    if now > ends:
        return failed(f"the {kind} expired on {ends:%Y-%m-%d}", REPLACE_FIX)
    if not any(matches(hostname, name) for name in names):
        return failed(f"the {kind} names {', '.join(names) or 'no host'}, not the Host Name "
                      f"{hostname}: clients checking it refuse the connection", REPLACE_FIX)
    if ends - now < EXPIRY_WARNING:
        return warned(f"the {kind} for {hostname} expires on {ends:%Y-%m-%d}",
                      "Renew it before then.")
    return passed(f"{kind} for {hostname}, valid until {ends:%Y-%m-%d}")
