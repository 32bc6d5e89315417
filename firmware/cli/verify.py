"""`gatebox verify`: Email Server > Address Verification from the shell:
what the checks would answer for an address, the LDAP address list (its
state, Update Now) and the remembered callout answers."""

from __future__ import annotations

import asyncio
import datetime

import click

from firmware.mail import extensions, resolver
from firmware.mail.verify import explain, ldap_sync
from firmware.mail.verify.cache import VerifyCache

from .errors import fail

TEST_SECONDS = 60


@click.group("verify")
def verify():
    """Address Verification: test an address, the LDAP list, remembered answers."""


@verify.command("test")
@click.argument("address")
@click.option("--client-ip", default=explain.OUTSIDE_CLIENT, show_default=True,
              help="The sending server's address, for SPF.")
@click.pass_obj
def test(obj, address, client_ip):
    """What each enabled check would answer for ADDRESS, as sender and as recipient."""
    store = obj.store
    try:
        answers = asyncio.run(asyncio.wait_for(explain.explain(
            extensions.policy(store), store.snapshot(), address, resolver.shared(), client_ip),
            TEST_SECONDS))
    except ValueError as error:
        fail(str(error))
    except asyncio.TimeoutError:
        fail(f"the checks took longer than {TEST_SECONDS} s")
    if not answers:
        click.echo("No Address Verification check is on.")
    for answer in answers:
        found = f"  [{answer.detail}]" if answer.detail else ""
        click.echo(f"{answer.role:12}  {answer.check:24}  {answer.verdict}{found}")


def _when(moment) -> str:
    if moment is None:
        return "never"
    return datetime.datetime.fromtimestamp(moment, datetime.timezone.utc).strftime(
        "%Y-%m-%d %H:%M:%S UTC")


@verify.command("ldap")
@click.option("--update-now", is_flag=True, help="Read the address list from the server now.")
@click.pass_obj
def ldap(obj, update_now):
    """The LDAP address list: when it was read, how many addresses, the last error."""
    store = obj.store
    if update_now:
        if not store.get("email.ldap_server"):
            fail("no LDAP Server is set (email.ldap_server)")
        status = ldap_sync.sync(store)
        store.audit("cli", "LDAP address list update", "",
                    status.error or f"{status.count} addresses")
    else:
        status = ldap_sync.status(store)
    click.echo(f"last read:    {_when(status.succeeded)}")
    click.echo(f"addresses:    {status.count}")
    click.echo(f"last attempt: {_when(status.attempted)}")
    if status.error:
        click.echo(f"last error:   {status.error}")
    if update_now and status.error:
        fail(f"the LDAP address list was not read: {status.error}")


@verify.command("forget")
@click.pass_obj
def forget(obj):
    """Forget every remembered callout answer."""
    VerifyCache(obj.store).forget()
    obj.store.audit("cli", "forget remembered address verification answers")
    click.echo("Forgot every remembered callout answer.")


COMMANDS = [verify]
