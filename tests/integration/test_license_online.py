"""Online activation against the real license service (`gatebox-vendor serve`)
over HTTPS on loopback, with a certificate made for the test."""

import datetime
import ipaddress
import socket
import subprocess
import sys

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from firmware.config import Store


@pytest.fixture
def tls_files(tmp_path):
    """A self-signed certificate for 127.0.0.1; the box trusts it with --ca."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "license service test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "service.crt", tmp_path / "service.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture
def service(tmp_path, vendor, tls_files):
    """The license service on 127.0.0.1, a port the OS picks; stopped by its handle."""
    cert_path, key_path = tls_files
    db = tmp_path / "codes.db"
    process = subprocess.Popen(
        [sys.executable, "-m", "gatebox_vendor.cli", "serve", "--db", str(db),
         "--key", str(vendor.private_path), "--host", "127.0.0.1", "--port", "0",
         "--tls-cert", str(cert_path), "--tls-key", str(key_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        assert line.startswith("listening on https://127.0.0.1:"), line + process.stderr.read()
        yield {"url": line.split()[-1], "db": db, "ca": cert_path}
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()
        process.stderr.close()


def _box(tmp_path, name):
    Store.create(tmp_path / name).close()
    return tmp_path / name


def test_code_activates_one_box_only(gatebox, gatebox_vendor, service, tmp_path, box_serial):
    code = gatebox_vendor("code", "add", "--db", str(service["db"]),
                          "--softpak", "mailserver=2099-12-31").stdout.strip().splitlines()[-1]
    first, second = _box(tmp_path, "box-a"), _box(tmp_path, "box-b")
    args = ["license", "activate", "--code", code, "--server", service["url"], "--ca", str(service["ca"])]

    assert gatebox(first, "config", "set", "email.server_type", "standalone").returncode != 0
    result = gatebox(first, *args, check=True)
    assert "activated license" in result.stdout
    gatebox(first, "config", "set", "email.server_type", "standalone", check=True)

    # The same box asking again (lower case, no dashes) gets its key again.
    again = gatebox(first, *args[:3], code.lower().replace("-", ""), *args[4:], check=True)
    assert "already active" in again.stdout

    other = gatebox(second, *args, env={"GATEBOX_SERIAL": "GBX-TEST-0002"})
    assert other.returncode == 1
    assert "another box" in other.stderr and "online activation failed" in other.stderr
    assert "no licenses" in gatebox(second, "license", "show", env={"GATEBOX_SERIAL": "GBX-TEST-0002"},
                                    check=True).stdout


def test_unknown_code(gatebox, service, tmp_path, box_serial):
    result = gatebox(_box(tmp_path, "box"), "license", "activate", "--code", "ZZZZ-ZZZZ-ZZZZ-ZZZZ",
                     "--server", service["url"], "--ca", str(service["ca"]))
    assert result.returncode == 1 and "unknown activation code" in result.stderr


def test_untrusted_certificate_is_refused(gatebox, gatebox_vendor, service, tmp_path, box_serial):
    code = gatebox_vendor("code", "add", "--db", str(service["db"]),
                          "--softpak", "mailserver").stdout.strip().splitlines()[-1]
    result = gatebox(_box(tmp_path, "box"), "license", "activate", "--code", code,
                     "--server", service["url"], env={"REQUESTS_CA_BUNDLE": "", "GATEBOX_LICENSE_CA": ""})
    assert result.returncode == 1 and "TLS" in result.stderr and "paste the license key" in result.stderr


def test_unreachable_service_says_to_paste_the_key(gatebox, tmp_path, box_serial):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens on the port once the probe socket is closed.
    result = gatebox(_box(tmp_path, "box"), "license", "activate", "--code", "ABCD-EFGH",
                     "--server", f"https://127.0.0.1:{port}")
    assert result.returncode == 1
    assert "could not reach the license service" in result.stderr
    assert "paste the license key instead" in result.stderr
