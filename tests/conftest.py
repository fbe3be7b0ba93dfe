"""Fixtures: a real Flask app, Flask-SQLAlchemy on a SQLite file, Authlib's
AuthorizationServer with the saml2-bearer grant, and throwaway IdPs whose keys
and certificates are generated at test time.

This module is the base the tests stand on: the app and its identity
(``AS_ENTITY_ID``, ``TOKEN_ENDPOINT``, the clients), how to address an assertion
to it (:func:`unsigned_tree`, :func:`mint_for`), how to call it
(:func:`request_token`), what it tells operators (:class:`Signals`), and the
fixtures. Everything built on top lives once in :mod:`tests.helpers`.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import os
import threading

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
from authlib_saml2_grant import SAML2LegacyAssertionGrant
from authlib_saml2_grant import SQLAlchemyReplayCache
from authlib_saml2_grant import assertion_accepted
from authlib_saml2_grant import assertion_rejected
from authlib_saml2_grant.testing import TestIdentityProvider
from authlib_saml2_grant.testing import build_assertion
from authlib_saml2_grant.testing import encode_assertion

#: A real PostgreSQL for the replay-cache tests; ``.ci/run`` starts one and
#: sets ``SAML2_TEST_REQUIRE_POSTGRES=1``, which turns a missing one into a failure.
POSTGRES_URL = os.environ.get("SAML2_TEST_POSTGRES_URL")
REQUIRE_POSTGRES = os.environ.get("SAML2_TEST_REQUIRE_POSTGRES") == "1"
#: A real Redis for the Redis replay-cache tests, likewise (``.ci/redis.sh``).
REDIS_URL = os.environ.get("SAML2_TEST_REDIS_URL")
REQUIRE_REDIS = os.environ.get("SAML2_TEST_REQUIRE_REDIS") == "1"
AS_ENTITY_ID = "https://as.example.com"
TOKEN_ENDPOINT = "https://as.example.com/oauth/token"
#: The test server's audiences; a tuple, so that a test changing an app's
#: configured list (a copy) cannot change them for the next test.
AUDIENCES = (AS_ENTITY_ID, TOKEN_ENDPOINT)
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


class Storage:
    """The test app's client lookup and token saving. A test may replace either on
    ``app.extensions["test_storage"]`` (a database outage) without touching Authlib."""

    def __init__(self):
        self.query_client = create_query_client_func(db.session, Client)
        self.save_token = create_save_token_func(db.session, Token)


class Grant(SAML2BearerGrant):
    def authenticate_user(self, assertion):
        return db.session.execute(
            db.select(User).filter_by(email=assertion.subject)
        ).scalar_one_or_none()


class LegacyGrant(SAML2LegacyAssertionGrant):
    """Salesforce's ``grant_type=assertion`` flow, registered by ``create_app(legacy=True)``."""

    authenticate_user = Grant.authenticate_user


#: A registered client without a secret, for ``SAML2_BEARER_LEGACY_CLIENT_ID``.
LEGACY_CLIENT_ID = "legacy-client"


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


