"""`gatebox antispam learn` and `gatebox antispam bayes`: teaching and
keeping the Bayes database from the shell. Dovecot's IMAPSieve runs
`learn --spam -` / `learn --ham -` when a user moves mail into or out of
Junk (see sieve.py)."""

from __future__ import annotations

import sys

import click

from firmware.cli.errors import fail

from ..license import is_licensed
from . import check, store as bayes_store
from .learn import MAX_MESSAGE, learn
from .settings import MIN_HAM, MIN_SPAM

NOT_LICENSED = ("the Anti-Spam SoftPak is not licensed on this box, so the Bayes filter cannot "
                "learn; activate a key with 'gatebox license activate KEY'. What it learnt is kept.")


def _read(name: str) -> bytes:
    if name == "-":
        return sys.stdin.buffer.read(MAX_MESSAGE + 1)[:MAX_MESSAGE]
    try:
        with open(name, "rb") as handle:
            return handle.read(MAX_MESSAGE)
    except OSError as error:
        raise ValueError(f"{name}: {error.strerror or error}") from None


@click.command("learn")
@click.option("--spam", "spam", flag_value=True, default=None, help="The messages are spam.")
@click.option("--ham", "spam", flag_value=False, help="The messages are not spam.")
@click.option("--source", default="cli", show_default=True, hidden=True,
              help="Where the lesson came from, for the log (imap, ...).")
@click.argument("files", nargs=-1, required=True)
@click.pass_obj
def learn_command(obj, spam, source, files):
    """Teach the Bayes filter: each FILE is one message (- reads one from stdin)."""
    if spam is None:
        fail("say what the messages are: --spam or --ham")
    store = obj.store
    if not is_licensed(store):
        fail(NOT_LICENSED)
    failed = 0
    for name in files:
        try:
            said = learn(store, _read(name), spam, source[:20])
        except ValueError as error:
            failed += 1
            click.echo(f"{name}: {error}", err=True)
            continue
        click.echo(f"{name}: {said}")
    if failed:
        fail(f"{failed} of {len(files)} message(s) not learnt")


@click.group("bayes")
def bayes_group():
    """Anti-Spam > Bayes: what the filter has learnt, and starting over."""


@bayes_group.command("status")
@click.pass_obj
def bayes_status(obj):
    """Spam and ham learnt, tokens, and whether it votes yet."""
    store = obj.store
    totals = bayes_store.for_data(store.data_dir).totals()
    click.echo(f"spam learnt: {totals.spam}")
    click.echo(f"ham learnt: {totals.ham}")
    click.echo(f"tokens: {totals.tokens}")
    missing = check.readiness(totals, store.get(MIN_SPAM), store.get(MIN_HAM))
    click.echo("votes: yes" if not missing else f"votes: no (needs {missing})")


@bayes_group.command("reset")
@click.option("--yes", is_flag=True, help="Do not ask.")
@click.pass_obj
def bayes_reset(obj, yes):
    """Forget everything learnt: the filter stops voting until it learns again."""
    store = obj.store
    if not yes:
        click.confirm("Forget every token and learnt message?", abort=True)
    bayes_store.for_data(store.data_dir).reset()
    store.audit("cli", "bayes: reset, everything learnt forgotten")
    click.echo("the Bayes database is empty")


COMMANDS = [learn_command, bayes_group]
