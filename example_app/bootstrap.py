"""First-run setup: tables, a demo user and a confidential client allowed the grant.

The demo client may use the saml2-bearer grant and refresh tokens, and ask
for ``openid profile email offline_access``: an ID token, the mapped
``name`` and ``email`` claims, and a refresh token. Beside it: a service
client authenticating with a SAML assertion, and the client of Salesforce's
``grant_type=assertion`` requests without credentials
(``SAML2_BEARER_LEGACY_CLIENT_ID``, see :mod:`example_app.legacy`).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from authlib_saml2_grant import SAML2_BEARER_GRANT_TYPE

from .models import Client
from .models import User
from .models import db

__all__ = [
    "DEMO_USER_EMAIL",
    "DEMO_USER_NAME",
    "DEMO_CLIENT_ID",
    "DEMO_CLIENT_METADATA",
    "DEMO_SERVICE_ID",
    "DEMO_SERVICE_METADATA",
    "DEMO_LEGACY_CLIENT_ID",
    "DEMO_LEGACY_CLIENT_METADATA",
    "Credentials",
    "initialize",
]

log = logging.getLogger(__name__)

#: The demo user; the demo IdP sends this email as ``NameID``.
DEMO_USER_EMAIL = "alice@example.com"
#: The demo user's display name.
DEMO_USER_NAME = "Alice Example"
#: The demo confidential client.
DEMO_CLIENT_ID = "demo-client"
#: Its registration metadata (RFC 7591 names).
DEMO_CLIENT_METADATA: Mapping[str, Any] = {
    "client_name": "Demo client",
    "grant_types": [SAML2_BEARER_GRANT_TYPE, "refresh_token"],
    "token_endpoint_auth_method": "client_secret_basic",
    "scope": "openid profile email offline_access",
}


#: A service client without a secret: it authenticates with a SAML assertion
#: of the demo IdP whose NameID is its client ID (:rfc:`7522#section-2.2`).
DEMO_SERVICE_ID = "demo-service"
#: Its registration metadata.
DEMO_SERVICE_METADATA: Mapping[str, Any] = {
    "client_name": "Demo service (SAML client assertion)",
    "grant_types": ["client_credentials", SAML2_BEARER_GRANT_TYPE],
    "token_endpoint_auth_method": "client_assertion_saml2_bearer",
    "scope": "profile",
}


#: The client that Salesforce-style ``grant_type=assertion`` requests without
#: client credentials get their tokens for (``SAML2_BEARER_LEGACY_CLIENT_ID``).
#: It has no secret and no other grant: whoever holds a valid Response gets a
#: token for it, so give it only the scope such clients need.
DEMO_LEGACY_CLIENT_ID = "demo-legacy-client"
#: Its registration metadata.
DEMO_LEGACY_CLIENT_METADATA: Mapping[str, Any] = {
    "client_name": "Clients of the SAML assertion flow without credentials",
    "grant_types": ["assertion"],
    "token_endpoint_auth_method": "none",
    "scope": "profile",
}


@dataclass(frozen=True)
class Credentials:
    """What a newcomer needs to call the token endpoint."""

    client_id: str
    client_secret: str
    user_email: str
    created: bool


def initialize() -> Credentials:
    """Create the tables, the demo user and the demo client if missing.

    Idempotent: a second call returns the existing credentials, and brings
    the demo client's metadata up to date (:data:`DEMO_CLIENT_METADATA`).
    Needs an app context.
    """
    db.create_all()
    created = False
    user = db.session.execute(db.select(User).filter_by(email=DEMO_USER_EMAIL)).scalar_one_or_none()
    if user is None:
        db.session.add(User(email=DEMO_USER_EMAIL, name=DEMO_USER_NAME))
        created = True
    client = db.session.execute(
        db.select(Client).filter_by(client_id=DEMO_CLIENT_ID)
    ).scalar_one_or_none()
    if client is None:
        client = Client(client_id=DEMO_CLIENT_ID, client_secret=secrets.token_urlsafe(32))
        client.set_client_metadata(dict(DEMO_CLIENT_METADATA))
        db.session.add(client)
        created = True
    elif client.client_metadata != DEMO_CLIENT_METADATA:
        client.set_client_metadata(dict(DEMO_CLIENT_METADATA))
        log.info("Updated the metadata of the demo client %s", DEMO_CLIENT_ID)
    _ensure_secretless_client(DEMO_SERVICE_ID, DEMO_SERVICE_METADATA)
    _ensure_secretless_client(DEMO_LEGACY_CLIENT_ID, DEMO_LEGACY_CLIENT_METADATA)
    db.session.commit()
    if created:
        log.info("Created the demo user %s and client %s", DEMO_USER_EMAIL, DEMO_CLIENT_ID)
    return Credentials(
        client_id=client.client_id,
        client_secret=client.client_secret,
        user_email=DEMO_USER_EMAIL,
        created=created,
    )


def _ensure_secretless_client(client_id: str, metadata: Mapping[str, Any]) -> None:
    """Add the client without a secret if missing; bring its metadata up to date."""
    client = db.session.execute(
        db.select(Client).filter_by(client_id=client_id)
    ).scalar_one_or_none()
    if client is None:
        client = Client(client_id=client_id, client_secret="")
        db.session.add(client)
    if client.client_metadata != metadata:
        client.set_client_metadata(dict(metadata))
