"""`gatebox antispam dkim` and `gatebox antispam forwarder`: the DKIM keys
and trusted forwarders of Anti-Spam > DKIM & DMARC from the shell."""

from __future__ import annotations

import asyncio
import datetime

import click

from firmware.cli.errors import reported
from firmware.mail import resolver

from . import forwarders, keys

CHECK_SECONDS = 30


def _when(stamp) -> str:
    if stamp is None:
        return "-"
    return datetime.datetime.fromtimestamp(stamp, datetime.timezone.utc).strftime(
        "%Y-%m-%d %H:%M UTC")


def _echo_key(key: keys.Key):
    state = "signing" if key.active else f"retired {_when(key.retired)}"
    click.echo(f"{key.domain}  {key.selector}  {key.algorithm}  {state}  created "
               f"{_when(key.created)}")
    click.echo(f"  {key.record_name}  TXT  " + " ".join(f'"{s}"' for s in key.record_strings))


@click.group("dkim")
def dkim_group():
    """DKIM signing keys per local domain: RSA 2048 and Ed25519."""


@dkim_group.command("generate")
@click.argument("domain")
@click.pass_context
def dkim_generate(ctx, domain):
    """Make the keys of local DOMAIN and print the DNS records to publish."""
    with reported(keys.KeyProblem):
        made = keys.generate(ctx.obj.store, domain, actor="cli")
    for key in made:
        _echo_key(key)


@dkim_group.command("rotate")
@click.argument("domain")
@click.pass_context
def dkim_rotate(ctx, domain):
    """New keys under a new selector; the old selector stops signing but is
    kept (its record must stay in DNS a while) until removed."""
    with reported(keys.KeyProblem):
        made = keys.rotate(ctx.obj.store, domain, actor="cli")
    for key in made:
        _echo_key(key)


@dkim_group.command("remove")
@click.argument("domain")
@click.argument("selector")
@click.pass_context
def dkim_remove(ctx, domain, selector):
    """Remove a retired SELECTOR of DOMAIN and its key."""
    with reported(keys.KeyProblem):
        gone = keys.remove(ctx.obj.store, domain, selector, actor="cli")
    click.echo(f"removed selector {gone.selector} of {gone.domain}; its DNS record "
               f"{gone.record_name} may go")


@dkim_group.command("show")
@click.argument("domain", required=False)
@click.option("--check-dns", is_flag=True, help="Also ask DNS whether each record is published.")
@click.pass_context
def dkim_show(ctx, domain, check_dns):
    """The keys (of DOMAIN, or all) and the DNS TXT record of each."""
    store = ctx.obj.store
    found = keys.keys(store, domain)
    settings = store.snapshot()
    for key in found:
        _echo_key(key)
        if check_dns:
            state = asyncio.run(asyncio.wait_for(
                keys.published(key, resolver.shared(), settings), CHECK_SECONDS))
            click.echo(f"  DNS: {state.state}: {state.detail}")
    click.echo(f"{len(found)} key{'' if len(found) == 1 else 's'}", err=True)


@click.group("forwarder")
def forwarder_group():
    """Trusted forwarders: DMARC failures of their mail are only scored."""


@forwarder_group.command("add")
@click.argument("entry")
@click.option("--note", default="", help="What the forwarder is (a mailing list, ...).")
@click.pass_context
def forwarder_add(ctx, entry, note):
    """ENTRY: an IP address or network, or a domain (the client's verified reverse DNS)."""
    with reported(forwarders.ForwarderError):
        made = forwarders.add(ctx.obj.store, entry, note, actor="cli")
    click.echo(f"added trusted forwarder {made.entry}")


@forwarder_group.command("remove")
@click.argument("entry")
@click.pass_context
def forwarder_remove(ctx, entry):
    with reported(forwarders.ForwarderError):
        gone = forwarders.remove(ctx.obj.store, entry, actor="cli")
    click.echo(f"removed trusted forwarder {gone}")


@forwarder_group.command("show")
@click.pass_context
def forwarder_show(ctx):
    found = forwarders.entries(ctx.obj.store)
    for forwarder in found:
        click.echo(f"{forwarder.entry}  {_when(forwarder.added)}  {forwarder.note}".rstrip())
    click.echo(f"{len(found)} trusted forwarder{'' if len(found) == 1 else 's'}", err=True)


COMMANDS = [dkim_group, forwarder_group]
