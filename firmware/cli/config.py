"""`gatebox config show | get | set | load`.

    gatebox config set KEY VALUE            one setting (the original form)
    gatebox config set K=V [K=V ...]        several, in one transaction
    gatebox config load FILE                lines `key = value` (or key=value),
                                            blank lines and lines starting with
                                            `#` ignored; one transaction; `-` is stdin

Every value is checked before any is written: one refusal and nothing changes."""

from __future__ import annotations

import click

from firmware.config import declarations

from .errors import fail, reported


@click.group()
def config():
    """Show and change settings."""


@config.command("show")
@click.option("--menu", help="Only settings under this menu path, e.g. 'Email Server > Settings'.")
@click.pass_obj
def config_show(obj, menu):
    """Every setting with its value and menu path."""
    values = obj.store.all()
    for key, setting in declarations().items():
        if menu and not setting.menu.lower().startswith(menu.lower()):
            continue
        shown = obj.store.render(key, values[key])
        click.echo(f"{key} = {shown}    # {setting.menu} > {setting.label}")


@config.command("get")
@click.argument("key")
@click.pass_obj
def config_get(obj, key):
    """Print one setting's value."""
    with reported():
        click.echo(obj.store.render(key, obj.store.get(key)))


def assignments(arguments: tuple) -> dict:
    """('KEY', 'VALUE') or ('K=V', ...) -> {key: raw value}, in the order given."""
    if len(arguments) == 2 and "=" not in arguments[0]:
        return {arguments[0]: arguments[1]}
    values = {}
    for argument in arguments:
        key, equals, value = argument.partition("=")
        if not equals or not key.strip():
            fail(f"'{argument}': expected KEY=VALUE (or the two arguments KEY VALUE)")
        values[key.strip()] = value
    if not values:
        fail("nothing to set: give KEY=VALUE [KEY=VALUE ...] or KEY VALUE")
    return values


def parse_settings_file(text: str, name: str) -> dict:
    """`key = value` lines -> {key: raw value}; a value keeps any '#' it holds."""
    values = {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key, equals, value = stripped.partition("=")
        if not equals or not key.strip():
            fail(f"{name}:{number}: expected 'key = value', got {stripped!r}")
        values[key.strip()] = value.strip()
    return values


def _apply(obj, values: dict):
    with reported():
        changes = {change.key: change for change in obj.store.set_many(values, actor="cli")}
    for key in values:
        change = changes.get(key)
        if change is None:
            click.echo(f"{key} unchanged")
            continue
        click.echo(f"{key} = {obj.store.render(key, change.new)}")
        if change.warning:
            click.echo(f"warning: {change.warning}", err=True)


@config.command("set", context_settings={"ignore_unknown_options": True})
@click.argument("arguments", nargs=-1, required=True, metavar="KEY VALUE | KEY=VALUE...")
@click.pass_obj
def config_set(obj, arguments):
    """Change settings (validated; running services pick them up). Several
    KEY=VALUE pairs are written in one transaction."""
    _apply(obj, assignments(arguments))


@config.command("load")
@click.argument("file", type=click.File("r"))
@click.pass_obj
def config_load(obj, file):
    """Set every `key = value` line of FILE in one transaction."""
    values = parse_settings_file(file.read(), file.name)
    if not values:
        fail(f"{file.name}: no settings in it")
    _apply(obj, values)


COMMANDS = [config]
