"""License activation through the page, the Mail Server SoftPak's pages
before and after, and a screenshot of every page of the menu."""

from playwright.sync_api import expect

LICENSES = "/system/licenses"


def test_license_activation_through_the_page(signed_in, admin_box, vendor, tmp_path, shot):
    page = signed_in
    page.goto(admin_box.web_url + "/users-groups/mail/aliases")
    expect(page.locator(".softpak-offer")).to_contain_text("not licensed")
    expect(page.locator(".softpak-offer")).to_contain_text("Stand-Alone")
    shot(page, "aliases-unlicensed")
    page.click("text=Activate a license")
    expect(page.locator("h1")).to_have_text("System: SoftPaks & Licenses")
    expect(page.locator("tr[data-softpak=mailserver]")).to_contain_text("not licensed")

    page.fill("#key", "not a license key")
    page.click("button[name=activate]")
    expect(page.locator(".flash.error")).to_contain_text("License not activated: malformed license key")

    page.fill("#key", vendor.issue(mailserver="2099-12-31", wrap=True))
    page.click("button[name=activate]")
    expect(page.locator(".flash.ok")).to_contain_text("Activated license")
    expect(page.locator("tr[data-softpak=mailserver]")).to_contain_text("2099-12-31")
    expect(page.locator("tr[data-softpak=mailserver] td").nth(2)).to_have_text("yes")

    # A key file also granting a SoftPak this firmware lacks: accepted, that grant listed as waiting.
    key_file = tmp_path / "license.key"
    key_file.write_text(vendor.issue(mailserver=None, jukebox=None))
    page.set_input_files("#key_file", str(key_file))
    page.click("button[name=activate]")
    expect(page.locator(".flash.ok")).to_contain_text(
        "jukebox (perpetual, not in this firmware), mailserver (perpetual)")
    expect(page.locator("tr[data-softpak=jukebox]")).to_contain_text("not in this firmware")
    expect(page.locator("tr[data-softpak=jukebox] td").nth(2)).to_have_text("no")
    expect(page.locator("td", has_text="jukebox (perpetual, not in this firmware)")).to_have_count(1)
    shot(page, "licenses")
    assert "mailserver" in admin_box.cli("softpak", "list").stdout

    # The running UI sees the license at once: the real page replaces the offer.
    page.goto(admin_box.web_url + "/users-groups/mail/aliases")
    expect(page.locator(".softpak-offer")).to_have_count(0)
    expect(page.locator("button[value=modify]")).to_be_visible()


def test_every_menu_page_renders_with_title_and_help(signed_in, admin_box, shot):
    page = signed_in
    entries = page.locator("nav.menu li li a")
    links = [(entries.nth(i).inner_text(), entries.nth(i).get_attribute("href"))
             for i in range(entries.count())]
    assert len(links) >= 18
    for label, href in links:
        page.goto(admin_box.web_url + href)
        title = page.locator("h1").inner_text()
        assert label.split()[-1] in title, (label, title)
        help_link = page.locator("a.help")
        expect(help_link).to_have_count(1)
        shot(page, href.strip("/").replace("/", "_"))
        help_page = page.context.request.get(admin_box.web_url + help_link.get_attribute("href"))
        assert help_page.status == 200, href
