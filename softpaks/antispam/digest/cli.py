"""`gatebox antispam digest`: the quarantine digest from the shell."""

from __future__ import annotations

import click

from ..license import is_licensed
from . import service


@click.group("digest")
def digest():
    """Anti-Spam > Quarantine Digest: the daily mail listing each recipient's held spam."""


@digest.command("send")
@click.pass_obj
def digest_send(obj):
    """Send the digest now (what was held since the last one), whatever the time."""
    if not is_licensed(obj.store):
        click.echo("note: the Anti-Spam SoftPak is not licensed on this box: its links would "
                   "not open until a key is activated", err=True)
    mails, listed = service.send_now(obj.store)
    click.echo(f"{mails} digest(s) queued, listing {listed} message(s)")


@digest.command("expire")
@click.pass_obj
def digest_expire(obj):
    """Delete the spam that outlived Keep Quarantined Spam now (hourly otherwise)."""
    gone = service.expire_spam(obj.store)
    click.echo(f"{gone} spam message(s) deleted from the quarantine")


COMMANDS = [digest]
