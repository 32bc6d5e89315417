"""Users & Groups > Groups and the Email permission: the migration that
keeps existing boxes working, new users joining the default group, what a
user without the permission loses (mailbox, POP3/IMAP login, sending) and
keeps (mail already stored), and the `gatebox group` commands."""

import asyncio

import pytest

from firmware import accounts
from firmware.licensing import activate
from firmware.mail.policy import Context
from softpaks.mailserver import access, checkpassword, directory, groups
from softpaks.mailserver.expansion import Unknown, expand
from softpaks.mailserver.routing import sender_permission_check, unaddressable_check

from test_mailserver_units import _checkpassword

PASSWORD = "pw-123456"


def _add_account(store, name, admin=False):
    # A cheap hash: the real cost is not what these tests are about.
    store.db.execute("INSERT INTO accounts(name, password_hash, is_admin, created) VALUES(?,?,?,0)",
                     [name, accounts.hash_password(PASSWORD, n=2 ** 10), int(admin)])


@pytest.fixture
def mail_store(store, vendor):
    # bob exists before the SoftPak's tables, as on a box upgraded to groups.
    _add_account(store, "bob")
    activate(store, vendor.issue(mailserver=None))
    _add_account(store, "carol")
    store.set("email.server_type", "standalone")
    return store


def test_existing_and_new_users_are_in_the_default_group_with_email(mail_store):
    [default] = groups.groups(mail_store)
    assert (default.name, default.email, default.new_users) == ("default", True, True)
    assert default.members == ("bob", "carol")
    assert groups.has_email(mail_store, "bob") and groups.has_email(mail_store, "carol")

    accounts.delete_user(mail_store, "carol")
    assert groups.group(mail_store, "default").members == ("bob",)
    groups.set_permissions(mail_store, "default", new_users=False)
    _add_account(mail_store, "carol")   # a new account of an old name starts afresh
    assert not groups.has_email(mail_store, "carol")
    assert groups.users_without_email(mail_store) == ["carol"]


def test_save_group_rules_rename_and_membership(mail_store):
    with pytest.raises(directory.DirectoryError, match="^Group Name 'no spaces': must start"):
        groups.save_group(mail_store, "no spaces", email=True, what="Group Name")
    with pytest.raises(directory.DirectoryError, match="^Members 'ghost': no such user"):
        groups.save_group(mail_store, "staff", email=True, members=["ghost"], members_what="Members")
    with pytest.raises(directory.DirectoryError, match="'default': a group of this name already"):
        groups.save_group(mail_store, "default", email=False)

    groups.save_group(mail_store, "Staff", email=False, members=["bob", "bob"])
    with pytest.raises(directory.DirectoryError, match="already exists"):
        groups.save_group(mail_store, "default", email=True, replacing="staff")
    assert groups.group(mail_store, "staff") == groups.Group("staff", False, False, ("bob",))
    groups.save_group(mail_store, "office", email=True, members=["carol"], replacing="staff")
    assert [g.name for g in groups.groups(mail_store)] == ["default", "office"]
    groups.join(mail_store, "office", ["bob"])
    groups.leave(mail_store, "office", ["carol"])
    assert groups.group(mail_store, "office").members == ("bob",)
    groups.delete_group(mail_store, "office")
    with pytest.raises(directory.DirectoryError, match="no such group"):
        groups.delete_group(mail_store, "office")
    whats = [row["what"] for row in mail_store.audit_log()]
    assert "rename staff to group office: email on, new users do not join, members: carol" in whats


def _run(check, **fields):
    verdict = check.run(Context(settings=fields.pop("settings"), client_ip="192.0.2.1", **fields))
    return asyncio.run(verdict) if asyncio.iscoroutine(verdict) else verdict


