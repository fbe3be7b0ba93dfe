"""``flask --app example_app demo``: the whole RFC 7522 flow over real HTTP.

The app is served by werkzeug on a free ``127.0.0.1`` port in a thread; a
plain :mod:`urllib` client then discovers the token endpoint (RFC 8414),
exchanges an assertion from the demo IdP with HTTP Basic client
authentication (:rfc:`7522#section-2.1`), calls the protected API with the
token, and replays the assertion to show the ``invalid_grant`` refusal.

The transcript goes to standard output. The served app's own log lines,
among them the rejection of the replayed assertion with ``reason=replayed``,
go to standard error (see :mod:`example_app.logs`); in a terminal they appear
in place, between the request and its response.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import click
from flask import Flask
from werkzeug.serving import WSGIRequestHandler
from werkzeug.serving import make_server

from authlib_saml2_grant import SAML2_BEARER_GRANT_TYPE
from authlib_saml2_grant import assertion_rejected

from .bootstrap import Credentials
from .idp import mint_assertion

__all__ = ["HttpResult", "run_demo", "serve"]

log = logging.getLogger(__name__)

_TIMEOUT = 10


@dataclass(frozen=True)
class HttpResult:
    """One HTTP exchange as the demo shows it."""

    status: int
    reason: str
    body: Any


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass  # the demo prints each exchange itself


def _not_ready(environ, start_response):
    start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
    return [b"starting"]


@contextmanager
def serve(create_app: Callable[[str], Flask]):
    """Serve the app returned by ``create_app(base_url)`` on a free local port.

    The port is chosen by the OS when binding, so the base URL (and with it
    the accepted ``Audience`` and ``Recipient``) is known before the app is
    created. Yields ``(app, base_url)``; the server stops on exit.
    """
    server = make_server("127.0.0.1", 0, _not_ready, threaded=True, request_handler=_QuietHandler)
    base_url = f"http://127.0.0.1:{server.server_port}"
    app = create_app(base_url)
    server.app = app
    thread = threading.Thread(target=server.serve_forever, name="example-app-demo", daemon=True)
    thread.start()
    try:
        yield app, base_url
    finally:
        server.shutdown()
        server.server_close()
        thread.join(_TIMEOUT)


def http(method: str, url: str, headers: dict | None = None, form: dict | None = None):
    """Send one request with :mod:`urllib`, never through a proxy."""
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        request.add_header("Content-Type", "application/x-www-form-urlencoded")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=_TIMEOUT) as response:
            status, reason, raw = response.status, response.reason, response.read()
    except urllib.error.HTTPError as exc:
        status, reason, raw = exc.code, exc.reason, exc.read()
    try:
        body = json.loads(raw)
    except ValueError:
        body = raw.decode("utf-8", "replace")
    return HttpResult(status, str(reason), body)


def run_demo(app: Flask, base_url: str, credentials: Credentials) -> bool:
    """Run every step against the served ``app``; print each; return success."""
    steps = _Steps()
    reasons: list[str] = []

    def on_rejected(sender, reason, **kwargs):
        reasons.append(reason)

    assertion_rejected.connect(on_rejected, app)
    try:
        _flow(app, base_url, credentials, steps, reasons)
    finally:
        assertion_rejected.disconnect(on_rejected, app)
    click.echo()
    if steps.failed:
        click.secho(f"FAILED: {', '.join(steps.failed)}", fg="red", bold=True)
        return False
    click.secho(f"All {steps.count} steps gave the expected result.", fg="green", bold=True)
    return True


def _flow(app, base_url, credentials, steps, reasons):
    metadata_url = f"{base_url}/.well-known/oauth-authorization-server"
    steps.title("Discover the token endpoint (RFC 8414)")
    result = steps.send("GET", metadata_url)
    body = result.body if isinstance(result.body, dict) else {}
    token_endpoint = body.get("token_endpoint")
    if not steps.expect(
        "metadata lists the saml2-bearer grant",
        result.status == 200
        and SAML2_BEARER_GRANT_TYPE in body.get("grant_types_supported", ())
        and bool(token_endpoint),
    ):
        return

    steps.title("Mint an assertion at the demo IdP")
    audience = app.config["SAML2_BEARER_AUDIENCES"][0]
    recipient = app.config["SAML2_BEARER_RECIPIENTS"][0]
    with app.app_context():
        assertion = mint_assertion(app, credentials.user_email)
    click.echo(f"  Subject (NameID): {credentials.user_email}")
    click.echo(f"  Audience:         {audience}")
    click.echo(f"  Recipient:        {recipient}")
    click.echo(f"  assertion:        {_shorten(assertion)} ({len(assertion)} chars, base64url)")
    steps.count += 1

    steps.title("Exchange it for an access token (RFC 7522 section 2.1)")
    basic = base64.b64encode(
        f"{_quote(credentials.client_id)}:{_quote(credentials.client_secret)}".encode()
    ).decode()
    auth = {"Authorization": f"Basic {basic}"}
    form = {"grant_type": SAML2_BEARER_GRANT_TYPE, "assertion": assertion, "scope": "profile"}
    result = steps.send("POST", token_endpoint, auth, form)
    body = result.body if isinstance(result.body, dict) else {}
    access_token = body.get("access_token")
    if not steps.expect(
        "200 with a Bearer access token",
        result.status == 200 and body.get("token_type") == "Bearer" and bool(access_token),
    ):
        return

    steps.title("Call the protected API with the token (RFC 6750)")
    result = steps.send("GET", f"{base_url}/api/me", {"Authorization": f"Bearer {access_token}"})
    body = result.body if isinstance(result.body, dict) else {}
    steps.expect(
        f"200 for {credentials.user_email}",
        result.status == 200 and body.get("user", {}).get("email") == credentials.user_email,
    )

    steps.title("Replay the same assertion (RFC 7522 section 3: one use only)")
    result = steps.send("POST", token_endpoint, auth, form)
    body = result.body if isinstance(result.body, dict) else {}
    if reasons:
        # The client sees only invalid_grant; the reason code goes to the server
        # log (on standard error, see example_app.logs) and to this signal.
        click.echo(f"  assertion_rejected signal: reason={reasons[-1]}")
    steps.expect("400 invalid_grant", result.status == 400 and body.get("error") == "invalid_grant")


class _Steps:
    """Numbered, readable output and the tally of expectations."""

    def __init__(self) -> None:
        self.count = 0
        self.failed: list[str] = []
        self._title = ""

    def title(self, text: str) -> None:
        self._title = text
        click.echo()
        click.secho(f"== {self.count + 1}. {text}", bold=True)

    def send(self, method, url, headers=None, form=None) -> HttpResult:
        click.echo(f"> {method} {url}")
        for name, value in (headers or {}).items():
            click.echo(f"> {name}: {_shorten(value)}")
        if form is not None:
            click.echo("> Content-Type: application/x-www-form-urlencoded")
            click.echo(">")
            for name, value in form.items():
                click.echo(f">   {name}={_shorten(value)}")
        result = http(method, url, headers, form)
        click.echo(f"< {result.status} {result.reason}")
        text = (
            json.dumps(result.body, indent=2) if not isinstance(result.body, str) else result.body
        )
        for line in text.splitlines():
            click.echo(f"<   {line}")
        return result

    def expect(self, what: str, ok: bool) -> bool:
        self.count += 1
        if ok:
            click.secho(f"  ok: {what}", fg="green")
        else:
            click.secho(f"  UNEXPECTED: wanted {what}", fg="red")
            self.failed.append(f"step {self.count} ({self._title})")
        return ok


def _shorten(value: str, limit: int = 72) -> str:
    return value if len(value) <= limit else f"{value[: limit - 3]}..."


def _quote(value: str) -> str:
    # RFC 6749 section 2.3.1: form-encode the client id and secret first.
    return urllib.parse.quote_plus(value)
