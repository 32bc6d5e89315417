"""The Mail Server SoftPak's pieces on their own: RFC 3834 rules, address
expansion, Maildir writing, Dovecot's generated configuration, the
checkpassword program, and the CLI when the SoftPak is not licensed."""

import pytest

from firmware import accounts
from firmware.licensing import activate
from softpaks.mailserver import autoresponder, checkpassword, directory, dovecot, maildir
from softpaks.mailserver.expansion import Unknown, expand
from tests.support.auth_service import checkpassword_client, login


@pytest.fixture
def mail_store(store, vendor):
    activate(store, vendor.issue(mailserver=None))
    for name in ("bob", "carol"):
        store.db.execute("INSERT INTO accounts(name, password_hash, is_admin, created) VALUES(?,?,0,0)",
                         [name, accounts.hash_password("pw-123456", n=2 ** 10)])
    return store


@pytest.mark.parametrize("sender, headers, reason", [
    ("", b"", "null sender"),
    ("MAILER-DAEMON@x.test", b"", "mailer daemon"),
    ("list-request@x.test", b"", "list address"),
    ("a@x.test", b"Auto-Submitted: auto-generated\r\n", "Auto-Submitted"),
    ("a@x.test", b"Precedence: bulk\r\n", "Precedence: bulk"),
    ("a@x.test", b"List-Id: <l.x.test>\r\n", "mailing list"),
])
def test_responder_stays_silent_per_rfc_3834(sender, headers, reason):
    assert reason in autoresponder.why_not(sender, headers + b"Subject: hi\r\n\r\nbody")


def test_responder_answers_personal_mail_once_per_window(mail_store):
    assert autoresponder.why_not("a@x.test", b"Auto-Submitted: no\r\n\r\nbody") is None
    settings = mail_store.snapshot()
    assert autoresponder.claim(mail_store, "bob", "a@x.test", settings, now=1000.0)
    assert not autoresponder.claim(mail_store, "bob", "A@x.test", settings, now=1000.0 + 86400)
    assert autoresponder.claim(mail_store, "bob", "a@x.test", settings, now=1000.0 + 8 * 86400)


def test_expansion_follows_aliases_lists_and_forwarders(mail_store):
    directory.add_alias(mail_store, "sales", "team")
    directory.add_list(mail_store, "team", ["bob", "carol", "ext@remote.test", "sales"])
    directory.set_forwarder(mail_store, "carol", "carol@remote.test", keep_copy=True)
    plan = expand(mail_store, "sales@example.com", mail_store.snapshot())
    assert plan.mailboxes == [("bob", "team"), ("carol", "team")]
    assert sorted(plan.remote) == ["carol@remote.test", "ext@remote.test"]
    assert plan.responders == []  # reached through a list: no auto-replies
    with pytest.raises(Unknown):
        expand(mail_store, "nobody@example.com", mail_store.snapshot())


def test_names_are_one_namespace_and_targets_are_checked(mail_store):
    with pytest.raises(directory.DirectoryError, match="already used by a user"):
        directory.add_alias(mail_store, "bob", "carol")
    with pytest.raises(directory.DirectoryError, match="not an email address"):
        directory.add_alias(mail_store, "x", "broken@")
    with pytest.raises(directory.DirectoryError, match="no such user"):
        directory.set_forwarder(mail_store, "ghost", "a@b.test")


def test_modify_replaces_in_one_transaction(mail_store):
    directory.add_alias(mail_store, "sales", "bob")
    with pytest.raises(directory.DirectoryError, match="already used by a user"):
        directory.add_alias(mail_store, "carol", "bob", replacing="sales")
    assert directory.aliases(mail_store) == {"sales": "bob"}   # the refused rename kept it
    directory.add_alias(mail_store, "orders", "carol", replacing="sales")
    assert directory.aliases(mail_store) == {"orders": "carol"}

    directory.save_list(mail_store, "team", ["bob", "ext@remote.test", "bob"])
    directory.save_list(mail_store, "crew", ["carol"], replacing="team")
    assert directory.lists(mail_store) == {"crew": ["carol"]}
    with pytest.raises(directory.DirectoryError, match="at least one member"):
        directory.save_list(mail_store, "crew", [], replacing="crew")

    directory.set_forwarder(mail_store, "bob", "a@remote.test")
    directory.set_forwarder(mail_store, "carol", "b@remote.test", replacing="bob")
    assert [f.name for f in directory.forwarders(mail_store)] == ["carol"]
    directory.set_responder(mail_store, "bob", "away")
    directory.set_responder(mail_store, "carol", "away too", replacing="bob")
    assert [r.name for r in directory.responders(mail_store)] == ["carol"]


