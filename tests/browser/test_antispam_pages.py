"""The Anti-Spam SoftPak's pages in Chromium on a licensed box: each of the
four pages renders; a list entry is added and removed through the Lists
page; the Access form refuses a bad DNSBL line with its rule; Pass now moves
a pending greylist triplet; the Statistics chart draws bars for counts in
check_stats. One box for the module; a fresh browser per test."""

import re
import time

import pytest
from playwright.sync_api import expect

from firmware.config import Store
from firmware.mail.stats import hour_of
from softpaks.antispam import lists
from tests.browser.conftest import ADMIN_PASSWORD, sign_in
from tests.support.box import Box
from tests.support.licensing import BOX_SERIAL, Vendor
from tests.support.net import free_port

PAGES = (("access", "Anti-Spam: Access"), ("lists", "Anti-Spam: Lists"),
         ("greylist", "Anti-Spam: Greylist"), ("statistics", "Anti-Spam: Statistics"))


@pytest.fixture(scope="module")
def box(tmp_path_factory):
    with pytest.MonkeyPatch.context() as env:
        vendor = Vendor(tmp_path_factory.mktemp("vendor-keys"))
        env.setenv("GATEBOX_VENDOR_PUBKEYS", str(vendor.public_path))
        env.setenv("GATEBOX_SERIAL", BOX_SERIAL)
        made = Box(tmp_path_factory.mktemp("antispam-web") / "box", web=True,
                   settings={"email.mail_server_address": f"127.0.0.1:{free_port()}"})
        made.cli("license", "activate", vendor.issue(antispam=None))
        made.cli("user", "add", "admin", "--admin", "--password", ADMIN_PASSWORD)
        made.start()
        yield made
        made.stop()


@pytest.fixture
def admin(page, box):
    sign_in(page, box)
    expect(page.locator("h1")).to_have_text("Dashboard")
    return page


def in_store(box, work):
    store = Store(box.data)
    try:
        return work(store)
    finally:
        store.close()


def test_each_page_renders_from_the_menu(admin, box, shot):
    page = admin
    for view, title in PAGES:
        page.goto(box.web_url + "/")
        page.click(f"nav.menu a[href='/anti-spam/{view}']")
        expect(page.locator("h1")).to_have_text(title)
        expect(page.locator(".softpak-offer")).to_have_count(0)
        shot(page, f"antispam-{view}")
    page.goto(box.web_url + "/anti-spam/access")
    expect(page.locator("button[name=test_zones]")).to_be_visible()
    page.goto(box.web_url + "/anti-spam/greylist")
    expect(page.locator("#greylist-counts")).to_be_visible()


def test_a_list_entry_is_added_and_removed(admin, box, shot):
    page = admin
    page.goto(box.web_url + "/anti-spam/lists")
    expect(page.locator("section.precedence")).to_contain_text("User over domain over server")
    page.click("nav.tabs a[data-level=domain]")
    page.fill("#scope", "example.com")
    page.select_option("#color", "white")
    page.fill("#entry", "partner.example")
    page.click("button[name=add]")
    expect(page.locator(".flash.ok")).to_contain_text("Added partner.example to the whitelist "
                                                      "of example.com")
    row = page.locator("tr[data-entry='partner.example']")
    expect(row).to_contain_text("Whitelist")
    shot(page, "antispam-list-added")
    assert in_store(box, lambda s: [(e.level, e.scope, e.color, e.entry)
                                    for e in lists.entries(s)]) == \
        [("domain", "example.com", "white", "partner.example")]

    page.fill("#scope", "example.com")
    page.fill("#entry", "not an entry!")
    page.click("button[name=add]")
    expect(page.locator("#entry-rule")).to_be_visible()
    expect(page.locator("#entry")).to_have_value("not an entry!")

    page.goto(box.web_url + "/anti-spam/lists?level=domain")
    page.click("tr[data-entry='partner.example'] button[name=remove]")
    expect(page.locator(".flash.ok")).to_contain_text("Removed partner.example")
    expect(page.locator("tr[data-entry='partner.example']")).to_have_count(0)
    assert in_store(box, lists.entries) == []


