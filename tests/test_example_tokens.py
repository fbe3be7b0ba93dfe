"""The example app's tokens: RFC 9068 JWT access tokens, refresh tokens, ID tokens.

Each test builds the app with its instance folder in ``tmp_path`` and, as
``flask --app example_app init`` does, creates the demo user, the demo
client and the server's signing key (:func:`example_app.oauth.init_signing_key`).
Tokens are verified as a client or a resource server would: with the keys
served at the ``jwks_uri`` of the RFC 8414 metadata, through joserfc and
Authlib's own RFC 9068 validator.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from datetime import datetime
from datetime import timedelta
from datetime import timezone
from urllib.parse import urlsplit

import pytest
from authlib.oauth2.rfc9068 import JWTBearerTokenValidator
from joserfc import jwt
from joserfc.jwk import KeySet

from authlib_saml2_grant import SAML2_BEARER_GRANT_TYPE
from example_app import create_app
from example_app.bootstrap import DEMO_CLIENT_ID
from example_app.bootstrap import DEMO_CLIENT_METADATA
from example_app.bootstrap import DEMO_USER_EMAIL
from example_app.bootstrap import DEMO_USER_NAME
from example_app.bootstrap import initialize
from example_app.idp import mint_assertion
from example_app.keys import SIGNING_KEY_FILENAME
from example_app.models import Client
from example_app.models import Token
from example_app.models import User
from example_app.models import db
from example_app.oauth import init_signing_key

BASE_URL = "http://127.0.0.1:5000"
API = f"{BASE_URL}/api"
MFA = "urn:example:ac:classes:mfa"
GROUPS = ["staff", "demo-admins"]


pytestmark = pytest.mark.usefixtures("no_example_env")


def make_app(instance, config=None, signing_key=True):
    app = create_app({"TESTING": True, **(config or {})}, instance_path=str(instance))
    with app.app_context():
        app.extensions["test_credentials"] = initialize()
    if signing_key:
        init_signing_key(app)
    return app


@pytest.fixture
def app(tmp_path):
    app = make_app(tmp_path)
    with app.app_context():
        yield app
        db.session.remove()


def basic():
    credentials = db.session.execute(
        db.select(Client).filter_by(client_id=DEMO_CLIENT_ID)
    ).scalar_one()
    raw = f"{credentials.client_id}:{credentials.client_secret}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def token_request(app, headers=None, **form):
    headers = basic() if headers is None else headers
    response = app.test_client().post("/oauth/token", data=form, headers=headers)
    return response.status_code, response.get_json()


def exchange(app, scope, **fields):
    """Mint an assertion for the demo user and exchange it (RFC 7522 section 2.1)."""
    assertion = mint_assertion(app, DEMO_USER_EMAIL, **fields)
    return token_request(app, grant_type=SAML2_BEARER_GRANT_TYPE, assertion=assertion, scope=scope)


def refresh(app, refresh_token, headers=None, **form):
    return token_request(
        app, headers, grant_type="refresh_token", refresh_token=refresh_token, **form
    )


def jwks(app):
    """The key set at the ``jwks_uri`` the metadata advertises (RFC 8414 section 2)."""
    client = app.test_client()
    metadata = client.get("/.well-known/oauth-authorization-server").get_json()
    response = client.get(urlsplit(metadata["jwks_uri"]).path)
    assert response.status_code == 200
    return KeySet.import_key_set(response.get_json())


def decode(app, token):
    """The header and claims of a JWT whose signature verifies with the JWKS."""
    decoded = jwt.decode(token, jwks(app), algorithms=["RS256"])
    return decoded.header, decoded.claims


def demo_user_id():
    user = db.session.execute(db.select(User).filter_by(email=DEMO_USER_EMAIL)).scalar_one()
    return str(user.id)


def api_me(app, access_token):
    return app.test_client().get("/api/me", headers={"Authorization": f"Bearer {access_token}"})


class ResourceServerValidator(JWTBearerTokenValidator):
    """A resource server of this app, validating per RFC 9068 section 4."""

    def __init__(self, keys):
        super().__init__(issuer=BASE_URL, resource_server=API)
        self.keys = keys

    def get_jwks(self):
        return self.keys


def test_access_token_is_a_jwt_verified_with_the_jwks(app):
    """RFC 9068 section 2: the access token is a JWT with ``typ`` ``at+jwt``,
    signed RS256 by the key of the JWKS (with its ``kid``), carrying ``iss``,
    ``exp``, ``aud`` (the protected API), ``sub`` (the user), ``client_id``,
    ``iat``, ``jti`` and ``scope``, and the authentication information of the
    assertion (section 2.2.1, ``auth_time`` and ``acr``)."""
    instant = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(seconds=5)
    status, body = exchange(
        app, "profile email", issue_instant=instant, authn_context_class_ref=MFA
    )
    assert status == 200, body
    assert body["token_type"] == "Bearer"
    header, claims = decode(app, body["access_token"])
    assert header["typ"] == "at+jwt"
    assert header["alg"] == "RS256"
    assert header["kid"] == jwks(app).keys[0].kid
    assert claims["iss"] == BASE_URL
    assert claims["aud"] == API
    assert claims["sub"] == demo_user_id()
    assert claims["client_id"] == DEMO_CLIENT_ID
    assert claims["scope"] == "profile email"
    assert claims["exp"] - claims["iat"] == body["expires_in"] == 3600
    assert claims["jti"]
    assert claims["auth_time"] == int(instant.timestamp())
    assert claims["acr"] == MFA


def test_access_token_carries_the_mapped_claims(app):
    """RFC 9068 sections 2.2.2 and 2.2.3.1: the claims SAML2_BEARER_CLAIMS maps
    from the signed attributes (RFC 7522 section 3) are in the access token,
    ``groups`` as a list."""
    status, body = exchange(app, "profile")
    assert status == 200, body
    _, claims = decode(app, body["access_token"])
    assert claims["email"] == DEMO_USER_EMAIL
    assert claims["name"] == DEMO_USER_NAME
    assert claims["groups"] == GROUPS


def test_a_resource_server_validates_the_access_token(app):
    """RFC 9068 section 4: Authlib's JWTBearerTokenValidator, given the JWKS,
    the issuer and the API as its resource, accepts the token, its scope and
    its ``groups``; the app's own ``/api/me`` (RFC 6750) accepts it too."""
    status, body = exchange(app, "profile email")
    assert status == 200, body
    validator = ResourceServerValidator(jwks(app))
    claims = validator.authenticate_token(body["access_token"])
    validator.validate_token(claims, ["profile"], None, groups=["demo-admins"])
    response = api_me(app, body["access_token"])
    assert response.status_code == 200
    assert response.get_json()["user"]["email"] == DEMO_USER_EMAIL


