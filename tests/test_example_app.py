"""The reference integration in ``example_app``: RFC 7522 end to end.

Each test builds the app with its instance folder (database, demo IdP keys)
in ``tmp_path``, so the demo IdP's key pair is generated at test time, by the
commands (or :func:`mint_assertion`) that need it: creating the app never
writes key material.
"""

from __future__ import annotations

import base64
import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from authlib_saml2_grant import SAML2_BEARER_GRANT_TYPE
from authlib_saml2_grant import ConfigurationError
from authlib_saml2_grant import get_settings
from authlib_saml2_grant.cli import main as saml2_bearer_main
from authlib_saml2_grant.testing import TestIdentityProvider
from example_app import create_app
from example_app.bootstrap import DEMO_CLIENT_ID
from example_app.bootstrap import DEMO_USER_EMAIL
from example_app.bootstrap import initialize
from example_app.idp import CERTIFICATE_FILENAME
from example_app.idp import DEMO_IDP_ENTITY_ID
from example_app.idp import KEY_FILENAME
from example_app.idp import mint_assertion
from example_app.keys import SIGNING_KEY_FILENAME
from example_app.models import db
from example_app.models import replay_cache
from example_app.oauth import saml2_bearer
from example_app.routes import same_base_url

from .conftest import EXAMPLE_ENVIRONMENT
from .helpers import INVALID_GRANT

REPO_ROOT = Path(__file__).resolve().parent.parent
NOT_INITIALISED = "demo IdP not initialised"
NO_SIGNING_KEY = "signing key not created"


pytestmark = pytest.mark.usefixtures("no_example_env")


def write_config(folder, **settings):
    """Write ``instance/config.py`` into ``folder`` with ``settings``."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f"{key} = {value!r}" for key, value in settings.items()]
    (folder / "config.py").write_text("\n".join(lines) + "\n")


def files_in(folder):
    """The names of every file under ``folder``."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


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
    """RFC 8414 section 2 metadata advertises the RFC 7522 section 2.1 grant type
    URI, the refresh-token grant (RFC 6749 section 6), the scopes (with openid and
    offline_access, OpenID Connect Core 11), the JWKS URL, and Salesforce's
    grant_type=assertion (example_app.legacy)."""
    body = app.test_client().get("/.well-known/oauth-authorization-server").get_json()
    assert body["issuer"] == "http://127.0.0.1:5000"
    assert body["token_endpoint"] == "http://127.0.0.1:5000/oauth/token"
    assert body["jwks_uri"] == "http://127.0.0.1:5000/oauth/jwks.json"
    assert body["grant_types_supported"] == [
        "urn:ietf:params:oauth:grant-type:saml2-bearer",
        "refresh_token",
        "client_credentials",
        "assertion",
    ]
    assert body["token_endpoint_auth_methods_supported"] == [
        "client_secret_basic",
        "client_secret_post",
        "client_assertion_saml2_bearer",
    ]
    assert body["scopes_supported"] == ["openid", "profile", "email", "offline_access"]


def test_demo_service_authenticates_with_a_saml_assertion(app):
    """RFC 7522 section 2.2: the demo service client has no secret; a demo IdP
    assertion whose NameID is its client ID authenticates it, once."""
    from authlib_saml2_grant import SAML2_CLIENT_ASSERTION_TYPE
    from example_app.bootstrap import DEMO_SERVICE_ID

    form = {
        "grant_type": "client_credentials",
        "scope": "profile",
        "client_assertion_type": SAML2_CLIENT_ASSERTION_TYPE,
        "client_assertion": mint_assertion(app, DEMO_SERVICE_ID),
    }
    response = app.test_client().post("/oauth/token", data=form)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["scope"] == "profile"
    replayed = app.test_client().post("/oauth/token", data=form)
    assert replayed.status_code == 401
    assert replayed.get_json()["error"] == "invalid_client"


