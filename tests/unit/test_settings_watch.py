"""Every process that holds settings says which generation it holds, and
the tests' wait for a reload counts a process that started with the new
generation as well as one that reloaded it. The queue manager starts after
smtpd's banner is up; under load a change made right after the banner is
already in the database when it first reads the settings, and it has
nothing to reload."""

import contextlib
import logging
import subprocess
import sys
import types

import pytest

from firmware.config import Store
from firmware.config.watch import Watcher
from tests.support.box import wait_reloaded

LATE_PROCESS = """
import logging, sys
from firmware.config import Store
from firmware.config.watch import Watcher
logging.basicConfig(filename=sys.argv[2], level=logging.INFO, format="%(name)s: %(message)s")
Watcher(Store(sys.argv[1]))
"""


@contextlib.contextmanager
def logging_to(path):
    """This process's settings lines, into the file a box would log to."""
    handler = logging.FileHandler(path)
    logger = logging.getLogger("gatebox.config")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        handler.close()


def test_a_process_started_after_a_change_counts_as_holding_it(tmp_path):
    data, log_path = tmp_path / "data", tmp_path / "box.log"
    store = Store.create(data)
    with logging_to(log_path):
        early = Watcher(store)  # smtpd: up before the change
        store.set_many({"email.allow_nonstandard_helo": "on"})
        assert early.refresh()
        # The queue manager: first reads the settings after the change.
        subprocess.run([sys.executable, "-c", LATE_PROCESS, str(data), str(log_path)], check=True)
    log = log_path.read_text()
    generation = store.generation()
    assert f"settings reloaded (generation {generation}, pid" in log
    assert f"settings loaded (generation {generation}, pid" in log
    box = types.SimpleNamespace(data=data, log=log_path.read_text)
    wait_reloaded(box, timeout=5)
    store.close()


def test_one_process_reloading_twice_is_not_two_processes(tmp_path):
    data, log_path = tmp_path / "data", tmp_path / "box.log"
    store = Store.create(data)
    with logging_to(log_path):
        watcher = Watcher(store)
        for value in ("on", "off"):
            store.set_many({"email.allow_nonstandard_helo": value})
            assert watcher.refresh()
    box = types.SimpleNamespace(data=data, log=log_path.read_text)
    with pytest.raises(TimeoutError, match="reload generation"):
        wait_reloaded(box, timeout=1)
    store.close()
