"""`gatebox firmware status | install FILE | rollback | reboot`."""

from __future__ import annotations

import click

from firmware.system.update import Runtime, check_bundle, install, request_reboot, rollback, status

from .errors import reported


def _runtime(obj) -> Runtime:
    return Runtime.from_environment(obj.data)


@click.group("firmware")
def firmware_group():
    """Firmware: the A/B slots, installing signed update bundles, rollback."""


@firmware_group.command("status")
@click.pass_obj
def firmware_status(obj):
    """Running version and slot, the other slot, and what the last update did."""
    current = status(_runtime(obj))
    booted = current.booted
    click.echo(f"running: gatebox {current.running_version}"
               + (f" in slot {booted.bootname} ({booted.name})" if booted else ""))
    for slot in current.state.slots.values():
        marks = ["booted" if slot is booted else "inactive", "good" if slot.good else "not marked good"]
        if slot.bootname == current.state.primary:
            marks.append("boots next")
        click.echo(f"slot {slot.bootname}: version {slot.version or 'unknown'} ({', '.join(marks)})")
    for line in (current.problem, current.abandoned, current.pending):
        if line:
            click.echo(line)


@firmware_group.command("install")
@click.argument("bundle", type=click.Path(dir_okay=False))
@click.option("--yes", is_flag=True, help="Do not ask before installing.")
@click.option("--allow-downgrade", is_flag=True,
              help="Install even when the bundle is not newer than the running firmware. "
                   "An older one is still refused by the update engine unless root has "
                   "created /data/root/allow-downgrade (used up by that one install).")
@click.pass_obj
def firmware_install(obj, bundle, yes, allow_downgrade):
    """Check BUNDLE, then install it into the inactive slot (boots after a reboot)."""
    runtime = _runtime(obj)
    with reported():
        info = check_bundle(runtime, bundle, allow_downgrade=allow_downgrade)
        click.echo(f"{bundle}: version {info.version} for {info.compatible}, "
                   f"signed by {info.signer or 'a trusted key'}")
        if not yes:
            click.confirm(f"Install version {info.version} into the inactive slot?", abort=True)
        install(runtime, bundle, allow_downgrade=allow_downgrade,
                on_progress=lambda percent, message: click.echo(f"{percent:3d}% {message}"))
    click.echo(f"installed version {info.version}; `gatebox firmware reboot` runs it")


@firmware_group.command("rollback")
@click.pass_obj
def firmware_rollback(obj):
    """Boot the other slot's firmware next, when it is known to boot."""
    with reported():
        click.echo(rollback(_runtime(obj)))


@firmware_group.command("reboot")
@click.pass_obj
def firmware_reboot(obj):
    """Ask the box to reboot (gatebox-reboot.path acts on it)."""
    request_reboot(_runtime(obj))
    click.echo("reboot requested")


COMMANDS = [firmware_group]
