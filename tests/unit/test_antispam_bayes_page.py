"""Anti-Spam > Bayes through Flask's test client: the menu and help, the
counts and whether it votes, the settings, learning an uploaded message
file as spam and as not spam, Reset behind its confirmation, and CSRF on
every form."""

import io
import re

import pytest

from firmware.config import Store
from softpaks.antispam.bayes import store as bayes_store
from softpaks.antispam.web import menu_pages
from tests.support.spam_corpus import Corpus

from test_webui_support import csrf_token, make_app, sign_in

PAGE = "/anti-spam/bayes"


@pytest.fixture
def client(tmp_path, box_serial, licensed):
    app = make_app(tmp_path / "data")
    licensed(tmp_path / "data", antispam=None)
    client = app.test_client()
    assert sign_in(client).status_code == 302
    client.data_dir = tmp_path / "data"
    yield client
    bayes_store.for_data(client.data_dir).close()


def count(html: str, name: str) -> str:
    return re.search(rf'<tr data-count="{name}"><td>[^<]*</td><td[^>]*>([^<]*)<', html).group(1)


def upload(client, message: bytes, kind: str, token: str | None = None):
    return client.post(f"{PAGE}/learn", data={
        "csrf_token": token if token is not None else csrf_token(client, PAGE), "kind": kind,
        "message": (io.BytesIO(message), "message.eml")}, content_type="multipart/form-data")


def test_the_page_is_in_the_menu_with_its_help(client):
    assert "Anti-Spam > Bayes" in [page["menu"] for page in menu_pages()]
    assert f'href="{PAGE}"' in client.get("/").get_data(as_text=True)
    assert "<h1>Help: Anti-Spam: Bayes" in client.get("/help/antispam-bayes").get_data(as_text=True)


def test_the_page_shows_the_settings_and_what_it_still_needs(client):
    html = client.get(PAGE).get_data(as_text=True)
    for label in ("Bayesian Filter", "Spam Needed Before It Votes", "Ham Needed Before It Votes",
                  "Auto-Learn", "Maximum Tokens"):
        assert label in html, label
    assert (count(html, "spam"), count(html, "ham"), count(html, "tokens")) == ("0", "0", "0")
    assert count(html, "votes") == "Not yet: it needs 200 more spam and 200 more ham"
    saved = client.post(PAGE, data={"csrf_token": csrf_token(client, PAGE),
                                    "antispam__bayes": "y", "antispam__bayes_min_spam": "1",
                                    "antispam__bayes_min_ham": "2",
                                    "antispam__bayes_max_tokens": "150000"})
    assert saved.status_code == 302, saved.get_data(as_text=True)[:3000]
    assert count(client.get(PAGE).get_data(as_text=True), "votes") == \
        "Not yet: it needs 1 more spam and 2 more ham"


def test_an_uploaded_message_is_learnt_and_counted(client):
    corpus = Corpus(41)
    message = corpus.spam()
    done = upload(client, message, "spam")
    assert done.status_code == 302
    html = client.get(PAGE).get_data(as_text=True)
    assert "The message was learnt as spam." in html
    assert count(html, "spam") == "1" and int(count(html, "tokens")) > 20
    upload(client, message, "ham")
    html = client.get(PAGE).get_data(as_text=True)
    assert (count(html, "spam"), count(html, "ham")) == ("0", "1")
    assert "it was learnt as spam before" in html
    # An empty file teaches nothing and says so.
    upload(client, b"", "spam")
    html = client.get(PAGE).get_data(as_text=True)
    assert "Not learnt: an empty message teaches nothing." in html and count(html, "spam") == "0"
    store = Store(client.data_dir)
    try:
        assert any("bayes: a message file learnt as spam" in row["what"]
                   for row in store.audit_log())
    finally:
        store.close()


def test_reset_asks_first_and_then_forgets_everything(client):
    upload(client, Corpus(42).spam(), "spam")
    confirm = " ".join(client.get(f"{PAGE}/reset").get_data(as_text=True).split())
    assert "1 spam" in confirm and "cannot be undone" in confirm
    assert count(client.get(PAGE).get_data(as_text=True), "spam") == "1"   # asking changed nothing
    done = client.post(f"{PAGE}/reset", data={"csrf_token": csrf_token(client, f"{PAGE}/reset")})
    assert done.status_code == 302
    html = client.get(PAGE).get_data(as_text=True)
    assert "The Bayes database is empty" in html and count(html, "spam") == "0"


def test_forms_without_a_valid_token_change_nothing(client):
    assert upload(client, Corpus(43).spam(), "spam", token="forged").status_code == 400
    assert count(client.get(PAGE).get_data(as_text=True), "spam") == "0"
    upload(client, Corpus(43).spam(), "spam")
    refused = client.post(f"{PAGE}/reset", data={"csrf_token": "forged"})
    assert refused.status_code == 400
    assert count(client.get(PAGE).get_data(as_text=True), "spam") == "1"


# ---- Users & Groups > User Mailboxes: the message actions -----------------------------------
MAILBOXES = "/users-groups/mail/mailboxes"


@pytest.fixture
def mailbox_client(tmp_path, box_serial, licensed):
    from firmware import accounts
    from softpaks.mailserver import maildir
    app = make_app(tmp_path / "data")
    licensed(tmp_path / "data", mailserver=None, antispam=None)
    store = Store(tmp_path / "data")
    store.set_many({"email.domain": "example.com", "email.server_type": "standalone"})
    accounts.add_user(store, "bob", "bob password 1")
    path = maildir.mailbox_path(store, store.data_dir, "bob", "example.com")
    store.close()
    corpus = Corpus(44)
    ids = [maildir.deliver(path, message) for message in (corpus.spam(), corpus.ham())]
    client = app.test_client()
    assert sign_in(client).status_code == 302
    client.data_dir, client.ids = tmp_path / "data", ids
    yield client
    bayes_store.for_data(client.data_dir).close()


def test_the_mailbox_page_offers_the_learn_buttons_and_runs_them(mailbox_client):
    listing = f"{MAILBOXES}?user=bob"
    html = mailbox_client.get(listing).get_data(as_text=True)
    assert "Learn as spam" in html and "Learn as not spam" in html
    assert f'formaction="{MAILBOXES}/bob/action/learn_spam"' in html
    ids = [re.search(r"^[^:]+", i).group(0) for i in mailbox_client.ids]
    token = csrf_token(mailbox_client, listing)
    done = mailbox_client.post(f"{MAILBOXES}/bob/action/learn_spam",
                               data={"csrf_token": token, "message": ids[0]})
    assert done.status_code == 302
    mailbox_client.post(f"{MAILBOXES}/bob/action/learn_ham",
                        data={"csrf_token": token, "message": ids[1]})
    totals = bayes_store.for_data(mailbox_client.data_dir).totals()
    assert (totals.spam, totals.ham) == (1, 1)
    assert "Bayes: learnt as ham." in mailbox_client.get(listing).get_data(as_text=True)
    # Without the token, or naming no action the SoftPaks offer: refused.
    assert mailbox_client.post(f"{MAILBOXES}/bob/action/learn_spam",
                               data={"message": ids[1]}).status_code == 400
    assert mailbox_client.post(f"{MAILBOXES}/bob/action/delete_all",
                               data={"csrf_token": token, "message": ids[1]}).status_code == 404
    assert bayes_store.for_data(mailbox_client.data_dir).totals().spam == 1
