"""The `gatebox` command group and what every command is handed: the data
directory and, opened on first use, its settings store."""

from __future__ import annotations

import importlib
from pathlib import Path

import click

from firmware import __version__, plugins
from firmware.config import Store

from .errors import reported

DEFAULT_DATA = "/data"


class Context:
    def __init__(self, data: str):
        self.data = Path(data)
        self._store = None

    @property
    def store(self) -> Store:
        if self._store is None:
            with reported():
                self._store = Store(self.data)
        return self._store


class GateboxGroup(click.Group):
    """The core's commands plus those every installed SoftPak adds through
    the gatebox_cli_commands hook, licensed or not: unlicensed, a SoftPak's
    command says so instead of vanishing. The SoftPaks are asked only when a
    command is looked up, not when this module is imported. The core's own
    commands come from LAZY_COMMANDS (name -> module of firmware.cli), each
    module imported when one of its commands is looked up."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy_commands: dict[str, str] = {}

    def _softpak_commands(self) -> dict:
        return {command.name: command for command in plugins.registry().cli_commands}

    def _core_command(self, ctx, name):
        command = super().get_command(ctx, name)
        if command is None and name in self.lazy_commands:
            module = importlib.import_module(f"{__package__}.{self.lazy_commands[name]}")
            for each in module.COMMANDS:
                self.add_command(each)
            command = super().get_command(ctx, name)
        return command

    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(self.lazy_commands)
                      | set(self._softpak_commands()))

    def get_command(self, ctx, name):
        return self._core_command(ctx, name) or self._softpak_commands().get(name)


@click.group(cls=GateboxGroup)
@click.option("--data", envvar="GATEBOX_DATA", default=DEFAULT_DATA, show_default=True,
              help="Data directory: settings database, queue, certificates.")
@click.version_option(__version__, prog_name="gatebox")
@click.pass_context
def main(ctx, data):
    """gatebox: the office mail gateway."""
    ctx.obj = Context(data)
