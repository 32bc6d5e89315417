"""The Anti-Spam quarantine digest (softpaks/antispam/digest) through the
web admin's real application: one mail per recipient listing their held
spam with signed one-click links; a link's GET only shows, its POST acts
once on that recipient's copy; tampered, expired and used links are
refused with a page saying so, without any sign-in, and only to clients
Allow Administration From admits. Also Keep Quarantined Spam, the digest's
schedule and the quarantine page's "Release and always allow this sender"."""

from __future__ import annotations

import email
import email.policy
import re
import time

import pytest

from firmware.config import Store
from firmware.mail.quarantine import Quarantine
from firmware.mail.queue import Spool
from softpaks.antispam import lists
from softpaks.antispam.digest import digest_mail, service, tokens

from test_quarantine_index import hold
from test_webui_support import csrf_token, make_app, sign_in

DAY = 86400
LINK = re.compile(r"https://links\.example\.com/quarantine/link/([A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+)")


@pytest.fixture
def box(tmp_path, box_serial, licensed):
    data = tmp_path / "data"
    app = make_app(data)
    licensed(data, antispam=None)
    Spool(data / "queue").create()
    store = Store(data)
    store.set_many({"antispam.digest_url": "https://links.example.com",
                    "email.domain": "example.com"})
    app.data, app.store = data, store
    yield app
    store.close()


def queued(data) -> list:
    """(envelope, parsed message) of what is in the queue's incoming."""
    spool = Spool(data / "queue")
    found = []
    for qid in spool.ids("incoming"):
        envelope, raw = spool.load("incoming", qid)
        found.append((envelope, email.message_from_bytes(raw, policy=email.policy.default)))
    return found


def digest_of(data, recipient):
    [mail] = [m for e, m in queued(data) if [r.address for r in e.recipients] == [recipient]
              and m["Subject"].startswith("Quarantine digest")]
    return mail


def links_in(mail) -> list[str]:
    return LINK.findall(mail.get_body(("plain",)).get_content())


def test_one_digest_per_local_recipient_lists_their_spam_with_two_links_each(box):
    data = box.data
    hold(data, recipients=("bob@example.com", "carol@example.com", "dave@elsewhere.example"),
         subject="Cheap <b>watches</b>\u202e")
    hold(data, recipients=("bob@example.com",), sender="", subject="A bounce")
    hold(data, kind="virus", recipients=("bob@example.com",), subject="Not in the digest")
    assert service.send_now(box.store) == (2, 3)
    mails = queued(data)
    assert sorted(r.address for e, _ in mails for r in e.recipients) == ["bob@example.com",
                                                                         "carol@example.com"]
    assert all(e.sender == "" for e, _ in mails)       # null sender: never bounced into a loop
    bob = digest_of(data, "bob@example.com")
    text = bob.get_body(("plain",)).get_content()
    assert "Cheap <b>watches</b>?" in text and "A bounce" in text and "Not in the digest" not in text
    assert "Score: 12.5" in text
    # Release + always allow for the first, Release only for the bounce (no sender to allow).
    assert len(links_in(bob)) == 3
    html = bob.get_body(("html",)).get_content()
    assert "Cheap &lt;b&gt;watches&lt;/b&gt;" in html and "<b>watches" not in html
    assert bob["From"].addresses[0].addr_spec == "postmaster@example.com"


def test_a_second_digest_lists_only_what_was_held_since_the_first(box):
    hold(box.data, subject="first")
    service.send_now(box.store, now=time.time())
    hold(box.data, subject="second", received=time.time() + 5)
    for envelope, _ in queued(box.data):
        Spool(box.data / "queue").remove("incoming", envelope.id)
    service.send_now(box.store, now=time.time() + 10)
    text = digest_of(box.data, "bob@example.com").get_body(("plain",)).get_content()
    assert "second" in text and "first" not in text


def _links(box, recipient="bob@example.com"):
    service.send_now(box.store)
    release, allow = links_in(digest_of(box.data, recipient))[:2]
    return release, allow