def create_app(tmp_path, idps, grant=None, legacy=None, **settings):
    """A real app trusting ``idps``; ``grant`` replaces the registered grant class
    (a subclass of :class:`Grant` overriding hooks), ``legacy`` registers a
    :class:`LegacyGrant` subclass too (``True``: that class), ``settings`` the config."""
    app = Flask(__name__)
    app.config.update(
        TESTING=True,
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'test.db'}",
        SAML2_BEARER_AUDIENCES=list(AUDIENCES),
        SAML2_BEARER_RECIPIENTS=[TOKEN_ENDPOINT],
        SAML2_BEARER_IDENTITY_PROVIDERS=[i.settings_entry() for i in idps],
        SAML2_BEARER_REPLAY_CACHE=replay_cache,
        OAUTH2_TOKEN_EXPIRES_IN={SAML2_BEARER_GRANT_TYPE: 600},
        OAUTH2_SCOPES_SUPPORTED=["profile", "email", "admin"],
    )
    app.config.update(settings)
    db.init_app(app)
    saml2_bearer = SAML2Bearer(app)
    storage = app.extensions["test_storage"] = Storage()
    server = AuthorizationServer(
        app,
        query_client=lambda client_id: storage.query_client(client_id),
        save_token=lambda token, request: storage.save_token(token, request),
    )
    server.register_grant(grant or Grant)
    if legacy:
        server.register_grant(LegacyGrant if legacy is True else legacy)
    app.extensions["test_server"] = server

    @app.route("/oauth/token", methods=["POST"])
    @saml2_bearer.token_endpoint
    def issue_token():
        return server.create_token_response()

    with app.app_context():
        db.create_all()
        db.session.add(User(email="alice@example.com"))
        client = Client(client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
        client.set_client_metadata(
            {
                "grant_types": [SAML2_BEARER_GRANT_TYPE, "assertion"],
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
        legacy_client = Client(client_id=LEGACY_CLIENT_ID)
        legacy_client.set_client_metadata(
            {"grant_types": ["assertion"], "token_endpoint_auth_method": "none"}
        )
        db.session.add_all([client, other, legacy_client])
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


def request_token(client, assertion, headers=None, query=None, **extra):
    """POST the saml2-bearer token request, with ``extra`` form and ``query`` URL
    parameters; a list ``assertion`` repeats the parameter. Returns (status, json)."""
    data = {"grant_type": SAML2_BEARER_GRANT_TYPE, **extra}
    if assertion is not None:
        data["assertion"] = assertion
    response = client.post(
        "/oauth/token",
        query_string=query,
        data=data,
        headers=basic_auth() if headers is None else headers,
    )
    return response.status_code, response.get_json()


def unsigned_tree(idp, **fields):
    """An unsigned assertion from ``idp`` addressed to this server, to tamper
    with and then sign; ``fields`` go to ``build_assertion``."""
    fields = {
        "issuer": idp.entity_id,
        "audience": AS_ENTITY_ID,
        "recipient": TOKEN_ENDPOINT,
        **fields,
    }
    return build_assertion(**fields)


def mint_for(idp, **fields):
    """A valid assertion signed by ``idp`` for this server, as the ``assertion`` parameter."""
    return encode_assertion(idp.sign(unsigned_tree(idp, **fields)))


class Signals:
    """What the grant told operators: each ``assertion_rejected`` reason (and, in
    ``rejections``, with its details) and each accepted assertion, in order."""

    def __init__(self):
        self.reasons: list[str] = []
        self.rejections: list[tuple[str, dict]] = []
        self.references: list[str] = []
        self.accepted: list = []
        self._lock = threading.Lock()  # requests may run in several threads

    def _rejected(self, sender, reason, details=None, reference=None, **kwargs):
        with self._lock:
            self.reasons.append(reason)
            self.rejections.append((reason, dict(details or {})))
            self.references.append(reference)

    def _accepted(self, sender, assertion, **kwargs):
        with self._lock:
            self.accepted.append(assertion)


@contextlib.contextmanager
def record_signals(app):
    """Record ``app``'s ``assertion_rejected`` and ``assertion_accepted`` signals."""
    signals = Signals()
    assertion_rejected.connect(signals._rejected, app)
    assertion_accepted.connect(signals._accepted, app)
    try:
        yield signals
    finally:
        assertion_rejected.disconnect(signals._rejected, app)
        assertion_accepted.disconnect(signals._accepted, app)


@pytest.fixture
def mint(idp):
    """Mint a valid assertion for this server, with overrides."""
    return functools.partial(mint_for, idp)


@pytest.fixture
def signals(app):
    """The ``app`` fixture's signals during the test (see :class:`Signals`)."""
    with record_signals(app) as seen:
        yield seen


@pytest.fixture
def reasons(signals):
    """The reason codes of every rejection during the test, in order."""
    return signals.reasons


@pytest.fixture
def rejections(signals):
    """Every rejection as ``(reason, details)``: proves which check fired."""
    return signals.rejections


@pytest.fixture
def accepted(signals):
    """Every assertion accepted during the test, in order."""
    return signals.accepted


def postgres_url():
    """The real PostgreSQL's URL; the test is skipped without one (failed in CI)."""
    if not POSTGRES_URL:
        if REQUIRE_POSTGRES:
            pytest.fail("SAML2_TEST_REQUIRE_POSTGRES=1 but SAML2_TEST_POSTGRES_URL is not set")
        pytest.skip("SAML2_TEST_POSTGRES_URL is not set")
    return POSTGRES_URL


def redis_server_url():
    """The real Redis's URL; the test is skipped without one (failed in CI)."""
    if not REDIS_URL:
        if REQUIRE_REDIS:
            pytest.fail("SAML2_TEST_REQUIRE_REDIS=1 but SAML2_TEST_REDIS_URL is not set")
        pytest.skip("SAML2_TEST_REDIS_URL is not set")
    return REDIS_URL


@pytest.fixture
def redis_url():
    """The real Redis (see :func:`redis_server_url`)."""
    return redis_server_url()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    """A SQLite file, then the real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'replay.db'}"
    return postgres_url()


#: The environment variables the example app reads (example_app/config.py).
EXAMPLE_ENVIRONMENT = (
    "EXAMPLE_APP_BASE_URL",
    "EXAMPLE_APP_DEMO_IDP",
    "EXAMPLE_APP_LOG_LEVEL",
    "EXAMPLE_APP_DATABASE_URL",
    "EXAMPLE_APP_REPLAY_CACHE",
    "EXAMPLE_APP_INSTANCE_PATH",
)


@pytest.fixture
def no_example_env(monkeypatch):
    """The example app's settings from its defaults only, not this shell's environment."""
    for name in EXAMPLE_ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
