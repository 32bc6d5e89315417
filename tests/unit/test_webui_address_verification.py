"""Email Server > Address Verification through Flask's test client: its
three buttons refuse a post without a CSRF token and do nothing, Forget
empties the callout cache and says so in the audit log, Update Now without
an LDAP Server says what is missing, the dashboard shows the check results,
and the help page names the manual's caveats."""

import re
import time

import pytest

from firmware.config import Store
from firmware.mail import stats
from firmware.mail.verify import ldap_sync
from firmware.mail.verify.cache import VerifyCache
from tests.support.net import free_port

from test_webui_support import csrf_token, make_app, sign_in

PAGE = "/email-server/address-verification"
FORGET_AUDIT = "forget remembered address verification answers"
LDAP_AUDIT = "LDAP address list update"


@pytest.fixture
def client(tmp_path, box_serial):
    app = make_app(tmp_path / "data")
    client = app.test_client()
    assert sign_in(client).status_code == 302
    client.data_dir = tmp_path / "data"
    return client


def _with_store(client, do):
    store = Store(client.data_dir)
    try:
        return do(store)
    finally:
        store.close()


def _remember_answers(client):
    def put(store):
        cache = VerifyCache(store)
        cache.put("recipient", "jane@example.com", "accepted", "250 2.1.5 Ok")
        cache.put("sender", "someone@example.net", "refused", "550 5.1.1 no such user")
    _with_store(client, put)


def _cached(client) -> int:
    return _with_store(client, lambda s: s.db.execute(
        "SELECT COUNT(*) FROM verify_cache").fetchone()[0])


def _audited(client, what: str) -> list[dict]:
    return [row for row in _with_store(client, lambda s: s.audit_log(1000)) if row["what"] == what]


def _flashes(html: str) -> list[str]:
    return re.findall(r'<p class="flash (?:ok|error)" role="status">([^<]*)</p>', html)


@pytest.mark.parametrize("button", ["ldap-sync", "forget", "test"])
def test_buttons_without_a_csrf_token_are_refused_and_do_nothing(client, button):
    # A reachable-looking LDAP Server (a closed loopback port): a sync that
    # ran would be recorded as attempted.
    _with_store(client, lambda s: s.set_many({
        "email.ldap_server": f"127.0.0.1:{free_port()}", "email.ldap_security": "none",
        "email.ldap_domain": "example.com", "email.internal_addresses": "jane@example.com"},
        actor="test"))
    _remember_answers(client)
    response = client.post(f"{PAGE}/{button}", data={"address": "nobody@example.com"})
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert "Form refused" in html
    assert "data-test-results" not in html
    assert _cached(client) == 2
    assert _with_store(client, ldap_sync.status).attempted is None
    assert _audited(client, FORGET_AUDIT) == [] and _audited(client, LDAP_AUDIT) == []


def test_forget_empties_the_callout_cache_and_is_audited(client):
    _remember_answers(client)
    assert _cached(client) == 2
    response = client.post(f"{PAGE}/forget", data={"csrf_token": csrf_token(client, PAGE)},
                           follow_redirects=True)
    assert response.status_code == 200
    assert _cached(client) == 0
    assert _flashes(response.get_data(as_text=True)) == [
        "Forgot every remembered callout answer: the next message asks the servers again."]
    [line] = _audited(client, FORGET_AUDIT)
    assert line["actor"] == "admin (web)"


def test_update_now_without_an_ldap_server_says_it_is_needed(client):
    response = client.post(f"{PAGE}/ldap-sync", data={"csrf_token": csrf_token(client, PAGE)},
                           follow_redirects=True)
    assert response.status_code == 200
    assert _flashes(response.get_data(as_text=True)) == [
        "Update Now needs an LDAP Server: enter it and click Apply first."]
    assert _with_store(client, ldap_sync.status).attempted is None
    assert _audited(client, LDAP_AUDIT) == []


def _count_results(client, rows):
    hour = stats.hour_of(time.time())

    def insert(store):
        for name, count in rows:
            store.db.execute("INSERT INTO check_stats(hour, name, count) VALUES (?, ?, ?)",
                             [hour, name, count])
        # A day and more ago: not in "the last 24 hours".
        store.db.execute("INSERT INTO check_stats(hour, name, count) VALUES (?, ?, ?)",
                         [hour - 30 * 3600, "spf=fail", 99])
    _with_store(client, insert)


