"""A test-only SoftPak package (a pytest plugin loaded by tests/conftest.py).

`demo_package` writes a throwaway package `demopaks` with two SoftPaks and
returns its Registry: `demo` declares a setting, a CLI command and a table;
`addon` requires `demo`. `store_with_demo` is the settings store of a
firmware that carries `demo` and `addon` next to the real SoftPaks:
licensing asks the store which SoftPaks are installed, so a second
installed SoftPak needs no change to the shipped `softpaks` package."""

from __future__ import annotations

import sys
import textwrap

import pytest

from firmware import plugins

DEMO_SOFTPAKS = [
    ("demo", [], '''
        from firmware.config.types import Setting, Text
        from firmware.plugins import hookimpl

        @hookimpl
        def gatebox_settings():
            return [Setting("demo.greeting", Text(), "hello", "Greeting", "Demo")]

        @hookimpl
        def gatebox_cli_commands():
            return ["demo-command"]

        @hookimpl
        def gatebox_migrations():
            def create(db):
                db.execute("CREATE TABLE demo_things (id INTEGER PRIMARY KEY)")
            return [(1, create)]
    '''),
    ("addon", ["demo"], '''
        from firmware.plugins import hookimpl

        @hookimpl
        def gatebox_cli_commands():
            return ["addon-command"]
    '''),
]


@pytest.fixture
def demo_package(tmp_path, monkeypatch) -> plugins.Registry:
    root = tmp_path / "demopaks"
    for softpak, requires, body in DEMO_SOFTPAKS:
        (root / softpak).mkdir(parents=True)
        (root / softpak / "__init__.py").write_text(textwrap.dedent(body))
        (root / softpak / "manifest.toml").write_text(
            f'id = "{softpak}"\nname = "{softpak.title()}"\nversion = "1"\n'
            f'description = "test SoftPak"\nrequires = {requires!r}\n'.replace("'", '"'))
    (root / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield plugins.Registry("demopaks")
    for name in [m for m in sys.modules if m.startswith("demopaks")]:
        del sys.modules[name]


@pytest.fixture
def store_with_demo(store, demo_package, monkeypatch):
    installed = set(store.installed_softpaks()) | set(demo_package.manifests)
    monkeypatch.setattr(store, "installed_softpaks", lambda: set(installed))
    return store
