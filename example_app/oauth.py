"""The OAuth 2.0 side: the grant's settings, the authorization server, the
grants, the resource protector.

``saml2_bearer`` is the library's Flask extension, created once here and
bound to each app by ``saml2_bearer.init_app(app)`` in the app factory, as
Flask-SQLAlchemy's ``db`` is: it validates every ``SAML2_BEARER_*`` setting
at start-up, and ``saml2_bearer.reload(app)`` applies changed ones.

The saml2-bearer grant subclass implements the one hook the library cannot
guess, mapping the verified assertion's ``NameID`` to a local user. Every
:rfc:`7522#section-3` check stays in the library's verifier, configured by
``SAML2_BEARER_*``. It is registered with :class:`~example_app.tokens.ExampleOpenIDToken`,
which adds an ID token when the granted scope has ``openid``.

The refresh-token grant (:rfc:`6749#section-6`) serves the refresh tokens
the saml2-bearer grant issues when the granted scope has ``offline_access``
(``SAML2_BEARER_ISSUE_REFRESH_TOKEN = "offline_access"``). Refresh tokens
rotate: each use returns a new one and revokes the old token.

The client lookup, the token saving and the user lookup roll the session
back when the database fails (:func:`query_client`, :func:`save_token`), so
the next use of the session in the request starts clean: the grant answers
503 ``temporarily_unavailable`` while the database is down and recovers,
without a restart, once it is back (``pool_pre_ping`` in
:mod:`example_app.config` replaces the connections it dropped).

Access tokens are :rfc:`9068` JWTs once the app's signing key exists (see
:mod:`example_app.keys`): :func:`init_signing_key`, which the commands call,
creates it and registers :class:`~example_app.tokens.JWTAccessTokenGenerator`
as the server's token generator; an app created with the key in its instance
folder does so at once. Without the key, the app keeps Authlib's default
generator (opaque access tokens) and logs a WARNING. Either way every token
is saved in the database, and the resource protector accepts it there.
"""

from __future__ import annotations

import logging
import time

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.integrations.flask_oauth2 import ResourceProtector
from authlib.integrations.sqla_oauth2 import create_bearer_token_validator
from authlib.integrations.sqla_oauth2 import create_query_client_func
from authlib.integrations.sqla_oauth2 import create_save_token_func
from authlib.oauth2.rfc6749 import grants
from flask import Flask
from flask import current_app
from joserfc.jwk import KeySet
from sqlalchemy.exc import SQLAlchemyError

import authlib_saml2_grant
from authlib_saml2_grant import SAML2Bearer

from .keys import SIGNING_KEY_FILENAME
from .keys import create_signing_key
from .keys import load_signing_keys
from .keys import signing_keys
from .models import Client
from .models import Token
from .models import User
from .models import db
from .tokens import ExampleOpenIDToken
from .tokens import JWTAccessTokenGenerator
from .tokens import asserted_claims
from .tokens import claims_from_access_token
from .tokens import claims_from_assertion

__all__ = [
    "saml2_bearer",
    "SAML2BearerGrant",
    "RefreshTokenGrant",
    "ClientCredentialsGrant",
    "SAML2_CLIENT_AUTH",
    "require_oauth",
    "init_oauth",
    "init_signing_key",
    "authorization_server",
]

log = logging.getLogger(__name__)

_EXTENSION_KEY = "example_app.authorization_server"
_JWT_GENERATOR_KEY = "example_app.jwt_access_tokens"

#: Loads and validates the ``SAML2_BEARER_*`` settings of each app it is bound to.
saml2_bearer = SAML2Bearer()

#: Protects the API: ``@require_oauth()`` needs a valid bearer token.
require_oauth = ResourceProtector()
require_oauth.register_token_validator(create_bearer_token_validator(db.session, Token)())


_query_client = create_query_client_func(db.session, Client)
_save_token = create_save_token_func(db.session, Token)


def query_client(client_id: str) -> Client | None:
    """The client with ``client_id`` (Authlib's SQLAlchemy lookup); on a database
    error the session is rolled back and the error raised (the grant answers 503)."""
    try:
        return _query_client(client_id)
    except SQLAlchemyError:
        _rollback()
        raise


def save_token(token: dict, request) -> None:
    """Save the token (Authlib's SQLAlchemy saving, which commits); on a database
    error the session is rolled back, with the assertion's replay record, and the
    error raised (the grant answers 503 and the assertion stays unspent)."""
    try:
        _save_token(token, request)
    except SQLAlchemyError:
        _rollback()
        raise


def _rollback() -> None:
    try:
        db.session.rollback()
    except SQLAlchemyError:  # the connection is gone: the pool drops it
        log.warning("Rolling back the database session failed", exc_info=True)


class _ClaimsInAccessToken:
    """Generates a grant's token with :meth:`get_token_claims` handed to the JWT
    access token generator (Authlib's generators receive no request)."""

    def get_token_claims(self) -> dict:
        raise NotImplementedError()

    def generate_token(self, **kwargs):
        with asserted_claims(self.get_token_claims()):
            return super().generate_token(**kwargs)  # type: ignore[misc]


#: Clients may authenticate with a SAML assertion, :rfc:`7522#section-2.2`.
SAML2_CLIENT_AUTH = authlib_saml2_grant.SAML2BearerClientAssertion.CLIENT_AUTH_METHOD