def test_maildir_find_and_purge(tmp_path):
    box = tmp_path / "mail" / "example.com" / "bob"
    names = [maildir.deliver(box, f"Subject: {n}\r\n\r\nbody\r\n".encode()) for n in range(3)]
    assert maildir.find(box, names[1]).subject == "1"
    assert maildir.find(box, "../../etc/passwd") is None
    assert maildir.purge(box) == 3 and maildir.messages(box) == []


def test_maildir_delivery_is_readable_back(tmp_path):
    box = tmp_path / "mail" / "example.com" / "bob"
    name = maildir.deliver(box, b"From: a@x.test\r\nSubject: hi\r\n\r\nbody\r\n")
    [stored] = maildir.messages(box)
    assert stored.id == name and stored.subject == "hi" and stored.folder == "new"
    assert b"\r\n" not in stored.path.read_bytes()
    assert f"S={stored.size}" in name
    assert maildir.remove(box, name) and maildir.messages(box) == []


def test_dovecot_configuration_is_private(tmp_path, monkeypatch):
    monkeypatch.setenv("GATEBOX_SERIAL", "GBX-X")
    (tmp_path / "dovecot").mkdir()
    text = dovecot.config_text(tmp_path, bind="127.0.0.1", pop3_port=1110, imap_port=0,
                               hostname="box.example.com")
    assert "!include" not in text and "/etc/dovecot" not in text
    assert "protocols = pop3\n" in text and "driver = checkpassword" in text
    assert len(str(dovecot.runtime_dir(tmp_path / ("x" * 200)))) < 60
    client = (tmp_path / "dovecot" / "checkpassword").read_text()
    assert "python" not in client and f"UNIX-CONNECT:{dovecot.auth_socket(tmp_path)}" in client


def _checkpassword(data_dir, user, password, env=None):
    with checkpassword_client(data_dir, data_dir) as (client, _):
        return login(client, user, password, env)


def test_checkpassword_answers_from_the_accounts_table(mail_store):
    ok = _checkpassword(mail_store.data_dir, "Bob@example.com", "pw-123456")
    assert ok.returncode == 0 and "USER=bob nologin= mail=maildir:" in ok.stdout
    assert _checkpassword(mail_store.data_dir, "bob", "wrong").returncode == checkpassword.AUTH_FAILED
    assert _checkpassword(mail_store.data_dir, "bob@other.test", "pw-123456").returncode == 1
    mail_store.set("email.trusted_networks", "10.0.0.0/8")
    offsite = _checkpassword(mail_store.data_dir, "bob", "pw-123456", {"TCPREMOTEIP": "192.0.2.7"})
    assert "nologin=Y" in offsite.stdout and "Off-site access" in offsite.stdout


def test_commands_say_when_the_softpak_is_not_licensed(tmp_path, box_serial, gatebox):
    gatebox(tmp_path / "data", "init", check=True)
    result = gatebox(tmp_path / "data", "alias", "add", "sales", "bob")
    assert result.returncode == 1
    assert "Mail Server SoftPak is not licensed" in result.stderr and "license activate" in result.stderr


def test_del_commands_delete_and_name_what_is_missing(tmp_path, licensed, gatebox):
    data = tmp_path / "data"
    gatebox(data, "init", "--domain", "example.com", check=True)
    licensed(data, mailserver=None)
    gatebox(data, "user", "add", "bob", "--password", "correct-horse-1", check=True)
    gatebox(data, "alias", "add", "sales", "bob", check=True)
    gatebox(data, "list", "add", "team", "bob", check=True)
    gatebox(data, "forwarder", "add", "bob", "bob@isp.test", check=True)
    for what, name, done in [("alias", "Sales", "deleted alias sales"),
                             ("list", "team", "deleted list team"),
                             ("forwarder", "BOB", "deleted forwarder of bob")]:
        assert gatebox(data, what, "del", name, check=True).stdout.strip() == done
        again = gatebox(data, what, "del", name)
        assert again.returncode == 1 and ("no such" in again.stderr or "has no" in again.stderr)
