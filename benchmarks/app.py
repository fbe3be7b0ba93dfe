"""One Flask app serving both grants over one SQLite file.

Our ``SAML2BearerGrant`` and Authlib's ``JWTBearerGrant`` share the database,
its pragmas (WAL, ``synchronous=NORMAL``), the client and user tables and
token storage. Replay protection is :class:`SQLAlchemyReplayCache` on the same
database for our grant and for the ``jwt-replay`` endpoint, which records each
JWT's ``jti`` in it: the like-for-like baseline. ``/jwt/token`` is Authlib's
grant as shipped, without replay protection. Both grants find clients with one
function, :func:`query_client`.
"""

from __future__ import annotations

import base64
import dataclasses
import os
from datetime import datetime
from datetime import timezone

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.integrations.sqla_oauth2 import OAuth2ClientMixin
from authlib.integrations.sqla_oauth2 import OAuth2TokenMixin
from authlib.integrations.sqla_oauth2 import create_save_token_func
from authlib.oauth2.rfc6749 import InvalidGrantError
from authlib.oauth2.rfc7523 import JWTBearerGrant
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from joserfc.jwk import RSAKey
from signxml import SignatureConfiguration
from signxml import XMLVerifier
from signxml.algorithms import DigestAlgorithm
from signxml.algorithms import SignatureMethod
from sqlalchemy import event

from authlib_saml2_grant import SAML2_BEARER_GRANT_TYPE
from authlib_saml2_grant import SAML2BearerGrant
from authlib_saml2_grant import SQLAlchemyReplayCache
from authlib_saml2_grant import VerifiedAssertion
from authlib_saml2_grant import get_settings
from authlib_saml2_grant import init_app
from authlib_saml2_grant.replay import replay_key

from .workload import AS_ENTITY_ID
from .workload import CLIENT_ID
from .workload import SUBJECT
from .workload import TOKEN_ENDPOINT

__all__ = ["CLIENT_SECRET", "create_app", "db", "seed"]

JWT_BEARER_GRANT_TYPE = JWTBearerGrant.GRANT_TYPE
CLIENT_SECRET = "bench-secret"
#: Applied to every SQLite connection, whichever grant uses it.
PRAGMAS = ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL", "PRAGMA busy_timeout=10000")

db = SQLAlchemy()
replay_cache = SQLAlchemyReplayCache(db)


class User(db.Model):
    __tablename__ = "bench_user"
    id = db.Column(db.Integer, primary_key=True)
    email = db.Column(db.String(120), unique=True, nullable=False)

    def get_user_id(self):
        return self.id


class Client(db.Model, OAuth2ClientMixin):
    __tablename__ = "bench_client"
    id = db.Column(db.Integer, primary_key=True)


class Token(db.Model, OAuth2TokenMixin):
    __tablename__ = "bench_token"
    id = db.Column(db.Integer, primary_key=True)
    user_id = db.Column(db.Integer, db.ForeignKey("bench_user.id", ondelete="CASCADE"))


def query_client(client_id: str):
    """The one client lookup of the app: the authorization server's
    ``query_client`` (our grant's client authentication) and the JWT grant's
    ``resolve_issuer_client`` both use it."""
    return db.session.execute(db.select(Client).filter_by(client_id=client_id)).scalar_one_or_none()


def _user(email: str):
    return db.session.execute(db.select(User).filter_by(email=email)).scalar_one_or_none()


class SAMLGrant(SAML2BearerGrant):
    def authenticate_user(self, assertion):
        return _user(assertion.subject)


class SignxmlOnlyVerifier:
    """A lower bound, not a verifier: one bare tuned signxml call, then a copy of
    ``template`` with the signed ID so that the replay cache sees each assertion."""

    def __init__(self, real, certificate, template: VerifiedAssertion) -> None:
        self.real = real
        self.audiences = real.audiences
        self.recipients = real.recipients
        self.trust = real.trust
        self.certificate = certificate
        self.template = template
        self.signxml = XMLVerifier()
        self.config = SignatureConfiguration(
            location="./",
            expect_references=1,
            signature_methods=frozenset({SignatureMethod.RSA_SHA256}),
            digest_algorithms=frozenset({DigestAlgorithm.SHA256}),
        )

    def verify(self, assertion: str, **_ignored) -> VerifiedAssertion:
        data = base64.urlsafe_b64decode(assertion + "=" * (-len(assertion) % 4))
        result = self.signxml.verify(
            data, x509_cert=self.certificate, id_attribute="ID", expect_config=self.config
        )
        return dataclasses.replace(self.template, assertion_id=result.signed_xml.get("ID"))

    @property
    def clock_skew(self):
        return self.real.clock_skew


