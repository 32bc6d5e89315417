"""The Anti-Spam SoftPak's pages through Flask's test client: the menu, the
fallback while unlicensed and after the license lapsed, CSRF refusal, the
Access form's rules and zone table, list entries added and removed at every
level with their rules, the greylist's Pass now, and the statistics read
from check_stats."""

import datetime
import re
import time

import pytest

from firmware.config import Store
from firmware.licensing.clock import HIGH_WATER_KEY
from firmware.mail.stats import hour_of
from softpaks.antispam import greylist, lists
from softpaks.antispam.web import menu_pages
from softpaks.antispam.web.greylist_page import age
from softpaks.antispam.web.layer_stats import daily, hourly

from test_webui_support import csrf_token, field_rule, make_app, sign_in

PAGES = ["/anti-spam/access", "/anti-spam/lists", "/anti-spam/greylist", "/anti-spam/statistics"]


@pytest.fixture
def client(tmp_path, box_serial):
    app = make_app(tmp_path / "data")
    client = app.test_client()
    assert sign_in(client).status_code == 302
    client.data_dir = tmp_path / "data"
    return client


@pytest.fixture
def licensed_client(client, licensed):
    licensed(client.data_dir, antispam=None)
    return client


def _with_store(client, work):
    store = Store(client.data_dir)
    try:
        return work(store)
    finally:
        store.close()


def _entries(client, **where):
    return _with_store(client, lambda s: [(e.level, e.scope, e.color, e.entry)
                                          for e in lists.entries(s, **where)])


def test_menu_pages_name_the_menu_the_softpak_and_the_help():
    pages = menu_pages()
    assert [p["menu"] for p in pages] == [
        "Anti-Spam > Access", "Anti-Spam > Lists", "Anti-Spam > Greylist",
        "Anti-Spam > Statistics", "Anti-Spam > Content Filter", "Anti-Spam > Rules",
        "Anti-Spam > Bayes", "Anti-Spam > DKIM & DMARC", "Anti-Spam > Quarantine Digest"]
    assert {p["softpak"] for p in pages} == {"antispam"}
    assert [p["help"] for p in pages] == [
        "antispam-access", "antispam-lists", "antispam-greylist", "antispam-statistics",
        "antispam-content_filter", "antispam-rules", "antispam-bayes",
        "antispam-authentication", "antispam-digest"]


@pytest.mark.parametrize("path", PAGES)
def test_unlicensed_pages_offer_the_softpak(client, path):
    response = client.get(path)
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert 'class="softpak-offer"' in html and "Anti-Spam SoftPak" in html
    assert 'href="/system/licenses"' in html and "Activate a license" in html
    assert "Anti-Spam &gt; Lists: black and whitelists" in html   # what it adds
    assert "<h1>Anti-Spam: " in html


def test_the_menu_and_help_pages(licensed_client):
    html = licensed_client.get("/").get_data(as_text=True)
    for path in PAGES:
        assert f'href="{path}"' in html
    for name in ("access", "lists", "greylist", "statistics"):
        help_page = licensed_client.get(f"/help/antispam-{name}")
        assert help_page.status_code == 200
        assert "<h1>Help: Anti-Spam: " in help_page.get_data(as_text=True)
    assert 'href="/help/antispam-lists"' in licensed_client.get("/anti-spam/lists").get_data(
        as_text=True)


def test_an_unlicensed_post_changes_nothing(client, licensed):
    token = csrf_token(client, "/system/licenses")
    data = {"csrf_token": token, "level": "server", "color": "black", "entry": "192.0.2.7"}
    response = client.post("/anti-spam/lists/add", data=data)
    assert response.status_code == 403 and "softpak-offer" in response.get_data(as_text=True)
    assert _entries(client) == []
    licensed(client.data_dir, antispam=None)   # the same app, not restarted
    assert client.post("/anti-spam/lists/add", data=data).status_code == 302
    assert _entries(client) == [("server", "", "black", "192.0.2.7")]