def test_replay_is_refused_and_recorded_in_the_database(app, credentials):
    """RFC 7522 section 3, item 6: a used assertion is refused with invalid_grant;
    the record lives in the replay table of the app's own database."""
    assertion = mint_assertion(app, DEMO_USER_EMAIL)
    assert exchange(app, credentials, assertion)[0] == 200
    status, body = exchange(app, credentials, assertion)
    assert status == 400
    assert body == INVALID_GRANT
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


def test_settings_are_loaded_by_the_module_level_extension(app):
    """The factory binds the module-level ``saml2_bearer = SAML2Bearer()`` with
    ``init_app``: the ready settings use the app's SQL replay cache, a second
    ``init_app`` is refused, and only that object reloads changed settings."""
    settings = get_settings(app)
    assert settings.replay_cache is replay_cache
    with pytest.raises(RuntimeError, match="already called"):
        saml2_bearer.init_app(app)
    with pytest.raises(RuntimeError):
        type(saml2_bearer)().reload(app)
    app.config["SAML2_BEARER_CLOCK_SKEW"] = 5
    reloaded = saml2_bearer.reload(app)
    assert get_settings(app) is reloaded is not settings
    assert reloaded.verifier.clock_skew.total_seconds() == 5


def test_create_app_writes_no_key_material(tmp_path, caplog):
    """Creating the app on an empty instance folder writes no file, no key in
    particular; the demo IdP is then not trusted (RFC 7522 section 3, item 1),
    the server has no signing key (an empty JWKS), and WARNINGs say how to
    initialise both."""
    instance = tmp_path / "instance"
    with caplog.at_level(logging.WARNING, logger="example_app"):
        app = create_app(instance_path=str(instance))
    assert files_in(instance) == []
    assert app.config["SAML2_BEARER_IDENTITY_PROVIDERS"] == []
    assert get_settings(app).verifier.trust.get(DEMO_IDP_ENTITY_ID) is None
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(
        NOT_INITIALISED in m and "run flask --app example_app init" in m for m in warnings
    ), warnings
    signing_key = [m for m in warnings if NO_SIGNING_KEY in m]
    assert signing_key and "run flask --app example_app init" in signing_key[0], warnings
    assert app.test_client().get("/oauth/jwks.json").get_json() == {"keys": []}
    assert files_in(instance) == []


def test_inspect_with_the_example_app_writes_no_key_material(tmp_path, monkeypatch, capsys):
    """``saml2-bearer inspect --app example_app`` on an empty instance folder
    leaves it without key files; the demo IdP being uninitialised, an assertion
    in its name is refused as issuer_unknown (RFC 7522 section 3, item 1)."""
    instance = tmp_path / "instance"
    monkeypatch.setenv("EXAMPLE_APP_INSTANCE_PATH", str(instance))
    monkeypatch.chdir(REPO_ROOT)
    impostor = TestIdentityProvider(DEMO_IDP_ENTITY_ID)
    path = tmp_path / "assertion.txt"
    path.write_text(
        impostor.mint(
            subject=DEMO_USER_EMAIL,
            audience="http://127.0.0.1:5000",
            recipient="http://127.0.0.1:5000/oauth/token",
        )
    )
    code = saml2_bearer_main(["inspect", "--app", "example_app", str(path)])
    out = capsys.readouterr().out
    assert code == 1, out
    assert "issuer_unknown" in out
    assert list(instance.glob("*.pem")) == []
    assert files_in(instance) == []


