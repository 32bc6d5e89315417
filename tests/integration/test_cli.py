"""The `gatebox` command: init, config show/get/set, user add."""

import sqlite3

from tests.support.box import gatebox


def test_init_creates_database_certificate_queue_and_admin(tmp_path):
    data = tmp_path / "data"
    out = gatebox(data, "init", "--domain", "office.test", "--admin-password", "first-boot-pw")
    assert "initialised" in out.stdout
    assert (data / "gatebox.db").exists()
    assert (data / "tls" / "cert.pem").exists()
    assert oct((data / "tls" / "key.pem").stat().st_mode & 0o777) == "0o600"
    for state in ("incoming", "active", "deferred", "hold", "corrupt"):
        assert (data / "queue" / state).is_dir()
    assert gatebox(data, "config", "get", "email.domain").stdout.strip() == "office.test"
    assert "admin  (administrator)" in gatebox(data, "user", "list").stdout
    # Init again keeps what is there.
    gatebox(data, "init")
    assert gatebox(data, "config", "get", "email.domain").stdout.strip() == "office.test"


def test_config_show_lists_every_setting_with_the_manual_defaults(tmp_path):
    data = tmp_path / "data"
    gatebox(data, "init")
    shown = gatebox(data, "config", "show").stdout
    expected = {
        "email.server_type": "relay",
        "email.max_message_size_mb": "10",
        "email.max_connections_per_host": "5",
        "email.timeout_connect_min": "5",
        "email.timeout_command_min": "5",
        "email.timeout_datablock_min": "5",
        "email.timeout_termination_min": "10",
        "email.max_retrieve_per_session": "unlimited",
        "email.max_queue_lifetime_days": "5",
    }
    for key, value in expected.items():
        assert f"{key} = {value}    #" in shown
    assert "# Email Server > Settings > Advanced > Maximum Message Size (MB)" in shown
    advanced = gatebox(data, "config", "show", "--menu", "Email Server > Scheduling").stdout
    assert "email.business_week" in advanced and "email.domain" not in advanced


def test_bad_values_exit_nonzero_naming_the_setting_and_rule(tmp_path):
    data = tmp_path / "data"
    gatebox(data, "init")
    cases = {
        ("email.max_message_size_mb", "huge"): "email.max_message_size_mb: must be a whole number from 1 to 2048 or 'unlimited'",
        ("email.trusted_networks", "10.0.0.0/33"): "email.trusted_networks: must be a comma-separated list",
        ("email.mail_server_address", "mail server:25"): "email.mail_server_address: must be a host name",
        ("email.domain", "no_dots"): "email.domain: must be a domain name",
        ("email.business_day", "17:00-08:00"): "email.business_day: must be a range of hours",
        ("email.server_type", "standalone"): "email.server_type: 'standalone' needs the Mail Server SoftPak",
        ("email.server_type", "exchange"): "email.server_type: must be one of standalone, relay",
        ("email.server_type", "multidrop"): "email.server_type: 'multidrop' needs the Mail Server SoftPak",
        ("email.max_retrieve_per_session", "lots"):
            "email.max_retrieve_per_session: must be a whole number from 1 to 100000 or 'unlimited'",
        ("no.such.key", "1"): "no.such.key: no such setting",
    }
    for (key, value), message in cases.items():
        result = gatebox(data, "config", "set", key, value, check=False)
        assert result.returncode == 1, (key, value)
        assert message in result.stderr, result.stderr
    assert gatebox(data, "config", "get", "email.max_message_size_mb").stdout.strip() == "10"


def test_star_domain_only_in_relay_and_star_networks_warn(tmp_path):
    data = tmp_path / "data"
    gatebox(data, "init")
    assert gatebox(data, "config", "set", "email.domain", "*").returncode == 0
    warned = gatebox(data, "config", "set", "email.trusted_networks", "*")
    assert "not recommended" in warned.stderr
    ok = gatebox(data, "config", "set", "email.max_message_size_mb", "UNLIMITED")
    assert ok.stdout.strip() == "email.max_message_size_mb = unlimited"


def test_user_passwords_are_stored_hashed(tmp_path):
    data = tmp_path / "data"
    gatebox(data, "init")
    gatebox(data, "user", "add", "Alice", "--password", "open sesame!")
    duplicate = gatebox(data, "user", "add", "alice", "--password", "another one", check=False)
    assert duplicate.returncode == 1 and "already exists" in duplicate.stderr
    short = gatebox(data, "user", "add", "bob", "--password", "short", check=False)
    assert short.returncode == 1 and "at least 8 characters" in short.stderr
    with sqlite3.connect(data / "gatebox.db") as db:
        (stored,) = db.execute("SELECT password_hash FROM accounts WHERE name = 'alice'").fetchone()
        audit = db.execute("SELECT what FROM audit").fetchall()
    assert stored.startswith("scrypt$") and "open sesame" not in stored
    assert ("add user alice",) in audit