def test_a_release_link_shows_first_then_releases_that_recipients_copy_once(box):
    hold(box.data, recipients=("bob@example.com", "carol@example.com"))
    release, _ = _links(box)
    client = box.test_client()          # never signed in
    shown = client.get(f"/quarantine/link/{release}")
    page = shown.get_data(as_text=True)
    assert shown.status_code == 200 and "Cheap watches" in page and 'id="release-link-button"' in page
    assert len(Quarantine(box.data).items()) == 2      # a GET never acts
    refused = client.post(f"/quarantine/link/{release}")
    assert refused.status_code == 400 and len(Quarantine(box.data).items()) == 2
    token = csrf_token(client, f"/quarantine/link/{release}")
    done = client.post(f"/quarantine/link/{release}", data={"csrf_token": token})
    assert done.status_code == 200 and 'id="release-link-done"' in done.get_data(as_text=True)
    [left] = Quarantine(box.data).items()
    assert left.recipients == ["carol@example.com"]
    released = [(e, m) for e, m in queued(box.data) if m["X-Gatebox-Quarantine"]]
    assert [[r.address for r in e.recipients] for e, _ in released] == [["bob@example.com"]]
    again = client.post(f"/quarantine/link/{release}", data={"csrf_token": token})
    assert again.status_code == 410 and "already used" in again.get_data(as_text=True)
    assert client.get(f"/quarantine/link/{release}").status_code == 410
    assert len([m for _, m in queued(box.data) if m["X-Gatebox-Quarantine"]]) == 1


def test_always_allow_puts_the_sender_on_the_recipients_own_whitelist(box):
    hold(box.data)
    _, allow = _links(box)
    client = box.test_client()
    token = csrf_token(client, f"/quarantine/link/{allow}")
    done = client.post(f"/quarantine/link/{allow}", data={"csrf_token": token})
    assert done.status_code == 200 and "always" in done.get_data(as_text=True)
    assert [(e.level, e.scope, e.color, e.entry) for e in lists.entries(box.store)] == \
        [("user", "bob@example.com", "white", "seller@example.net")]
    assert Quarantine(box.data).items() == []


def test_tampered_and_expired_links_are_refused_with_a_page(box):
    qid = hold(box.data)
    release, _ = _links(box)
    client = box.test_client()
    body, _, mac = release.partition(".")
    forged_payload = tokens._b64(tokens._unb64(body).replace(b"bob@", b"eve@"))
    for bad, status in ((f"{forged_payload}.{mac}", 400), (release[:-3] + "AAA", 400),
                        ("nonsense", 400), ("a.b", 400)):
        answer = client.get(f"/quarantine/link/{bad}")
        assert answer.status_code == status, bad
        assert 'id="release-link-refused"' in answer.get_data(as_text=True)
    expired = tokens.sign(box.data, tokens.Grant(qid, "bob@example.com", "release",
                                                 time.time() - 1))
    answer = client.get(f"/quarantine/link/{expired}")
    assert answer.status_code == 410 and "expired" in answer.get_data(as_text=True)
    other_box = tokens.Grant(qid, "bob@example.com", "release", float(int(time.time() + DAY)))
    (box.data / "antispam" / tokens.KEY_FILE).write_bytes(b"k" * 32)
    assert client.get(f"/quarantine/link/{release}").status_code == 400
    assert tokens.verify(box.data, tokens.sign(box.data, other_box)) == other_box
    assert len(Quarantine(box.data).items()) == 1


def test_the_key_is_made_once_private_and_a_link_expires_with_the_spam(box):
    hold(box.data, received=time.time() - 2 * DAY)
    release, _ = _links(box)
    key_file = box.data / "antispam" / tokens.KEY_FILE
    assert key_file.stat().st_mode & 0o777 == 0o600 and len(key_file.read_bytes()) == 32
    grant = tokens.verify(box.data, release)
    [item] = Quarantine(box.data).items()
    assert grant.expires == int(item.envelope.received + 7 * DAY)
    with pytest.raises(tokens.TokenRefused) as refused:
        tokens.verify(box.data, release, now=grant.expires + 1)
    assert refused.value.status == 410


