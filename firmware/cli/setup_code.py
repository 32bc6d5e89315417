"""`gatebox setup-code`: the one-time code first-boot setup in the web admin
asks for. The boot prints one on the console; this makes a new one (the
previous stops working), for an administrator at the console or over a
serial cable."""

from __future__ import annotations

import click

from firmware.system import setup_code as codes

from .errors import fail


@click.command("setup-code")
@click.option("--if-needed", is_flag=True,
              help="Print nothing and succeed when an administrator already exists (for boot).")
@click.pass_obj
def setup_code(obj, if_needed):
    """Issue a new one-time code for first-boot setup in the web admin."""
    try:
        code = codes.issue(obj.store, actor="cli")
    except codes.SetupDone as done:
        if if_needed:
            return
        fail(str(done))
    click.echo(f"gatebox setup code: {code}")


COMMANDS = [setup_code]
