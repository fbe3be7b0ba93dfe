"""The grant end to end through a real Flask app: :rfc:`7522#section-2.1`."""

from authlib_saml2_grant import SAML2_BEARER_GRANT_TYPE

from .conftest import TOKEN_ENDPOINT
from .conftest import basic_auth
from .conftest import request_token
from .helpers import token_store_down

GENERIC = "The SAML assertion is invalid, expired or already used."


def test_valid_assertion_yields_token(client, mint, accepted):
    """A valid signed assertion is exchanged for a bearer token (section 2.1)."""
    status, body = request_token(client, mint(), scope="profile")
    assert status == 200, body
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 600
    assert body["scope"] == "profile"
    assert "refresh_token" not in body
    assert accepted[0].subject == "alice@example.com"


def test_ec_signed_assertion(client, ec_idp):
    """ECDSA P-256 signatures are accepted from an IdP pinned with an EC key."""
    assertion = ec_idp.mint(audience="https://as.example.com", recipient=TOKEN_ENDPOINT)
    status, body = request_token(client, assertion)
    assert status == 200, body


def test_replay_is_refused(client, mint, reasons):
    """A bearer assertion yields one token only (RFC 7522 section 3, item 7 / replay)."""
    assertion = mint()
    assert request_token(client, assertion)[0] == 200
    status, body = request_token(client, assertion)
    assert status == 400
    assert body == {"error": "invalid_grant", "error_description": GENERIC}
    assert reasons == ["replayed"]


def test_missing_assertion(client):
    """The assertion parameter is REQUIRED (section 2.1)."""
    status, body = request_token(client, None)
    assert status == 400
    assert body["error"] == "invalid_request"
    assert body["error_description"] == "Missing 'assertion' in request."


def test_repeated_assertion(client, mint):
    """The assertion parameter MUST contain a single assertion (section 2.1)."""
    assertion = mint()
    response = client.post(
        "/oauth/token",
        data={"grant_type": SAML2_BEARER_GRANT_TYPE, "assertion": [assertion, assertion]},
        headers=basic_auth(),
    )
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_request"
    assert response.get_json()["error_description"] == "Multiple 'assertion' parameters in request."


def test_client_must_authenticate(client, mint):
    """Client authentication happens as for any grant (section 3.1 / RFC 6749 3.2.1)."""
    status, body = request_token(client, mint(), headers=basic_auth(secret="wrong"))
    assert status == 401
    assert body["error"] == "invalid_client"


def test_client_not_allowed_grant(client, mint):
    """A client whose grant_types lack saml2-bearer gets unauthorized_client."""
    status, body = request_token(client, mint(), headers=basic_auth("client-2", "secret-2"))
    assert status == 400
    assert body["error"] == "unauthorized_client"


def test_unknown_user(client, mint, reasons):
    """authenticate_user returning None is invalid_grant (section 3, item 2 subject)."""
    status, body = request_token(client, mint(subject="mallory@example.com"))
    assert (status, body["error"]) == (400, "invalid_grant")
    assert reasons == ["user_unknown"]


def test_failed_user_lookup_does_not_burn_assertion(client, mint, app):
    """Replay is recorded last: a refused request leaves the assertion usable."""
    assertion = mint()
    status, body = request_token(client, assertion, scope="unknown-scope")
    assert body["error"] == "invalid_scope"
    assert request_token(client, assertion)[0] == 200


def test_scope_limited_to_client(client, mint):
    """The token's scope is the client's allowed part of the request."""
    status, body = request_token(client, mint(), scope="profile admin")
    assert status == 200
    assert body["scope"] == "profile"


def test_refresh_token_setting(tmp_path, idp):
    """SAML2_BEARER_ISSUE_REFRESH_TOKEN adds a refresh token when enabled."""
    from .conftest import AS_ENTITY_ID
    from .conftest import create_app
    from .conftest import db

    app = create_app(
        tmp_path,
        [idp],
        SAML2_BEARER_ISSUE_REFRESH_TOKEN=True,
        OAUTH2_REFRESH_TOKEN_GENERATOR=True,
    )
    with app.app_context():
        status, body = request_token(
            app.test_client(), idp.mint(audience=AS_ENTITY_ID, recipient=TOKEN_ENDPOINT)
        )
        db.session.remove()
    assert status == 200, body
    assert body["refresh_token"]


def test_assertion_on_request_for_hooks(app, client, mint):
    """The verified assertion is stored on the request for hooks and extensions."""
    server = app.extensions["test_server"]
    seen = []
    grant_cls = server._token_grants[0][0]

    def hook(grant, result):
        seen.append(grant.request.saml2_assertion)

    original = grant_cls.__init__

    def init(self, request, server):
        original(self, request, server)
        self.register_hook("after_validate_token_request", hook)

    grant_cls.__init__ = init
    try:
        assert request_token(client, mint(attributes={"role": ["a", "b"]}))[0] == 200
    finally:
        grant_cls.__init__ = original
    assert seen[0].attributes["role"] == ("a", "b")


def test_token_storage_failure_is_not_a_500(app, client, mint, reasons):
    """A failing save_token answers invalid_grant (token_error), never a 500."""
    with token_store_down(app):
        status, body = request_token(client, mint())
    assert status == 400
    assert body == {"error": "invalid_grant", "error_description": GENERIC}
    assert reasons == ["token_error"]


def test_client_lookup_failure_is_invalid_client(app, client, mint, monkeypatch):
    """A client lookup that raises (database down) answers invalid_client, never a 500."""
    server = app.extensions["test_server"]

    def broken(client_id):
        raise RuntimeError("client database is down")

    monkeypatch.setattr(server, "_query_client", broken)
    status, body = request_token(client, mint())
    assert status == 401
    assert body["error"] == "invalid_client"
