"""Salesforce's SAML assertion flow in the example app (``example_app.legacy``).

A client written to Salesforce's "SAML Assertion Flow for Accessing the API"
posts a whole signed Web SSO ``samlp:Response`` with ``grant_type=assertion``
and no client credentials; it gets ``access_token``, ``token_type``, ``id``
(an identity URL that answers with the user) and ``instance_url``, never a
refresh token, in the ``format`` it asks for. Each test builds the app with
its instance folder in ``tmp_path``, as ``tests/test_example_app.py`` does.
"""

from __future__ import annotations

import base64
from urllib.parse import parse_qs
from urllib.parse import urlsplit

import pytest
from joserfc import jwt
from lxml import etree

from authlib_saml2_grant import SAML2_BEARER_GRANT_TYPE
from authlib_saml2_grant import SAML2_BROWSER_SSO_ASSERTION_TYPE
from example_app import create_app
from example_app.bootstrap import DEMO_LEGACY_CLIENT_ID
from example_app.bootstrap import DEMO_USER_EMAIL
from example_app.bootstrap import initialize
from example_app.idp import mint_assertion
from example_app.idp import mint_response
from example_app.keys import SIGNING_ALG
from example_app.keys import signing_keys
from example_app.models import db
from example_app.oauth import init_signing_key

from .conftest import record_signals

pytestmark = pytest.mark.usefixtures("no_example_env")

BASE_URL = "http://127.0.0.1:5000"
TOKEN_ENDPOINT = f"{BASE_URL}/oauth/token"


def make_app(tmp_path, **config):
    app = create_app({"TESTING": True, **config}, instance_path=str(tmp_path))
    with app.app_context():
        initialize()
    return app


@pytest.fixture
def app(tmp_path):
    app = make_app(tmp_path)
    with app.app_context():
        yield app
        db.session.remove()


def post(app, response, headers=None, **extra):
    """Salesforce's request: grant_type, assertion_type, the Response; no client."""
    form = {
        "grant_type": "assertion",
        "assertion_type": SAML2_BROWSER_SSO_ASSERTION_TYPE,
        "assertion": response,
        **extra,
    }
    return app.test_client().post("/oauth/token", data=form, headers=headers or {})


def parse(response) -> dict:
    """The token of a JSON, form-encoded or XML answer, as a dict of strings."""
    media = response.mimetype
    if media == "application/json":
        return {k: str(v) for k, v in response.get_json().items()}
    text = response.get_data(as_text=True)
    if media == "application/x-www-form-urlencoded":
        return {k: v[0] for k, v in parse_qs(text, strict_parsing=True).items()}
    assert media == "application/xml", media
    root = etree.fromstring(response.get_data())
    assert root.tag == "OAuth"
    return {child.tag: child.text for child in root}


def get(app, url, token):
    path = urlsplit(url).path
    return app.test_client().get(path, headers={"Authorization": f"Bearer {token}"})


def test_response_without_credentials_gets_id_and_instance_url(app):
    """The whole flow: a Response signed by the demo IdP, no client
    credentials; the token goes to SAML2_BEARER_LEGACY_CLIENT_ID, with
    Salesforce's id and instance_url and no refresh token; the id URL and
    /api/me answer with the user."""
    with record_signals(app) as signals:
        response = post(app, mint_response(app, DEMO_USER_EMAIL))
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert sorted(body) == ["access_token", "expires_in", "id", "instance_url", "token_type"]
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["instance_url"] == BASE_URL
    assert body["id"] == f"{BASE_URL}/id/{DEMO_LEGACY_CLIENT_ID}/1"
    assert [a.subject for a in signals.accepted] == [DEMO_USER_EMAIL]

    identity = get(app, body["id"], body["access_token"])
    assert identity.status_code == 200
    me = identity.get_json()
    assert me["id"] == body["id"]
    assert me["user"]["email"] == me["username"] == DEMO_USER_EMAIL
    assert me["display_name"] == "Alice Example"
    assert me["client_id"] == DEMO_LEGACY_CLIENT_ID
    api = get(app, f"{body['instance_url']}/api/me", body["access_token"])
    assert api.status_code == 200
    assert api.get_json()["user"] == me["user"]


