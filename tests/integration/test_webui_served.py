"""The web admin as `gatebox run --http-port` serves it: gunicorn over HTTPS
with the box's own certificate, plain HTTP only with --dev-http, stopped with
the box; online activation with a code through the System page."""

import re
import signal
import socket
import ssl
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from cryptography import x509

from firmware.system import tls
from tests.integration.test_license_online import service, tls_files  # noqa: F401 (fixtures)
from tests.support.box import GATEBOX, Box, child_pids
from tests.support.net import free_port, wait_until

PASSWORD = "integration password"
pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")


def _served_certificate(host: str, port: int) -> bytes:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection((host, port), timeout=5) as sock:
        with context.wrap_socket(sock) as wrapped:
            return wrapped.getpeercert(binary_form=True)


def _signed_in_session(box) -> requests.Session:
    session = requests.Session()
    # The box's certificate is self-signed and not a CA, so it cannot be a
    # trust anchor; test_https_... compares the served certificate instead.
    session.verify = False
    session.trust_env = False  # else REQUESTS_CA_BUNDLE overrides verify=False
    login = session.get(box.web_url + "/login")
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', login.text).group(1)
    response = session.post(box.web_url + "/login", allow_redirects=False,
                            data={"csrf_token": token, "name": "admin", "password": PASSWORD},
                            headers={"Referer": box.web_url + "/login"})
    assert response.status_code == 302, response.text
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("__Host-gatebox=")
    assert all(flag in cookie for flag in ("Secure", "HttpOnly", "SameSite=Strict"))
    return session


@pytest.fixture
def web_box(tmp_path, box_serial, vendor):
    box = Box(tmp_path / "box", web=True)
    box.cli("user", "add", "admin", "--admin", "--password", PASSWORD)
    yield box
    box.stop()


def test_https_with_the_box_certificate_and_stops_with_the_box(web_box):
    web_box.start()
    served = x509.load_der_x509_certificate(_served_certificate(web_box.host, web_box.http_port))
    own = x509.load_pem_x509_certificate(tls.paths(web_box.data)[0].read_bytes())
    assert served == own
    session = _signed_in_session(web_box)
    page = session.get(web_box.web_url + "/")
    assert page.status_code == 200 and "Dashboard" in page.text
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    try:  # no page over plain HTTP on the TLS port
        plain = requests.get(f"http://{web_box.host}:{web_box.http_port}/", timeout=5)
        assert plain.status_code >= 400
    except requests.ConnectionError:
        pass

    assert web_box.stop() == 0
    with pytest.raises(OSError):
        socket.create_connection((web_box.host, web_box.http_port), timeout=2).close()


def test_dev_http_serves_plain_http_without_secure_cookie(tmp_path, box_serial):
    box = Box(tmp_path / "box")
    port = free_port()
    process = subprocess.Popen(GATEBOX + ["--data", str(box.data), "run", "--bind", "127.0.0.1",
                                          "--smtp-port", str(box.smtp_port), "--submission-port", "0",
                                          "--http-port", str(port), "--dev-http"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    try:
        def answered():
            try:
                return requests.get(f"http://127.0.0.1:{port}/setup", timeout=2)
            except (requests.ConnectionError, requests.Timeout):  # not up yet, or a busy machine
                return None
        response = wait_until(answered, timeout=30, what="the web admin over HTTP")
        assert response.status_code == 200 and "First-time setup" in response.text
        cookie = response.headers["Set-Cookie"]
        assert cookie.startswith("gatebox=") and "Secure" not in cookie and "HttpOnly" in cookie
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0


def test_online_activation_code_through_the_page(web_box, service, gatebox_vendor, monkeypatch):  # noqa: F811
    monkeypatch.setenv("GATEBOX_LICENSE_SERVER", service["url"])
    monkeypatch.setenv("GATEBOX_LICENSE_CA", str(service["ca"]))
    code = gatebox_vendor("code", "add", "--db", str(service["db"]),
                          "--softpak", "mailserver=2099-12-31").stdout.strip().splitlines()[-1]
    web_box.start()
    session = _signed_in_session(web_box)
    page = session.get(web_box.web_url + "/system/licenses")
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.text).group(1)
    response = session.post(web_box.web_url + "/system/licenses",
                            data={"csrf_token": token, "code": code},
                            headers={"Referer": web_box.web_url + "/system/licenses"})
    assert "Activated license" in response.text, response.text
    assert "2099-12-31" in response.text
    assert "mailserver" in web_box.cli("license", "show").stdout

    response = session.post(web_box.web_url + "/system/licenses",
                            data={"csrf_token": token, "code": "ZZZZ-ZZZZ-ZZZZ-ZZZZ"},
                            headers={"Referer": web_box.web_url + "/system/licenses"})
    assert "License not activated" in response.text and "unknown activation code" in response.text


def _csrf(session, url: str) -> str:
    page = session.get(url)
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.text).group(1)