def test_links_open_only_for_clients_allow_administration_from_admits(box):
    hold(box.data)
    release, _ = _links(box)
    box.store.set("system.admin_allow_from", "10.9.9.0/24")
    client = box.test_client()
    client.environ_base["REMOTE_ADDR"] = "192.0.2.55"
    assert client.get(f"/quarantine/link/{release}").status_code == 403


def test_links_need_an_active_license(tmp_path, box_serial):
    data = tmp_path / "data"
    app = make_app(data)
    qid = hold(data)
    link = tokens.sign(data, tokens.Grant(qid, "bob@example.com", "release", time.time() + DAY))
    client = app.test_client()
    answer = client.get(f"/quarantine/link/{link}")
    assert answer.status_code == 302 and "/login" in answer.headers["Location"]
    assert client.post(f"/quarantine/link/{link}").status_code != 200
    assert len(Quarantine(data).items()) == 1


def test_spam_expires_after_its_own_lifetime_a_virus_after_the_core_one(box):
    old_spam = hold(box.data, received=time.time() - 8 * DAY)
    young_spam = hold(box.data, received=time.time() - 6 * DAY)
    old_virus = hold(box.data, kind="virus", received=time.time() - 8 * DAY)
    assert service.expire_spam(box.store) == 1
    assert {i.id for i in Quarantine(box.data).items()} == {young_spam, old_virus}
    assert old_spam not in {i.id for i in Quarantine(box.data).items()}
    box.store.set("email.quarantine_days", 5)
    assert digest_mail.lifetime_days(box.store.snapshot()) == 5


def test_the_digest_is_due_once_a_day_after_its_time(box):
    box.store.set_many({"antispam.digest": True, "antispam.digest_time": "07:30",
                        "system.timezone": "UTC"})
    settings = box.store.snapshot()
    day = time.mktime(time.strptime("2026-12-02 00:00", "%Y-%m-%d %H:%M")) - time.timezone
    assert service.due(box.store, settings, day + 7 * 3600) is None
    assert service.due(box.store, settings, day + 8 * 3600) == "2026-12-02"
    service.send_now(box.store, "2026-12-02", day + 8 * 3600)
    assert service.due(box.store, settings, day + 9 * 3600) is None
    assert service.due(box.store, settings, day + DAY + 8 * 3600) == "2026-12-03"
    box.store.set("antispam.digest", False)
    assert service.due(box.store, box.store.snapshot(), day + DAY + 8 * 3600) is None


def test_the_page_searches_shows_the_report_and_releases_and_allows_the_sender(box):
    qid = hold(box.data, sender="news@example.net", subject="Weekly <i>news</i>")
    hold(box.data, sender="eve@example.org", subject="Other")
    client = box.test_client()
    sign_in(client)
    html = client.get("/email-server/quarantine?sender=news%40&since=2000-01-01").get_data(as_text=True)
    assert qid in html and "Other" not in html and "12.5" in html
    assert "Weekly &lt;i&gt;news&lt;/i&gt;" in html
    assert "is not a date" in client.get("/email-server/quarantine?since=yesterday",
                                         follow_redirects=True).get_data(as_text=True)
    shown = client.get(f"/email-server/quarantine/message/{qid}").get_data(as_text=True)
    assert 'id="spam-report"' in shown and "GTUBE" in shown and "the GTUBE test string" in shown
    assert 'value="release_allow_sender"' in shown
    token = csrf_token(client, f"/email-server/quarantine/message/{qid}")
    assert client.post(f"/email-server/quarantine/message/{qid}/act",
                       data={"operation": "release_allow_sender"}).status_code == 400
    done = client.post(f"/email-server/quarantine/message/{qid}/act",
                       data={"csrf_token": token, "operation": "release_allow_sender"},
                       follow_redirects=True)
    assert "added to the server whitelist" in done.get_data(as_text=True)
    assert [(e.level, e.entry) for e in lists.entries(box.store)] == [("server", "news@example.net")]
    assert qid not in {i.id for i in Quarantine(box.data).items()}
    assert box.store.audit_log()[0]["what"] in ("quarantine release_allow_sender",
                                                "quarantine release")