class SAML2BearerGrant(_ClaimsInAccessToken, authlib_saml2_grant.SAML2BearerGrant):
    """The saml2-bearer grant of this app: the ``NameID`` is the user's email."""

    #: Secrets, or a SAML client assertion (:rfc:`7522#section-2.3`).
    TOKEN_ENDPOINT_AUTH_METHODS = [
        *authlib_saml2_grant.SAML2BearerGrant.TOKEN_ENDPOINT_AUTH_METHODS,
        SAML2_CLIENT_AUTH,
    ]

    def authenticate_user(self, assertion):
        """The user whose email is the assertion's ``NameID``, or ``None``."""
        try:
            return db.session.execute(
                db.select(User).filter_by(email=assertion.subject)
            ).scalar_one_or_none()
        except SQLAlchemyError:
            _rollback()
            raise

    def get_token_claims(self) -> dict:
        """The claims of the verified assertion, for the access token."""
        return claims_from_assertion(self.request.saml2_assertion)


class RefreshTokenGrant(_ClaimsInAccessToken, grants.RefreshTokenGrant):
    """Refresh tokens (:rfc:`6749#section-6`), rotated at each use."""

    #: The clients authenticate as they do for the saml2-bearer grant.
    TOKEN_ENDPOINT_AUTH_METHODS = SAML2BearerGrant.TOKEN_ENDPOINT_AUTH_METHODS
    #: Issue a new refresh token with each refreshed access token.
    INCLUDE_NEW_REFRESH_TOKEN = True
    #: Seconds a refresh token may be used after it was issued.
    REFRESH_TOKEN_LIFETIME = 30 * 24 * 3600

    def authenticate_refresh_token(self, refresh_token):
        """The token row of an unrevoked, unexpired ``refresh_token``, or ``None``."""
        token = db.session.execute(
            db.select(Token).filter_by(refresh_token=refresh_token)
        ).scalar_one_or_none()
        if token is None or token.refresh_token_revoked_at:
            return None
        if token.issued_at + self.REFRESH_TOKEN_LIFETIME < time.time():
            return None
        return token

    def authenticate_user(self, refresh_token):
        return refresh_token.user

    def revoke_old_credential(self, refresh_token):
        """Revoke the refreshed token: Authlib's ``OAuth2TokenMixin.is_revoked``
        then refuses its access token too."""
        refresh_token.refresh_token_revoked_at = int(time.time())
        db.session.add(refresh_token)
        db.session.commit()

    def get_token_claims(self) -> dict:
        """The claims the refreshed access token carried."""
        return claims_from_access_token(self.request.refresh_token.access_token, signing_keys())


class ClientCredentialsGrant(grants.ClientCredentialsGrant):
    """Service clients (:rfc:`6749#section-4.4`), here authenticated by a SAML
    assertion of the IdP that knows them (:rfc:`7522#section-2.2`)."""

    TOKEN_ENDPOINT_AUTH_METHODS = SAML2BearerGrant.TOKEN_ENDPOINT_AUTH_METHODS


def init_oauth(app: Flask) -> AuthorizationServer:
    """Create this app's authorization server and register the grants.

    One server per app, kept in ``app.extensions``: Authlib reads the token
    settings (``OAUTH2_TOKEN_EXPIRES_IN``...) of the app it is bound to.
    """
    server = AuthorizationServer(app, query_client=query_client, save_token=save_token)
    server.register_grant(SAML2BearerGrant, [ExampleOpenIDToken()])
    server.register_grant(RefreshTokenGrant)
    server.register_grant(ClientCredentialsGrant)
    token_url = f"{app.config['EXAMPLE_APP_BASE_URL']}/oauth/token"
    server.register_client_auth_method(
        SAML2_CLIENT_AUTH, authlib_saml2_grant.SAML2BearerClientAssertion(token_url)
    )
    app.extensions[_EXTENSION_KEY] = server
    keys = load_signing_keys(app)
    if keys is None:
        log.warning(
            "signing key not created (no %s in %s): access tokens are opaque and no "
            "ID token is issued until you run flask --app example_app init (demo and "
            "mint run it too) and restart a running server",
            SIGNING_KEY_FILENAME,
            app.instance_path,
        )
    else:
        _use_jwt_access_tokens(app, keys)
    return server


def init_signing_key(app: Flask) -> KeySet:
    """Create the signing key of ``app`` if missing, and make ``app`` issue
    JWT access tokens with it if it did not yet."""
    keys = create_signing_key(app)
    _use_jwt_access_tokens(app, keys)
    return keys


def _use_jwt_access_tokens(app: Flask, keys: KeySet) -> None:
    if app.extensions.get(_JWT_GENERATOR_KEY) is not None:
        return
    server = app.extensions[_EXTENSION_KEY]
    # Authlib's default generator, for the refresh-token generator and lifetimes it configured.
    default = server.create_bearer_token_generator(app.config)
    generator = JWTAccessTokenGenerator(
        app.config["EXAMPLE_APP_BASE_URL"],
        keys,
        refresh_token_generator=default.refresh_token_generator,
        expires_generator=default.expires_generator,
    )
    server.register_token_generator("default", generator)
    app.extensions[_JWT_GENERATOR_KEY] = generator
    log.debug("JWT access tokens (RFC 9068) signed with key %s", keys.keys[0].kid)


def authorization_server() -> AuthorizationServer:
    """The current app's authorization server."""
    return current_app.extensions[_EXTENSION_KEY]