def _with_cookie(box, cookie: str) -> requests.Session:
    """Another browser, holding a copy of a session cookie."""
    thief = requests.Session()
    thief.verify = False
    thief.trust_env = False
    thief.cookies.set("__Host-gatebox", cookie)
    return thief


def _dashboard(session, box) -> bool:
    response = session.get(box.web_url + "/", allow_redirects=False)
    return response.status_code == 200 and "Dashboard" in response.text


def test_a_cookie_copied_before_sign_out_is_refused_over_https(web_box):
    web_box.start()
    session = _signed_in_session(web_box)
    copied = session.cookies.get("__Host-gatebox")
    assert _dashboard(_with_cookie(web_box, copied), web_box)  # the copy works until sign-out
    token = _csrf(session, web_box.web_url + "/system/administrators")
    signed_out = session.post(web_box.web_url + "/logout", data={"csrf_token": token},
                              headers={"Referer": web_box.web_url + "/"}, allow_redirects=False)
    assert signed_out.status_code == 302
    refused = _with_cookie(web_box, copied).get(web_box.web_url + "/system/audit",
                                                allow_redirects=False)
    assert refused.status_code == 302 and "/login" in refused.headers["Location"]
    assert not _dashboard(_with_cookie(web_box, copied), web_box)


def test_a_password_change_on_the_console_ends_sessions_over_https(web_box):
    web_box.start()
    session = _signed_in_session(web_box)
    copied = session.cookies.get("__Host-gatebox")
    web_box.cli("user", "passwd", "admin", "--password", "changed on the console")
    assert not _dashboard(_with_cookie(web_box, copied), web_box)
    assert not _dashboard(session, web_box)


def test_allow_administration_from_is_enforced_over_https(web_box):
    web_box.start()
    session = _signed_in_session(web_box)
    web_box.cli("config", "set", "system.admin_allow_from", "192.0.2.0/24")
    for path in ("/", "/login", "/setup"):
        response = session.get(web_box.web_url + path, allow_redirects=False)
        assert response.status_code == 403, path
        assert "Allow Administration From" in response.text
    web_box.cli("config", "set", "system.admin_allow_from", "trusted")
    assert _dashboard(session, web_box)


def test_first_boot_setup_needs_the_code_gatebox_setup_code_prints(tmp_path, box_serial, vendor):
    box = Box(tmp_path / "box", web=True)
    try:
        first = box.cli("setup-code").stdout
        code = re.search(r"gatebox setup code: (\S+)", box.cli("setup-code").stdout).group(1)
        box.start()
        session = requests.Session()
        session.verify = False
        session.trust_env = False
        url = box.web_url + "/setup"

        def finish(setup_code: str):
            return session.post(url, allow_redirects=False, headers={"Referer": url},
                                data={"csrf_token": _csrf(session, url), "setup_code": setup_code,
                                      "password": PASSWORD, "confirm": PASSWORD,
                                      "email__domain": "office.example"})

        assert finish(first.split(": ")[-1].strip()).status_code == 400  # replaced by the second
        assert finish("").status_code == 400
        assert "admin" not in box.cli("user", "list").stdout
        assert finish(code).status_code == 302
        assert _dashboard(session, box)
        again = box.cli("setup-code", check=False)
        assert again.returncode == 1 and "an administrator exists" in again.stderr
        assert box.cli("setup-code", "--if-needed").stdout == ""
    finally:
        box.stop()


def _resident_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def _web_worker(box) -> int:
    """gunicorn's worker: the child of the web admin's master, itself a
    child of `gatebox run`."""
    for master in child_pids(box.process.pid):
        if b"gunicorn" in Path(f"/proc/{master}/cmdline").read_bytes():
            workers = child_pids(master)
            assert len(workers) == 1, workers
            return workers[0]
    raise AssertionError("no gunicorn master under gatebox run")


def test_concurrent_sign_ins_leave_the_web_admin_no_larger(web_box):
    """Each sign-in's scrypt takes 16 MiB. They go back to the system when
    done: four at once, twice over, keep the worker within a few MB of where
    it was (it kept some 16 MiB per thread that had hashed, 64 MB here)."""
    web_box.start()
    _signed_in_session(web_box).close()   # the first pages' imports, caches and session
    worker = _web_worker(web_box)
    before = _resident_kib(worker)
    for _ in range(2):
        with ThreadPoolExecutor(4) as pool:
            for session in pool.map(lambda _n: _signed_in_session(web_box), range(4)):
                session.close()
    grown_mib = (_resident_kib(worker) - before) / 1024
    assert grown_mib < 12, f"the web admin's worker grew by {grown_mib:.0f} MiB"
