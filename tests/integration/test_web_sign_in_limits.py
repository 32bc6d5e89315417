"""Web sign-in guessing over real HTTPS, as a browser on the LAN does it:
five wrong passwords from one address lock that address out, even for the
right password, while another address still signs in; the lock outlives a
restart of the box."""

import http.client
import re
import ssl
import urllib.parse

import pytest

from tests.support.box import Box

PASSWORD = "integration password"
GUESSER = "127.0.0.2"
OFFICE = "127.0.0.3"


class Browser:
    """One client address with its own cookie, speaking HTTPS to the box."""

    def __init__(self, box, source: str):
        self.box, self.source, self.cookie = box, source, ""
        self.context = ssl.create_default_context()
        self.context.check_hostname = False
        self.context.verify_mode = ssl.CERT_NONE  # the box's certificate is self-signed

    def request(self, method: str, path: str, body: dict | None = None):
        connection = http.client.HTTPSConnection(self.box.host, self.box.http_port, timeout=30,
                                                 context=self.context,
                                                 source_address=(self.source, 0))
        headers = {"Referer": self.box.web_url + "/login"}
        if self.cookie:
            headers["Cookie"] = self.cookie
        data = None
        if body is not None:
            data = urllib.parse.urlencode(body)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        connection.request(method, path, data, headers)
        response = connection.getresponse()
        text = response.read().decode("utf-8", "replace")
        set_cookie = response.getheader("Set-Cookie")
        if set_cookie:
            self.cookie = set_cookie.split(";", 1)[0]
        connection.close()
        return response.status, text

    def sign_in(self, password: str):
        status, page = self.request("GET", "/login")
        assert status == 200, page
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
        return self.request("POST", "/login",
                            {"csrf_token": token, "name": "admin", "password": password})


@pytest.fixture
def web_box(tmp_path, box_serial):
    box = Box(tmp_path / "box", web=True)
    box.cli("user", "add", "admin", "--admin", "--password", PASSWORD)
    yield box
    box.stop()


def test_a_guessing_address_is_locked_out_and_others_still_sign_in(web_box):
    web_box.start()
    guesser = Browser(web_box, GUESSER)
    for _ in range(5):
        status, page = guesser.sign_in("wrong password")
        assert status != 302 and "Wrong login name or password" in page
    status, page = guesser.sign_in(PASSWORD)
    assert status == 429 and "Sign-in refused" in page

    status, _ = Browser(web_box, OFFICE).sign_in(PASSWORD)
    assert status == 302  # signed in: redirected to the page asked for

    web_box.stop()
    web_box.start()
    status, page = Browser(web_box, GUESSER).sign_in(PASSWORD)
    assert status == 429 and "Sign-in refused" in page
