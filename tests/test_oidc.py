"""The ``id_token`` of :class:`SAML2OpenIDToken`: OpenID Connect Core 1.0 on
top of the RFC 7522 grant, registered the Authlib way,
``server.register_grant(Grant, [TestOpenIDToken(key)])``.

The app is conftest's ``create_app`` with ``openid`` among the supported
scopes; its token endpoint is served by a second ``AuthorizationServer`` that
registers the grant with the extension, and ``oidc-client`` may ask for
``openid profile email``. ``client-1`` (``profile email``) may not.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
from datetime import datetime
from datetime import timedelta
from datetime import timezone

import pytest
from authlib.integrations.flask_oauth2 import AuthorizationServer
from joserfc import jwt
from joserfc.jwk import RSAKey

from authlib_saml2_grant import SAML2_BEARER_GRANT_TYPE
from authlib_saml2_grant import VerifiedAssertion
from authlib_saml2_grant.oidc import SAML2OpenIDToken

from .conftest import AS_ENTITY_ID
from .conftest import Client
from .conftest import Grant
from .conftest import basic_auth
from .conftest import create_app
from .conftest import db
from .conftest import in_context
from .conftest import record_signals
from .conftest import request_token
from .helpers import assert_unavailable

OIDC_CLIENT_ID = "oidc-client"
OIDC_CLIENT_SECRET = "oidc-secret"
MFA = "urn:example:ac:classes:mfa"
#: How the test app maps signed SAML attributes to claims (SAML2_BEARER_CLAIMS).
CLAIMS_SETTING = {
    "name": "displayName",
    "email": ["mail", "urn:oid:0.9.2342.19200300.100.1.3"],
    "phone_number": "telephoneNumber",
    "groups": "memberOf",
    "sub": "employeeNumber",
}
ATTRIBUTES = {
    "displayName": "Alice Liddell",
    "mail": "alice@example.com",
    "telephoneNumber": "+1 555 0100",
    "memberOf": ["staff", "admins"],
    "employeeNumber": "E-1001",
}


class TestOpenIDToken(SAML2OpenIDToken):
    """Implements what Authlib requires; user info from the assertion."""

    __test__ = False  # not a pytest test class

    def __init__(self, key):
        self.key = key

    def resolve_client_private_key(self, client):
        return self.key

    def get_client_claims(self, client):
        return {"iss": AS_ENTITY_ID}

    def generate_user_info(self, user, scope):
        return self.get_user_info_from_assertion(self.get_assertion(), scope)


@pytest.fixture(scope="module")
def key():
    return RSAKey.generate_key(2048)


@contextlib.contextmanager
def serve_oidc(tmp_path, idp, extension):
    """A test client of the app whose grant carries the OpenID Connect
    ``extension``, and the app's signals."""
    app = create_app(
        tmp_path,
        [idp],
        OAUTH2_SCOPES_SUPPORTED=["openid", "profile", "email", "phone"],
        SAML2_BEARER_CLAIMS=CLAIMS_SETTING,
    )
    storage = app.extensions["test_storage"]
    server = AuthorizationServer(
        app,
        query_client=lambda client_id: storage.query_client(client_id),
        save_token=lambda token, request: storage.save_token(token, request),
    )
    server.register_grant(Grant, [extension])
    app.view_functions["issue_token"] = server.create_token_response
    with record_signals(app) as signals, in_context(app):
        client = Client(client_id=OIDC_CLIENT_ID, client_secret=OIDC_CLIENT_SECRET)
        client.set_client_metadata(
            {
                "grant_types": [SAML2_BEARER_GRANT_TYPE],
                "scope": "openid profile email",
                "token_endpoint_auth_method": "client_secret_basic",
            }
        )
        db.session.add(client)
        db.session.commit()
        yield app.test_client(), signals


@pytest.fixture
def oidc(tmp_path, idp, key):
    """A test client of the app whose grant carries the OpenID Connect extension,
    and the assertions it accepted."""
    with serve_oidc(tmp_path, idp, TestOpenIDToken(key)) as (client, signals):
        yield client, signals.accepted


