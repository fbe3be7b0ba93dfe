"""``flask --app example_app`` commands: ``init``, ``mint USER`` and ``demo``.

These are the only places that create the demo IdP's key pair (through
:func:`~example_app.idp.init_demo_idp`) and the server's signing key
(through :func:`~example_app.oauth.init_signing_key`); creating the app
never does.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import click
from flask import Flask
from flask import current_app
from flask.cli import with_appcontext

from .bootstrap import initialize
from .idp import CERTIFICATE_FILENAME
from .idp import DEMO_IDP_ENTITY_ID
from .idp import init_demo_idp
from .idp import mint_assertion
from .keys import SIGNING_KEY_FILENAME
from .oauth import init_signing_key
from .routes import JWKS_PATH

__all__ = ["register_commands", "init_command", "mint_command", "demo_command"]

log = logging.getLogger(__name__)

#: Where ``create_app`` keeps its ``config`` argument, so ``demo`` can serve
#: a twin of the app on another port.
FACTORY_CONFIG_KEY = "example_app.factory_config"


def register_commands(app: Flask) -> None:
    app.cli.add_command(init_command)
    app.cli.add_command(mint_command)
    app.cli.add_command(demo_command)


def _require_demo_idp() -> None:
    if not current_app.config["EXAMPLE_APP_DEMO_IDP"]:
        raise click.UsageError("The demo IdP is disabled (EXAMPLE_APP_DEMO_IDP = False).")


@click.command("init")
@with_appcontext
def init_command() -> None:
    """Create the database, the signing key, the demo IdP, a demo user and a demo client."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]  # a LocalProxy
    credentials = initialize()
    init_signing_key(app)
    if app.config["EXAMPLE_APP_DEMO_IDP"]:
        init_demo_idp(app)
    cfg = app.config
    base_url = cfg["EXAMPLE_APP_BASE_URL"]
    click.echo("Initialized." if credentials.created else "Already initialized.")
    click.echo(f"  base URL:       {base_url} (EXAMPLE_APP_BASE_URL)")
    click.echo("                  Serve the app at this URL, or set EXAMPLE_APP_BASE_URL to the")
    click.echo("                  URL it is served at: metadata, Audience and Recipient use it.")
    click.echo(f"  database:       {cfg['SQLALCHEMY_DATABASE_URI']}")
    click.echo(f"  token endpoint: {base_url}/oauth/token")
    click.echo(f"  client_id:      {credentials.client_id}")
    click.echo(f"  client_secret:  {credentials.client_secret}")
    legacy_client = cfg.get("SAML2_BEARER_LEGACY_CLIENT_ID")
    if legacy_client:
        click.echo(f"  legacy client:  {legacy_client} (grant_type=assertion without credentials)")
    click.echo(f"  demo user:      {credentials.user_email}")
    click.echo(f"  signing key:    {app.instance_path}/{SIGNING_KEY_FILENAME}")
    click.echo(f"  JWKS:           {base_url}{JWKS_PATH}")
    click.echo("Identity providers must send:")
    click.echo(f"  Audience:       {cfg['SAML2_BEARER_AUDIENCES'][0]}")
    click.echo(f"  Recipient:      {cfg['SAML2_BEARER_RECIPIENTS'][0]}")
    if cfg["EXAMPLE_APP_DEMO_IDP"]:
        click.echo(f"Demo IdP:         {DEMO_IDP_ENTITY_ID}")
        click.echo(f"  certificate:    {app.instance_path}/{CERTIFICATE_FILENAME}")
    click.echo("Next: flask --app example_app mint alice@example.com")


@click.command("mint")
@click.argument("user")
@click.option(
    "--lifetime", type=click.IntRange(1, 7200), default=300, show_default=True, help="Seconds."
)
@with_appcontext
def mint_command(user: str, lifetime: int) -> None:
    """Print a base64url assertion from the demo IdP whose NameID is USER."""
    _require_demo_idp()
    app = current_app._get_current_object()  # type: ignore[attr-defined]  # a LocalProxy
    init_signing_key(app)
    click.echo(mint_assertion(app, user, lifetime=timedelta(seconds=lifetime)))


@click.command("demo")
@with_appcontext
def demo_command() -> None:
    """Run the whole flow against a real HTTP server on a free local port."""
    from .app import create_app
    from .demo import run_demo
    from .demo import serve

    _require_demo_idp()
    cli_app = current_app._get_current_object()  # type: ignore[attr-defined]  # a LocalProxy
    credentials = initialize()
    # Before the served app is created, so that it trusts the demo IdP and
    # signs its tokens from the start.
    init_demo_idp(cli_app)
    init_signing_key(cli_app)
    config = dict(cli_app.extensions.get(FACTORY_CONFIG_KEY) or {})

    def create_served_app(base_url: str) -> Flask:
        return create_app(
            {**config, "EXAMPLE_APP_BASE_URL": base_url},
            instance_path=cli_app.instance_path,
        )

    with serve(create_served_app) as (app, base_url):
        click.echo(f"Serving the example app at {base_url} (werkzeug, in a thread)")
        ok = run_demo(app, base_url, credentials)
    if not ok:
        raise SystemExit(1)