def test_an_expired_license_keeps_the_lists_and_says_nothing_is_filtered(client, licensed):
    expiry = datetime.date.today() + datetime.timedelta(days=1)
    licensed(client.data_dir, antispam=expiry.isoformat())
    token = csrf_token(client, "/anti-spam/lists")
    client.post("/anti-spam/lists/add", data={"csrf_token": token, "level": "server",
                                              "color": "white", "entry": "example.net"})
    # The box has seen a day past the grace period: the license has lapsed.
    lapsed = (expiry + datetime.timedelta(days=30)).isoformat()
    _with_store(client, lambda s: s.db.execute(
        "INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value = ?",
        [HIGH_WATER_KEY, lapsed, lapsed]))
    html = client.get("/anti-spam/lists").get_data(as_text=True)
    assert "softpak-offer" in html and "has expired" in html
    assert "black and whitelists and greylist records are kept" in html
    assert "it filters nothing" in html
    assert _entries(client) == [("server", "", "white", "example.net")]
    # The dashboard says so too.
    dashboard = client.get("/").get_data(as_text=True)
    assert "The license of the Anti-Spam SoftPak has expired" in dashboard


@pytest.mark.parametrize("path,data", [
    ("/anti-spam/lists/add", {"level": "server", "color": "black", "entry": "192.0.2.7"}),
    ("/anti-spam/lists/remove", {"level": "server", "color": "white", "entry": "example.net"}),
    ("/anti-spam/greylist/pass", {"network": "192.0.2.0/24", "sender": "a@b.example",
                                  "recipient": "bob@example.com"}),
    ("/anti-spam/access", {"antispam__dnsbl": "zen.example"}),
])
def test_forms_without_a_csrf_token_are_refused(licensed_client, path, data):
    _with_store(licensed_client, lambda s: lists.add(s, "white", "example.net"))
    response = licensed_client.post(path, data=data)
    assert response.status_code in (400, 302)
    assert _entries(licensed_client) == [("server", "", "white", "example.net")]
    assert _with_store(licensed_client, lambda s: s.get("antispam.dnsbl")) == ""
    assert _with_store(licensed_client, lambda s: greylist.counts(s).passed) == 0


def test_lists_add_and_remove_at_every_level(licensed_client):
    client = licensed_client
    html = client.get("/anti-spam/lists").get_data(as_text=True)
    assert "User over domain over server" in html
    assert "Whitelist over blacklist at the same level" in html
    token = csrf_token(client, "/anti-spam/lists")
    for level, scope, color, entry in [("server", "", "black", "192.0.2.0/24"),
                                       ("domain", "example.com", "white", "partner.example"),
                                       ("user", "bob@example.com", "black", "spam@bulk.example")]:
        response = client.post("/anti-spam/lists/add", data={
            "csrf_token": token, "level": level, "scope": scope, "color": color, "entry": entry})
        assert response.status_code == 302, response.get_data(as_text=True)
        page = client.get(response.headers["Location"]).get_data(as_text=True)
        assert f'data-entry="{entry}"' in page and "Added " in page
    assert _entries(client) == [("server", "", "black", "192.0.2.0/24"),
                                ("domain", "example.com", "white", "partner.example"),
                                ("user", "bob@example.com", "black", "spam@bulk.example")]
    domain_page = client.get("/anti-spam/lists?level=domain").get_data(as_text=True)
    assert 'data-entry="partner.example"' in domain_page
    assert 'data-entry="192.0.2.0/24"' not in domain_page

    response = client.post("/anti-spam/lists/remove", data={
        "csrf_token": token, "level": "domain", "scope": "example.com", "color": "white",
        "entry": "partner.example"})
    assert response.status_code == 302
    assert "Removed partner.example" in client.get(response.headers["Location"]).get_data(
        as_text=True)
    assert _entries(client, level="domain") == []