def test_init_creates_the_demo_idp_then_mint_works(tmp_path, caplog):
    """RFC 7522 section 3, item 9: ``init`` generates the demo IdP's key pair
    (the private key 0600) and trusts it through the same
    SAML2_BEARER_IDENTITY_PROVIDERS entry a real IdP uses; ``mint`` then gives
    an assertion the app accepts; the next start reuses the pair and trusts it
    from the start."""
    app = create_app(instance_path=str(tmp_path))
    runner = app.test_cli_runner()
    result = runner.invoke(args=["init"])
    assert result.exit_code == 0, result.output
    certificate_path = str(tmp_path / CERTIFICATE_FILENAME)
    entry = {"entity_id": DEMO_IDP_ENTITY_ID, "certificates": [certificate_path]}
    assert app.config["SAML2_BEARER_IDENTITY_PROVIDERS"] == [entry]
    assert stat.S_IMODE(os.stat(tmp_path / KEY_FILENAME).st_mode) == 0o600
    certificate = (tmp_path / CERTIFICATE_FILENAME).read_bytes()
    result = runner.invoke(args=["mint", DEMO_USER_EMAIL])
    assert result.exit_code == 0, result.output
    with app.app_context():
        credentials = initialize()
        assert exchange(app, credentials, result.stdout.strip())[0] == 200
        db.session.remove()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="example_app"):
        again = create_app(instance_path=str(tmp_path))
    assert again.config["SAML2_BEARER_IDENTITY_PROVIDERS"] == [entry]
    assert not [r for r in caplog.records if NOT_INITIALISED in r.getMessage()]
    assert again.test_cli_runner().invoke(args=["init"]).exit_code == 0
    assert (tmp_path / CERTIFICATE_FILENAME).read_bytes() == certificate


def test_demo_idp_can_be_disabled(tmp_path, caplog):
    """Production copies trust only real IdPs: EXAMPLE_APP_DEMO_IDP = False."""
    with caplog.at_level(logging.WARNING, logger="example_app"):
        app = create_app(
            {"EXAMPLE_APP_DEMO_IDP": False, "SAML2_BEARER_IDENTITY_PROVIDERS": []},
            instance_path=str(tmp_path),
        )
    assert app.config["SAML2_BEARER_IDENTITY_PROVIDERS"] == []
    assert not [r for r in caplog.records if NOT_INITIALISED in r.getMessage()]
    runner = app.test_cli_runner()
    result = runner.invoke(args=["mint", DEMO_USER_EMAIL])
    assert result.exit_code == 2
    assert "demo IdP is disabled" in result.output
    assert runner.invoke(args=["init"]).exit_code == 0
    assert not (tmp_path / KEY_FILENAME).exists()


def test_base_url_layers(tmp_path, monkeypatch):
    """EXAMPLE_APP_BASE_URL: default < instance/config.py < environment <
    create_app(config); the Audience and Recipient (RFC 7522 section 3, items 2
    and 5) and the RFC 8414 issuer follow it."""

    def base_url(config=None):
        return create_app(config, str(tmp_path)).config["EXAMPLE_APP_BASE_URL"]

    assert base_url() == "http://127.0.0.1:5000"
    write_config(tmp_path, EXAMPLE_APP_BASE_URL="https://file.example")
    assert base_url() == "https://file.example"
    monkeypatch.setenv("EXAMPLE_APP_BASE_URL", "https://env.example/")
    app = create_app(instance_path=str(tmp_path))
    assert app.config["EXAMPLE_APP_BASE_URL"] == "https://env.example"
    assert app.config["SAML2_BEARER_AUDIENCES"] == ["https://env.example"]
    assert app.config["SAML2_BEARER_RECIPIENTS"] == ["https://env.example/oauth/token"]
    body = app.test_client().get("/.well-known/oauth-authorization-server").get_json()
    assert body["issuer"] == "https://env.example"
    assert base_url({"EXAMPLE_APP_BASE_URL": "https://arg.example"}) == "https://arg.example"


@pytest.mark.parametrize(
    "value", ["as.example.com", "ftp://as.example.com", "https://as.example.com/?a=1", "", 5000]
)
def test_base_url_must_be_an_absolute_http_url(tmp_path, value):
    """A base URL that cannot be an OAuth issuer fails at start-up, naming the setting."""
    with pytest.raises(ConfigurationError, match="EXAMPLE_APP_BASE_URL"):
        create_app({"EXAMPLE_APP_BASE_URL": value}, str(tmp_path))


