"""The `gatebox` command loads a command's module only when it is looked up
(firmware.cli.COMMAND_MODULES): every command is still there, by its name."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys

import click

import firmware.cli
from firmware.cli import COMMAND_MODULES, main


def defined_commands() -> dict[str, str]:
    """Command name -> module, read from every module of the package."""
    found = {}
    for info in pkgutil.iter_modules(firmware.cli.__path__):
        if info.name == "__main__":
            continue
        module = importlib.import_module(f"firmware.cli.{info.name}")
        for command in getattr(module, "COMMANDS", ()):
            found[command.name] = info.name
    return found


def test_every_command_of_the_package_is_named_with_its_module():
    assert COMMAND_MODULES == defined_commands()


def test_each_name_finds_its_command():
    ctx = click.Context(main)
    for name in COMMAND_MODULES:
        command = main.get_command(ctx, name)
        assert isinstance(command, click.Command) and command.name == name
    assert set(COMMAND_MODULES) <= set(main.list_commands(ctx))


def test_a_short_command_does_not_load_the_others():
    loaded = subprocess.run(
        [sys.executable, "-c",
         "import sys\nfrom firmware.cli import main\n"
         "try:\n    main(['config', '--help'])\nexcept SystemExit:\n    pass\n"
         "print(' '.join(sorted(sys.modules)))"],
        capture_output=True, text=True, timeout=60, check=True).stdout.split()
    assert "firmware.cli.config" in loaded
    assert [m for m in loaded if m in ("firmware.cli.diagnose", "firmware.cli.update",
                                       "firmware.cli.verify", "firmware.mail.diagnostics")] == []
