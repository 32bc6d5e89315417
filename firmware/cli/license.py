"""`gatebox license ...` and `gatebox softpak ...`."""

from __future__ import annotations

import datetime
import getpass

import click

from firmware.licensing import (NOT_INSTALLED, NoSerial, activate, box_serial, expiry,
                                license_day, remove, stored_licenses)
from firmware.licensing.online import request_key
from firmware.plugins.status import softpak_status, warnings

from .errors import fail, reported


def _actor() -> str:
    try:
        return f"cli ({getpass.getuser()})"
    except Exception:
        return "cli"


def _serial() -> str:
    try:
        return box_serial()
    except NoSerial as error:
        fail(f"cannot determine the serial number: {error}")


def _warn(store):
    for line in warnings(store):
        click.echo(f"warning: {line}", err=True)


@click.group("license")
def license_group():
    """License keys: activate, show, remove; this box's serial number."""


@license_group.command("serial")
def license_serial():
    """Print this box's serial number (license keys are issued for it)."""
    click.echo(_serial())


@license_group.command("activate")
@click.argument("key", nargs=-1)
@click.option("--file", "key_file", type=click.File("r"), help="Read the key from this file ('-': stdin).")
@click.option("--code", help="Activation code to exchange for a key online.")
@click.option("--server", help="License service URL (default: $GATEBOX_LICENSE_SERVER or the vendor's).")
@click.option("--ca", type=click.Path(exists=True, dir_okay=False),
              help="CA certificate to trust for the license service (default: system CAs).")
@click.pass_obj
def license_activate(obj, key, key_file, code, server, ca):
    """Activate a license key (pasted, from a file, or fetched with an activation code)."""
    sources = [bool(key), key_file is not None, bool(code)]
    if sum(sources) != 1:
        fail("give exactly one of: KEY, --file F, --code C")
    with reported():
        if code:
            text = request_key(code, _serial(), server, ca)
        else:
            text = key_file.read() if key_file else " ".join(key)
        result = activate(obj.store, text, actor=_actor())
    lic = result.license
    day = license_day(obj.store).day
    verb = "activated" if result.new else "already active:"
    click.echo(f"{verb} license {lic.id}")
    for softpak, end in sorted(lic.grants.items()):
        click.echo(f"  {softpak}: {expiry.describe(end, day)}"
                   f"{_later(softpak, result.not_installed)}")
    _warn(obj.store)


@license_group.command("show")
@click.pass_obj
def license_show(obj):
    """Every activated license with its SoftPaks, expiry and state."""
    with reported():
        licenses = stored_licenses(obj.store)
        day = license_day(obj.store)
    if day.clock_behind:
        click.echo(f"warning: {day.describe()}", err=True)
    if not licenses:
        click.echo("no licenses activated (relay only); see 'gatebox license activate --help'")
    for stored in licenses:
        when = datetime.datetime.fromtimestamp(stored.activated_at).strftime("%Y-%m-%d %H:%M")
        issued = stored.issued or "?"
        click.echo(f"license {stored.id}  issued {issued}  serial {stored.serial or '?'}  "
                   f"activated {when} by {stored.activated_by}")
        if stored.problem:
            click.echo(f"  grants nothing on this box: {stored.problem}")
        for softpak, end in sorted(stored.grants.items()):
            click.echo(f"  {softpak:<12} {expiry.state(end, day.day):<8} "
                       f"{expiry.describe(end, day.day)}{_later(softpak, stored.not_installed)}")
        for disagreement in stored.ignored:
            click.echo(f"  ignored: the database was changed by hand: {disagreement}; "
                       "the signed key is what counts")
    _warn(obj.store)


def _later(softpak: str, not_installed: set) -> str:
    if softpak not in not_installed:
        return ""
    return f"; {NOT_INSTALLED}, takes effect once a firmware that has it is installed"


@license_group.command("remove")
@click.argument("key_id")
@click.pass_obj
def license_remove(obj, key_id):
    """Remove a license. Settings, mailboxes and queued mail stay."""
    with reported():
        remove(obj.store, key_id, actor=_actor())
    click.echo(f"removed license {key_id.strip().upper()}")
    _warn(obj.store)


@click.group("softpak")
def softpak_group():
    """SoftPaks: the feature modules licenses switch on."""


@softpak_group.command("list")
@click.pass_obj
def softpak_list(obj):
    """Each SoftPak: installed / licensed / active, and its expiry."""
    yes = {True: "yes", False: "no"}
    click.echo(f"{'SOFTPAK':<12} {'NAME':<14} {'INSTALLED':<10} {'LICENSED':<9} {'ACTIVE':<7} EXPIRY")
    for row in softpak_status(obj.store):
        if not row.licensed:
            until = "-"
        else:
            until = f"{row.expiry or 'perpetual'} ({row.state})"
        click.echo(f"{row.id:<12} {row.name:<14} {yes[row.installed]:<10} {yes[row.licensed]:<9} "
                   f"{yes[row.active]:<7} {until}")
    _warn(obj.store)


COMMANDS = [license_group, softpak_group]