class SignxmlBoundGrant(SAMLGrant):
    #: Set by :class:`benchmarks.endpoint.EndpointBench`.
    VERIFIER: SignxmlOnlyVerifier | None = None

    def get_verifier(self):
        return self.VERIFIER


class JWTGrant(JWTBearerGrant):
    """Authlib's RFC 7523 grant, completed the way its documentation shows."""

    #: The public key, imported once (as our grant parses certificates once).
    PUBLIC_KEY: RSAKey | None = None

    def resolve_issuer_client(self, issuer):
        return query_client(issuer)

    def resolve_client_public_key(self, client):
        return self.PUBLIC_KEY

    def authenticate_user(self, subject):
        return _user(subject)

    def get_audiences(self):
        return [AS_ENTITY_ID, TOKEN_ENDPOINT]

    def has_granted_permission(self, client, user):
        return True


class JWTReplayGrant(JWTGrant):
    """The same, recording each ``jti`` in the app's replay cache (the store our
    grant uses, ``SAML2_BEARER_REPLAY_CACHE``), as our grant does."""

    def process_assertion_claims(self, assertion):
        claims = super().process_assertion_claims(assertion)
        self.request.jwt_claims = claims
        return claims

    def validate_token_request(self):
        super().validate_token_request()
        claims = self.request.jwt_claims
        expires = datetime.fromtimestamp(claims["exp"], timezone.utc)
        cache = get_settings().replay_cache
        if not cache.add(replay_key(claims["iss"], str(claims.get("jti"))), expires):
            raise InvalidGrantError(description="The JWT was already used.")


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    for pragma in PRAGMAS:
        cursor.execute(pragma)
    cursor.close()


def create_app(
    database: str,
    certificate_pem: str,
    jwt_public_key: RSAKey,
    create: bool = False,
    replay: object = None,
) -> Flask:
    """The app; ``create=True`` also creates the tables and seeds them.

    :param database: a SQLite file, or a database URL (the production shape's PostgreSQL).
    :param replay: ``SAML2_BEARER_REPLAY_CACHE`` (e.g. a Redis URL); default
        :data:`replay_cache`, the table in ``database``.
    """
    app = Flask(__name__)
    app.config.update(
        SQLALCHEMY_DATABASE_URI=(
            database if "://" in database else f"sqlite:///{os.path.abspath(database)}"
        ),
        SAML2_BEARER_AUDIENCES=[AS_ENTITY_ID, TOKEN_ENDPOINT],
        SAML2_BEARER_RECIPIENTS=[TOKEN_ENDPOINT],
        SAML2_BEARER_IDENTITY_PROVIDERS=[
            {"entity_id": "https://idp.example.com", "certificates": [certificate_pem]}
        ],
        SAML2_BEARER_REPLAY_CACHE=replay_cache if replay is None else replay,
        OAUTH2_TOKEN_EXPIRES_IN={SAML2_BEARER_GRANT_TYPE: 600, JWT_BEARER_GRANT_TYPE: 600},
    )
    db.init_app(app)
    init_app(app)
    JWTGrant.PUBLIC_KEY = jwt_public_key
    save_token = create_save_token_func(db.session, Token)
    servers = {}
    for path, grants in (
        ("/oauth/token", (SAMLGrant, JWTReplayGrant)),
        ("/jwt/token", (JWTGrant,)),
        ("/bound/token", (SignxmlBoundGrant,)),
    ):
        server = AuthorizationServer(app, query_client=query_client, save_token=save_token)
        for grant in grants:
            server.register_grant(grant)
        servers[path] = server
        app.add_url_rule(
            path,
            endpoint=path,
            view_func=server.create_token_response,
            methods=["POST"],
        )
    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            event.listen(db.engine, "connect", _sqlite_pragmas)
            db.engine.dispose()  # reconnect with the pragmas
        if create:
            db.create_all()
            seed()
    return app


def seed() -> None:
    db.session.add(User(email=SUBJECT))
    client = Client(client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    client.set_client_metadata(
        {
            "grant_types": [SAML2_BEARER_GRANT_TYPE, JWT_BEARER_GRANT_TYPE],
            "scope": "profile",
            "token_endpoint_auth_method": "client_secret_basic",
        }
    )
    db.session.add(client)
    db.session.commit()
