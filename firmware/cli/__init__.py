"""The `gatebox` command: set up, run and administer a box from the shell.
Each module holds one family of commands; SoftPaks add theirs through the
gatebox_cli_commands hook (root.GateboxGroup). Errors end every command the
same way (errors).

A command's module is imported when that command is looked up, not with the
package: `gatebox config get` needs none of the mail stack, diagnostics or
update modules, and the box runs short commands at every boot (the setup
code, the first boot) as the tests do hundreds of times."""

from __future__ import annotations

from .root import main

# Command name -> the module of this package whose COMMANDS holds it.
COMMAND_MODULES = {
    "init": "setup", "run": "setup", "qmgr": "setup", "smtpd-worker": "setup",
    "setup-code": "setup_code",
    "config": "config", "user": "users", "queue": "queue", "quarantine": "quarantine",
    "license": "license", "softpak": "license", "firmware": "update", "usb": "usb",
    "verify": "verify", "diagnose": "diagnose",
}
main.lazy_commands.update(COMMAND_MODULES)

__all__ = ["main", "COMMAND_MODULES"]
