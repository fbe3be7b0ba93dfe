"""The reference integration in ``example_app``: RFC 7522 end to end.

Each test builds the app with its instance folder (database, demo IdP keys)
in ``tmp_path``, so the demo IdP's key pair is generated at test time.
"""

from __future__ import annotations

import base64
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from authlib_saml2_grant import SAML2_BEARER_GRANT_TYPE
from example_app import create_app
from example_app.bootstrap import DEMO_CLIENT_ID
from example_app.bootstrap import DEMO_USER_EMAIL
from example_app.bootstrap import initialize
from example_app.idp import CERTIFICATE_FILENAME
from example_app.idp import DEMO_IDP_ENTITY_ID
from example_app.idp import KEY_FILENAME
from example_app.idp import mint_assertion
from example_app.models import db
from example_app.models import replay_cache

REPO_ROOT = Path(__file__).resolve().parent.parent
GENERIC = "The SAML assertion is invalid, expired or already used."


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    monkeypatch.delenv("EXAMPLE_APP_DATABASE_URL", raising=False)
    monkeypatch.delenv("EXAMPLE_APP_INSTANCE_PATH", raising=False)


@pytest.fixture
def app(tmp_path):
    app = create_app({"TESTING": True}, instance_path=str(tmp_path))
    with app.app_context():
        app.extensions["test_credentials"] = initialize()
        yield app
        db.session.remove()


@pytest.fixture
def credentials(app):
    return app.extensions["test_credentials"]


def basic(credentials):
    raw = f"{credentials.client_id}:{credentials.client_secret}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def exchange(app, credentials, assertion, **extra):
    response = app.test_client().post(
        "/oauth/token",
        data={"grant_type": SAML2_BEARER_GRANT_TYPE, "assertion": assertion, **extra},
        headers=basic(credentials),
    )
    return response.status_code, response.get_json()


