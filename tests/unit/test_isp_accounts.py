"""The rules for Remote POP accounts and users' ISP logins (Mirrored):
hostile host names, ports, logins, passwords and recipients are refused
with the field's name; passwords never appear in listings; the ISP's
Delivered-To lines of fetched mail are not taken for a loop."""

import pytest

from firmware import accounts
from firmware.config import Store
from softpaks.mailserver.retrieval import RetrievalContext, isp_accounts, mirrored, remote_pop
from softpaks.mailserver.retrieval.fetch import isp_delivery_renamed
from softpaks.mailserver.retrieval.isp_accounts import AccountInputError

SECRET = "isp pass 123"


@pytest.fixture
def store(tmp_path):
    opened = Store.create(tmp_path / "data")
    accounts.add_user(opened, "bob", "bob password 1")
    accounts.add_user(opened, "admin", "admin password 1", admin=True)
    yield opened
    opened.close()


def _add(store, **given):
    values = {"host_name": "pop.isp.test", "login_name": "old.bob", "password_text": SECRET,
              "recipient": "bob", **given}
    return isp_accounts.save_remote_account(store, **values)


@pytest.mark.parametrize("given,rule", [
    ({"host_name": "pop.isp.test\r\nUSER x"}, "Host 'pop.isp.test??USER x': not a host name"),
    ({"host_name": "-bad-.test"}, "not a host name"),
    ({"host_name": "a" * 300}, "not a host name"),
    ({"port_text": "65536"}, "Port '65536': must be a number from 1 to 65535"),
    ({"port_text": "-1"}, "must be a number"),
    ({"port_text": "\u00b2"}, "must be a number"),
    ({"protocol_name": "smtp"}, "Protocol 'smtp': one of pop3, imap"),
    ({"tls": "ssl3"}, "Connection Security 'ssl3'"),
    ({"login_name": ""}, "Login Name: must not be empty"),
    ({"login_name": "a b"}, "Login Name: must not hold spaces"),
    ({"login_name": "a\nb"}, "Login Name: must not hold line breaks"),
    ({"login_name": "x" * 256}, "Login Name: at most 255"),
    ({"login_name": "a{5}"}, "Login Name: must not hold any of"),
    ({"login_name": "a\u2028b"}, "Login Name: must not hold line breaks"),
    ({"password_text": "pw\r\nDELE 1"}, "Password: must not hold line breaks"),
    ({"password_text": ""}, "Password: must not be empty"),
    ({"recipient": "admin"}, "an administrator has no mailbox"),
    ({"recipient": "nobody"}, "no such user"),
    ({"recipient": "bob@elsewhere.test"}, "not one of this box's domains"),
    ({"recipient": "../etc"}, "must start with a letter or digit"),
])
def test_remote_account_rules(store, given, rule):
    with pytest.raises(AccountInputError) as refused:
        _add(store, **given)
    assert rule in str(refused.value)
    assert isp_accounts.remote_accounts(store) == []


def test_usual_ports_and_ip_addresses(store):
    first = _add(store, tls="tls")
    second = _add(store, protocol_name="imap", tls="starttls", host_name="[2001:db8::1]")
    third = _add(store, host_name="POP.ISP.test.", port_text="1110", recipient="bob@example.com")
    found = {a.id: a for a in isp_accounts.remote_accounts(store)}
    assert (found[first].port, found[second].port, found[third].port) == (995, 143, 1110)
    assert found[second].host == "2001:db8::1" and found[second].address == "[2001:db8::1]:143"
    assert found[third].host == "pop.isp.test" and found[third].recipient == "bob"


def test_a_modify_without_a_password_keeps_it_and_listings_never_hold_it(store):
    number = _add(store)
    isp_accounts.save_remote_account(store, host_name="pop.isp.test", login_name="new.bob",
                                     password_text=None, recipient="bob", account_id=number)
    [(recipient, account)] = isp_accounts.remote_fetch_accounts(store)
    assert (recipient, account.login, account.password) == ("bob", "new.bob", SECRET)
    assert SECRET not in repr(account)
    listed = isp_accounts.remote_accounts(store)[0]
    assert SECRET not in repr(listed) and SECRET not in listed.describe()
    with pytest.raises(AccountInputError, match="no such account"):
        isp_accounts.save_remote_account(store, host_name="x.test", login_name="a", password_text=None,
                                         recipient="bob", account_id=99)


