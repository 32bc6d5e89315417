"""The `gatebox` command: set up, run and administer a box from the shell.
Each module holds one family of commands; SoftPaks add theirs through the
gatebox_cli_commands hook (root.GateboxGroup). Errors end every command the
same way (errors)."""

from __future__ import annotations

from . import (config, diagnose, license, quarantine, queue, setup, setup_code, update, usb, users,
               verify)
from .root import main

for _module in (setup, setup_code, config, users, queue, quarantine, license, update, usb, verify,
                diagnose):
    for _command in _module.COMMANDS:
        main.add_command(_command)

__all__ = ["main"]