@pytest.mark.parametrize(
    "value, expected",
    [
        ("0", False),
        ("false", False),
        ("No", False),
        (" OFF ", False),
        ("1", True),
        ("TRUE", True),
        ("yes", True),
        ("on", True),
    ],
)
def test_demo_idp_from_the_environment(tmp_path, monkeypatch, value, expected):
    """EXAMPLE_APP_DEMO_IDP from the environment is parsed explicitly:
    0/false/no/off turn the demo IdP off, so ``init`` writes no key."""
    monkeypatch.setenv("EXAMPLE_APP_DEMO_IDP", value)
    app = create_app(instance_path=str(tmp_path))
    assert app.config["EXAMPLE_APP_DEMO_IDP"] is expected
    assert app.test_cli_runner().invoke(args=["init"]).exit_code == 0
    assert (tmp_path / KEY_FILENAME).is_file() is expected


@pytest.mark.parametrize("value", ["maybe", "2", "disabled"])
def test_demo_idp_typo_fails_at_start_up(tmp_path, monkeypatch, value):
    """A value that is neither true nor false never leaves the demo IdP trusted."""
    monkeypatch.setenv("EXAMPLE_APP_DEMO_IDP", value)
    with pytest.raises(ConfigurationError, match="EXAMPLE_APP_DEMO_IDP"):
        create_app(instance_path=str(tmp_path))


def test_demo_idp_layers(tmp_path, monkeypatch):
    """EXAMPLE_APP_DEMO_IDP: instance/config.py < environment < create_app(config);
    a string in config.py is parsed too, never truthy by accident."""

    def demo_idp(config=None):
        return create_app(config, str(tmp_path)).config["EXAMPLE_APP_DEMO_IDP"]

    write_config(tmp_path, EXAMPLE_APP_DEMO_IDP="false")
    assert demo_idp() is False
    monkeypatch.setenv("EXAMPLE_APP_DEMO_IDP", "yes")
    assert demo_idp() is True
    assert demo_idp({"EXAMPLE_APP_DEMO_IDP": False}) is False


def test_log_level_layers(tmp_path, monkeypatch):
    """EXAMPLE_APP_LOG_LEVEL: "INFO" < instance/config.py < environment <
    create_app(config); an unknown level fails at start-up."""

    def log_level(config=None):
        return create_app(config, str(tmp_path)).config["EXAMPLE_APP_LOG_LEVEL"]

    assert log_level() == "INFO"
    write_config(tmp_path, EXAMPLE_APP_LOG_LEVEL="DEBUG")
    assert log_level() == "DEBUG"
    monkeypatch.setenv("EXAMPLE_APP_LOG_LEVEL", "warning")
    assert log_level() == "warning"
    assert log_level({"EXAMPLE_APP_LOG_LEVEL": "ERROR"}) == "ERROR"
    monkeypatch.setenv("EXAMPLE_APP_LOG_LEVEL", "loud")
    with pytest.raises(ConfigurationError, match="EXAMPLE_APP_LOG_LEVEL"):
        create_app(instance_path=str(tmp_path))


def test_database_url_layers(tmp_path, monkeypatch):
    """SQLALCHEMY_DATABASE_URI: SQLite in the instance folder < instance/config.py
    < environment EXAMPLE_APP_DATABASE_URL < create_app(config)."""

    def database(config=None):
        return create_app(config, str(tmp_path)).config["SQLALCHEMY_DATABASE_URI"]

    assert database() == f"sqlite:///{tmp_path / 'example_app.db'}"
    write_config(tmp_path, SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'file.db'}")
    assert database().endswith("file.db")
    monkeypatch.setenv("EXAMPLE_APP_DATABASE_URL", f"sqlite:///{tmp_path / 'env.db'}")
    assert database().endswith("env.db")
    explicit = {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'explicit.db'}"}
    assert database(explicit).endswith("explicit.db")


