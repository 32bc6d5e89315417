"""`gatebox diagnose`: Support & Diagnostics > Email Diagnostics from the
shell. Each check's result is printed as it finishes; the exit status is 1
when any check failed."""

from __future__ import annotations

import click

from firmware.mail import diagnostics

MARKS = {diagnostics.PASS: "PASS", diagnostics.WARN: "WARN", diagnostics.FAIL: "FAIL"}


@click.command("diagnose")
@click.option("--public-address", default="", metavar="IP",
              help="The box's Internet address, for the PTR check (default: the Host Name's "
                   "A record).")
@click.option("--cafile", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Further CA certificates to trust for the ISP's TLS.")
@click.pass_obj
def diagnose(obj, public_address, cafile):
    """Check the mail configuration and the ISP's mail systems."""
    context = diagnostics.context_for(obj.store, public_address, cafile)
    checks = diagnostics.plan(context)
    click.echo(f"Email Diagnostics for server type {context['email.server_type']}: "
               f"{len(checks)} checks")
    failures = 0
    for result in diagnostics.run(checks, context):
        failures += result.status == diagnostics.FAIL
        click.echo(f"{MARKS[result.status]}  {result.title}: {result.reason}")
        if result.fix:
            click.echo(f"      fix: {result.fix}")
    click.echo(f"{failures} failed" if failures else "no check failed")
    if failures:
        raise SystemExit(1)


COMMANDS = (diagnose,)
