"""warning -> grace -> off, driven by an injected clock; data stays."""

import datetime

import pytest

from firmware.config import SettingError
from firmware.licensing import activate, active_softpaks, expiry
from firmware.plugins.status import softpak_status, warnings

END = datetime.date(2027, 6, 30)


def day(offset: int) -> datetime.date:
    return END + datetime.timedelta(days=offset)


@pytest.mark.parametrize("offset, state", [
    (-365, "ok"), (-31, "ok"), (-30, "warning"), (-1, "warning"), (0, "warning"),
    (1, "grace"), (14, "grace"), (15, "off"), (400, "off"),
])
def test_states(offset, state):
    assert expiry.state(END, day(offset)) == state


def test_perpetual_is_always_ok():
    assert expiry.state(None, datetime.date(2099, 1, 1)) == "ok"


def test_now_may_be_a_datetime():
    assert expiry.state(END, datetime.datetime(2027, 7, 20, 12, 0)) == "off"


def test_walk_through_warning_grace_off_with_data_intact(vendor, store_with_demo):
    store = store_with_demo
    activate(store, vendor.issue(mailserver=END.isoformat(), demo=None), now=day(-100))
    store.set("email.server_type", "standalone")
    store.set("email.domain", "office.example")
    values_before = store.all()

    def mailserver(offset):
        [row] = [r for r in softpak_status(store, now=day(offset)) if r.id == "mailserver"]
        return row

    assert mailserver(-100).state == "ok" and mailserver(-100).active
    assert warnings(store, now=day(-100)) == []

    assert mailserver(-10).state == "warning" and mailserver(-10).active
    assert "renew" in warnings(store, now=day(-10))[0]

    assert mailserver(5).state == "grace" and mailserver(5).active
    assert "grace period" in warnings(store, now=day(5))[0]
    assert "mailserver" in active_softpaks(store, now=day(5))

    assert mailserver(20).state == "off" and not mailserver(20).active
    # The key's other, perpetual grant runs on.
    assert active_softpaks(store, now=day(20)) == {"demo"}
    assert "stopped" in warnings(store, now=day(20))[0]

    assert store.all() == values_before
    assert store.get("email.server_type") == "standalone"

    # A renewal brings everything back as it was.
    activate(store, vendor.issue(mailserver="2028-06-30"), now=day(20))
    assert mailserver(20).state == "ok" and mailserver(20).active
    assert store.get("email.server_type") == "standalone"


def test_gated_value_refused_after_expiry(vendor, store):
    activate(store, vendor.issue(mailserver="2020-01-01"), now=datetime.date(2019, 6, 1))
    # The store asks with the real clock, which is long past 2020-01-15.
    with pytest.raises(SettingError, match="Mail Server"):
        store.set("email.server_type", "standalone")


def test_grant_for_a_softpak_this_firmware_lacks_is_listed_not_warned(vendor, store):
    activate(store, vendor.issue(mailserver=None, jukebox=END.isoformat()), now=day(-100))
    [row] = [r for r in softpak_status(store, now=day(-10)) if r.id == "jukebox"]
    assert row.licensed and not row.installed and not row.active
    assert "not in this firmware" in row.note and "takes effect once" in row.note
    assert warnings(store, now=day(-10)) == []