def _section(html: str, heading_id: str) -> str:
    return html.split(f'id="{heading_id}"', 1)[1].split("</section>", 1)[0]


def test_dashboard_shows_address_verification_results_with_counts(client):
    _count_results(client, [("spf=softfail", 4), ("spf=pass", 7),
                            ("verify_recipient=refuse", 2), ("verify_recipient", 2)])
    html = client.get("/").get_data(as_text=True)
    results = _section(html, "dash-results")
    assert "Address Verification results" in results
    rows = dict(re.findall(r"<tr><td>([^<]+)</td><td>([^<]*)</td></tr>", results))
    assert rows == {"spf": "pass 7, softfail 4", "verify_recipient": "refuse 2"}
    # The refusal (a name without "=") is counted as one, not as a result.
    refusals = dict(re.findall(r"<tr><td>([^<]+)</td><td>(\d+)</td></tr>",
                               _section(html, "dash-refusals")))
    assert refusals == {"verify_recipient": "2"}

    page = client.get(PAGE).get_data(as_text=True)
    last_day = re.findall(r"<tr><td>([^<]+)</td><td>([^<]+)</td><td>(\d+)</td></tr>",
                          _section(page, "av-results"))
    assert last_day == [("spf", "pass", "7"), ("spf", "softfail", "4"),
                        ("verify_recipient", "refuse", "2")]


def test_dashboard_heading_and_title_hold_only_the_name(client):
    html = client.get("/").get_data(as_text=True)
    assert "<title>Dashboard - gatebox</title>" in html
    assert re.search(r"<h1>\s*Dashboard\s*</h1>", html)
    assert html.count('id="dash-results"') == 1


def test_help_page_explains_the_options_and_names_the_caveats(client):
    page = client.get(PAGE).get_data(as_text=True)
    assert 'href="/help/email-address-verification"' in page
    response = client.get("/help/email-address-verification")
    assert response.status_code == 200
    text = re.sub(r"<[^>]+>", "", response.get_data(as_text=True))
    text = re.sub(r"\s+", " ", text)
    assert "blocklists" in text          # sender callouts may get the box listed
    assert "catch-all" in text           # defeats the SMTP callout
    for label in ("Verify Sender Using Local Domain Exists", "Verify Sender Email Account Exists",
                  "Enable SPF", "Ignore Authenticated Clients, Trusted Network and my MX Servers",
                  "Deny Email with Invalid Headers",
                  "Verify Recipient Email Account Exists Using Incoming SMTP Server",
                  "Verify Recipient Email Account Exists Using LDAP",
                  "Email Addresses on Internal Server", "Send unaddressable mail",
                  "Update Now"):
        assert label in text, label


def test_test_box_answers_and_leaves_the_settings_alone(client):
    # The Test form posts only an address: it must not be taken for an Apply
    # of the settings form above it, whose unposted checkboxes read as off.
    _with_store(client, lambda s: s.set_many({"email.internal_addresses": "jane@example.com",
                                              "email.spf": "on"}, actor="test"))
    response = client.post(f"{PAGE}/test", data={"csrf_token": csrf_token(client, PAGE),
                                                 "address": "nobody@example.com"})
    assert response.status_code == 200, response.headers.get("Location")
    html = response.get_data(as_text=True)
    row = re.search(r'<tr data-check="verify_recipient">(.*?)</tr>', html, re.S).group(1)
    assert "550 5.1.1" in row
    assert _with_store(client, lambda s: s.get("email.spf")) is True
    assert _with_store(client, lambda s: s.get("email.internal_addresses")) == "jane@example.com"


def test_the_chart_stacks_the_rejected_bar_by_the_check_that_refused(client):
    checks = [("dnsbl", 3), ("relay_access", 2)] + [(f"check_{n}", 1) for n in range(5)]
    _count_results(client, checks)
    html = client.get("/").get_data(as_text=True)
    chart = html.split('<svg class="chart"', 1)[1].split("</svg>", 1)[0]
    titles = re.findall(r"<title>\d\d:00: (\d+) rejected by ([^<]+)</title>", chart)
    # The five biggest have their own segment; the other two share one.
    assert ("3", "dnsbl") in titles and ("2", "relay_access") in titles
    assert ("2", "other checks") in titles and len(titles) == 6
    legend = html.split('class="legend"', 1)[1].split("</p>", 1)[0]
    assert "Rejected by dnsbl" in legend and "Rejected by other checks" in legend
