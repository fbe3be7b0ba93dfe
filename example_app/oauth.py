"""The OAuth 2.0 side: the grant's settings, the authorization server, the grant,
the resource protector.

``saml2_bearer`` is the library's Flask extension, created once here and
bound to each app by ``saml2_bearer.init_app(app)`` in the app factory, as
Flask-SQLAlchemy's ``db`` is: it validates every ``SAML2_BEARER_*`` setting
at start-up, and ``saml2_bearer.reload(app)`` applies changed ones.

The grant subclass implements the one hook the library cannot guess, mapping
the verified assertion's ``NameID`` to a local user. Every :rfc:`7522#section-3`
check stays in the library's verifier, configured by ``SAML2_BEARER_*``.
"""

from __future__ import annotations

import logging

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.integrations.flask_oauth2 import ResourceProtector
from authlib.integrations.sqla_oauth2 import create_bearer_token_validator
from authlib.integrations.sqla_oauth2 import create_query_client_func
from authlib.integrations.sqla_oauth2 import create_save_token_func
from flask import Flask
from flask import current_app

import authlib_saml2_grant
from authlib_saml2_grant import SAML2Bearer

from .models import Client
from .models import Token
from .models import User
from .models import db

__all__ = [
    "saml2_bearer",
    "SAML2BearerGrant",
    "require_oauth",
    "init_oauth",
    "authorization_server",
]

log = logging.getLogger(__name__)

_EXTENSION_KEY = "example_app.authorization_server"

#: Loads and validates the ``SAML2_BEARER_*`` settings of each app it is bound to.
saml2_bearer = SAML2Bearer()

#: Protects the API: ``@require_oauth()`` needs a valid bearer token.
require_oauth = ResourceProtector()
require_oauth.register_token_validator(create_bearer_token_validator(db.session, Token)())


class SAML2BearerGrant(authlib_saml2_grant.SAML2BearerGrant):
    """The saml2-bearer grant of this app: the ``NameID`` is the user's email."""

    def authenticate_user(self, assertion):
        """The user whose email is the assertion's ``NameID``, or ``None``."""
        return db.session.execute(
            db.select(User).filter_by(email=assertion.subject)
        ).scalar_one_or_none()


def init_oauth(app: Flask) -> AuthorizationServer:
    """Create this app's authorization server and register the grant.

    One server per app, kept in ``app.extensions``: Authlib reads the token
    settings (``OAUTH2_TOKEN_EXPIRES_IN``...) of the app it is bound to.
    """
    server = AuthorizationServer(
        app,
        query_client=create_query_client_func(db.session, Client),
        save_token=create_save_token_func(db.session, Token),
    )
    server.register_grant(SAML2BearerGrant)
    app.extensions[_EXTENSION_KEY] = server
    return server


def authorization_server() -> AuthorizationServer:
    """The current app's authorization server."""
    return current_app.extensions[_EXTENSION_KEY]
