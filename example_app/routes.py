"""HTTP endpoints: the token endpoint, a protected API, RFC 8414 metadata,
the public signing keys (JWKS).

The metadata's ``issuer``, ``token_endpoint`` and ``jwks_uri`` are built from
``EXAMPLE_APP_BASE_URL``, never from the request: the ``Audience`` and
``Recipient`` the server accepts derive from that same URL, so what it
advertises and what it verifies always agree, and a forged ``Host`` header
cannot change either. When a request reaches the app at another URL (its
scheme, host, port and mount point, as WSGI reports them), the app still
answers, but logs one ``WARNING`` per app naming both URLs: set
``EXAMPLE_APP_BASE_URL`` to the URL clients really use. Behind a reverse
proxy the WSGI URL is the internal one unless the proxy's headers are
trusted (werkzeug's ``ProxyFix``).
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from authlib.integrations.flask_oauth2 import current_token
from flask import Blueprint
from flask import current_app
from flask import jsonify
from flask import request
from sqlalchemy.exc import SQLAlchemyError

from authlib_saml2_grant import TemporarilyUnavailableError

from .keys import public_jwks
from .legacy import LegacyAssertionGrant
from .models import db
from .oauth import ClientCredentialsGrant
from .oauth import RefreshTokenGrant
from .oauth import SAML2BearerGrant
from .oauth import authorization_server
from .oauth import require_oauth
from .oauth import saml2_bearer

__all__ = ["bp", "same_base_url", "JWKS_PATH"]

log = logging.getLogger(__name__)

bp = Blueprint("example_app", __name__)

#: Where the public keys of access tokens and ID tokens are served.
JWKS_PATH = "/oauth/jwks.json"

_WARNED_KEY = "example_app.base_url_warned"
_DEFAULT_PORTS = {"http": 80, "https": 443}


@bp.before_request
def check_base_url() -> None:
    """Warn once per app when requests arrive at another URL than the base URL."""
    app = current_app
    if _WARNED_KEY in app.extensions:
        return
    base_url = app.config["EXAMPLE_APP_BASE_URL"]
    served_at = request.url_root.rstrip("/")
    if same_base_url(base_url, served_at):
        return
    marker = object()
    if app.extensions.setdefault(_WARNED_KEY, marker) is not marker:
        return  # another thread warned first
    log.warning(
        "Requests reach this server at %s, but EXAMPLE_APP_BASE_URL is %s: the RFC 8414 "
        "metadata (issuer, token_endpoint, jwks_uri) and the tokens' iss claim advertise it, "
        "and the accepted Audience and Recipient derive from it. If clients use %s, set "
        "EXAMPLE_APP_BASE_URL=%s and restart.",
        served_at,
        base_url,
        served_at,
        served_at,
    )


def same_base_url(a: str, b: str) -> bool:
    """Whether two base URLs are the same: scheme and host in any case, the
    default port written or not, a trailing slash or not."""
    return _canonical(a) == _canonical(b)


def _canonical(url: str) -> tuple[str, str, int | str | None, str]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port: int | str | None
    try:
        port = parts.port or _DEFAULT_PORTS.get(scheme)
    except ValueError:  # not a number: compare as written
        port = parts.netloc
    return scheme, (parts.hostname or "").lower(), port, parts.path.rstrip("/")


@bp.post("/oauth/token")
@saml2_bearer.token_endpoint
def issue_token():
    """The token endpoint (:rfc:`6749#section-3.2`) where assertions are exchanged.

    ``saml2_bearer.token_endpoint`` refuses oversized, JSON and non-UTF-8 bodies and
    too many parameters before the body is parsed (``SAML2_BEARER_MAX_REQUEST_*``)."""
    return authorization_server().create_token_response()


@bp.app_errorhandler(SQLAlchemyError)
def database_unavailable(error: SQLAlchemyError):
    """The database failed outside the saml2-bearer grant (the refresh-token and
    client-credentials grants, the API's token lookup): a JSON 503
    ``temporarily_unavailable`` with ``Retry-After``, as the grant answers, never
    an HTML 500. The session is rolled back for the rest of the request."""
    log.error("Database error: %s", error.__class__.__name__, exc_info=error)
    try:
        db.session.rollback()
    except SQLAlchemyError:
        pass  # the connection is gone: the pool replaces it
    unavailable = TemporarilyUnavailableError(
        retry_after=current_app.config["SAML2_BEARER_RETRY_AFTER"]
    )
    status, body, headers = unavailable()
    return jsonify(body), status, headers


@bp.get("/api/me")
@require_oauth()
def me():
    """A protected resource: the token's user and scope."""
    token = current_token
    return jsonify(user=token.user.to_dict(), scope=token.scope, client_id=token.client_id)


@bp.get(JWKS_PATH)
def jwks():
    """The public keys that verify access tokens (:rfc:`9068#section-4`) and
    ID tokens: a JWK set, :rfc:`7517#section-5`.

    Empty until ``flask --app example_app init`` created the signing key.
    """
    response = jsonify(public_jwks())
    response.cache_control.public = True
    response.cache_control.max_age = 300
    return response


@bp.get("/.well-known/oauth-authorization-server")
def server_metadata():
    """Authorization server metadata, :rfc:`8414#section-2`.

    ``issuer``, ``token_endpoint`` and ``jwks_uri`` come from
    ``EXAMPLE_APP_BASE_URL`` (see the module documentation).
    ``response_types_supported`` is REQUIRED by RFC 8414 but only concerns
    the authorization endpoint, which this server does not have: it is empty.
    """
    base_url = current_app.config["EXAMPLE_APP_BASE_URL"]
    grants = (SAML2BearerGrant, RefreshTokenGrant, ClientCredentialsGrant, LegacyAssertionGrant)
    auth_methods = [m for g in grants for m in g.TOKEN_ENDPOINT_AUTH_METHODS]
    return jsonify(
        issuer=base_url,
        token_endpoint=f"{base_url}/oauth/token",
        jwks_uri=f"{base_url}{JWKS_PATH}",
        grant_types_supported=[g.GRANT_TYPE for g in grants],
        token_endpoint_auth_methods_supported=list(dict.fromkeys(auth_methods)),
        scopes_supported=current_app.config["OAUTH2_SCOPES_SUPPORTED"],
        response_types_supported=[],
    )
