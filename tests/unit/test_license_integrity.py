"""What a license grants comes from the signed key, never from the columns
of its row; and turning the clock back extends nothing."""

import datetime
import json

from firmware.licensing import activate, active_softpaks, granted, license_day, stored_licenses
from firmware.licensing.clock import HIGH_WATER_KEY, high_water

ISSUED = datetime.date(2026, 1, 10)
TODAY = datetime.date(2026, 3, 1)


def _edit(store, sql, *params):
    store.db.execute(sql, list(params))


def test_edited_grants_column_grants_nothing_more(vendor, store_with_demo):
    store = store_with_demo
    activate(store, vendor.issue(mailserver="2026-06-30", issued=ISSUED), now=TODAY)
    everything = json.dumps({"mailserver": None, "demo": None, "addon": None})
    _edit(store, "UPDATE licenses SET grants = ?", everything)

    assert active_softpaks(store, now=TODAY) == {"mailserver"}
    assert granted(store, now=TODAY) == {"mailserver": datetime.date(2026, 6, 30)}
    # Perpetual in the column, 2026-06-30 in the key: past its grace period it is off.
    assert active_softpaks(store, now=datetime.date(2026, 8, 1)) == set()
    [stored] = stored_licenses(store)
    assert stored.grants == {"mailserver": datetime.date(2026, 6, 30)}
    assert any(line.startswith("grants column says") for line in stored.ignored)


def test_edited_serial_and_issued_columns_are_ignored_and_reported(vendor, store, box_serial):
    activate(store, vendor.issue(mailserver=None, issued=ISSUED), now=TODAY)
    _edit(store, "UPDATE licenses SET serial = 'GBX-OTHER', issued = '2020-01-01', grants = 'junk'")
    [stored] = stored_licenses(store)
    assert stored.serial == box_serial and stored.issued == ISSUED
    assert stored.problem is None
    assert [line.split()[0] for line in stored.ignored] == ["serial", "issued", "grants"]
    assert active_softpaks(store, now=TODAY) == {"mailserver"}


def test_untouched_row_reports_nothing(vendor, store):
    activate(store, vendor.issue(mailserver=None, issued=ISSUED), now=TODAY)
    [stored] = stored_licenses(store)
    assert stored.ignored == [] and stored.problem is None


def test_edited_key_text_grants_nothing(vendor, store):
    activate(store, vendor.issue(mailserver=None, issued=ISSUED), now=TODAY)
    text = vendor.issue(mailserver=None)
    flipped = text[:-20] + ("7" if text[-20] != "7" else "8") + text[-19:]
    _edit(store, "UPDATE licenses SET key_text = ?", flipped)
    [stored] = stored_licenses(store)
    assert stored.problem and stored.grants == {}
    assert active_softpaks(store, now=TODAY) == set()


def test_clock_set_back_through_now_extends_nothing(vendor, store):
    activate(store, vendor.issue(mailserver="2026-06-30", issued=ISSUED), now=TODAY)
    after_grace = datetime.date(2026, 8, 1)
    assert active_softpaks(store, now=after_grace) == set()
    assert high_water(store) == after_grace
    # Back to a day the license was valid: judged as of the latest day seen.
    assert active_softpaks(store, now=TODAY) == set()
    day = license_day(store, now=TODAY)
    assert day.day == after_grace and day.clock == TODAY and day.clock_behind
    assert "2026-08-01" in day.describe() and "2026-03-01" in day.describe()
    assert high_water(store) == after_grace


def test_high_water_already_ahead_in_the_database(vendor, store):
    activate(store, vendor.issue(mailserver="2026-06-30", issued=ISSUED), now=TODAY)
    assert active_softpaks(store, now=TODAY) == {"mailserver"}
    _edit(store, "UPDATE meta SET value = '2027-01-01' WHERE key = ?", HIGH_WATER_KEY)
    assert active_softpaks(store, now=TODAY) == set()
    assert license_day(store, now=TODAY).day == datetime.date(2027, 1, 1)


def test_clock_moving_forward_moves_the_mark(vendor, store):
    activate(store, vendor.issue(mailserver=None, issued=ISSUED), now=TODAY)
    later = TODAY + datetime.timedelta(days=5)
    assert not license_day(store, now=later).clock_behind
    assert high_water(store) == later


def test_issue_date_of_a_verified_key_is_a_floor(vendor, store):
    """A key issued on a day proves that day has come, even with no mark yet."""
    activate(store, vendor.issue(mailserver="2026-06-30", issued=ISSUED), now=TODAY)
    _edit(store, "DELETE FROM meta WHERE key = ?", HIGH_WATER_KEY)
    day = license_day(store, now=datetime.date(2025, 1, 1))
    assert day.day == ISSUED and day.clock_behind


def test_garbage_mark_is_replaced(vendor, store):
    _edit(store, "INSERT INTO meta(key, value) VALUES(?, 'not a date')", HIGH_WATER_KEY)
    assert license_day(store, now=TODAY).day == TODAY
    assert high_water(store) == TODAY
