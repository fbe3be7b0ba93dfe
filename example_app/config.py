"""Configuration: defaults < ``instance/config.py`` < environment < ``create_app(config)``.

Each layer overrides the one before it. The example app's own settings:

=============================  =============================  ============================
setting                        environment variable           default
=============================  =============================  ============================
``EXAMPLE_APP_BASE_URL``       ``EXAMPLE_APP_BASE_URL``       ``"http://127.0.0.1:5000"``
``EXAMPLE_APP_DEMO_IDP``       ``EXAMPLE_APP_DEMO_IDP``       ``True``
``EXAMPLE_APP_LOG_LEVEL``      ``EXAMPLE_APP_LOG_LEVEL``      ``"INFO"``
``SQLALCHEMY_DATABASE_URI``    ``EXAMPLE_APP_DATABASE_URL``   SQLite ``example_app.db`` in
                                                              the instance folder
``SAML2_BEARER_REPLAY_CACHE``  ``EXAMPLE_APP_REPLAY_CACHE``   the replay table in that
                                                              database
(the instance folder)          ``EXAMPLE_APP_INSTANCE_PATH``  Flask's ``instance/``
=============================  =============================  ============================

An empty environment variable counts as unset. ``EXAMPLE_APP_DEMO_IDP`` is
parsed explicitly, wherever it comes from: ``1/true/yes/on`` or
``0/false/no/off`` (any case); anything else fails at start-up, so a typo
never leaves the demo IdP trusted. The instance folder is chosen before any
configuration is read (``create_app(instance_path=...)`` beats the variable).

Every ``SAML2_BEARER_*`` setting a real deployment needs is derived from one
value, ``EXAMPLE_APP_BASE_URL``, the public URL of this authorization server:
it is the ``Audience`` IdPs must put in assertions, ``{base}/oauth/token`` the
``Recipient``, and both the ``issuer`` and ``token_endpoint`` of the RFC 8414
metadata. Set ``SAML2_BEARER_AUDIENCES`` or ``SAML2_BEARER_RECIPIENTS``
explicitly to override.

The demo IdP is trusted only once its key pair exists: creating the app
never writes key material. ``flask --app example_app init`` (and ``demo``
and ``mint``) create the key pair; see :mod:`example_app.idp`. They also
create the server's own signing key, without which access tokens are opaque
and no ID token is issued; see :mod:`example_app.keys`.

Token defaults: the scopes ``openid`` (an ID token) and ``offline_access``
(a refresh token, ``SAML2_BEARER_ISSUE_REFRESH_TOKEN = "offline_access"``)
besides ``profile`` and ``email``; ``SAML2_BEARER_CLAIMS`` maps the usual
attribute names of email, display name and group membership to the claims
``email``, ``name`` and ``groups``. Like every default, a setting in
``instance/config.py`` or ``create_app(config)`` replaces them whole.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from flask import Flask

from authlib_saml2_grant import SAML2_BEARER_GRANT_TYPE
from authlib_saml2_grant import ConfigurationError

from .bootstrap import DEMO_LEGACY_CLIENT_ID
from .idp import demo_idp_exists
from .idp import settings_entry
from .models import replay_cache

__all__ = [
    "DEFAULTS",
    "DATABASE_URL_ENV",
    "INSTANCE_PATH_ENV",
    "ENVIRONMENT",
    "load_config",
    "derive_settings",
    "parse_bool",
    "parse_log_level",
]

log = logging.getLogger(__name__)

#: Environment variable that moves the instance folder (database, demo IdP keys).
INSTANCE_PATH_ENV = "EXAMPLE_APP_INSTANCE_PATH"
#: Environment variable that sets ``SQLALCHEMY_DATABASE_URI``.
DATABASE_URL_ENV = "EXAMPLE_APP_DATABASE_URL"
#: The SQLite file created in the instance folder by default.
DATABASE_FILENAME = "example_app.db"

#: Environment variable -> the setting it sets.
ENVIRONMENT: Mapping[str, str] = {
    "EXAMPLE_APP_BASE_URL": "EXAMPLE_APP_BASE_URL",
    "EXAMPLE_APP_DEMO_IDP": "EXAMPLE_APP_DEMO_IDP",
    "EXAMPLE_APP_LOG_LEVEL": "EXAMPLE_APP_LOG_LEVEL",
    DATABASE_URL_ENV: "SQLALCHEMY_DATABASE_URI",
    # A Redis URL ("redis://host:6379/0") or an import string; default the SQL table.
    "EXAMPLE_APP_REPLAY_CACHE": "SAML2_BEARER_REPLAY_CACHE",
}

#: Defaults; ``instance/config.py``, the environment and ``create_app(config)`` override them.
DEFAULTS: Mapping[str, Any] = {
    # The public URL of this authorization server (no trailing slash).
    "EXAMPLE_APP_BASE_URL": "http://127.0.0.1:5000",
    # Trust the built-in demo IdP. Set to False before copying to production.
    "EXAMPLE_APP_DEMO_IDP": True,
    # Level of the console log the app sets up when nothing else configured logging.
    "EXAMPLE_APP_LOG_LEVEL": "INFO",
    # openid: an ID token; offline_access: a refresh token (OpenID Connect Core 11).
    "OAUTH2_SCOPES_SUPPORTED": ["openid", "profile", "email", "offline_access"],
    # Test each pooled connection before use: after a database restart the
    # dropped ones are replaced, and the server recovers without a restart.
    "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
    # The token endpoint refuses larger bodies (413) before reading them, and
    # more parameters before parsing them (@saml2_bearer.token_endpoint).
    "SAML2_BEARER_MAX_REQUEST_SIZE": 512 * 1024,
    "SAML2_BEARER_MAX_REQUEST_PARAMETERS": 100,
    # Seconds clients wait before retrying a 503 while the database is down.
    "SAML2_BEARER_RETRY_AFTER": 5,
    # Authlib's own token lifetime setting, per grant type.
    "OAUTH2_TOKEN_EXPIRES_IN": {
        SAML2_BEARER_GRANT_TYPE: 3600,
        "refresh_token": 3600,
        "assertion": 3600,  # Salesforce's SAML assertion flow (example_app.legacy)
    },
    # Authlib's default generator makes refresh tokens only when this is set.
    "OAUTH2_REFRESH_TOKEN_GENERATOR": True,
    "SAML2_BEARER_IDENTITY_PROVIDERS": [],
    "SAML2_BEARER_CLOCK_SKEW": 60,
    "SAML2_BEARER_MAX_ASSERTION_LIFETIME": 7200,
    # A refresh token only when the granted scope has offline_access.
    "SAML2_BEARER_ISSUE_REFRESH_TOKEN": "offline_access",
    # Salesforce's grant_type=assertion without client credentials: the token goes
    # to this client (created by init), so whoever holds a valid Response gets one.
    # None: such requests are invalid_client (see example_app.legacy).
    "SAML2_BEARER_LEGACY_CLIENT_ID": DEMO_LEGACY_CLIENT_ID,
    # Claim name -> the SAML attribute Name (or FriendlyName) carrying it, the
    # first one present wins: common names (the demo IdP sends mail, displayName
    # and memberOf) and their urn:oid forms (SAML V2.0 X.500/LDAP attribute
    # profile). Access tokens carry every mapped claim, ID tokens those their
    # scope requests (see example_app.tokens).
    "SAML2_BEARER_CLAIMS": {
        "email": ["mail", "email", "urn:oid:0.9.2342.19200300.100.1.3"],
        "name": ["displayName", "cn", "urn:oid:2.16.840.1.113730.3.1.241"],
        "groups": ["memberOf", "groups", "isMemberOf", "urn:oid:1.3.6.1.4.1.5923.1.5.1.1"],
    },
}

_TRUE = frozenset(("1", "true", "yes", "on"))
_FALSE = frozenset(("0", "false", "no", "off"))


def load_config(app: Flask, config: Mapping[str, Any] | None) -> None:
    """Load every layer into ``app.config`` and validate the ``EXAMPLE_APP_*`` settings.

    :raise ConfigurationError: naming the setting, or the variable, that is invalid.
    """
    app.config.from_mapping(DEFAULTS)
    app.config.from_pyfile("config.py", silent=True)
    for variable, key in ENVIRONMENT.items():
        value = os.environ.get(variable)
        if value:
            app.config[key] = _from_environment(variable, value)
    if config:
        app.config.from_mapping(config)
    cfg = app.config
    cfg["EXAMPLE_APP_BASE_URL"] = _base_url(cfg["EXAMPLE_APP_BASE_URL"])
    cfg["EXAMPLE_APP_DEMO_IDP"] = parse_bool(cfg["EXAMPLE_APP_DEMO_IDP"], "EXAMPLE_APP_DEMO_IDP")
    parse_log_level(cfg["EXAMPLE_APP_LOG_LEVEL"], "EXAMPLE_APP_LOG_LEVEL")
    cfg.setdefault("SQLALCHEMY_DATABASE_URI", _default_database_url(app))


def derive_settings(app: Flask) -> None:
    """Derive the ``SAML2_BEARER_*`` settings from the base URL; trust the demo IdP.

    The demo IdP is trusted only if its key pair is in the instance folder;
    otherwise a warning says how to create it. Nothing is written here.
    """
    cfg = app.config
    base_url = cfg["EXAMPLE_APP_BASE_URL"]
    cfg.setdefault("SAML2_BEARER_AUDIENCES", [base_url])
    cfg.setdefault("SAML2_BEARER_RECIPIENTS", [f"{base_url}/oauth/token"])
    cfg.setdefault("SAML2_BEARER_REPLAY_CACHE", replay_cache)
    providers = list(cfg["SAML2_BEARER_IDENTITY_PROVIDERS"])
    if cfg["EXAMPLE_APP_DEMO_IDP"]:
        if demo_idp_exists(app.instance_path):
            providers.append(settings_entry(app.instance_path))
        else:
            log.warning(
                "demo IdP not initialised (no key pair in %s): its assertions are refused "
                "until you run flask --app example_app init (demo and mint run it too) "
                "and restart a running server",
                app.instance_path,
            )
    cfg["SAML2_BEARER_IDENTITY_PROVIDERS"] = providers


def parse_bool(value: Any, name: str) -> bool:
    """``value`` as a bool: a bool, or ``1/true/yes/on`` / ``0/false/no/off`` in any case.

    :raise ConfigurationError: naming ``name`` for anything else.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    raise ConfigurationError(
        f"{name} must be true or false (1/true/yes/on or 0/false/no/off), not {value!r}"
    )