@pytest.mark.parametrize("change", [{"host_name": "pop.elsewhere.test"}, {"port_text": "1995"},
                                    {"protocol_name": "imap"}, {"tls": "none"},
                                    {"verify": False}])
def test_the_stored_password_never_follows_a_new_server_or_a_weaker_connection(store, change):
    number = _add(store)
    with pytest.raises(AccountInputError, match="give it again"):
        _add(store, password_text=None, account_id=number, **change)
    [(_, account)] = isp_accounts.remote_fetch_accounts(store)
    assert (account.host, account.tls, account.verify) == ("pop.isp.test", "tls", True)
    _add(store, password_text="new secret 2", account_id=number, **change)
    [(_, account)] = isp_accounts.remote_fetch_accounts(store)
    assert account.password == "new secret 2"


def test_deleting_an_account_forgets_what_it_fetched(store):
    number = _add(store)
    store.db.execute("INSERT INTO mail_retrieval_seen(account, uid, seen) VALUES(?, 'u1', 1)",
                     [f"remote:{number}"])
    isp_accounts.delete_remote_account(store, str(number))
    assert store.db.execute("SELECT COUNT(*) FROM mail_retrieval_seen").fetchone()[0] == 0
    with pytest.raises(AccountInputError, match="no such account"):
        isp_accounts.delete_remote_account(store, number)
    with pytest.raises(AccountInputError, match="give the account's number"):
        isp_accounts.delete_remote_account(store, "1 OR 1=1")


def test_isp_logins(store):
    with pytest.raises(AccountInputError, match="ISP Password: must not be empty"):
        isp_accounts.set_isp_login(store, "bob", "bob.office", "")
    with pytest.raises(AccountInputError, match="an administrator has no mailbox"):
        isp_accounts.set_isp_login(store, "admin", "admin.office", SECRET)
    isp_accounts.set_isp_login(store, "bob", "bob.office", SECRET)
    isp_accounts.set_isp_login(store, "bob", "bob.renamed", None)
    assert isp_accounts.isp_logins(store) == [isp_accounts.IspLogin("bob", "bob.renamed", True)]

    with pytest.raises(AccountInputError, match="ISP Mail Server: not set"):
        isp_accounts.mirrored_accounts(store, store.snapshot())
    store.set("email.isp_server", "mail.isp.test", actor="test")
    store.set("email.isp_protocol", "imap", actor="test")
    [(user, account)] = isp_accounts.mirrored_accounts(store, store.snapshot())
    assert (user, account.name, account.host, account.port, account.protocol, account.tls,
            account.verify, account.login, account.password) == (
        "bob", "mirrored:bob", "mail.isp.test", 993, "imap", "tls", True, "bob.renamed", SECRET)

    accounts.delete_user(store, "bob")
    assert isp_accounts.isp_logins(store) == []


def test_runs_do_nothing_outside_their_server_types(store):
    _add(store)
    ctx = RetrievalContext(store=store, spool=None, announce=None, settings=store.snapshot(), now=1.0)
    assert store.get("email.server_type") == "relay"
    assert mirrored.run(ctx) == [] and remote_pop.run(ctx) == []


def test_the_isps_delivered_to_on_top_is_renamed_the_rest_kept():
    fetched = (b"Return-Path: <a@outside.test>\r\nDelivered-To: bob@example.com\r\n"
               b"Received: by mx.isp.test\r\nDelivered-To: bob@example.com\r\nSubject: x\r\n\r\n"
               b"Delivered-To: in the body\r\n")
    assert isp_delivery_renamed(fetched) == (
        b"Return-Path: <a@outside.test>\r\nX-ISP-Delivered-To: bob@example.com\r\n"
        b"Received: by mx.isp.test\r\nDelivered-To: bob@example.com\r\nSubject: x\r\n\r\n"
        b"Delivered-To: in the body\r\n")
