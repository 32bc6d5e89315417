"""`gatebox antispam rules`: the content rules from the shell. `list` shows
the built-in rules (Default, Heuristic, GTUBE) with their scores and the
administrator's Custom rules; `add` and `remove` change the Custom rules."""

from __future__ import annotations

import click

from firmware.cli.errors import reported

from ..license import is_licensed
from . import custom
from .gtube import GTUBE
from .heuristic import HEURISTIC_RULES
from .mime_rules import DEFAULT_RULES, STRICT_MIME_RULES

NOT_FILTERING = ("note: the Anti-Spam SoftPak is not licensed on this box: the rules are kept "
                 "but score nothing until a key is activated ('gatebox license activate KEY')")


def _store(ctx):
    store = ctx.obj.store
    if not is_licensed(store):
        click.echo(NOT_FILTERING, err=True)
    return store


@click.group("rules")
def rules_group():
    """Anti-Spam > Rules: the Default, Heuristic and Custom content rules.

    Which sets score a message is the Content Filter's choice (Filter Type
    Default and/or Custom, Heuristic filter: `gatebox antispam filter`)."""


def _table(rows):
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        click.echo("  ".join(value.ljust(width) for value, width in zip(row, widths)) +
                   "  " + row[-1])


@rules_group.command("list")
@click.option("--custom", "only_custom", is_flag=True, help="Only the Custom rules.")
@click.pass_context
def rules_list(ctx, only_custom):
    """The rules: set, name, score and what each looks for."""
    store = _store(ctx)
    rows = [("SET", "NAME", "SCORE", "DESCRIPTION")]
    if not only_custom:
        for label, found in (("gtube", (GTUBE,)), ("default", DEFAULT_RULES),
                             ("strict-mime", STRICT_MIME_RULES), ("heuristic", HEURISTIC_RULES)):
            rows += [(label, rule.name, f"{rule.score:g}", rule.description) for rule in found]
    mine = custom.rules(store)
    rows += [("custom", rule.symbol, "spam" if rule.spam else f"{rule.score:g}",
              (rule.description + ": " if rule.description else "") + rule.summary())
             for rule in mine]
    _table(rows)
    click.echo(f"{len(mine)} custom rule{'' if len(mine) == 1 else 's'}", err=True)


@rules_group.command("add")
@click.option("--header", "header", metavar="NAME",
              help="Look in this header (Subject, X-Mailer, ...).")
@click.option("--any-header", "any_header", is_flag=True, help="Look in every header.")
@click.option("--body", "body", is_flag=True, help="Look in the body (text and HTML, decoded).")
@click.option("--regex", "regex", is_flag=True,
              help="PATTERN is a regular expression (case-insensitive); "
                   "without it a substring, case-insensitive.")
@click.option("--score", "action", metavar="N|spam", required=True,
              help="The score it adds (-100 to 100), or 'spam': spam at every level.")
@click.option("--description", "description", default="", help="What the rule is for.")
@click.argument("pattern")
@click.pass_context
def rules_add(ctx, header, any_header, body, regex, action, description, pattern):
    """Add a Custom rule looking for PATTERN."""
    chosen = [name for name, given in (("header", header), ("headers", any_header),
                                       ("body", body)) if given]
    if len(chosen) != 1:
        raise click.UsageError("say where to look: --header NAME, --any-header or --body")
    store = _store(ctx)
    with reported(custom.CustomRuleError):
        made = custom.add(store, chosen[0], header or "", "regex" if regex else "substring",
                          pattern, action, description, actor="cli")
    click.echo(f"added {made.symbol}: {made.summary()}, {made.action}")


@rules_group.command("remove")
@click.argument("rule_id", metavar="ID")
@click.pass_context
def rules_remove(ctx, rule_id):
    """Remove Custom rule ID (a number, or CUSTOM_RULE_N)."""
    store = _store(ctx)
    with reported(custom.CustomRuleError):
        gone = custom.remove(store, rule_id, actor="cli")
    click.echo(f"removed {gone.symbol}: {gone.summary()}")


COMMANDS = [rules_group]