@pytest.mark.parametrize(
    "extra, headers, media",
    [
        ({}, {}, "application/json"),
        ({"format": "json"}, {}, "application/json"),
        ({"format": "urlencoded"}, {}, "application/x-www-form-urlencoded"),
        ({"format": "xml"}, {}, "application/xml"),
        ({}, {"Accept": "application/xml"}, "application/xml"),
        ({}, {"Accept": "text/xml"}, "application/xml"),
        ({}, {"Accept": "application/x-www-form-urlencoded"}, "application/x-www-form-urlencoded"),
        ({"format": "json"}, {"Accept": "application/xml"}, "application/json"),
    ],
)
def test_each_format_has_id_and_instance_url(app, extra, headers, media):
    """format (or Accept) selects JSON, form encoding or XML; every one carries
    the fields the hook added, and none a refresh token."""
    response = post(app, mint_response(app, DEMO_USER_EMAIL), headers, **extra)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == media
    assert response.headers["Cache-Control"] == "no-store"
    token = parse(response)
    assert sorted(token) == ["access_token", "expires_in", "id", "instance_url", "token_type"]
    assert token["instance_url"] == BASE_URL
    assert token["token_type"] == "Bearer"
    identity = get(app, token["id"], token["access_token"])
    assert identity.get_json()["user"]["email"] == DEMO_USER_EMAIL


def test_unknown_format_is_invalid_request(app):
    response = post(app, mint_response(app, DEMO_USER_EMAIL), format="yaml")
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_request"


def test_never_a_refresh_token(tmp_path):
    """Even where the app issues refresh tokens to every grant."""
    app = make_app(tmp_path, SAML2_BEARER_ISSUE_REFRESH_TOKEN=True)
    with app.app_context():
        response = post(app, mint_response(app, DEMO_USER_EMAIL), scope="profile")
        body = response.get_json()
        assert response.status_code == 200, body
        assert "refresh_token" not in body
        assert body["scope"] == "profile"


def test_jwt_access_token_carries_the_asserted_claims(app):
    """Once the signing key exists the token is an RFC 9068 JWT for the legacy
    client, with the claims mapped from the Response's signed assertion."""
    init_signing_key(app)
    body = post(app, mint_response(app, DEMO_USER_EMAIL)).get_json()
    claims = jwt.decode(body["access_token"], signing_keys(), algorithms=[SIGNING_ALG]).claims
    assert claims["client_id"] == DEMO_LEGACY_CLIENT_ID
    assert claims["email"] == DEMO_USER_EMAIL
    assert claims["groups"] == ["staff", "demo-admins"]
    assert get(app, body["id"], body["access_token"]).status_code == 200


@pytest.mark.parametrize("recipient", [TOKEN_ENDPOINT, BASE_URL])
def test_token_endpoint_or_login_url_as_recipient(app, recipient):
    """As Salesforce: the Recipient (and Destination) may be the token
    endpoint or the login URL, here EXAMPLE_APP_BASE_URL."""
    response = post(app, mint_response(app, DEMO_USER_EMAIL, recipient=recipient))
    assert response.status_code == 200, response.get_data(as_text=True)


def test_other_recipients_are_refused(app):
    with record_signals(app) as signals:
        elsewhere = mint_response(app, DEMO_USER_EMAIL, recipient="https://elsewhere.example/acs")
        assert post(app, elsewhere).get_json()["error"] == "invalid_grant"
        slash = mint_response(app, DEMO_USER_EMAIL, recipient=f"{BASE_URL}/")
        assert post(app, slash).get_json()["error"] == "invalid_grant"
    assert signals.reasons == ["destination_mismatch", "destination_mismatch"]


def test_the_login_url_is_not_a_recipient_of_the_saml2_bearer_grant(app):
    """Only the legacy grant accepts the login URL: an RFC 7522 assertion
    addressed to it stays recipient_mismatch."""
    credentials = initialize()
    raw = f"{credentials.client_id}:{credentials.client_secret}".encode()
    form = {
        "grant_type": SAML2_BEARER_GRANT_TYPE,
        "assertion": mint_assertion(app, DEMO_USER_EMAIL, recipient=BASE_URL),
    }
    with record_signals(app) as signals:
        response = app.test_client().post(
            "/oauth/token",
            data=form,
            headers={"Authorization": "Basic " + base64.b64encode(raw).decode()},
        )
    assert response.get_json()["error"] == "invalid_grant"
    assert signals.reasons == ["recipient_mismatch"]


