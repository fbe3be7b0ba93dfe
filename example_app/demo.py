"""``flask --app example_app demo``: the whole RFC 7522 flow over real HTTP.

The app is served by werkzeug on a free ``127.0.0.1`` port in a thread; a
plain :mod:`urllib` client then discovers the token endpoint (RFC 8414),
exchanges an assertion from the demo IdP with HTTP Basic client
authentication (:rfc:`7522#section-2.1`) for a JWT access token
(:rfc:`9068`), an ID token and a refresh token, verifies both JWTs with the
keys at ``jwks_uri``, calls the protected API with the access token,
refreshes it (:rfc:`6749#section-6`), and replays the assertion to show the
``invalid_grant`` refusal. Then Salesforce's SAML assertion flow
(:mod:`example_app.legacy`): a whole signed Web SSO Response from the demo
IdP, posted with ``grant_type=assertion`` and no client credentials, gives an
access token with ``id`` and ``instance_url`` and no refresh token; the ``id``
URL answers with the user; the replayed Response is refused.

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
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import click
from flask import Flask
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from werkzeug.serving import WSGIRequestHandler
from werkzeug.serving import make_server

from authlib_saml2_grant import SAML2_BEARER_GRANT_TYPE
from authlib_saml2_grant import SAML2_BROWSER_SSO_ASSERTION_TYPE
from authlib_saml2_grant import assertion_rejected

from .bootstrap import Credentials
from .idp import DEMO_DIRECTORY
from .idp import mint_assertion
from .idp import mint_response
from .keys import SIGNING_ALG

__all__ = ["HttpResult", "run_demo", "serve"]

log = logging.getLogger(__name__)

_TIMEOUT = 10
#: What the demo client asks for: an ID token, the mapped claims, a refresh token.
DEMO_SCOPE = "openid profile email offline_access"


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
        if not steps.failed:
            _legacy_flow(app, base_url, credentials, steps, reasons)
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
    steps.title("Discover the token endpoint and the signing keys (RFC 8414)")
    result = steps.send("GET", metadata_url)
    metadata = _json(result)
    token_endpoint = metadata.get("token_endpoint")
    jwks_uri = metadata.get("jwks_uri")
    if not steps.expect(
        "metadata lists the saml2-bearer grant and a jwks_uri",
        result.status == 200
        and SAML2_BEARER_GRANT_TYPE in metadata.get("grant_types_supported", ())
        and bool(token_endpoint)
        and bool(jwks_uri),
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
    for name, value in DEMO_DIRECTORY.get(credentials.user_email, {}).items():
        shown = value if isinstance(value, str) else ", ".join(value)
        click.echo(f"  Attribute:        {name} = {shown}")
    click.echo(f"  assertion:        {_shorten(assertion)} ({len(assertion)} chars, base64url)")
    steps.count += 1

    steps.title("Exchange it for tokens (RFC 7522 section 2.1)")
    basic = base64.b64encode(
        f"{_quote(credentials.client_id)}:{_quote(credentials.client_secret)}".encode()
    ).decode()
    auth = {"Authorization": f"Basic {basic}"}
    form = {"grant_type": SAML2_BEARER_GRANT_TYPE, "assertion": assertion, "scope": DEMO_SCOPE}
    result = steps.send("POST", token_endpoint, auth, form)
    tokens = _json(result)
    access_token = tokens.get("access_token")
    if not steps.expect(
        "200 with a Bearer access token, an ID token and a refresh token",
        result.status == 200
        and tokens.get("token_type") == "Bearer"
        and bool(access_token)
        and bool(tokens.get("id_token"))
        and bool(tokens.get("refresh_token")),
    ):
        return

    steps.title("Verify the JWTs with the keys at jwks_uri (RFC 9068 section 4, OIDC Core 3.1.3.7)")
    result = steps.send("GET", jwks_uri)
    at_claims = _verify(result.body, access_token, "at+jwt")
    id_claims = _verify(result.body, tokens["id_token"], None)
    for what, claims in (("access token", at_claims), ("ID token", id_claims)):
        click.echo(f"  {what} claims:")
        for line in json.dumps(claims, indent=2).splitlines():
            click.echo(f"    {line}")
    issuer = metadata.get("issuer")
    steps.expect(
        "both signed by a key of jwks_uri, issued by the issuer, with the asserted email",
        at_claims.get("iss") == issuer
        and at_claims.get("client_id") == credentials.client_id
        and at_claims.get("email") == credentials.user_email
        and id_claims.get("iss") == issuer
        and id_claims.get("aud") in (credentials.client_id, [credentials.client_id])
        and id_claims.get("email") == credentials.user_email,
    )

    steps.title("Call the protected API with the access token (RFC 6750)")
    result = steps.send("GET", f"{base_url}/api/me", {"Authorization": f"Bearer {access_token}"})
    body = _json(result)
    steps.expect(
        f"200 for {credentials.user_email}",
        result.status == 200 and body.get("user", {}).get("email") == credentials.user_email,
    )

    steps.title("Refresh the access token (RFC 6749 section 6)")
    refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    result = steps.send("POST", token_endpoint, auth, refresh)
    body = _json(result)
    steps.expect(
        "200 with a new access token and a new refresh token",
        result.status == 200
        and body.get("access_token") not in (None, access_token)
        and body.get("refresh_token") not in (None, tokens["refresh_token"]),
    )

    steps.title("Replay the same assertion (RFC 7522 section 3: one use only)")
    result = steps.send("POST", token_endpoint, auth, form)
    body = _json(result)
    if reasons:
        # The client sees only invalid_grant; the reason code goes to the server
        # log (on standard error, see example_app.logs) and to this signal.
        click.echo(f"  assertion_rejected signal: reason={reasons[-1]}")
    steps.expect("400 invalid_grant", result.status == 400 and body.get("error") == "invalid_grant")


def _legacy_flow(app, base_url, credentials, steps, reasons):
    """Salesforce's SAML assertion flow: a whole Response, no client credentials."""
    token_endpoint = f"{base_url}/oauth/token"
    login_url = base_url  # where an IdP posts the Response for browser SSO
    steps.title("Mint a signed Web SSO Response at the demo IdP (Salesforce's assertion flow)")
    with app.app_context():
        response = mint_response(app, credentials.user_email, recipient=login_url)
    click.echo(f"  Subject (NameID): {credentials.user_email}")
    click.echo(f"  Destination:      {login_url} (the login URL; the token endpoint works too)")
    click.echo(f"  Recipient:        {login_url}")
    click.echo("  Signed:           the Response (as Okta and Entra ID sign by default)")
    click.echo(f"  SAMLResponse:     {_shorten(response)} ({len(response)} chars, Base64)")
    steps.count += 1

    steps.title("Exchange it with grant_type=assertion and no client credentials")
    form = {
        "grant_type": "assertion",
        "assertion_type": SAML2_BROWSER_SSO_ASSERTION_TYPE,
        "assertion": response,
    }
    result = steps.send("POST", token_endpoint, None, form)
    tokens = _json(result)
    legacy_client = app.config["SAML2_BEARER_LEGACY_CLIENT_ID"]
    click.echo(f"  issued to SAML2_BEARER_LEGACY_CLIENT_ID: {legacy_client}")
    if not steps.expect(
        "200 with a Bearer access token, id and instance_url, and no refresh token",
        result.status == 200
        and tokens.get("token_type") == "Bearer"
        and bool(tokens.get("access_token"))
        and str(tokens.get("id", "")).startswith(f"{base_url}/id/")
        and tokens.get("instance_url") == base_url
        and "refresh_token" not in tokens,
    ):
        return

    steps.title("Call the identity URL (id) with the access token")
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    result = steps.send("GET", tokens["id"], bearer)
    body = _json(result)
    steps.expect(
        f"200 for {credentials.user_email}",
        result.status == 200 and body.get("user", {}).get("email") == credentials.user_email,
    )

    steps.title("Replay the same Response (one use only)")
    seen = len(reasons)
    result = steps.send("POST", token_endpoint, None, form)
    body = _json(result)
    if len(reasons) > seen:
        click.echo(f"  assertion_rejected signal: reason={reasons[-1]}")
    steps.expect("400 invalid_grant", result.status == 400 and body.get("error") == "invalid_grant")


def _json(result: HttpResult) -> dict:
    return result.body if isinstance(result.body, dict) else {}


def _verify(jwks: Any, token: str, typ: str | None) -> dict:
    """The claims of ``token`` if its signature verifies with a key of ``jwks``,
    it has the header ``typ`` (when given) and has not expired; else ``{}``."""
    try:
        decoded = jwt.decode(token, KeySet.import_key_set(jwks), algorithms=[SIGNING_ALG])
    except (JoseError, KeyError, TypeError, ValueError) as exc:
        click.echo(f"  {_shorten(token, 24)} does not verify: {exc}")
        return {}
    if typ is not None and decoded.header.get("typ") != typ:
        return {}
    if decoded.claims.get("exp", 0) <= time.time():
        return {}
    return decoded.claims


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
        body = result.body
        if isinstance(body, dict):  # tokens and keys in one line each
            body = {k: _shorten(v) if isinstance(v, str) else v for k, v in body.items()}
        text = json.dumps(body, indent=2) if not isinstance(body, str) else body
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
