"""`gatebox usb watch | offers | scan DIR`."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from firmware.system.usb import offers
from firmware.system.usb.watch import watch


@click.group("usb")
def usb_group():
    """Update bundles and license keys on USB sticks."""


@usb_group.command("watch")
@click.pass_obj
def usb_watch(obj):
    """Mount inserted USB sticks read-only and record what they offer (runs as root)."""
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    watch(obj.data)


@usb_group.command("offers")
@click.pass_obj
def usb_offers(obj):
    """What the inserted sticks offer."""
    for offer in offers.all_offers(obj.data):
        click.echo(f"{offer.id}  {offer.kind:7}  {offer.device}: {offer.name}  ({offer.preview})")


@usb_group.command("scan")
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
def usb_scan(directory):
    """List what a mounted stick (or any directory) would offer."""
    for offer in offers.scan(Path(directory), Path(directory).name):
        click.echo(f"{offer.kind:7}  {offer.name}  ({offer.preview})")


COMMANDS = [usb_group]
