"""After a rollback, the previous firmware opens the database a newer one
migrated. Migrations only add (tables, columns, rows, settings), so this
firmware, playing the previous one, must keep working on a database that a
"next" firmware has changed the way the rules allow: a schema version beyond
the ones it knows, an extra column on accounts, a table and settings it has
never heard of."""

import smtplib
import sqlite3

from tests.support.box import Box
from tests.support.net import wait_until
from tests.support.sink import SmtpSink


def migrate_like_the_next_firmware(data):
    with sqlite3.connect(data / "gatebox.db") as db:
        (version,) = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", [str(int(version) + 5)])
        db.execute("INSERT INTO meta(key, value) VALUES('schema_version:webfilter', '3')")
        db.execute("ALTER TABLE accounts ADD COLUMN otp_secret TEXT")
        db.execute("CREATE TABLE quarantine (id INTEGER PRIMARY KEY, sender TEXT)")
        db.execute("INSERT INTO settings(key, value) VALUES('antispam.rbl_zones', '\"zen.example\"')")
        db.execute("INSERT INTO settings(key, value) VALUES('email.new_in_next_release', '7')")
    return int(version)


def test_previous_firmware_reads_and_writes_what_a_newer_one_left(tmp_path):
    sink = SmtpSink(tmp_path / "lan").start()
    box = Box(tmp_path / "data")
    try:
        box.configure(**{"email.mail_server_address": f"127.0.0.1:{sink.port}"})
        box.cli("user", "add", "amy", "--password", "amy's password 1")
        version = migrate_like_the_next_firmware(box.data)

        # Settings, accounts and the CLI work as before, and nothing is migrated "back".
        assert box.cli("config", "get", "email.domain").stdout.strip() == "example.com"
        shown = box.cli("config", "show").stdout
        assert "email.mail_server_address" in shown and "new_in_next_release" not in shown
        box.cli("config", "set", "email.max_message_size_mb", "20")
        assert "amy" in box.cli("user", "list").stdout
        box.cli("user", "add", "ben", "--password", "ben's password 1")
        assert box.cli("license", "show", check=False).returncode == 0

        # The services start and deliver.
        box.start()
        with smtplib.SMTP(box.host, box.smtp_port, timeout=30) as client:
            client.sendmail("x@internet.test", ["bob@example.com"],
                            b"Subject: after rollback\r\n\r\nstill here\r\n")
        wait_until(lambda: any(b"after rollback" in m for m in sink.messages()), timeout=30,
                   what="delivery after the rollback")

        with sqlite3.connect(box.data / "gatebox.db") as db:
            schema = dict(db.execute("SELECT key, value FROM meta WHERE key LIKE 'schema_version%'"))
            assert schema["schema_version"] == str(version + 5)   # never lowered
            assert db.execute("SELECT value FROM settings WHERE key = 'antispam.rbl_zones'").fetchone()
            assert db.execute("SELECT count(*) FROM quarantine").fetchone() == (0,)
    finally:
        box.stop()
        sink.stop()