def test_the_access_form_refuses_a_bad_dnsbl_line(admin, box, shot):
    page = admin
    page.goto(box.web_url + "/anti-spam/access")
    page.fill("#antispam__dnsbl", "zen.example\nbad zone!")
    page.click("button[name=apply]")
    expect(page.locator("#antispam__dnsbl-rule")).to_contain_text("must be DNS blocklist zones")
    expect(page.locator("#antispam__dnsbl")).to_have_value("zen.example\nbad zone!")
    shot(page, "antispam-access-refused")
    assert in_store(box, lambda s: s.get("antispam.dnsbl")) == ""
    page.fill("#antispam__dnsbl", "zen.example=127.0.0.2-12")
    page.click("button[name=apply]")
    expect(page.locator(".flash.ok")).to_contain_text("Saved: DNS RBL filters")
    expect(page.locator("tr[data-zone='zen.example']")).to_contain_text("not tested yet")
    assert in_store(box, lambda s: s.get("antispam.dnsbl")) == "zen.example=127.0.0.2-12"
    box.configure(**{"antispam.dnsbl": ""})


def test_pass_now_moves_a_pending_triplet(admin, box, shot):
    page = admin
    now = time.time()
    in_store(box, lambda s: s.db.execute(
        "INSERT INTO greylist_triplets(network, sender, recipient, first_seen, last_seen) "
        "VALUES ('198.51.100.0/24', 'news@list.example', 'bob@example.com', ?, ?)",
        [now - 300, now - 300]))
    page.goto(box.web_url + "/anti-spam/greylist")
    row = page.locator("tr[data-network='198.51.100.0/24']")
    expect(row).to_contain_text("news@list.example")
    expect(row.locator("td.age")).to_have_text("5 min")
    expect(page.locator("tr[data-count=pending] td").nth(1)).to_have_text("1")
    shot(page, "antispam-greylist-pending")
    row.locator("button[name=pass_now]").click()
    expect(page.locator(".flash.ok")).to_contain_text("Passed 198.51.100.0/24")
    expect(page.locator("tr[data-network='198.51.100.0/24']")).to_have_count(0)
    expect(page.locator("tr[data-count=passed] td").nth(1)).to_have_text("1")
    passed = in_store(box, lambda s: s.db.execute(
        "SELECT passed FROM greylist_triplets WHERE network = '198.51.100.0/24'").fetchone()[0])
    assert passed is not None


def test_the_statistics_chart_draws_the_counts(admin, box, shot):
    page = admin
    hour = hour_of(time.time())

    def fill(store):
        for name, count in (("dnsbl=rejected", 12), ("greylist=deferred", 5),
                            ("greylist=passed", 3)):
            store.db.execute("INSERT INTO check_stats(hour, name, count) VALUES (?, ?, ?) "
                             "ON CONFLICT(hour, name) DO UPDATE SET count = excluded.count",
                             [hour, name, count])
    in_store(box, fill)
    page.goto(box.web_url + "/anti-spam/statistics")
    chart = page.locator("#chart-dnsbl-hours")
    expect(chart.locator("rect")).to_have_count(1)
    expect(chart.locator("rect title")).to_have_text([re.compile(r": 12 rejected$")])
    assert float(chart.locator("rect").get_attribute("height")) > 0
    expect(page.locator("#chart-greylist-hours rect")).to_have_count(2)
    expect(page.locator("#chart-dnsbl-days rect")).to_have_count(1)
    expect(page.locator("#chart-blocked_ips-hours rect")).to_have_count(0)
    expect(page.locator("tr[data-layer=dnsbl] td[data-period=hours][data-outcome=rejected]")) \
        .to_have_text("12")
    shot(page, "antispam-statistics")
