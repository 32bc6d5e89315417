"""`gatebox license ...` and `gatebox softpak list` as an administrator uses them."""

import pytest

from firmware.config import Store


@pytest.fixture
def data(tmp_path, box_serial):
    Store.create(tmp_path / "data").close()
    return tmp_path / "data"


def _server_type(gatebox, data):
    return gatebox(data, "config", "get", "email.server_type", check=True).stdout.strip()


def test_serial(gatebox, data, box_serial):
    assert gatebox(data, "license", "serial", check=True).stdout.strip() == box_serial


def test_activate_unlocks_standalone_then_remove_keeps_it(gatebox, data, vendor, box_serial):
    refused = gatebox(data, "config", "set", "email.server_type", "standalone")
    assert refused.returncode != 0 and "Mail Server SoftPak" in refused.stderr

    listing = gatebox(data, "softpak", "list", check=True).stdout
    assert _row(listing, "mailserver")[2:5] == ["yes", "no", "no"]

    key = vendor.issue(mailserver="2099-12-31", jukebox=None, wrap=True)
    result = gatebox(data, "license", "activate", key, check=True)
    assert "activated license" in result.stdout
    key_id = result.stdout.split()[2]

    again = gatebox(data, "license", "activate", key.lower(), check=True)
    assert "already active" in again.stdout

    gatebox(data, "config", "set", "email.server_type", "standalone", check=True)
    assert _server_type(gatebox, data) == "standalone"

    shown = gatebox(data, "license", "show", check=True).stdout
    assert key_id in shown and box_serial in shown
    assert "mailserver" in shown and "2099-12-31" in shown
    [jukebox] = [line for line in shown.splitlines() if line.split()[:1] == ["jukebox"]]
    assert "perpetual" in jukebox and "not in this firmware" in jukebox

    listing = gatebox(data, "softpak", "list", check=True).stdout
    assert _row(listing, "mailserver")[2:6] == ["yes", "yes", "yes", "2099-12-31"]
    # Licensed, kept, but not running: this firmware lacks it.
    assert _row(listing, "jukebox")[2:6] == ["no", "yes", "no", "perpetual"]

    gatebox(data, "license", "remove", key_id, check=True)
    assert _server_type(gatebox, data) == "standalone"
    assert _row(gatebox(data, "softpak", "list", check=True).stdout, "mailserver")[4] == "no"
    assert gatebox(data, "config", "set", "email.server_type", "standalone").returncode != 0

    missing = gatebox(data, "license", "remove", key_id)
    assert missing.returncode != 0 and "no such license" in missing.stderr


def test_activate_from_file(gatebox, data, vendor, tmp_path):
    key_file = tmp_path / "license.txt"
    key_file.write_text(vendor.issue(mailserver=None, wrap=True) + "\n")
    gatebox(data, "license", "activate", "--file", str(key_file), check=True)
    assert _row(gatebox(data, "softpak", "list", check=True).stdout, "mailserver")[4] == "yes"


@pytest.mark.parametrize("make_key, reason", [
    (lambda v: _flip(v.issue(mailserver=None)), "malformed license key"),
    (lambda v: "GATEBOX-HELLO", "malformed license key"),
    (lambda v: _tamper(v.issue(mailserver="2099-01-01")), "bad signature"),
    (lambda v: v.issue(serial="GBX-NEIGHBOUR", mailserver=None), "license key is for another box"),
    (lambda v: v.issue(mailserver="2001-01-01"), "license key has expired"),
    (lambda v: v.issue(jukebox=None), "unknown SoftPak"),
])
def test_refusals_name_the_reason_and_change_nothing(gatebox, data, vendor, make_key, reason):
    before = Store(data)
    generation, audit = before.generation(), len(before.audit_log())
    before.close()
    result = gatebox(data, "license", "activate", make_key(vendor))
    assert result.returncode == 1
    assert reason in result.stderr
    after = Store(data)
    assert after.generation() == generation and len(after.audit_log()) == audit
    assert after.db.execute("SELECT COUNT(*) FROM licenses").fetchone()[0] == 0
    after.close()
    assert "no licenses" in gatebox(data, "license", "show", check=True).stdout


def test_activate_needs_exactly_one_source(gatebox, data, vendor):
    result = gatebox(data, "license", "activate")
    assert result.returncode != 0 and "exactly one" in result.stderr


def test_show_warns_before_expiry(gatebox, data, vendor):
    import datetime
    soon = (datetime.date.today() + datetime.timedelta(days=10)).isoformat()
    gatebox(data, "license", "activate", vendor.issue(mailserver=soon), check=True)
    shown = gatebox(data, "license", "show", check=True)
    assert "warning" in shown.stdout and "renew" in shown.stderr


def _row(listing: str, softpak: str) -> list:
    [line] = [l for l in listing.splitlines() if l.startswith(softpak + " ")]
    # NAME may hold a space ("Mail Server"): rejoin so columns line up.
    parts = line.split()
    if len(parts) > 1 and parts[2] not in ("yes", "no"):
        parts[1:3] = [parts[1] + " " + parts[2]]
    return parts


def _flip(key: str) -> str:
    position = len(key) - 20
    return key[:position] + ("7" if key[position] != "7" else "8") + key[position + 1:]


def _tamper(key: str) -> str:
    from firmware.licensing import payload, textform
    raw = bytearray(textform.decode(key))
    lic = payload.unpack(bytes(raw))
    days = (lic.grants["mailserver"] - payload.EPOCH).days.to_bytes(2, "big")
    index = bytes(raw).rindex(days, 0, len(raw) - payload.SIGNATURE_SIZE)
    raw[index:index + 2] = (int.from_bytes(days, "big") + 1).to_bytes(2, "big")
    return textform.encode(bytes(raw))
