"""Configuration: defaults, then ``instance/config.py``, then the factory's argument.

Every ``SAML2_BEARER_*`` setting a real deployment needs is derived here from
one value, ``EXAMPLE_APP_BASE_URL``, the public URL of this authorization
server: it is the ``Audience`` IdPs must put in assertions, and
``{base}/oauth/token`` the ``Recipient``. Set either explicitly to override.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from flask import Flask

from authlib_saml2_grant import SAML2_BEARER_GRANT_TYPE

from .idp import load_demo_idp
from .idp import settings_entry
from .models import replay_cache

__all__ = ["DEFAULTS", "DATABASE_URL_ENV", "configure"]

#: Environment variable that overrides the database URL.
DATABASE_URL_ENV = "EXAMPLE_APP_DATABASE_URL"
#: The SQLite file created in the instance folder by default.
DATABASE_FILENAME = "example_app.db"

#: Defaults; ``instance/config.py`` and ``create_app(config)`` override them.
DEFAULTS: Mapping[str, Any] = {
    # The public URL of this authorization server (no trailing slash).
    "EXAMPLE_APP_BASE_URL": "http://127.0.0.1:5000",
    # Trust the built-in demo IdP. Set to False before copying to production.
    "EXAMPLE_APP_DEMO_IDP": True,
    "OAUTH2_SCOPES_SUPPORTED": ["profile", "email"],
    # Authlib's own token lifetime setting, per grant type.
    "OAUTH2_TOKEN_EXPIRES_IN": {SAML2_BEARER_GRANT_TYPE: 3600},
    "SAML2_BEARER_IDENTITY_PROVIDERS": [],
    "SAML2_BEARER_CLOCK_SKEW": 60,
    "SAML2_BEARER_MAX_ASSERTION_LIFETIME": 7200,
}


def configure(app: Flask, config: Mapping[str, Any] | None) -> None:
    """Load the configuration of ``app`` and derive the dependent settings."""
    app.config.from_mapping(DEFAULTS)
    app.config.from_pyfile("config.py", silent=True)
    if config:
        app.config.from_mapping(config)
    cfg = app.config
    cfg.setdefault("SQLALCHEMY_DATABASE_URI", _database_url(app))
    base_url = cfg["EXAMPLE_APP_BASE_URL"].rstrip("/")
    cfg["EXAMPLE_APP_BASE_URL"] = base_url
    cfg.setdefault("SAML2_BEARER_AUDIENCES", [base_url])
    cfg.setdefault("SAML2_BEARER_RECIPIENTS", [f"{base_url}/oauth/token"])
    cfg.setdefault("SAML2_BEARER_REPLAY_CACHE", replay_cache)
    providers = list(cfg["SAML2_BEARER_IDENTITY_PROVIDERS"])
    if cfg["EXAMPLE_APP_DEMO_IDP"]:
        load_demo_idp(app.instance_path)  # generates the key pair on first run
        providers.append(settings_entry(app.instance_path))
    cfg["SAML2_BEARER_IDENTITY_PROVIDERS"] = providers


def _database_url(app: Flask) -> str:
    url = os.environ.get(DATABASE_URL_ENV)
    if url:
        return url
    os.makedirs(app.instance_path, exist_ok=True)
    return "sqlite:///" + os.path.join(app.instance_path, DATABASE_FILENAME)
