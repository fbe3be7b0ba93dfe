"""The grant end to end through a real Flask app: :rfc:`7522#section-2.1`."""

import pytest

from .conftest import Grant
from .conftest import basic_auth
from .conftest import mint_for
from .conftest import request_token
from .helpers import BAD_CLIENT_CREDENTIALS
from .helpers import GRANT_NOT_ALLOWED
from .helpers import MISSING_ASSERTION
from .helpers import app_for
from .helpers import assert_accepted
from .helpers import assert_rejected
from .helpers import assert_unavailable
from .helpers import token_store_down


def test_valid_assertion_yields_token(client, mint, accepted):
    """A valid signed assertion is exchanged for a bearer token (section 2.1); no
    refresh token unless SAML2_BEARER_ISSUE_REFRESH_TOKEN is set."""
    status, body = request_token(client, mint(), scope="profile")
    assert_accepted(status, body, accepted)
    assert body["expires_in"] == 600
    assert body["scope"] == "profile"
    assert "refresh_token" not in body


def test_ec_signed_assertion(client, ec_idp, accepted):
    """ECDSA P-256 signatures are accepted from an IdP pinned with an EC key."""
    verified = assert_accepted(*request_token(client, mint_for(ec_idp)), accepted)
    assert verified.issuer == ec_idp.entity_id


def test_replay_is_refused(client, mint, reasons):
    """A bearer assertion yields one token only (RFC 7522 section 3, item 6 / replay)."""
    assertion = mint()
    assert request_token(client, assertion)[0] == 200
    status, body = request_token(client, assertion)
    assert_rejected(status, body, reasons, "replayed")


def test_missing_assertion(client, reasons):
    """The assertion parameter is REQUIRED (section 2.1): invalid_request, before any
    verification."""
    status, body = request_token(client, None)
    assert (status, body) == (400, MISSING_ASSERTION)
    assert reasons == []


def test_repeated_assertion(client, mint, reasons, accepted):
    """The assertion parameter MUST contain a single assertion (section 2.1); neither
    copy is verified or consumed."""
    good = mint()
    for values in ([good, good], [good, "x"], ["x", good]):
        status, body = request_token(client, values)
        assert status == 400
        assert body == {
            "error": "invalid_request",
            "error_description": "Multiple 'assertion' parameters in request.",
        }
    assert reasons == []
    assert accepted == []
    assert request_token(client, good)[0] == 200


@pytest.mark.parametrize(
    "name", ["grant_type", "scope", "client_id", "client_secret", "client_assertion_type"]
)
def test_repeated_parameters_are_invalid_request(client, mint, reasons, accepted, name):
    """:rfc:`6749#section-3.2`: parameters MUST NOT be included more than once. A
    repeated grant_type (e.g. saml2-bearer and authorization_code) is refused
    before the client is authenticated or the assertion looked at."""
    from authlib_saml2_grant import SAML2_BEARER_GRANT_TYPE

    good = mint()
    values = {
        "grant_type": [SAML2_BEARER_GRANT_TYPE, "authorization_code"],
        "scope": ["profile", "email"],
        "client_id": ["client-1", "client-1"],
        "client_secret": ["secret-1", "secret-1"],
        "client_assertion_type": ["a", "b"],
    }[name]
    data = {"grant_type": SAML2_BEARER_GRANT_TYPE, "assertion": good, name: values}
    response = client.post("/oauth/token", data=data, headers=basic_auth())
    assert (response.status_code, response.get_json()) == (
        400,
        {
            "error": "invalid_request",
            "error_description": f"Multiple '{name}' parameters in request.",
        },
    )
    assert reasons == [] and accepted == []
    assert request_token(client, good)[0] == 200


def test_client_must_authenticate(client, mint, reasons):
    """Client authentication happens as for any grant (section 3.1 / RFC 6749 3.2.1),
    before the assertion is looked at."""
    status, body = request_token(client, mint(), headers=basic_auth(secret="wrong"))
    assert (status, body) == (401, BAD_CLIENT_CREDENTIALS)
    assert reasons == []


def test_client_not_allowed_grant(client, mint, reasons):
    """A client whose grant_types lack saml2-bearer gets unauthorized_client."""
    status, body = request_token(client, mint(), headers=basic_auth("client-2", "secret-2"))
    assert (status, body) == (400, GRANT_NOT_ALLOWED)
    assert reasons == []


def test_unknown_user(client, mint, reasons):
    """authenticate_user returning None is invalid_grant (section 3, item 3 subject)."""
    status, body = request_token(client, mint(subject="mallory@example.com"))
    assert_rejected(status, body, reasons, "user_unknown")


def test_refresh_token_setting(tmp_path, idp):
    """SAML2_BEARER_ISSUE_REFRESH_TOKEN adds a refresh token when enabled."""
    with app_for(
        tmp_path, [idp], SAML2_BEARER_ISSUE_REFRESH_TOKEN=True, OAUTH2_REFRESH_TOKEN_GENERATOR=True
    ) as h:
        status, body = h.token(mint_for(idp))
    assert status == 200, body
    assert body["refresh_token"]


def test_assertion_on_request_for_hooks(tmp_path, idp):
    """The verified assertion is stored on the request for hooks and extensions."""
    seen = []

    class HookedGrant(Grant):
        def __init__(self, request, server):
            super().__init__(request, server)
            self.register_hook(
                "after_validate_token_request",
                lambda grant, result: seen.append(grant.request.saml2_assertion),
            )

    with app_for(tmp_path, [idp], grant=HookedGrant) as h:
        status, body = h.token(mint_for(idp, attributes={"role": ["a", "b"]}))
    assert status == 200, body
    assert seen == h.accepted
    assert seen[0].attributes["role"] == ("a", "b")


def test_token_storage_failure_is_not_a_500(app, client, mint, reasons):
    """A failing save_token answers 503 temporarily_unavailable (token_error), never a
    500 nor invalid_grant; the transactional replay record is rolled back."""
    with token_store_down(app):
        status, body = request_token(client, mint())
    assert_unavailable(status, body, reasons, "token_error")


def test_client_lookup_failure_is_temporarily_unavailable(app, client, mint, reasons, monkeypatch):
    """A client lookup that raises (database down) answers 503, never a 500, and not
    invalid_client: the client's credentials are not to blame."""

    def broken(client_id):
        raise RuntimeError("client database is down")

    monkeypatch.setattr(app.extensions["test_storage"], "query_client", broken)
    status, body = request_token(client, mint())
    assert_unavailable(status, body, reasons, "client_lookup_error")
