"""The one way a `gatebox` command ends in error: `gatebox: MESSAGE` on
stderr and exit status 1. A refused setting's message names the setting and
its rule (SettingError); the other refusals below say what was wrong in the
same way."""

from __future__ import annotations

import contextlib
import sys

import click

from firmware.accounts import AccountError
from firmware.config import SchemaOutOfDate, SettingError, StoreMissing
from firmware.licensing import LicenseError, NoSerial
from firmware.system.update.errors import UpdateError

EXIT_FAILURE = 1

# Errors whose text is meant for the administrator as it stands.
REPORTED = (SettingError, AccountError, UpdateError, LicenseError, NoSerial, StoreMissing,
            SchemaOutOfDate)


def fail(message: str):
    click.echo(f"gatebox: {message}", err=True)
    sys.exit(EXIT_FAILURE)


@contextlib.contextmanager
def reported(*more):
    """Ends the command through fail() on any of REPORTED, or the error
    classes given (a SoftPak passes its own)."""
    try:
        yield
    except REPORTED + more as error:
        fail(str(error))


def fail_all(messages: list[str]):
    """Several refusals from one command (e.g. some of the queue ids given): each
    on its own line, then the same exit as fail()."""
    for message in messages:
        click.echo(f"gatebox: {message}", err=True)
    if messages:
        sys.exit(EXIT_FAILURE)