def test_token_then_api_me(app, credentials):
    """RFC 7522 section 2.1: a valid assertion and client authentication yield a
    bearer token, which the protected API accepts (RFC 6750)."""
    status, body = exchange(app, credentials, mint_assertion(app, DEMO_USER_EMAIL), scope="profile")
    assert status == 200, body
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    response = app.test_client().get(
        "/api/me", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert response.status_code == 200
    me = response.get_json()
    assert me["user"]["email"] == DEMO_USER_EMAIL
    assert me["scope"] == "profile"
    assert me["client_id"] == DEMO_CLIENT_ID


def test_api_me_requires_token(app):
    """RFC 6750 section 3.1: a request without a valid token is refused with 401."""
    client = app.test_client()
    assert client.get("/api/me").status_code == 401
    assert client.get("/api/me", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_metadata_lists_grant(app):
    """RFC 8414 section 2 metadata advertises the RFC 7522 section 2.1 grant type URI."""
    body = app.test_client().get("/.well-known/oauth-authorization-server").get_json()
    assert body["issuer"] == "http://127.0.0.1:5000"
    assert body["token_endpoint"] == "http://127.0.0.1:5000/oauth/token"
    assert body["grant_types_supported"] == ["urn:ietf:params:oauth:grant-type:saml2-bearer"]
    assert "client_secret_basic" in body["token_endpoint_auth_methods_supported"]
    assert body["scopes_supported"] == ["profile", "email"]


def test_replay_is_refused_and_recorded_in_the_database(app, credentials):
    """RFC 7522 section 3, item 6: a used assertion is refused with invalid_grant;
    the record lives in the replay table of the app's own database."""
    assertion = mint_assertion(app, DEMO_USER_EMAIL)
    assert exchange(app, credentials, assertion)[0] == 200
    status, body = exchange(app, credentials, assertion)
    assert status == 400
    assert body == {"error": "invalid_grant", "error_description": GENERIC}
    with db.engine.connect() as conn:
        rows = conn.execute(sa.select(sa.func.count()).select_from(replay_cache.table))
        assert rows.scalar() == 1


def test_unknown_user_is_invalid_grant(app, credentials):
    """RFC 7522 section 3, item 3: the Subject must identify a known user."""
    status, body = exchange(app, credentials, mint_assertion(app, "mallory@example.com"))
    assert (status, body["error"]) == (400, "invalid_grant")


def test_wrong_client_secret(app, credentials):
    """RFC 7522 section 3.1: client authentication at the token endpoint still applies."""
    response = app.test_client().post(
        "/oauth/token",
        data={"grant_type": SAML2_BEARER_GRANT_TYPE, "assertion": mint_assertion(app, "x")},
        headers={"Authorization": "Basic " + base64.b64encode(b"demo-client:bad").decode()},
    )
    assert response.status_code == 401


def test_demo_idp_is_a_regular_trusted_idp(tmp_path):
    """RFC 7522 section 3, item 9: the demo IdP is trusted through the same
    SAML2_BEARER_IDENTITY_PROVIDERS entry a real IdP uses; its key is generated
    once into the instance folder, private, and reused on the next start."""
    app = create_app(instance_path=str(tmp_path))
    entries = app.config["SAML2_BEARER_IDENTITY_PROVIDERS"]
    assert entries == [
        {"entity_id": DEMO_IDP_ENTITY_ID, "certificates": [str(tmp_path / CERTIFICATE_FILENAME)]}
    ]
    assert stat.S_IMODE(os.stat(tmp_path / KEY_FILENAME).st_mode) == 0o600
    certificate = (tmp_path / CERTIFICATE_FILENAME).read_bytes()
    create_app(instance_path=str(tmp_path))
    assert (tmp_path / CERTIFICATE_FILENAME).read_bytes() == certificate


def test_demo_idp_can_be_disabled(tmp_path):
    """Production copies trust only real IdPs: EXAMPLE_APP_DEMO_IDP = False."""
    app = create_app(
        {"EXAMPLE_APP_DEMO_IDP": False, "SAML2_BEARER_IDENTITY_PROVIDERS": []},
        instance_path=str(tmp_path),
    )
    assert app.config["SAML2_BEARER_IDENTITY_PROVIDERS"] == []
    assert not (tmp_path / KEY_FILENAME).exists()
    result = app.test_cli_runner().invoke(args=["mint", DEMO_USER_EMAIL])
    assert result.exit_code == 2
    assert "demo IdP is disabled" in result.output


def test_database_url_overrides(tmp_path, monkeypatch):
    """The database defaults to SQLite in the instance folder; the environment
    variable and then SQLALCHEMY_DATABASE_URI override it."""
    app = create_app(instance_path=str(tmp_path))
    assert app.config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path / 'example_app.db'}"
    monkeypatch.setenv("EXAMPLE_APP_DATABASE_URL", f"sqlite:///{tmp_path / 'env.db'}")
    app = create_app(instance_path=str(tmp_path))
    assert app.config["SQLALCHEMY_DATABASE_URI"].endswith("env.db")
    app = create_app(
        {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'explicit.db'}"},
        instance_path=str(tmp_path),
    )
    assert app.config["SQLALCHEMY_DATABASE_URI"].endswith("explicit.db")


def test_audience_and_recipient_follow_the_base_url(tmp_path):
    """RFC 7522 section 3, items 2 and 5: the Audience is this server's identifier
    and the Recipient its token endpoint URL, both derived from the base URL."""
    app = create_app({"EXAMPLE_APP_BASE_URL": "https://as.corp.example/"}, str(tmp_path))
    assert app.config["SAML2_BEARER_AUDIENCES"] == ["https://as.corp.example"]
    assert app.config["SAML2_BEARER_RECIPIENTS"] == ["https://as.corp.example/oauth/token"]


def test_init_command_prints_credentials(app, credentials):
    """``flask --app example_app init`` creates the user and client once and
    prints what a client needs."""
    result = app.test_cli_runner().invoke(args=["init"])
    assert result.exit_code == 0, result.output
    assert "Already initialized." in result.output
    assert f"client_id:      {DEMO_CLIENT_ID}" in result.output
    assert credentials.client_secret in result.output
    assert "Recipient:      http://127.0.0.1:5000/oauth/token" in result.output


def test_init_command_on_a_fresh_instance(tmp_path):
    """``init`` on an empty instance folder creates the database and the demo IdP."""
    app = create_app(instance_path=str(tmp_path))
    result = app.test_cli_runner().invoke(args=["init"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Initialized.")
    assert (tmp_path / "example_app.db").is_file()
    assert (tmp_path / CERTIFICATE_FILENAME).is_file()


def test_mint_command_output_is_exchangeable(app, credentials):
    """``mint USER`` prints a base64url assertion (RFC 7522 section 2.1) the
    token endpoint accepts."""
    result = app.test_cli_runner().invoke(args=["mint", DEMO_USER_EMAIL])
    assert result.exit_code == 0, result.output
    assertion = result.output.strip()
    assert set(assertion) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert exchange(app, credentials, assertion)[0] == 200


def test_demo_command_against_real_server(tmp_path):
    """``demo`` runs discovery, the RFC 7522 section 2.1 exchange, the API call
    and the replay refusal (section 3, item 6) over real HTTP, and exits 0."""
    app = create_app(instance_path=str(tmp_path))
    result = app.test_cli_runner().invoke(args=["demo"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Serving the example app at http://127.0.0.1:" in out
    assert "> POST http://127.0.0.1:" in out
    assert "< 200 OK" in out
    assert '"email": "alice@example.com"' in out
    assert "< 400 BAD REQUEST" in out
    assert '"error": "invalid_grant"' in out
    assert "reason=replayed" in out
    assert "All 5 steps gave the expected result." in out


def test_demo_command_fails_loudly(tmp_path, monkeypatch):
    """``demo`` exits non-zero when a step does not give the expected result."""
    import example_app.demo

    monkeypatch.setattr(example_app.demo, "mint_assertion", lambda app, subject: "bm90IHhtbA")
    app = create_app(instance_path=str(tmp_path))
    result = app.test_cli_runner().invoke(args=["demo"])
    assert result.exit_code == 1
    assert "UNEXPECTED: wanted 200 with a Bearer access token" in result.output
    assert "FAILED: step 3" in result.output


def test_demo_from_the_repository_root(tmp_path):
    """The newcomer's command, ``flask --app example_app demo``, in a new process."""
    env = {**os.environ, "EXAMPLE_APP_INSTANCE_PATH": str(tmp_path)}
    env.pop("EXAMPLE_APP_DATABASE_URL", None)
    flask = [sys.executable, "-m", "flask", "--app", "example_app", "demo"]
    done = subprocess.run(
        flask, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "All 5 steps gave the expected result." in done.stdout