def test_replayed_response_is_refused(app):
    response = mint_response(app, DEMO_USER_EMAIL)
    assert post(app, response).status_code == 200
    with record_signals(app) as signals:
        again = post(app, response)
    assert again.status_code == 400
    assert again.get_json()["error"] == "invalid_grant"
    assert signals.reasons == ["replayed"]


def test_client_credentials_authenticate_as_usual(app):
    """A client that sends credentials is that client: the demo client is not
    allowed grant_type=assertion, a wrong secret is invalid_client."""
    credentials = initialize()
    raw = f"{credentials.client_id}:{credentials.client_secret}".encode()
    basic = {"Authorization": "Basic " + base64.b64encode(raw).decode()}
    response = post(app, mint_response(app, DEMO_USER_EMAIL), basic)
    assert response.get_json()["error"] == "unauthorized_client"
    wrong = {"Authorization": "Basic " + base64.b64encode(b"demo-client:nope").decode()}
    assert post(app, mint_response(app, DEMO_USER_EMAIL), wrong).status_code == 401


def test_without_a_legacy_client_credential_less_requests_are_invalid_client(tmp_path):
    app = make_app(tmp_path, SAML2_BEARER_LEGACY_CLIENT_ID=None)
    with app.app_context():
        response = post(app, mint_response(app, DEMO_USER_EMAIL))
    assert response.status_code in (400, 401)
    assert response.get_json()["error"] == "invalid_client"


def test_identity_url_needs_the_tokens_own_user_and_client(app):
    """Like /api/me, the id URL needs a valid bearer token (RFC 6750), and it
    only shows that token's own identity."""
    body = post(app, mint_response(app, DEMO_USER_EMAIL)).get_json()
    client = app.test_client()
    assert client.get(urlsplit(body["id"]).path).status_code == 401
    assert get(app, body["id"], "nope").status_code == 401
    for other in (f"/id/{DEMO_LEGACY_CLIENT_ID}/2", "/id/demo-client/1"):
        refused = get(app, other, body["access_token"])
        assert refused.status_code == 403
        assert refused.get_json()["error"] == "access_denied"


def test_metadata_lists_the_assertion_grant(app):
    body = app.test_client().get("/.well-known/oauth-authorization-server").get_json()
    assert "assertion" in body["grant_types_supported"]


def test_demo_shows_the_legacy_exchange(tmp_path):
    """``flask --app example_app demo`` ends with Salesforce's flow: the
    Response exchanged without credentials, id and instance_url shown, no
    refresh token, the id URL called, the replay refused."""
    app = create_app(instance_path=str(tmp_path))
    result = app.test_cli_runner().invoke(args=["demo"])
    assert result.exit_code == 0, result.output
    out = result.output
    legacy = out[out.index("== 8. Mint a signed Web SSO Response") :]
    assert "== 9. Exchange it with grant_type=assertion and no client credentials" in legacy
    assert ">   grant_type=assertion" in legacy
    assert "Authorization: Basic" not in legacy
    exchange = legacy[: legacy.index("== 10.")]
    assert '"instance_url": "http://127.0.0.1:' in exchange
    assert '"id": "http://127.0.0.1:' in exchange and f"/id/{DEMO_LEGACY_CLIENT_ID}/" in exchange
    assert "refresh_token" not in exchange.replace("no refresh token", "")
    assert "ok: 200 with a Bearer access token, id and instance_url, and no refresh token" in out
    assert "== 10. Call the identity URL (id)" in legacy
    assert '"username": "alice@example.com"' in legacy
    assert "== 11. Replay the same Response" in legacy
    assert "assertion_rejected signal: reason=replayed" in legacy[legacy.index("== 11.") :]
    assert out.rstrip().endswith("All 11 steps gave the expected result.")
