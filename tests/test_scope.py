"""What scope a saml2-bearer token gets, as Authlib decides it.

RFC 7522 section 2.1 lets the client send ``scope`` with the assertion, with
the meaning of RFC 6749 section 3.3. The grant leaves scope to Authlib, which
looks at it twice, after the assertion is verified and before the user lookup:

1. ``AuthorizationServer.validate_requested_scope``: when
   ``OAUTH2_SCOPES_SUPPORTED`` is set (non-empty), a request naming any scope
   outside it is refused as a whole with ``invalid_scope``; unset, nothing is
   refused here.
2. ``BearerTokenGenerator.get_allowed_scope`` calls the client's
   ``get_allowed_scope``; Authlib's SQLAlchemy client mixin keeps the requested
   scopes that the client's registered ``scope`` metadata lists and drops the
   rest without a word. An empty result (or no ``scope`` requested) yields a
   token with the empty scope, and the response then has no ``scope`` member.
   A client model whose ``get_allowed_scope`` returns None refuses the
   request with ``invalid_scope`` instead.

The conftest app registers ``client-1`` with ``"scope": "profile email"``.
"""

from __future__ import annotations

import pytest
from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import InvalidScopeError

from .conftest import CLIENT_ID
from .conftest import Client
from .conftest import Token
from .conftest import create_app
from .conftest import db
from .conftest import in_context
from .conftest import record_signals
from .conftest import request_token
from .helpers import INVALID_SCOPE

SUPPORTED = ["profile", "email", "admin"]


def _serve(tmp_path, idp, scopes_supported):
    app = create_app(tmp_path, [idp], OAUTH2_SCOPES_SUPPORTED=scopes_supported)
    with in_context(app):
        registered = db.session.execute(
            db.select(Client).filter_by(client_id=CLIENT_ID)
        ).scalar_one()
        # Every expectation below follows from this registration.
        assert registered.scope == "profile email"
        yield app.test_client()


@pytest.fixture
def unrestricted(tmp_path, idp):
    """``OAUTH2_SCOPES_SUPPORTED`` unset: Authlib reads it with ``config.get``,
    so ``None`` is exactly what it sees for a missing key."""
    yield from _serve(tmp_path, idp, None)


@pytest.fixture
def restricted(tmp_path, idp):
    yield from _serve(tmp_path, idp, SUPPORTED)


def _stored_scopes():
    return [token.scope for token in db.session.execute(db.select(Token)).scalars()]


def test_unset_supported_scopes_drop_what_the_client_may_not_have(unrestricted, mint):
    """(a) RFC 6749 section 3.3 lets the server grant less than requested. With
    no OAUTH2_SCOPES_SUPPORTED nothing is refused: ``admin``, outside the
    client's registered scope, is dropped and the token has no scope at all.
    The response then omits ``scope`` although section 3.3 asks for it whenever
    the granted scope differs from the requested one."""
    status, body = request_token(unrestricted, mint(), scope="admin")
    assert status == 200, body
    assert body["token_type"] == "Bearer"
    assert "scope" not in body
    assert _stored_scopes() == [""]


def test_unset_supported_scopes_accept_any_name(unrestricted, mint):
    """(a) Without OAUTH2_SCOPES_SUPPORTED even a name no one defined is not
    ``invalid_scope`` (RFC 7522 section 2.1 request): it is dropped like any
    scope the client may not have, and the allowed part is granted."""
    status, body = request_token(unrestricted, mint(), scope="profile unknown-scope admin")
    assert status == 200, body
    assert body["scope"] == "profile"
    assert _stored_scopes() == ["profile"]


def test_unsupported_scope_is_invalid_scope(restricted, mint):
    """(b) A scope outside OAUTH2_SCOPES_SUPPORTED is ``invalid_scope`` (RFC 6749
    sections 3.3 and 5.2), for the whole request even when the other scopes
    are fine. No token is issued, no assertion rejection is signalled (the
    assertion was valid), and the assertion is not spent: the client may retry
    with it and a scope it may have (RFC 7522 section 2.1)."""
    assertion = mint()
    with record_signals(restricted.application) as seen:
        for scope in ("unknown-scope", "profile unknown-scope"):
            status, body = request_token(restricted, assertion, scope=scope)
            assert (status, body) == (400, INVALID_SCOPE)
    assert seen.reasons == []
    assert _stored_scopes() == []
    status, body = request_token(restricted, assertion, scope="email profile")
    assert status == 200, body
    assert body["scope"] == "email profile"


def test_supported_scope_the_client_may_not_have_is_dropped(restricted, mint):
    """(b) OAUTH2_SCOPES_SUPPORTED only refuses names it does not list:
    ``admin`` is supported, so it passes that check, and is then dropped by
    the client's allowed scope (RFC 6749 section 3.3), silently."""
    status, body = request_token(restricted, mint(), scope="admin")
    assert status == 200, body
    assert "scope" not in body
    status, body = request_token(restricted, mint(), scope="admin email")
    assert status == 200, body
    assert body["scope"] == "email"


@pytest.mark.parametrize("scope", [None, ""])
@pytest.mark.parametrize("setting", ["unrestricted", "restricted"])
def test_no_scope_requested_gives_empty_scope(request, setting, scope, mint):
    """(c) RFC 6749 section 3.3: when the client omits ``scope`` the server
    must use a pre-defined default or fail. Authlib's default is the empty
    scope, whatever OAUTH2_SCOPES_SUPPORTED says: a token without scope, and
    no ``scope`` in the response. An empty ``scope`` parameter is the same."""
    client = request.getfixturevalue(setting)
    extra = {} if scope is None else {"scope": scope}
    status, body = request_token(client, mint(), **extra)
    assert status == 200, body
    assert "scope" not in body
    assert _stored_scopes() == [""]


def test_scope_is_checked_only_after_the_assertion(restricted, mint):
    """The assertion is verified first (RFC 7522 section 3): an invalid one is
    ``invalid_grant`` whatever the scope, so a scope error says the assertion
    itself was acceptable."""
    status, body = request_token(
        restricted, mint(audience="https://someone-else.example"), scope="unknown-scope"
    )
    assert (status, body["error"]) == (400, "invalid_grant")


def test_scope_check_comes_from_authlib():
    """The refusal in (b) is Authlib's own check, unchanged by this package."""
    server = AuthorizationServer()
    server.scopes_supported = SUPPORTED
    server.validate_requested_scope("profile admin")
    server.validate_requested_scope(None)
    with pytest.raises(InvalidScopeError):
        server.validate_requested_scope("profile unknown-scope")
    server.scopes_supported = None
    server.validate_requested_scope("unknown-scope")


def test_client_refusing_the_scope_is_invalid_scope(restricted, mint, monkeypatch):
    """A client model may refuse instead of narrowing: Authlib's token generator
    answers ``invalid_scope`` when ``get_allowed_scope`` returns None (RFC 6749
    section 3.3). The grant passes that answer on and releases the assertion,
    which the client may redeem once the scope is acceptable."""
    monkeypatch.setattr(Client, "get_allowed_scope", lambda self, scope: None)
    assertion = mint()
    status, body = request_token(restricted, assertion, scope="profile")
    assert (status, body) == (400, INVALID_SCOPE)
    assert _stored_scopes() == []
    monkeypatch.undo()
    status, body = request_token(restricted, assertion, scope="profile")
    assert status == 200, body
    assert body["scope"] == "profile"