def oidc_token(client, assertion, **extra):
    """The saml2-bearer token request of ``oidc-client``."""
    headers = basic_auth(OIDC_CLIENT_ID, OIDC_CLIENT_SECRET)
    return request_token(client, assertion, headers=headers, **extra)


def decode(id_token, key):
    """The ID token's header and claims, its signature verified with the public key."""
    public = RSAKey.import_key(key.as_dict(private=False))
    token = jwt.decode(id_token, public, algorithms=["RS256"])
    return token.header, token.claims


def half_hash(access_token):
    """``at_hash`` per OpenID Connect Core 3.1.3.6: the left half of the SHA-256 of
    the ASCII access token (RS256), base64url-encoded without padding."""
    digest = hashlib.sha256(access_token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode()


def test_id_token_claims(oidc, mint, key):
    """With ``openid`` granted, the RFC 7522 token response carries an ID token
    (OpenID Connect Core 3.1.3.3) signed with the key of
    ``resolve_client_private_key``, with the REQUIRED claims of Core 2, ``at_hash``
    of Core 3.1.3.6, and the authentication the IdP asserted: ``auth_time`` from
    ``AuthnInstant`` (whole seconds) and ``acr`` from ``AuthnContextClassRef``."""
    client, accepted = oidc
    # AuthnInstant is the IssueInstant; .750 tells flooring from rounding.
    instant = (datetime.now(timezone.utc) - timedelta(seconds=10)).replace(microsecond=750_000)
    assertion = mint(issue_instant=instant, authn_context_class_ref=MFA)
    status, body = oidc_token(client, assertion, scope="openid profile")
    assert status == 200, body
    assert body["scope"] == "openid profile"
    header, claims = decode(body["id_token"], key)
    assert header["alg"] == "RS256"
    assert claims["iss"] == AS_ENTITY_ID
    assert claims["aud"] == [OIDC_CLIENT_ID]
    assert claims["sub"] == "alice@example.com"
    assert isinstance(claims["iat"], int)
    assert claims["exp"] == claims["iat"] + SAML2OpenIDToken.DEFAULT_EXPIRES_IN
    assert claims["at_hash"] == half_hash(body["access_token"])
    assert claims["auth_time"] == int(instant.timestamp())
    assert claims["auth_time"] == int(accepted[0].authn_instant.timestamp())
    assert claims["acr"] == MFA


def test_no_openid_scope_no_id_token(oidc, mint):
    """An OAuth 2.0 request without ``openid`` is not an OpenID Connect request
    (OpenID Connect Core 3.1.2.1): the RFC 7522 response has no ID token."""
    client, _ = oidc
    for extra in ({"scope": "profile email"}, {}):
        status, body = oidc_token(client, mint(), **extra)
        assert status == 200, body
        assert "access_token" in body
        assert "id_token" not in body


def test_scope_not_granted_no_id_token(oidc, mint):
    """The granted scope decides, not the requested one (RFC 6749 section 3.3):
    a client not allowed ``openid`` gets its token without it, and no ID token."""
    client, _ = oidc
    status, body = request_token(client, mint(), headers=basic_auth(), scope="openid profile")
    assert status == 200, body
    assert body["scope"] == "profile"
    assert "id_token" not in body


def test_no_authn_statement(oidc, mint, key):
    """Without an ``AuthnStatement`` the assertion states no authentication event:
    the ID token has neither ``auth_time`` nor ``acr`` (both OPTIONAL here, OpenID
    Connect Core 2), rather than Authlib's default ``auth_time`` of now."""
    client, _ = oidc
    status, body = oidc_token(client, mint(authn_statement=False), scope="openid")
    assert status == 200, body
    _, claims = decode(body["id_token"], key)
    assert "auth_time" not in claims
    assert "acr" not in claims
    assert claims["sub"] == "alice@example.com"


def test_user_info_from_assertion(oidc, mint, key):
    """The claims mapped from the signed attributes (SAML2_BEARER_CLAIMS) are
    released by scope (OpenID Connect Core 5.4): ``profile`` and ``email`` here,
    not ``phone`` (not granted), no custom claim, and ``sub`` stays the NameID."""
    client, accepted = oidc
    status, body = oidc_token(client, mint(attributes=ATTRIBUTES), scope="openid profile email")
    assert status == 200, body
    _, claims = decode(body["id_token"], key)
    assert set(accepted[0].claims) == set(CLAIMS_SETTING)
    assert claims["name"] == "Alice Liddell"
    assert claims["email"] == "alice@example.com"
    assert "phone_number" not in claims
    assert "groups" not in claims
    assert claims["sub"] == "alice@example.com"


def verified(**fields):
    """A verified assertion, as the verifier would return it."""
    now = datetime.now(timezone.utc)
    values = {
        "issuer": "https://idp.example.com",
        "subject": "alice@example.com",
        "name_id_format": None,
        "name_qualifier": None,
        "sp_name_qualifier": None,
        "assertion_id": "_1",
        "issue_instant": now,
        "expires_at": now + timedelta(minutes=5),
        "not_before": None,
        "audiences": (AS_ENTITY_ID,),
        "recipient": None,
        **fields,
    }
    return VerifiedAssertion(**values)


def test_user_info_filtered_by_scope(key):
    """``get_user_info_from_assertion`` keeps the mapped claims each granted scope
    value requests (OpenID Connect Core 5.4), lists as they are; ``sub`` is the
    NameID unless given, never a mapped ``sub`` claim (Core 2: stable, not reassigned)."""
    extension = TestOpenIDToken(key)
    assertion = verified(
        claims={
            "name": "Alice Liddell",
            "email": "alice@example.com",
            "phone_number": ["+1 555 0100", "+1 555 0101"],
            "address": "1 Rabbit Hole",
            "groups": ["staff"],
            "sub": "E-1001",
        }
    )
    info = extension.get_user_info_from_assertion(assertion, "openid email phone")
    assert dict(info) == {
        "sub": "alice@example.com",
        "email": "alice@example.com",
        "phone_number": ["+1 555 0100", "+1 555 0101"],
    }
    info = extension.get_user_info_from_assertion(assertion, "openid", sub="42")
    assert dict(info) == {"sub": "42"}


def test_assertion_claims():
    """``auth_time`` is the AuthnInstant in whole seconds since the epoch and ``acr``
    the AuthnContextClassRef (OpenID Connect Core 2), each only when present."""
    extension = SAML2OpenIDToken()
    instant = datetime(2025, 1, 2, 3, 4, 5, 999_000, tzinfo=timezone(timedelta(hours=2)))
    claims = extension.get_assertion_claims(
        verified(authn_instant=instant, authn_context_class_ref=MFA)
    )
    assert claims == {"auth_time": 1735779845, "acr": MFA}
    assert extension.get_assertion_claims(verified()) == {}


def test_hooks_authlib_requires():
    """What Authlib's OpenIDToken requires of a subclass stays required, and the
    assertion is only there while an ID token is encoded."""
    extension = SAML2OpenIDToken()
    with pytest.raises(NotImplementedError):
        extension.resolve_client_private_key(None)
    with pytest.raises(NotImplementedError):
        extension.get_client_claims(None)
    with pytest.raises(NotImplementedError):
        extension.generate_user_info(None, "openid")
    with pytest.raises(RuntimeError):
        extension.get_assertion()


class BrokenKeyOpenIDToken(TestOpenIDToken):
    """An ID token extension whose signing key cannot be loaded."""

    __test__ = False

    def resolve_client_private_key(self, client):
        raise OSError("the signing key file is missing")


def test_id_token_failure_is_a_json_503(tmp_path, idp, mint):
    """Never a 500: the ID token is built by Authlib's after_create_token_response
    hook, after the token was saved and the assertion spent; a failure there is
    ``token_error``, a JSON 503 telling the client to retry with a new assertion,
    and the assertion stays spent (:rfc:`7522#section-3` item 6)."""
    with serve_oidc(tmp_path, idp, BrokenKeyOpenIDToken(None)) as (client, signals):
        assertion = mint()
        status, body = oidc_token(client, assertion, scope="openid profile")
        assert_unavailable(status, body, signals.reasons, "token_error", spent=True)
        assert signals.rejections[0][1]["error"] == "OSError: the signing key file is missing"
        status, body = oidc_token(client, assertion, scope="openid profile")
        assert (status, body["error"]) == (400, "invalid_grant")
        assert signals.reasons[-1] == "replayed"
