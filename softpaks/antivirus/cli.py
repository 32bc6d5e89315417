"""`gatebox antivirus import FILE... | status | update`: the Anti-Virus
SoftPak's signatures from the shell.

Signatures can be imported and updated while the SoftPak is not licensed
(they are ready the moment a key is activated); the commands then say that
nothing is scanned until then."""

from __future__ import annotations

import datetime

import click

from firmware.cli.errors import fail, reported

from . import signatures, updates
from .license import is_licensed

NOT_SCANNING = ("note: the Anti-Virus SoftPak is not licensed on this box: signatures are kept "
                "but nothing is scanned until a key is activated ('gatebox license activate KEY')")


@click.group("antivirus")
def antivirus():
    """Anti-Virus: ClamAV signatures, their status and updates."""


def _store(ctx):
    store = ctx.obj.store
    if not is_licensed(store):
        click.echo(NOT_SCANNING, err=True)
    return store


@antivirus.command("import")
@click.argument("files", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, readable=True))
@click.pass_context
def import_command(ctx, files):
    """Load signature files: .cvd/.cld (ClamAV's databases), .cdiff (an
    incremental update of one), .cud (built with sigtool --unsigned), or
    .hdb/.ndb (local signatures). All are checked first; one refused file
    imports none."""
    store = _store(ctx)
    with reported(signatures.SignatureError):
        imported = signatures.import_files(ctx.obj.data, files, reload=False)
    for item in imported:
        click.echo(f"imported {item.describe()}")
    store.audit("cli", "antivirus signatures imported", new=", ".join(i.name for i in imported))
    click.echo(signatures.reload_clamd(ctx.obj.data))


@antivirus.command("status")
@click.pass_context
def status_command(ctx):
    """The engine version, the signature version and date, the files, and
    the state of the scanner and of updates."""
    _store(ctx)
    current = signatures.status(ctx.obj.data)
    click.echo(f"engine: ClamAV {current.engine or 'unknown'}")
    if current.signature_version is None:
        click.echo("signatures: none (import a file or run 'gatebox antivirus update')")
    else:
        click.echo(f"signatures: version {current.signature_version}, "
                   f"{_date(current.signature_date)} ({_age(current.age)})")
        if current.stale:
            click.echo("warning: the signatures are older than 3 days")
    click.echo(f"state: {current.state}")
    for item in current.files:
        version = f"version {item.version}" if item.version is not None else "local"
        click.echo(f"file: {item.name}  {item.size} bytes  {version}")
    state = updates.read_state(ctx.obj.data)
    if state.last_run:
        click.echo(f"last update: {state.last_run}: {state.result}: {state.message}")
    if state.cooling_down():
        click.echo(f"updates wait until {state.cooldown_until} (the mirrors refused this box)")


@antivirus.command("update")
@click.pass_context
def update_command(ctx):
    """Check for new signatures now (online or the LAN mirror, as
    Anti-Virus > Signatures says)."""
    store = _store(ctx)
    with reported(updates.UpdateRefused):
        state = updates.update_now(ctx.obj.data, store)
    if state.result in (updates.FAILED, updates.COOLDOWN):
        fail(f"update {state.result}: {state.message}")
    click.echo(f"{state.result}: {state.message}")


def _date(value: datetime.datetime | None) -> str:
    return value.astimezone().strftime("%Y-%m-%d %H:%M %Z") if value else "date unknown"


def _age(age: datetime.timedelta | None) -> str:
    if age is None:
        return "age unknown"
    hours = int(age.total_seconds() // 3600)
    return f"{hours // 24} day(s) {hours % 24} hour(s) old" if hours >= 24 else f"{hours} hour(s) old"


COMMANDS = [antivirus]