def test_a_user_without_email_permission_has_no_mailbox(mail_store):
    groups.leave(mail_store, "default", ["carol"])
    directory.save_list(mail_store, "team", ["bob", "carol"])
    directory.set_forwarder(mail_store, "carol", "carol@remote.test")
    settings = mail_store.snapshot()

    with pytest.raises(Unknown):   # not even its forwarder runs
        expand(mail_store, "carol@example.com", settings)
    assert expand(mail_store, "team@example.com", settings).mailboxes == [("bob", "team")]
    rcpt = unaddressable_check(mail_store)
    verdict = _run(rcpt, settings=settings, recipient="carol@example.com")
    assert verdict.code == 550 and verdict.enhanced == "5.1.1"
    assert _run(rcpt, settings=settings, recipient="bob@example.com") is None
    sending = sender_permission_check(mail_store)
    assert _run(sending, settings=settings, auth_user="carol").code == 550
    assert _run(sending, settings=settings, auth_user="bob") is None

    mail_store.set("mailserver.unaddressable", "user")
    mail_store.set("mailserver.unaddressable_user", "bob")
    assert expand(mail_store, "carol@example.com", mail_store.snapshot()).mailboxes == [("bob", "")]
    mail_store.set("mailserver.unaddressable_user", "carol")
    with pytest.raises(Unknown, match="not a user with Email permission"):
        expand(mail_store, "nobody@example.com", mail_store.snapshot())

    groups.save_group(mail_store, "office", email=True, members=["carol"])
    assert expand(mail_store, "carol@example.com", mail_store.snapshot()).remote == ["carol@remote.test"]


def test_checkpassword_refuses_a_user_without_email_after_the_password(mail_store):
    groups.set_permissions(mail_store, "default", email=False)
    refused = _checkpassword(mail_store.data_dir, "bob", PASSWORD)
    assert refused.returncode == 0 and "nologin=Y" in refused.stdout
    assert "no Email permission" in refused.stdout and "mail=" in refused.stdout
    assert access.NO_EMAIL.split(",")[0] in refused.stdout
    # A wrong password hears only that, whatever the account's permissions.
    assert _checkpassword(mail_store.data_dir, "bob", "wrong").returncode == checkpassword.AUTH_FAILED
    groups.set_permissions(mail_store, "default", email=True)
    assert "nologin= " in _checkpassword(mail_store.data_dir, "bob", PASSWORD).stdout


def test_group_commands(tmp_path, licensed, gatebox):
    data = tmp_path / "data"
    gatebox(data, "init", "--domain", "example.com", check=True)
    licensed(data, mailserver=None)
    for user in ("bob", "carol"):
        gatebox(data, "user", "add", user, "--password", "correct-horse-1", check=True)

    added = gatebox(data, "group", "add", "Office", "--no-email", "--member", "bob", check=True)
    assert added.stdout.strip() == "office (no email): bob"
    assert gatebox(data, "group", "leave", "default", "carol", check=True).stdout.strip() == \
        "default (email, new users join): bob"
    listed = gatebox(data, "group", "list", check=True).stdout.splitlines()
    assert listed == ["default (email, new users join): bob", "office (no email): bob",
                      "without Email permission: carol"]
    assert gatebox(data, "group", "join", "office", "carol", check=True).stdout.strip() == \
        "office (no email): bob, carol"
    assert gatebox(data, "group", "set", "office", "--email", check=True).stdout.strip() == \
        "office (email): bob, carol"
    assert "without" not in gatebox(data, "group", "list", check=True).stdout

    refused = gatebox(data, "group", "join", "office", "ghost")
    assert refused.returncode == 1 and "member 'ghost': no such user" in refused.stderr
    refused = gatebox(data, "group", "add", "bad name!")
    assert refused.returncode == 1 and "group name 'bad name!': must start" in refused.stderr
    refused = gatebox(data, "group", "del", "nosuch")
    assert refused.returncode == 1 and "group 'nosuch': no such group" in refused.stderr
    assert gatebox(data, "group", "del", "office", check=True).stdout.strip() == "deleted group office"
    assert gatebox(data, "group", "list", check=True).stdout.splitlines()[-1] == \
        "without Email permission: carol"
