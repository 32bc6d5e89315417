"""What a start finds after a power cut or a fault, seen from outside: a
damaged certificate is made again and both SMTP STARTTLS and HTTPS answer;
a mail stack that cannot start leaves the web admin up, saying why, and
comes up by itself once it can; the settings database is the service's
alone."""

import os
import smtplib
import socket
import ssl
import stat
import subprocess

from firmware.system import service_state
from tests.support.box import GATEBOX, Box, gatebox
from tests.support.net import wait_for_banner, wait_for_https, wait_until


def _unverified() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the box's own self-signed certificate
    return context


def test_an_empty_certificate_is_made_again_and_starttls_and_https_answer(tmp_path):
    box = Box(tmp_path / "data", web=True)
    (box.data / "tls" / "cert.pem").write_bytes(b"")
    (box.data / "tls" / "key.pem").write_bytes(b"")
    box.start()
    try:
        with smtplib.SMTP(box.host, box.smtp_port, timeout=10) as client:
            client.ehlo("pc.office.lan")
            assert client.starttls(context=_unverified())[0] == 220
            assert client.ehlo("pc.office.lan")[0] == 250
        with socket.create_connection((box.host, box.http_port), timeout=10) as raw:
            with _unverified().wrap_socket(raw) as sock:
                sock.sendall(b"GET /login HTTP/1.0\r\nHost: gatebox\r\n\r\n")
                assert sock.recv(64).startswith(b"HTTP/1")
        assert "making a new self-signed one" in box.log()
    finally:
        box.stop()


def test_the_web_admin_stays_up_while_the_mail_stack_cannot_start(tmp_path):
    box = Box(tmp_path / "data", web=True)
    # Another program holds the SMTP port: the mail stack's start fails.
    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    squatter.bind((box.host, box.smtp_port))
    squatter.listen()
    log = open(box.log_path, "ab")
    box.process = subprocess.Popen(
        [*GATEBOX, "--data", str(box.data),
         "run", "--bind", box.host, "--smtp-port", str(box.smtp_port),
         "--submission-port", str(box.submission_port), "--http-port", str(box.http_port)],
        stdout=log, stderr=log, start_new_session=True)
    log.close()
    try:
        wait_for_https(box.host, box.http_port)
        state = wait_until(lambda: (s := service_state.read(box.data, service_state.MAIL))
                           ["state"] == "failed" and s, 30, what="the mail stack's failure")
        assert "Address already in use" in state["error"] or "Errno 98" in state["error"]
        assert box.process.poll() is None
        wait_for_https(box.host, box.http_port)  # still serving after the failure
        squatter.close()
        wait_for_banner(box.host, box.smtp_port, timeout=90)
        assert service_state.read(box.data, service_state.MAIL)["state"] == "running"
    finally:
        squatter.close()
        box.stop()


def test_the_settings_database_and_its_wal_and_shm_are_the_services_alone(tmp_path):
    previous = os.umask(0o022)
    try:
        box = Box(tmp_path / "data")
        box.start()
    finally:
        os.umask(previous)
    try:
        # The running services hold the database open: all three files exist.
        modes = {name: stat.S_IMODE((box.data / name).stat().st_mode)
                 for name in ("gatebox.db", "gatebox.db-wal", "gatebox.db-shm")}
        assert modes == {"gatebox.db": 0o600, "gatebox.db-wal": 0o600, "gatebox.db-shm": 0o600}
        assert stat.S_IMODE((box.data / "tls" / "key.pem").stat().st_mode) == 0o600
    finally:
        box.stop()


def test_a_database_made_readable_before_is_narrowed_at_the_next_start(tmp_path):
    data = tmp_path / "data"
    gatebox(data, "init")
    os.chmod(data / "gatebox.db", 0o644)
    gatebox(data, "init")
    assert stat.S_IMODE((data / "gatebox.db").stat().st_mode) == 0o600


def test_an_unreadable_settings_database_leaves_the_web_admin_saying_so(tmp_path):
    box = Box(tmp_path / "data", web=True)
    (box.data / "gatebox.db").write_bytes(b"not a database " * 1000)
    for companion in ("gatebox.db-wal", "gatebox.db-shm"):
        (box.data / companion).unlink(missing_ok=True)
    log = open(box.log_path, "ab")
    box.process = subprocess.Popen(
        [*GATEBOX, "--data", str(box.data), "run", "--bind", box.host,
         "--smtp-port", str(box.smtp_port), "--submission-port", "0",
         "--http-port", str(box.http_port)],
        stdout=log, stderr=log, start_new_session=True)
    log.close()
    try:
        wait_for_https(box.host, box.http_port)
        wait_until(lambda: service_state.read(box.data, service_state.MAIL)["state"] == "failed",
                   30, what="the mail stack's failure on record")
        with socket.create_connection((box.host, box.http_port), timeout=10) as raw:
            with _unverified().wrap_socket(raw) as sock:
                sock.sendall(b"GET /login HTTP/1.0\r\nHost: gatebox\r\n\r\n")
                answer = b""
                while chunk := sock.recv(4096):
                    answer += chunk
        assert answer.startswith(b"HTTP/1.1 503") or answer.startswith(b"HTTP/1.0 503")
        assert b"The settings database cannot be read" in answer
        assert b"Mail services: failed" in answer
        assert box.process.poll() is None
    finally:
        box.stop()