def test_the_settings_page_shows_the_digest_and_send_now_queues_it(box):
    hold(box.data)
    client = box.test_client()
    sign_in(client)
    page = client.get("/anti-spam/digest").get_data(as_text=True)
    assert "Keep Quarantined Spam" in page and "https://links.example.com/quarantine/link/" in page
    assert client.post("/anti-spam/digest/send").status_code == 400
    token = csrf_token(client, "/anti-spam/digest")
    done = client.post("/anti-spam/digest/send", data={"csrf_token": token}, follow_redirects=True)
    assert "1 digest(s) queued, listing 1 message(s)" in done.get_data(as_text=True)
    assert digest_of(box.data, "bob@example.com")
    shown = client.get("/anti-spam/digest").get_data(as_text=True)
    assert re.search(r'id="digest-last">\d{4}-\d\d-\d\d: 1 mail\(s\), finished 20', shown)
    refused = client.post("/anti-spam/digest", data={"csrf_token": token,
                                                     "antispam__digest_time": "25:00"})
    assert refused.status_code == 400 and box.store.get("antispam.digest_time") == "08:00"
    assert "must be a time of day HH:MM" in refused.get_data(as_text=True)


def test_the_cli_sends_the_digest_now(box):
    from click.testing import CliRunner

    from firmware.cli import main
    hold(box.data)
    result = CliRunner().invoke(main, ["--data", str(box.data), "antispam", "digest", "send"])
    assert result.exit_code == 0 and "1 digest(s) queued, listing 1 message(s)" in result.output
    assert links_in(digest_of(box.data, "bob@example.com"))


def test_a_failing_release_hook_neither_undoes_the_release_nor_silences_the_others(
        box, monkeypatch):
    import pluggy

    from firmware.mail import quarantine as quarantine_module
    from firmware.plugins import PROJECT, SoftPakSpec, hookimpl
    heard = []

    class Failing:
        @hookimpl
        def gatebox_quarantine_released(self, item):
            raise RuntimeError("broken SoftPak")

    class Listening:
        @hookimpl
        def gatebox_quarantine_released(self, store, item, message, actor):
            heard.append((item.id, actor, message.count(b"Cheap watches")))

    manager = pluggy.PluginManager(PROJECT)
    manager.add_hookspecs(SoftPakSpec)
    manager.register(Listening(), name="listening")
    manager.register(Failing(), name="failing")
    monkeypatch.setattr(quarantine_module.plugins, "active_plugin_manager", lambda store: manager)
    qid = hold(box.data)
    done, errors = Quarantine(box.data).release_many([qid], Spool(box.data / "queue"),
                                                     lambda new: None, box.store, "tester")
    assert errors == [] and [old for old, _ in done] == [qid]
    assert heard == [(qid, "tester", 1)] and Quarantine(box.data).items() == []


def test_a_virus_sender_is_never_whitelisted_from_the_page(box):
    qid = hold(box.data, kind="virus")
    client = box.test_client()
    sign_in(client)
    token = csrf_token(client, f"/email-server/quarantine/message/{qid}")
    done = client.post(f"/email-server/quarantine/message/{qid}/act",
                       data={"csrf_token": token, "operation": "release_allow_sender"},
                       follow_redirects=True)
    assert "never a reason to trust its sender" in done.get_data(as_text=True)
    assert lists.entries(box.store) == [] and [i.id for i in Quarantine(box.data).items()] == [qid]
