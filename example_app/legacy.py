"""Salesforce's SAML assertion flow (``grant_type=assertion``) in the example app.

Clients written against Salesforce's "SAML Assertion Flow for Accessing the
API" post the whole Web SSO ``samlp:Response`` an IdP sent them, without client
credentials, and read ``id`` (an identity URL for the user) and
``instance_url`` (where the API lives) from the answer. This module gives them
all three:

- :class:`LegacyAssertionGrant`, the library's
  :class:`~authlib_saml2_grant.SAML2LegacyAssertionGrant` with the user lookup
  of the example's saml2-bearer grant (the ``NameID`` is the user's email) and
  its claims in the JWT access token. A request without client credentials is
  issued to the client named by ``SAML2_BEARER_LEGACY_CLIENT_ID``
  (``demo-legacy-client``, created by ``flask --app example_app init``); a
  client that sends credentials authenticates as usual. Never a refresh token.
- Recipients: Salesforce accepts a ``Recipient`` (and ``Destination``) that is
  its token endpoint or its login URL. The grant accepts
  ``SAML2_BEARER_RECIPIENTS`` (the token endpoint) plus the login URL, here
  ``EXAMPLE_APP_BASE_URL`` itself, where an IdP would post the Response for
  browser SSO. Only this grant accepts the login URL: the saml2-bearer grant
  keeps to ``SAML2_BEARER_RECIPIENTS``.
- :func:`add_salesforce_fields`, a grant extension registering Authlib's
  ``after_create_token_response`` hook, which adds ``id``
  (``{EXAMPLE_APP_BASE_URL}/id/{client_id}/{user_id}``, as Salesforce's
  ``/id/{orgId}/{userId}``) and ``instance_url`` (``EXAMPLE_APP_BASE_URL``,
  the base of ``/api/me``) to the token before it is rendered as JSON, form
  encoding or XML.
- ``GET /id/<client_id>/<user_id>``, the identity URL: protected by the access
  token like ``/api/me``, it answers with the token's user, and refuses (403)
  a token of another user or client.

:func:`init_legacy` registers the grant and the route; the app factory calls it.
"""

from __future__ import annotations

from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.integrations.flask_oauth2 import current_token
from flask import Blueprint
from flask import Flask
from flask import current_app
from flask import jsonify

import authlib_saml2_grant

from .oauth import SAML2BearerGrant
from .oauth import _ClaimsInAccessToken
from .oauth import require_oauth

__all__ = [
    "IDENTITY_PATH",
    "LegacyAssertionGrant",
    "add_salesforce_fields",
    "identity_url",
    "init_legacy",
    "legacy_bp",
]

#: Where the identity URLs (the ``id`` of the token response) are served.
IDENTITY_PATH = "/id"

legacy_bp = Blueprint("example_app_legacy", __name__)


class LegacyAssertionGrant(_ClaimsInAccessToken, authlib_saml2_grant.SAML2LegacyAssertionGrant):
    """Salesforce's ``grant_type=assertion``: a whole signed Web SSO Response."""

    #: Clients that send credentials authenticate as for the saml2-bearer grant.
    TOKEN_ENDPOINT_AUTH_METHODS = SAML2BearerGrant.TOKEN_ENDPOINT_AUTH_METHODS

    #: The same user lookup: the user whose email is the assertion's ``NameID``.
    authenticate_user = SAML2BearerGrant.authenticate_user
    #: The same claims in the JWT access token.
    get_token_claims = SAML2BearerGrant.get_token_claims

    def get_recipients(self) -> frozenset[str]:
        """``SAML2_BEARER_RECIPIENTS`` and the login URL (``EXAMPLE_APP_BASE_URL``),
        the two values Salesforce accepts as ``Recipient`` and ``Destination``."""
        return super().get_recipients() | {current_app.config["EXAMPLE_APP_BASE_URL"]}


def identity_url(client_id: str, user_id: Any) -> str:
    """The ``id`` of a token: ``{EXAMPLE_APP_BASE_URL}/id/{client_id}/{user_id}``."""
    return f"{current_app.config['EXAMPLE_APP_BASE_URL']}{IDENTITY_PATH}/{client_id}/{user_id}"


def add_salesforce_fields(grant: Any) -> None:
    """A grant extension: Salesforce's ``id`` and ``instance_url`` in the answer.

    ``server.register_grant(LegacyAssertionGrant, [add_salesforce_fields])``
    calls it on each grant it creates; the hook runs once the token is issued
    and saved, and changes the token dict before the grant renders it.
    """
    grant.register_hook("after_create_token_response", _salesforce_fields)


def _salesforce_fields(grant: Any, result: tuple) -> None:
    _status, token, _headers = result
    user_id = grant.request.user.get_user_id()
    token["id"] = identity_url(grant.client.get_client_id(), user_id)
    token["instance_url"] = current_app.config["EXAMPLE_APP_BASE_URL"]


@legacy_bp.get(f"{IDENTITY_PATH}/<client_id>/<user_id>")
@require_oauth()
def identity(client_id: str, user_id: str):
    """The identity URL of a token (Salesforce's ``id``): its user, as ``/api/me``
    gives it, for a token of that user and client only."""
    token = current_token
    user = token.user
    if client_id != token.client_id or user_id != str(user.get_user_id()):
        return jsonify(error="access_denied", error_description="Not this token's identity."), 403
    return jsonify(
        id=identity_url(token.client_id, user.get_user_id()),
        user_id=str(user.get_user_id()),
        username=user.email,
        email=user.email,
        display_name=user.name,
        user=user.to_dict(),
        scope=token.scope,
        client_id=token.client_id,
    )


def init_legacy(app: Flask, server: AuthorizationServer) -> None:
    """Register the legacy grant, with its Salesforce fields, and the identity URLs."""
    server.register_grant(LegacyAssertionGrant, [add_salesforce_fields])
    app.register_blueprint(legacy_bp)