def test_a_refused_entry_shows_its_rule(licensed_client):
    client = licensed_client
    token = csrf_token(client, "/anti-spam/lists")
    response = client.post("/anti-spam/lists/add", data={
        "csrf_token": token, "level": "server", "color": "black", "entry": "not an entry!"})
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert field_rule(html, "entry")
    assert 'value="not an entry!"' in html
    response = client.post("/anti-spam/lists/add", data={
        "csrf_token": token, "level": "domain", "scope": "elsewhere.example", "color": "black",
        "entry": "192.0.2.7"})
    assert response.status_code == 400
    assert "not a local domain" in field_rule(response.get_data(as_text=True), "entry")
    response = client.post("/anti-spam/lists/add", data={
        "csrf_token": token, "level": "user", "scope": "", "color": "black", "entry": "192.0.2.7"})
    assert response.status_code == 400
    assert "say which one" in field_rule(response.get_data(as_text=True), "scope")
    assert _entries(client) == []


def test_access_refuses_a_bad_zone_line_with_its_rule(licensed_client):
    client = licensed_client
    token = csrf_token(client, "/anti-spam/access")
    response = client.post("/anti-spam/access", data={
        "csrf_token": token, "antispam__dnsbl": "zen.example=128.0.0.2", "apply": ""})
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "must be DNS blocklist zones" in field_rule(html, "antispam__dnsbl")
    assert _with_store(client, lambda s: s.get("antispam.dnsbl")) == ""
    response = client.post("/anti-spam/access", data={
        "csrf_token": token, "antispam__dnsbl": "bl.example\nzen.example=127.0.0.2-12",
        "apply": ""})
    assert response.status_code == 302
    assert _with_store(client, lambda s: s.get("antispam.dnsbl")) == \
        "bl.example\nzen.example=127.0.0.2-12"


def test_access_shows_each_zone_its_state_and_warning(licensed_client):
    client = licensed_client
    now = time.time()

    def record(store):
        store.set("antispam.dnsbl", "good.example\nbroken.example\nnew.example", actor="test")
        store.db.execute("INSERT INTO dnsbl_zones(zone, checked, healthy, detail, warning, warned) "
                         "VALUES ('good.example', ?, 1, '127.0.0.2 listed, 127.0.0.1 not', "
                         "'good.example answered 127.255.255.254: this list refuses to answer "
                         "you', ?), ('broken.example', ?, 0, '127.0.0.1 is listed', '', NULL)",
                         [now, now, now])
    _with_store(client, record)
    html = client.get("/anti-spam/access").get_data(as_text=True)
    row = re.search(r'<tr data-zone="good.example".*?</tr>', html, re.S).group(0)
    assert "healthy" in row and "this list refuses to answer you" in row
    row = re.search(r'<tr data-zone="broken.example".*?</tr>', html, re.S).group(0)
    assert "broken" in row and "127.0.0.1 is listed" in row
    row = re.search(r'<tr data-zone="new.example".*?</tr>', html, re.S).group(0)
    assert "not tested yet" in row
    assert ">Test zones now</button>" in html
    # The dashboard names the broken zone and the warning.
    notes = re.findall(r"data-dashboard-note>([^<]*)<", client.get("/").get_data(as_text=True))
    assert any("broken.example failed its test" in n for n in notes), notes
    assert any("this list refuses to answer you" in n for n in notes), notes


