"""`gatebox config set K=V ...` and `config load FILE` (one transaction each),
the schema check on open, and what the core takes from SoftPaks through
hooks (CLI commands, further local domains). In process, through click's
runner and a real settings database."""

import sqlite3

import pytest
from click.testing import CliRunner

from firmware.cli import main
from firmware.cli.config import assignments, parse_settings_file
from firmware.config import SchemaOutOfDate, Snapshot, Store
from firmware.mail.route import local_domains


def gatebox(store, *args, input=None):
    return CliRunner().invoke(main, ["--data", str(store.data_dir), *args], input=input)


@pytest.mark.parametrize("arguments, expected", [
    (("email.domain", "example.org"), {"email.domain": "example.org"}),
    (("email.domain", "a=b"), {"email.domain": "a=b"}),
    (("email.domain=example.org",), {"email.domain": "example.org"}),
    (("dns.port=53", "dns.nameservers="), {"dns.port": "53", "dns.nameservers": ""}),
    (("system.hostname=mx=1",), {"system.hostname": "mx=1"}),
])
def test_set_arguments(arguments, expected):
    assert assignments(arguments) == expected


def test_settings_file_lines():
    text = "# seed\n\nemail.domain = example.org\n  dns.port=5353\nemail.relay_server_password = a#b\n"
    assert parse_settings_file(text, "seed") == {
        "email.domain": "example.org", "dns.port": "5353", "email.relay_server_password": "a#b"}


def test_set_several_in_one_transaction(store):
    result = gatebox(store, "config", "set", "email.domain=example.org", "dns.port=5353")
    assert result.exit_code == 0, result.output
    assert "email.domain = example.org" in result.output and "dns.port = 5353" in result.output
    assert (store.get("email.domain"), store.get("dns.port")) == ("example.org", 5353)


def test_one_bad_value_changes_nothing(store):
    before = store.generation()
    result = gatebox(store, "config", "set", "email.domain=example.org", "dns.port=99999")
    assert result.exit_code == 1
    assert "dns.port: must be a whole number from 1 to 65535" in result.output
    assert store.get("email.domain") == "example.com" and store.generation() == before


def test_load_file_in_one_transaction(store, tmp_path):
    seed = tmp_path / "seed.conf"
    seed.write_text("# office\nemail.domain = example.org\nsystem.hostname = mx.example.org\n")
    result = gatebox(store, "config", "load", str(seed))
    assert result.exit_code == 0, result.output
    assert store.get("system.hostname") == "mx.example.org"
    assert store.generation() == 1


def test_load_names_the_bad_line(store):
    result = gatebox(store, "config", "load", "-", input="email.domain = example.org\nnonsense\n")
    assert result.exit_code == 1
    assert "<stdin>:2: expected 'key = value'" in result.output
    assert store.get("email.domain") == "example.com"


def test_an_outdated_schema_is_reported_not_migrated(store):
    conn = sqlite3.connect(store.path)
    conn.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(SchemaOutOfDate, match="gatebox --data .* init"):
        Store(store.data_dir)
    result = gatebox(store, "config", "get", "email.domain")
    assert result.exit_code == 1 and "needs upgrading (core)" in result.output
    Store.upgrade(store.data_dir).close()
    assert "mail_stats" in Store(store.data_dir).db.table_names()


def test_softpak_commands_come_through_the_hook_and_say_when_unlicensed(store):
    result = gatebox(store, "group", "list")
    assert result.exit_code == 1
    assert "the Mail Server SoftPak is not licensed" in result.output


def test_further_local_domains_come_from_the_softpak_outside_relay_mode(store):
    store.set_many({"email.domain": "example.org", "mailserver.local_domains": "example.net"})
    relay = store.snapshot()
    assert relay.further_local_domains == {"example.net"}
    assert local_domains(relay) == {"example.org"}
    standalone = Snapshot({**relay.values, "email.server_type": "standalone"}, relay.generation,
                          relay.further_local_domains)
    assert local_domains(standalone) == {"example.org", "example.net"}
