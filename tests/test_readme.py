"""The README's code runs as printed: the one-file server, the test of it, and the
legacy grant (Salesforce's grant_type=assertion) added to that server."""

from __future__ import annotations

import inspect
import re
import sys
from pathlib import Path
from urllib.parse import parse_qsl

import pytest
from lxml import etree

from authlib_saml2_grant import SAML2_BROWSER_SSO_ASSERTION_TYPE
from authlib_saml2_grant.testing import TestIdentityProvider

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks(heading: str) -> list[str]:
    """The ```python blocks of the README section under ``## heading``."""
    text = README.read_text(encoding="utf-8")
    section = text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.DOTALL)


@pytest.fixture
def readme_app(tmp_path, monkeypatch):
    """The README's ``app.py``, written out and importable as ``app``."""
    (tmp_path / "app.py").write_text(python_blocks("Register the grant")[0], encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("app", None)
    yield tmp_path
    sys.modules.pop("app", None)


def test_readme_app_and_its_test_run(readme_app):
    """RFC 7522 section 2.1 end to end with the README alone: its server file and
    its pytest example exchange a minted assertion for a Bearer token."""
    namespace: dict = {}
    exec(compile(python_blocks("Testing your own integration")[0], "README", "exec"), namespace)
    namespace["test_saml2_bearer_token"]()


def test_readme_app_refuses_a_bad_setting_at_start_up(readme_app):
    """The README's server validates its settings in create_app: the IdP metadata
    path it names for illustration does not exist here, and start-up says so."""
    import app

    from authlib_saml2_grant import ConfigurationError

    with pytest.raises(ConfigurationError, match="SAML2_BEARER_IDENTITY_PROVIDERS"):
        app.create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://"})


def test_readme_salesforce_assertion_flow(readme_app):
    """The README's legacy grant and its after_create_token_response hook, added
    to its app.py: a whole signed Web SSO Response posted with
    grant_type=assertion and no client credentials goes to
    SAML2_BEARER_LEGACY_CLIENT_ID, with Salesforce's id and instance_url in
    every format, and no refresh token even where the app issues them."""
    import app as module

    idp = TestIdentityProvider("https://idp.example.com")
    flask_app = module.create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": "sqlite://",
            "SAML2_BEARER_IDENTITY_PROVIDERS": [idp.settings_entry()],
            "SAML2_BEARER_LEGACY_CLIENT_ID": "salesforce-sso",
            "SAML2_BEARER_ISSUE_REFRESH_TOKEN": True,
            "OAUTH2_REFRESH_TOKEN_GENERATOR": True,
        }
    )
    view = inspect.unwrap(flask_app.view_functions["issue_token"])  # under token_endpoint
    server = inspect.getclosurevars(view).nonlocals["server"]
    snippet = python_blocks("Salesforce's SAML assertion flow (grant_type=assertion)")[0]
    exec(compile(snippet, "README", "exec"), {**vars(module), "server": server})
    with flask_app.app_context():
        client = module.Client(client_id="salesforce-sso", client_secret="")
        client.set_client_metadata(
            {"grant_types": ["assertion"], "token_endpoint_auth_method": "none", "scope": "api"}
        )
        module.db.session.add_all([module.User(email="alice@example.com"), client])
        module.db.session.commit()

    for answer_format in ("json", "urlencoded", "xml"):
        response = flask_app.test_client().post(
            "/oauth/token",
            data={
                "grant_type": "assertion",
                "assertion_type": SAML2_BROWSER_SSO_ASSERTION_TYPE,
                "assertion": idp.mint_response(
                    subject="alice@example.com",
                    audience="https://as.example.com",
                    recipient="https://as.example.com/oauth/token",
                    response={"destination": "https://as.example.com/oauth/token"},
                ),
                "format": answer_format,
            },
        )
        assert response.status_code == 200, response.get_data(as_text=True)
        if answer_format == "json":
            token = response.get_json()
        elif answer_format == "urlencoded":
            token = dict(parse_qsl(response.get_data(as_text=True), strict_parsing=True))
        else:
            token = {child.tag: child.text for child in etree.fromstring(response.get_data())}
        assert token["id"] == "https://as.example.com/id/salesforce-sso/1", token
        assert token["instance_url"] == "https://as.example.com"
        assert token["token_type"] == "Bearer"
        assert token["access_token"]
        assert "refresh_token" not in token
