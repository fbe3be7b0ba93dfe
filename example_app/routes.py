"""HTTP endpoints: the token endpoint, a protected API, RFC 8414 metadata."""

from __future__ import annotations

from authlib.integrations.flask_oauth2 import current_token
from flask import Blueprint
from flask import current_app
from flask import jsonify

from .oauth import SAML2BearerGrant
from .oauth import authorization_server
from .oauth import require_oauth

__all__ = ["bp"]

bp = Blueprint("example_app", __name__)


@bp.post("/oauth/token")
def issue_token():
    """The token endpoint (:rfc:`6749#section-3.2`) where assertions are exchanged."""
    return authorization_server().create_token_response()


@bp.get("/api/me")
@require_oauth()
def me():
    """A protected resource: the token's user and scope."""
    token = current_token
    return jsonify(user=token.user.to_dict(), scope=token.scope, client_id=token.client_id)


@bp.get("/.well-known/oauth-authorization-server")
def server_metadata():
    """Authorization server metadata, :rfc:`8414#section-2`.

    ``response_types_supported`` is REQUIRED by RFC 8414 but only concerns
    the authorization endpoint, which this server does not have: it is empty.
    """
    base_url = current_app.config["EXAMPLE_APP_BASE_URL"]
    return jsonify(
        issuer=base_url,
        token_endpoint=f"{base_url}/oauth/token",
        grant_types_supported=[SAML2BearerGrant.GRANT_TYPE],
        token_endpoint_auth_methods_supported=SAML2BearerGrant.TOKEN_ENDPOINT_AUTH_METHODS,
        scopes_supported=current_app.config["OAUTH2_SCOPES_SUPPORTED"],
        response_types_supported=[],
    )