def test_mapped_claims_never_replace_the_registered_ones(tmp_path):
    """RFC 9068 section 2.2: ``sub``, ``iss``... are the server's, ``acr`` and
    ``auth_time`` (section 2.2.1) the assertion's ``AuthnStatement``; a mapping
    that names them is ignored for them, other claims of the mapping are added."""
    claims_setting = {"sub": "employeeNumber", "iss": "mail", "acr": "level", "department": "ou"}
    app = make_app(tmp_path, {"SAML2_BEARER_CLAIMS": claims_setting})
    with app.app_context():
        attributes = {"employeeNumber": "E-1", "mail": "x@example.com", "level": "1", "ou": "R&D"}
        status, body = exchange(app, "profile", attributes=attributes, authn_context_class_ref=MFA)
        assert status == 200, body
        _, claims = decode(app, body["access_token"])
        assert claims["sub"] == demo_user_id()
        assert claims["iss"] == BASE_URL
        assert claims["acr"] == MFA
        assert claims["department"] == "R&D"
        db.session.remove()


def test_metadata_advertises_the_jwks_uri(app):
    """RFC 8414 section 2: ``jwks_uri`` is the absolute URL of a JWK set
    (RFC 7517 section 5) holding the public signing key, and nothing private."""
    client = app.test_client()
    metadata = client.get("/.well-known/oauth-authorization-server").get_json()
    assert metadata["jwks_uri"] == f"{BASE_URL}/oauth/jwks.json"
    body = client.get("/oauth/jwks.json").get_json()
    [key] = body["keys"]
    assert key["kty"] == "RSA"
    assert key["use"] == "sig"
    assert key["alg"] == "RS256"
    assert key["kid"]
    assert not {"d", "p", "q", "dp", "dq", "qi"} & set(key)


