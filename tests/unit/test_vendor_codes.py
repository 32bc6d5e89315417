"""The license service's code store: one box per code, even when two race."""

import threading

import pytest

from gatebox_vendor.codes import CodeStore, CodeUsedElsewhere, UnknownCode


def _issue(serial, grants):
    return f"KEY-FOR-{serial}"


def test_one_box_per_code(tmp_path):
    store = CodeStore(tmp_path / "codes.db")
    code = store.add({"mailserver": None})
    assert store.redeem(code, "BOX-1", _issue) == "KEY-FOR-BOX-1"
    assert store.redeem(code.lower(), "BOX-1", lambda *a: pytest.fail("issued twice")) == "KEY-FOR-BOX-1"
    with pytest.raises(CodeUsedElsewhere, match="another box"):
        store.redeem(code, "BOX-2", _issue)
    with pytest.raises(UnknownCode):
        store.redeem("0000-0000", "BOX-1", _issue)


def test_racing_boxes_one_wins(tmp_path):
    path = tmp_path / "codes.db"
    code = CodeStore(path).add({"mailserver": None})
    outcomes = []

    def redeem(serial):
        try:
            outcomes.append(CodeStore(path).redeem(code, serial, _issue))
        except CodeUsedElsewhere:
            outcomes.append("refused")

    threads = [threading.Thread(target=redeem, args=(f"BOX-{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count("refused") == 7
