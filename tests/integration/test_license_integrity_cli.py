"""The licenses table edited by hand with sqlite3, and the clock behind the
box's high-water mark, as `gatebox license show` and `softpak list` see them."""

import datetime
import subprocess

import pytest

from firmware.config import Store
from tests.support.tools import require


@pytest.fixture
def data(tmp_path, box_serial):
    require("sqlite3")
    Store.create(tmp_path / "data").close()
    return tmp_path / "data"


def _sqlite(data, sql: str):
    subprocess.run(["sqlite3", str(data / "gatebox.db"), sql], check=True, capture_output=True,
                   timeout=30)


def _mailserver_row(gatebox, data) -> list:
    listing = gatebox(data, "softpak", "list", check=True).stdout
    [line] = [l for l in listing.splitlines() if l.startswith("mailserver ")]
    return line.split()


def test_grants_column_edited_with_sqlite3_is_ignored_and_reported(gatebox, data, vendor):
    past = datetime.date.today() - datetime.timedelta(days=400)
    ends = datetime.date.today() - datetime.timedelta(days=20)   # past its 14-day grace period
    # Issued long ago with a still-valid date, activated, then the date passes:
    # the key itself is expired; the column will claim perpetual.
    key = vendor.issue(mailserver=(datetime.date.today() + datetime.timedelta(days=60)).isoformat(),
                       issued=past)
    gatebox(data, "license", "activate", key, check=True)
    expired = vendor.issue(mailserver=ends.isoformat(), jukebox=ends.isoformat(), issued=past)
    _sqlite(data, f"UPDATE licenses SET key_text = '{expired}'")
    _sqlite(data, "UPDATE licenses SET grants = '{\"mailserver\": null, \"jukebox\": null}', "
                  "serial = 'GBX-SOMEONE-ELSE'")

    shown = gatebox(data, "license", "show", check=True).stdout
    assert "ignored: the database was changed by hand: grants column says" in shown
    assert "serial column says 'GBX-SOMEONE-ELSE'" in shown
    [mailserver] = [line for line in shown.splitlines() if line.split()[:1] == ["mailserver"]]
    assert mailserver.split()[1] == "off" and ends.isoformat() in mailserver
    assert "perpetual" not in shown
    row = _mailserver_row(gatebox, data)
    assert row[-5:-2] == ["yes", "yes", "no"] and ends.isoformat() in row[-2]
    refused = gatebox(data, "config", "set", "email.server_type", "standalone")
    assert refused.returncode != 0 and "Mail Server SoftPak" in refused.stderr


def test_clock_behind_the_high_water_mark(gatebox, data, vendor):
    today = datetime.date.today()
    ends = today + datetime.timedelta(days=60)
    gatebox(data, "license", "activate",
            vendor.issue(mailserver=ends.isoformat(), issued=today - datetime.timedelta(days=1)),
            check=True)
    assert _mailserver_row(gatebox, data)[-3] == "yes"
    shown = gatebox(data, "license", "show", check=True)
    assert "clock says" not in shown.stderr

    # The box has already seen a day past the grace period: the clock is behind.
    seen = ends + datetime.timedelta(days=30)
    _sqlite(data, f"UPDATE meta SET value = '{seen.isoformat()}' WHERE key = 'license_high_water'")
    shown = gatebox(data, "license", "show", check=True)
    assert f"the clock says {today}, but this box has already seen {seen}" in shown.stderr
    [mailserver] = [line for line in shown.stdout.splitlines() if line.split()[:1] == ["mailserver"]]
    assert mailserver.split()[1] == "off"
    assert _mailserver_row(gatebox, data)[-3] == "no"