def test_instance_path_from_the_environment(tmp_path, monkeypatch):
    """EXAMPLE_APP_INSTANCE_PATH moves the instance folder, and with it
    instance/config.py and the database; create_app(instance_path) beats it."""
    folder = tmp_path / "from-env"
    write_config(folder, EXAMPLE_APP_BASE_URL="https://env-folder.example")
    monkeypatch.setenv("EXAMPLE_APP_INSTANCE_PATH", str(folder))
    app = create_app()
    assert app.instance_path == str(folder)
    assert app.config["EXAMPLE_APP_BASE_URL"] == "https://env-folder.example"
    assert app.config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{folder / 'example_app.db'}"
    app = create_app(instance_path=str(tmp_path / "from-argument"))
    assert app.instance_path == str(tmp_path / "from-argument")
    assert app.config["EXAMPLE_APP_BASE_URL"] == "http://127.0.0.1:5000"


def test_empty_environment_variables_count_as_unset(tmp_path, monkeypatch):
    """``export EXAMPLE_APP_BASE_URL=`` and the like leave the defaults."""
    for name in EXAMPLE_ENVIRONMENT:
        monkeypatch.setenv(name, "")
    app = create_app(instance_path=str(tmp_path))
    assert app.config["EXAMPLE_APP_BASE_URL"] == "http://127.0.0.1:5000"
    assert app.config["EXAMPLE_APP_DEMO_IDP"] is True
    assert app.config["EXAMPLE_APP_LOG_LEVEL"] == "INFO"
    assert app.config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path / 'example_app.db'}"


def test_audience_and_recipient_follow_the_base_url(tmp_path):
    """RFC 7522 section 3, items 2 and 5: the Audience is this server's identifier
    and the Recipient its token endpoint URL, both derived from the base URL."""
    app = create_app({"EXAMPLE_APP_BASE_URL": "https://as.corp.example/"}, str(tmp_path))
    assert app.config["SAML2_BEARER_AUDIENCES"] == ["https://as.corp.example"]
    assert app.config["SAML2_BEARER_RECIPIENTS"] == ["https://as.corp.example/oauth/token"]


def base_url_warnings(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "example_app.routes"]


def test_metadata_served_elsewhere_warns_once(app, caplog):
    """RFC 8414 section 2: issuer and token_endpoint stay EXAMPLE_APP_BASE_URL,
    which the Audience and Recipient derive from; a request reaching the app at
    another URL (the test client's http://localhost) logs one WARNING per app
    naming both URLs and the setting to change."""
    client = app.test_client()
    with caplog.at_level(logging.WARNING, logger="example_app"):
        body = client.get("/.well-known/oauth-authorization-server").get_json()
        client.get("/.well-known/oauth-authorization-server")
        client.get("/api/me")
    assert body["issuer"] == "http://127.0.0.1:5000"
    assert body["token_endpoint"] == "http://127.0.0.1:5000/oauth/token"
    warnings = base_url_warnings(caplog)
    assert len(warnings) == 1, warnings
    assert "reach this server at http://localhost, but" in warnings[0]
    assert "EXAMPLE_APP_BASE_URL is http://127.0.0.1:5000" in warnings[0]
    assert "set EXAMPLE_APP_BASE_URL=http://localhost and restart" in warnings[0]


@pytest.mark.parametrize(
    "base_url, request_base, warns",
    [
        ("http://localhost", "http://localhost/", False),
        ("http://localhost:80", "http://localhost/", False),
        ("https://LocalHost", "https://localhost:443/", False),
        ("http://localhost/auth", "http://localhost/auth/", False),
        ("http://localhost:5000", "http://localhost/", True),
        ("https://localhost", "http://localhost/", True),
        ("http://localhost/auth", "http://localhost/", True),
    ],
)
def test_base_url_warning_on_a_real_difference(tmp_path, caplog, base_url, request_base, warns):
    """Only a real difference of scheme, host, port or mount point warns."""
    app = create_app({"EXAMPLE_APP_BASE_URL": base_url}, str(tmp_path))
    with caplog.at_level(logging.WARNING, logger="example_app"):
        response = app.test_client().get(
            "/.well-known/oauth-authorization-server", base_url=request_base
        )
    assert response.get_json()["issuer"] == base_url
    assert bool(base_url_warnings(caplog)) is warns
    assert same_base_url(base_url, request_base) is not warns