def test_refresh_token_only_with_offline_access(app):
    """SAML2_BEARER_ISSUE_REFRESH_TOKEN = "offline_access" (OpenID Connect Core
    11, RFC 6749 section 5.1): a refresh token only when the granted scope has
    ``offline_access``."""
    status, body = exchange(app, "profile")
    assert status == 200, body
    assert "refresh_token" not in body
    status, body = exchange(app, "profile offline_access")
    assert status == 200, body
    assert body["refresh_token"]
    assert body["scope"] == "profile offline_access"


def test_refresh_returns_a_new_access_token(app):
    """RFC 6749 section 6: with client authentication, the refresh token gives
    a new access token, a JWT with the claims the IdP asserted at the exchange,
    and (rotation) a new refresh token; the old refresh token and its access
    token are revoked."""
    status, first = exchange(app, "profile offline_access", authn_context_class_ref=MFA)
    assert status == 200, first
    status, second = refresh(app, first["refresh_token"])
    assert status == 200, second
    assert second["access_token"] != first["access_token"]
    assert second["refresh_token"] != first["refresh_token"]
    assert second["scope"] == "profile offline_access"
    assert second["expires_in"] == 3600
    _, old = decode(app, first["access_token"])
    _, new = decode(app, second["access_token"])
    assert new["jti"] != old["jti"]
    for name in ("iss", "aud", "sub", "client_id", "auth_time", "acr", "email", "name", "groups"):
        assert new[name] == old[name], name
    assert api_me(app, second["access_token"]).status_code == 200
    assert api_me(app, first["access_token"]).status_code == 401
    status, body = refresh(app, first["refresh_token"])
    assert (status, body["error"]) == (400, "invalid_grant")


def test_refresh_may_narrow_the_scope(app):
    """RFC 6749 section 6: a refresh may ask for part of the original scope, never more."""
    status, first = exchange(app, "profile email offline_access")
    assert status == 200, first
    status, body = refresh(app, first["refresh_token"], scope="openid")
    assert (status, body["error"]) == (400, "invalid_scope")
    status, body = refresh(app, first["refresh_token"], scope="email offline_access")
    assert status == 200, body
    assert body["scope"] == "email offline_access"
    assert decode(app, body["access_token"])[1]["scope"] == "email offline_access"


def test_refresh_requires_client_authentication(app):
    """RFC 6749 section 6: a confidential client authenticates to refresh; a
    refresh token is bound to the client it was issued to."""
    status, first = exchange(app, "offline_access")
    assert status == 200, first
    status, body = refresh(app, first["refresh_token"], headers={})
    assert (status, body["error"]) == (401, "invalid_client")
    wrong = base64.b64encode(f"{DEMO_CLIENT_ID}:wrong".encode()).decode()
    status, body = refresh(app, first["refresh_token"], {"Authorization": f"Basic {wrong}"})
    assert (status, body["error"]) == (401, "invalid_client")
    other = Client(client_id="other-client", client_secret="other-secret")
    other.set_client_metadata({**DEMO_CLIENT_METADATA, "client_name": "Other"})
    db.session.add(other)
    db.session.commit()
    other_auth = base64.b64encode(b"other-client:other-secret").decode()
    status, body = refresh(app, first["refresh_token"], {"Authorization": f"Basic {other_auth}"})
    assert (status, body["error"]) == (400, "invalid_grant")


def test_expired_refresh_token_is_refused(app):
    """RFC 6749 section 6: an expired refresh token is an invalid grant
    (the example's refresh tokens last ``REFRESH_TOKEN_LIFETIME``)."""
    from example_app.oauth import RefreshTokenGrant

    status, first = exchange(app, "offline_access")
    assert status == 200, first
    token = db.session.execute(
        db.select(Token).filter_by(refresh_token=first["refresh_token"])
    ).scalar_one()
    token.issued_at -= RefreshTokenGrant.REFRESH_TOKEN_LIFETIME + 1
    db.session.commit()
    status, body = refresh(app, first["refresh_token"])
    assert (status, body["error"]) == (400, "invalid_grant")


