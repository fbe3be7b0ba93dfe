"""First-run setup: tables, a demo user and a confidential client allowed the grant."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass

from authlib_saml2_grant import SAML2_BEARER_GRANT_TYPE

from .models import Client
from .models import User
from .models import db

__all__ = ["DEMO_USER_EMAIL", "DEMO_CLIENT_ID", "Credentials", "initialize"]

log = logging.getLogger(__name__)

#: The demo user; the demo IdP sends this email as ``NameID``.
DEMO_USER_EMAIL = "alice@example.com"
#: The demo confidential client.
DEMO_CLIENT_ID = "demo-client"


@dataclass(frozen=True)
class Credentials:
    """What a newcomer needs to call the token endpoint."""

    client_id: str
    client_secret: str
    user_email: str
    created: bool


def initialize() -> Credentials:
    """Create the tables, the demo user and the demo client if missing.

    Idempotent: a second call returns the existing credentials. Needs an
    app context.
    """
    db.create_all()
    created = False
    user = db.session.execute(db.select(User).filter_by(email=DEMO_USER_EMAIL)).scalar_one_or_none()
    if user is None:
        db.session.add(User(email=DEMO_USER_EMAIL, name="Alice Example"))
        created = True
    client = db.session.execute(
        db.select(Client).filter_by(client_id=DEMO_CLIENT_ID)
    ).scalar_one_or_none()
    if client is None:
        client = Client(client_id=DEMO_CLIENT_ID, client_secret=secrets.token_urlsafe(32))
        client.set_client_metadata(
            {
                "client_name": "Demo client",
                "grant_types": [SAML2_BEARER_GRANT_TYPE],
                "token_endpoint_auth_method": "client_secret_basic",
                "scope": "profile email",
            }
        )
        db.session.add(client)
        created = True
    db.session.commit()
    if created:
        log.info("Created the demo user %s and client %s", DEMO_USER_EMAIL, DEMO_CLIENT_ID)
    return Credentials(
        client_id=client.client_id,
        client_secret=client.client_secret,
        user_email=DEMO_USER_EMAIL,
        created=created,
    )