def test_init_command_prints_credentials(app, credentials):
    """``flask --app example_app init`` creates the user and client once and
    prints what a client needs, and the base URL it assumes."""
    result = app.test_cli_runner().invoke(args=["init"])
    assert result.exit_code == 0, result.output
    assert "Already initialized." in result.output
    assert "base URL:       http://127.0.0.1:5000 (EXAMPLE_APP_BASE_URL)" in result.output
    assert f"client_id:      {DEMO_CLIENT_ID}" in result.output
    assert credentials.client_secret in result.output
    assert "Recipient:      http://127.0.0.1:5000/oauth/token" in result.output


def test_init_command_on_a_fresh_instance(tmp_path):
    """``init`` on an empty instance folder creates the database, the demo IdP
    and the server's signing key (private, 0600), and prints where the public
    key is served."""
    app = create_app(instance_path=str(tmp_path))
    result = app.test_cli_runner().invoke(args=["init"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Initialized.")
    assert (tmp_path / "example_app.db").is_file()
    assert (tmp_path / CERTIFICATE_FILENAME).is_file()
    assert stat.S_IMODE(os.stat(tmp_path / SIGNING_KEY_FILENAME).st_mode) == 0o600
    assert "JWKS:           http://127.0.0.1:5000/oauth/jwks.json" in result.output


def test_mint_command_output_is_exchangeable(app, credentials):
    """``mint USER`` prints a base64url assertion (RFC 7522 section 2.1) the
    token endpoint accepts."""
    result = app.test_cli_runner().invoke(args=["mint", DEMO_USER_EMAIL])
    assert result.exit_code == 0, result.output
    assertion = result.stdout.strip()
    assert set(assertion) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert exchange(app, credentials, assertion)[0] == 200


def test_demo_command_against_real_server(tmp_path):
    """``demo`` runs discovery, the RFC 7522 section 2.1 exchange, the check of
    the JWTs with the JWKS (RFC 9068 section 4), the API call, a refresh
    (RFC 6749 section 6) and the replay refusal (section 3, item 6) over real
    HTTP, and exits 0."""
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
    assert '"email": "alice@example.com"' in out[out.index("access token claims:") :]
    assert "ok: 200 with a new access token and a new refresh token" in out
    assert "All 11 steps gave the expected result." in out


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
    """The newcomer's command, ``flask --app example_app demo``, in a new process
    on a fresh instance folder: it initialises the demo IdP before serving, runs
    every step, and the console shows the server's log line for the replayed
    assertion (RFC 7522 section 3, item 6) with its reason code, between the
    request and the response."""
    instance = tmp_path / "instance"
    env = {**os.environ, "EXAMPLE_APP_INSTANCE_PATH": str(instance)}
    for name in EXAMPLE_ENVIRONMENT[:-1]:
        env.pop(name, None)
    flask = [sys.executable, "-m", "flask", "--app", "example_app", "demo"]
    done = subprocess.run(
        flask,
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=120,
    )
    out = done.stdout
    assert done.returncode == 0, out
    assert "All 11 steps gave the expected result." in out
    line = (
        "INFO authlib_saml2_grant.grant: SAML2 bearer assertion rejected: "
        "reason=replayed client='demo-client': "
    )
    assert line in out
    replay = out.index("== 7. Replay")
    assert replay < out.index(line) < out.index("< 400 BAD REQUEST", replay)
    assert (instance / KEY_FILENAME).is_file()
    assert (instance / CERTIFICATE_FILENAME).is_file()
    assert (instance / SIGNING_KEY_FILENAME).is_file()
    # Only the command's own app predates the keys: the served app trusts the
    # demo IdP and signs its tokens from the start.
    assert out.count(NOT_INITIALISED) == 1
    assert out.count(NO_SIGNING_KEY) == 1
