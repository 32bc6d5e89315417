"""The box's own TLS certificate: self-signed at first boot, used by SMTP
STARTTLS and the web admin until the administrator installs another."""

from __future__ import annotations

import datetime
import ipaddress
import logging
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from . import durable

log = logging.getLogger("gatebox")


def paths(data_dir) -> tuple[Path, Path]:
    base = Path(data_dir) / "tls"
    return base / "cert.pem", base / "key.pem"


def ensure_certificate(data_dir, hostname: str) -> tuple[Path, Path]:
    """The certificate and key, made again when either is missing, empty,
    unreadable or not a pair (a power cut in the middle of the first boot
    used to leave them so, and nothing could start)."""
    cert_path, key_path = paths(data_dir)
    problem = pair_problem(cert_path, key_path)
    if problem is None:
        return cert_path, key_path
    if problem != "missing":
        log.warning("TLS certificate %s: %s; making a new self-signed one", cert_path, problem)
    durable.make_directories(cert_path.parent, mode=0o700)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName(hostname), x509.DNSName("localhost"),
                x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    # Key first: a cut between the two leaves a certificate that does not
    # match, which the next start notices and repairs.
    durable.write_atomically(key_path, key.private_bytes(serialization.Encoding.PEM,
                                                         serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()), 0o600)
    durable.write_atomically(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return cert_path, key_path


def pair_problem(cert_path: Path, key_path: Path) -> str | None:
    """What is wrong with the stored certificate and key, or None."""
    if not cert_path.exists() and not key_path.exists():
        return "missing"
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except (OSError, ValueError) as error:
        return f"certificate unreadable ({error.__class__.__name__}: {error})"
    try:
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as error:
        return f"key unreadable ({error.__class__.__name__}: {error})"
    if cert.public_key().public_bytes(serialization.Encoding.DER,
                                      serialization.PublicFormat.SubjectPublicKeyInfo) != \
            key.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo):
        return "the key does not belong to the certificate"
    return None


def server_context(data_dir) -> ssl.SSLContext:
    cert_path, key_path = paths(data_dir)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(cert_path), str(key_path))
    return context