def test_greylist_pending_pass_now_and_counts(licensed_client):
    client = licensed_client
    now = time.time()
    _with_store(client, lambda s: s.db.execute(
        "INSERT INTO greylist_triplets(network, sender, recipient, first_seen, last_seen) "
        "VALUES ('192.0.2.0/24', 'news@list.example', 'bob@example.com', ?, ?)",
        [now - 600, now - 600]))
    html = client.get("/anti-spam/greylist").get_data(as_text=True)
    row = re.search(r'<tr data-network="192.0.2.0/24".*?</tr>', html, re.S).group(0)
    assert "news@list.example" in row and ">10 min<" in row and "Pass now" in row
    assert re.search(r'data-count="pending"><td>[^<]*</td><td>1<', html)
    assert 'name="antispam__greylist"' in html   # the settings form
    token = csrf_token(client, "/anti-spam/greylist")
    response = client.post("/anti-spam/greylist/pass", data={
        "csrf_token": token, "network": "192.0.2.0/24", "sender": "news@list.example",
        "recipient": "bob@example.com"})
    assert response.status_code == 302
    html = client.get("/anti-spam/greylist").get_data(as_text=True)
    assert "Passed 192.0.2.0/24" in html and 'id="no-pending"' in html
    assert re.search(r'data-count="passed"><td>[^<]*</td><td>1<', html)
    assert _with_store(client, lambda s: greylist.counts(s).passed) == 1


def test_age_reads_as_minutes_hours_and_days():
    assert [age(s) for s in (59, 600, 3600, 3 * 3600 + 300, 86400 * 2 + 3600)] == \
        ["0 min", "10 min", "1 h", "3 h 5 min", "2 d 1 h"]


def _count(store, hour, name, count):
    store.db.execute("INSERT INTO check_stats(hour, name, count) VALUES (?, ?, ?)",
                     [hour, name, count])


def test_statistics_per_hour_and_per_day(licensed_client):
    client = licensed_client
    now = time.time()
    this_hour = hour_of(now)

    def fill(store):
        _count(store, this_hour, "dnsbl=rejected", 7)
        _count(store, this_hour - 3600, "greylist=deferred", 4)
        _count(store, this_hour - 3600, "greylist=passed", 2)
        _count(store, this_hour - 10 * 86400, "reverse_dns=rejected", 5)   # days only
        _count(store, this_hour - 40 * 86400, "dnsbl=rejected", 100)       # too old
        _count(store, this_hour, "dnsbl", 7)                                # a bare refusal
        _count(store, this_hour, "email.verify_sender_local=rejected", 9)  # not ours
    _with_store(client, fill)

    hours = _with_store(client, lambda s: hourly(s, now))
    assert len(hours) == 24 and hours[-1]["start"] == this_hour
    assert hours[-1]["counts"]["dnsbl"] == {"passed": 0, "deferred": 0, "rejected": 7}
    assert hours[-2]["counts"]["greylist"] == {"passed": 2, "deferred": 4, "rejected": 0}
    days = _with_store(client, lambda s: daily(s, now))
    assert len(days) == 30
    assert sum(d["counts"]["reverse_dns"]["rejected"] for d in days) == 5
    assert sum(d["counts"]["dnsbl"]["rejected"] for d in days) == 7

    html = client.get("/anti-spam/statistics").get_data(as_text=True)
    totals = re.search(r'<tr data-layer="dnsbl">.*?</tr>', html, re.S).group(0)
    assert re.findall(r'data-outcome="rejected">(\d+)<', totals) == ["7", "7"]
    totals = re.search(r'<tr data-layer="reverse_dns">.*?</tr>', html, re.S).group(0)
    assert re.findall(r'data-outcome="rejected">(\d+)<', totals) == ["0", "5"]
    hours_chart = re.search(r'<svg class="chart" id="chart-dnsbl-hours".*?</svg>', html, re.S).group(0)
    assert hours_chart.count("<rect") == 1 and ": 7 rejected</title>" in hours_chart
    greylist_chart = re.search(r'id="chart-greylist-hours".*?</svg>', html, re.S).group(0)
    assert ": 4 deferred</title>" in greylist_chart and ": 2 passed</title>" in greylist_chart
    assert "<rect" not in re.search(r'id="chart-blocked_ips-days".*?</svg>', html, re.S).group(0)
