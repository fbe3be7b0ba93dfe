"""Fixtures: a real Flask app, Flask-SQLAlchemy on a SQLite file, Authlib's
AuthorizationServer with the saml2-bearer grant, and throwaway IdPs whose keys
and certificates are generated at test time."""

from __future__ import annotations

import base64
import contextlib
import os

import pytest
from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.integrations.sqla_oauth2 import OAuth2ClientMixin
from authlib.integrations.sqla_oauth2 import OAuth2TokenMixin
from authlib.integrations.sqla_oauth2 import create_query_client_func
from authlib.integrations.sqla_oauth2 import create_save_token_func
from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from authlib_saml2_grant import SAML2_BEARER_GRANT_TYPE
from authlib_saml2_grant import SAML2Bearer
from authlib_saml2_grant import SAML2BearerGrant
from authlib_saml2_grant import SQLAlchemyReplayCache
from authlib_saml2_grant import assertion_accepted
from authlib_saml2_grant import assertion_rejected
from authlib_saml2_grant.testing import TestIdentityProvider

#: A real PostgreSQL for the replay-cache tests; ``.ci/run`` starts one and
#: sets ``SAML2_TEST_REQUIRE_POSTGRES=1``, which turns a missing one into a failure.
POSTGRES_URL = os.environ.get("SAML2_TEST_POSTGRES_URL")
REQUIRE_POSTGRES = os.environ.get("SAML2_TEST_REQUIRE_POSTGRES") == "1"
AS_ENTITY_ID = "https://as.example.com"
TOKEN_ENDPOINT = "https://as.example.com/oauth/token"
CLIENT_ID = "client-1"
CLIENT_SECRET = "secret-1"

db = SQLAlchemy()


class User(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    email = db.Column(db.String(120), unique=True, nullable=False)

    def get_user_id(self):
        return self.id


class Client(db.Model, OAuth2ClientMixin):
    id = db.Column(db.Integer, primary_key=True)


class Token(db.Model, OAuth2TokenMixin):
    id = db.Column(db.Integer, primary_key=True)
    user_id = db.Column(db.Integer, db.ForeignKey("user.id", ondelete="CASCADE"))


replay_cache = SQLAlchemyReplayCache(db)


class Grant(SAML2BearerGrant):
    def authenticate_user(self, assertion):
        return db.session.execute(
            db.select(User).filter_by(email=assertion.subject)
        ).scalar_one_or_none()


# The RSA key generation is the slow part: two IdPs for the whole session.
@pytest.fixture(scope="session")
def idp():
    return TestIdentityProvider("https://idp.example.com")


@pytest.fixture(scope="session")
def ec_idp():
    return TestIdentityProvider("https://ec-idp.example.com", key_type="ec")


@pytest.fixture(scope="session")
def other_idp():
    return TestIdentityProvider("https://other-idp.example.com")


def create_app(tmp_path, idps, grant=None, **settings):
    """A real app trusting ``idps``; ``grant`` replaces the registered grant class
    (a subclass of :class:`Grant` overriding hooks), ``settings`` the config."""
    app = Flask(__name__)
    app.config.update(
        TESTING=True,
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'test.db'}",
        SAML2_BEARER_AUDIENCES=[AS_ENTITY_ID, TOKEN_ENDPOINT],
        SAML2_BEARER_RECIPIENTS=[TOKEN_ENDPOINT],
        SAML2_BEARER_IDENTITY_PROVIDERS=[i.settings_entry() for i in idps],
        SAML2_BEARER_REPLAY_CACHE=replay_cache,
        OAUTH2_TOKEN_EXPIRES_IN={SAML2_BEARER_GRANT_TYPE: 600},
        OAUTH2_SCOPES_SUPPORTED=["profile", "email", "admin"],
    )
    app.config.update(settings)
    db.init_app(app)
    SAML2Bearer(app)
    server = AuthorizationServer(
        app,
        query_client=create_query_client_func(db.session, Client),
        save_token=create_save_token_func(db.session, Token),
    )
    server.register_grant(grant or Grant)
    app.extensions["test_server"] = server

    @app.route("/oauth/token", methods=["POST"])
    def issue_token():
        return server.create_token_response()

    with app.app_context():
        db.create_all()
        db.session.add(User(email="alice@example.com"))
        client = Client(client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
        client.set_client_metadata(
            {
                "grant_types": [SAML2_BEARER_GRANT_TYPE],
                "scope": "profile email",
                "token_endpoint_auth_method": "client_secret_basic",
            }
        )
        other = Client(client_id="client-2", client_secret="secret-2")
        other.set_client_metadata(
            {
                "grant_types": ["client_credentials"],
                "token_endpoint_auth_method": "client_secret_basic",
            }
        )
        db.session.add_all([client, other])
        db.session.commit()
    return app


@contextlib.contextmanager
def in_context(app):
    """The app's context for a test; its database session is removed afterwards."""
    with app.app_context():
        try:
            yield app
        finally:
            db.session.remove()


@pytest.fixture
def app(tmp_path, idp, ec_idp):
    with in_context(create_app(tmp_path, [idp, ec_idp])) as app:
        yield app


@pytest.fixture
def client(app):
    return app.test_client()


def basic_auth(client_id=CLIENT_ID, secret=CLIENT_SECRET):
    token = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def request_token(client, assertion, headers=None, **extra):
    """POST the saml2-bearer token request; returns (status, json)."""
    data = {"grant_type": SAML2_BEARER_GRANT_TYPE, **extra}
    if assertion is not None:
        data["assertion"] = assertion
    response = client.post(
        "/oauth/token", data=data, headers=basic_auth() if headers is None else headers
    )
    return response.status_code, response.get_json()


@pytest.fixture
def mint(idp):
    """Mint a valid assertion for this server, with overrides."""

    def mint(**fields):
        fields.setdefault("audience", AS_ENTITY_ID)
        fields.setdefault("recipient", TOKEN_ENDPOINT)
        return idp.mint(**fields)

    return mint


@pytest.fixture
def reasons(app):
    """The reason codes of every rejection during the test, in order."""
    seen = []

    def record(sender, reason, **kwargs):
        seen.append(reason)

    assertion_rejected.connect(record, app)
    yield seen
    assertion_rejected.disconnect(record, app)


@pytest.fixture
def accepted(app):
    seen = []

    def record(sender, assertion, **kwargs):
        seen.append(assertion)

    assertion_accepted.connect(record, app)
    yield seen
    assertion_accepted.disconnect(record, app)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    """A SQLite file, then the real PostgreSQL (skipped, or failed in CI, without one)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'replay.db'}"
    if not POSTGRES_URL:
        if REQUIRE_POSTGRES:
            pytest.fail("SAML2_TEST_REQUIRE_POSTGRES=1 but SAML2_TEST_POSTGRES_URL is not set")
        pytest.skip("SAML2_TEST_POSTGRES_URL is not set")
    return POSTGRES_URL