def test_id_token_with_openid(app):
    """OpenID Connect Core 1.0 sections 2 and 3.1.3.6: with ``openid`` in the
    scope the response has an ``id_token``, signed by the key of the JWKS,
    whose ``iss`` is the issuer, ``aud`` the client, ``sub`` the user (as in the
    access token), ``auth_time`` and ``acr`` those of the assertion's
    ``AuthnStatement``, ``at_hash`` that of the access token, and the claims
    its scope requests (section 5.4) mapped from the assertion."""
    instant = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(seconds=5)
    status, body = exchange(
        app, "openid profile email", issue_instant=instant, authn_context_class_ref=MFA
    )
    assert status == 200, body
    header, claims = decode(app, body["id_token"])
    assert header["alg"] == "RS256"
    assert claims["iss"] == BASE_URL
    assert claims["aud"] == [DEMO_CLIENT_ID]
    assert claims["sub"] == demo_user_id() == decode(app, body["access_token"])[1]["sub"]
    assert claims["auth_time"] == int(instant.timestamp())
    assert claims["acr"] == MFA
    assert claims["exp"] - claims["iat"] == 3600
    digest = hashlib.sha256(body["access_token"].encode()).digest()
    assert claims["at_hash"] == base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()
    assert claims["email"] == DEMO_USER_EMAIL
    assert claims["name"] == DEMO_USER_NAME
    assert "groups" not in claims  # no standard scope requests it


def test_id_token_claims_follow_the_scope(app):
    """OpenID Connect Core 1.0 section 5.4: ``openid profile`` releases
    ``name`` but not ``email``."""
    status, body = exchange(app, "openid profile")
    assert status == 200, body
    _, claims = decode(app, body["id_token"])
    assert claims["name"] == DEMO_USER_NAME
    assert "email" not in claims


def test_no_id_token_without_openid(app):
    """OpenID Connect Core 1.0 section 3.1.2.1: without ``openid`` in the scope,
    a plain OAuth 2.0 token response (RFC 6749 section 5.1), no ``id_token``."""
    status, body = exchange(app, "profile email offline_access")
    assert status == 200, body
    assert "id_token" not in body


def test_without_a_signing_key_tokens_are_opaque(tmp_path, caplog):
    """Until ``init`` created the signing key, access tokens are opaque bearer
    tokens (RFC 6750) the API still accepts, ``openid`` yields no ID token and a
    WARNING says why; ``init`` then switches the running app to JWTs, and an app
    created later signs from the start."""
    app = make_app(tmp_path, signing_key=False)
    assert not (tmp_path / SIGNING_KEY_FILENAME).exists()
    with app.app_context():
        with caplog.at_level(logging.WARNING, logger="example_app"):
            status, body = exchange(app, "openid profile offline_access")
        assert status == 200, body
        assert body["access_token"].count(".") == 0
        assert body["refresh_token"]
        assert "id_token" not in body
        assert any("No id_token" in r.getMessage() for r in caplog.records)
        assert api_me(app, body["access_token"]).status_code == 200
        assert app.test_client().get("/oauth/jwks.json").get_json() == {"keys": []}
        assert app.test_cli_runner().invoke(args=["init"]).exit_code == 0
        # The opaque token refreshes into a JWT, without asserted claims to carry over.
        status, refreshed = refresh(app, body["refresh_token"])
        assert status == 200, refreshed
        _, claims = decode(app, refreshed["access_token"])
        assert claims["sub"] == demo_user_id()
        assert "email" not in claims
        status, body = exchange(app, "openid profile")
        assert status == 200, body
        assert decode(app, body["id_token"])[1]["name"] == DEMO_USER_NAME
        db.session.remove()
    again = create_app({"TESTING": True}, instance_path=str(tmp_path))
    with again.app_context():
        status, body = exchange(again, "profile")
        assert status == 200, body
        assert decode(again, body["access_token"])[1]["email"] == DEMO_USER_EMAIL
        db.session.remove()


def test_initialize_updates_the_demo_client(app):
    """The demo client of an older instance (saml2-bearer only, no ``openid``)
    gets the refresh-token grant and the ``openid offline_access`` scopes back
    from ``initialize`` (RFC 7591 client metadata)."""
    client = db.session.execute(db.select(Client).filter_by(client_id=DEMO_CLIENT_ID)).scalar_one()
    client.set_client_metadata({"grant_types": [SAML2_BEARER_GRANT_TYPE], "scope": "profile"})
    db.session.commit()
    assert initialize().created is False
    db.session.refresh(client)
    assert client.client_metadata == DEMO_CLIENT_METADATA