def parse_log_level(value: Any, name: str) -> int:
    """``value`` as a :mod:`logging` level: a name such as ``"info"``, or a number.

    :raise ConfigurationError: naming ``name`` for an unknown level.
    """
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str):
        level = logging.getLevelName(value.strip().upper())
        if isinstance(level, int):
            return level
    raise ConfigurationError(
        f"{name} must be a logging level (DEBUG, INFO, WARNING, ERROR or CRITICAL), not {value!r}"
    )


def _from_environment(variable: str, value: str) -> Any:
    # Parsed at once, so a typo in the environment fails even if create_app(config) overrides it.
    if variable == "EXAMPLE_APP_DEMO_IDP":
        return parse_bool(value, variable)
    return value


def _base_url(value: Any) -> str:
    parts = urlsplit(value) if isinstance(value, str) else None
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.query
        or parts.fragment
    ):
        raise ConfigurationError(
            "EXAMPLE_APP_BASE_URL must be the absolute http(s) URL clients use to reach "
            f"this server, such as https://as.example.com, not {value!r}"
        )
    return value.rstrip("/")


def _default_database_url(app: Flask) -> str:
    os.makedirs(app.instance_path, exist_ok=True)
    return "sqlite:///" + os.path.join(app.instance_path, DATABASE_FILENAME)
