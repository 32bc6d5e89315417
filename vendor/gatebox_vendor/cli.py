"""`gatebox-vendor`: keygen, issue, activation codes, the license service."""

from __future__ import annotations

import ssl
import sys

import click

from . import signing
from .codes import CodeStore


def _fail(message: str):
    click.echo(f"gatebox-vendor: {message}", err=True)
    sys.exit(1)


def _grants(values) -> dict:
    try:
        return dict(signing.parse_grant(v) for v in values)
    except ValueError as error:
        _fail(str(error))


def _private_key(path):
    try:
        return signing.load_private_key(path)
    except (OSError, ValueError) as error:
        _fail(f"cannot read the signing key: {error}")


@click.group()
def main():
    """The vendor's license tools (never installed on a box)."""


@main.command()
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False))
@click.option("--name", default="vendor", show_default=True)
def keygen(out_dir, name):
    """Make a signing key pair: NAME.key (private, mode 600) and NAME.pub."""
    try:
        private_path, public_path = signing.keygen(out_dir, name)
    except FileExistsError:
        _fail(f"{out_dir}/{name}.key exists; refusing to overwrite a signing key")
    except ValueError as error:
        _fail(str(error))
    click.echo(f"private key: {private_path}  (keep it offline)")
    click.echo(f"public key:  {public_path}  (ships in firmware/licensing/trusted_keys/)")


@main.command("issue")
@click.option("--key", "key_path", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--serial", required=True, help="The box's serial ('gatebox license serial').")
@click.option("--softpak", "softpaks", multiple=True, required=True,
              help="ID[=YYYY-MM-DD]; without a date the grant is perpetual. Repeatable.")
@click.option("--issued", type=click.DateTime(["%Y-%m-%d"]), help="Issue date (default today).")
@click.option("--wrap", is_flag=True, help="Print the key over several lines.")
def issue_command(key_path, serial, softpaks, issued, wrap):
    """Issue a license key; the key alone is printed on the last line."""
    grants = _grants(softpaks)
    try:
        text = signing.issue(_private_key(key_path), serial, grants,
                             issued.date() if issued else None, wrap=wrap)
    except ValueError as error:
        _fail(str(error))
    summary = ", ".join(f"{k}={v or 'perpetual'}" for k, v in sorted(grants.items()))
    click.echo(f"license for serial {serial}: {summary}")
    click.echo(text)


@main.group()
def code():
    """Activation codes held by the license service."""


@code.command("add")
@click.option("--db", required=True, type=click.Path(dir_okay=False))
@click.option("--softpak", "softpaks", multiple=True, required=True, help="ID[=YYYY-MM-DD]. Repeatable.")
@click.option("--code", "given", help="Use this code instead of a random one.")
def code_add(db, softpaks, given):
    """Add an activation code; it is printed on the last line."""
    store = CodeStore(db)
    try:
        click.echo(store.add(_grants(softpaks), given))
    except Exception as error:  # sqlite3.IntegrityError: the code exists
        _fail(f"cannot add the code: {error}")
    finally:
        store.close()


@code.command("list")
@click.option("--db", required=True, type=click.Path(exists=True, dir_okay=False))
def code_list(db):
    store = CodeStore(db)
    for row in store.list():
        click.echo(f"{row['code']}  {row['grants']}  {row['serial'] or 'unused'}")
    store.close()


@main.command()
@click.option("--db", required=True, type=click.Path(dir_okay=False))
@click.option("--key", "key_path", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8443, show_default=True, type=int, help="0 picks a free port.")
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False))
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False))
def serve(db, key_path, host, port, tls_cert, tls_key):
    """Run the license service. Prints 'listening on URL' once it accepts connections."""
    from werkzeug.serving import make_server
    from .service import create_app
    if bool(tls_cert) != bool(tls_key):
        _fail("--tls-cert and --tls-key go together")
    context = None
    if tls_cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(tls_cert, tls_key)
    app = create_app(db, _private_key(key_path))
    server = make_server(host, port, app, threaded=True, ssl_context=context)
    scheme = "https" if context else "http"
    click.echo(f"listening on {scheme}://{host}:{server.port}", err=False)
    sys.stdout.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
