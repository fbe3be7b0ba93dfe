"""The ``SAML2Bearer`` Flask extension: settings loaded once per app, at start-up."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from flask import Flask

from authlib_saml2_grant import ConfigurationError
from authlib_saml2_grant import MemoryReplayCache
from authlib_saml2_grant import SAML2Bearer
from authlib_saml2_grant import get_settings
from authlib_saml2_grant import init_app
from authlib_saml2_grant.extension import EXTENSION_KEY

from .conftest import AUDIENCES
from .conftest import Grant
from .conftest import mint_for
from .helpers import app_for
from .helpers import assert_rejected
from .helpers import assert_unavailable

CACHE = MemoryReplayCache()


def flask_app(name: str = "app", **config) -> Flask:
    app = Flask(name)
    app.config.update(SAML2_BEARER_AUDIENCES=list(AUDIENCES), SAML2_BEARER_REPLAY_CACHE=CACHE)
    app.config.update(config)
    return app


def test_extension_in_the_flask_sqlalchemy_style():
    """``SAML2Bearer()`` then ``init_app(app)``, or ``SAML2Bearer(app)``: the ready
    settings live in ``app.extensions`` and are what ``get_settings`` answers."""
    ext = SAML2Bearer()
    app = flask_app()
    settings = ext.init_app(app)
    assert app.extensions[EXTENSION_KEY].settings is settings
    assert get_settings(app) is settings
    with app.app_context():
        assert get_settings() is settings
        assert ext.get_settings() is settings
    other = flask_app("other")
    SAML2Bearer(other)
    assert get_settings(other) is not settings


def test_init_app_shorthand_returns_the_extension():
    """``init_app(app)`` is ``SAML2Bearer(app)``; its extension can reload the app."""
    app = flask_app()
    ext = init_app(app)
    assert isinstance(ext, SAML2Bearer)
    assert app.extensions[EXTENSION_KEY].extension is ext


def test_init_app_fails_fast_naming_the_setting():
    """A bad setting raises at start-up, before any request, and registers nothing."""
    app = flask_app(SAML2_BEARER_CLOCK_SKEW="a minute")
    with pytest.raises(ConfigurationError, match="SAML2_BEARER_CLOCK_SKEW"):
        SAML2Bearer(app)
    assert EXTENSION_KEY not in app.extensions


def test_second_init_app_on_one_app_raises():
    """Initialising one app twice is a mistake (two extension objects, or a forgotten
    reload): it raises instead of silently replacing the settings."""
    ext = SAML2Bearer()
    app = flask_app()
    ext.init_app(app)
    with pytest.raises(RuntimeError, match="already called on this Flask app"):
        ext.init_app(app)
    with pytest.raises(RuntimeError, match="already called on this Flask app"):
        SAML2Bearer(app)


def test_grant_without_init_app_says_to_call_it(tmp_path, idp):
    """No silent lazy initialisation: the grant on an app that never called
    init_app fails with a message naming the fix."""
    with app_for(tmp_path, [idp]) as h:
        del h.app.extensions[EXTENSION_KEY]
        with pytest.raises(RuntimeError, match=r"SAML2Bearer\(app\).*init_app\(app\)"):
            h.token(mint_for(idp))
    with pytest.raises(RuntimeError, match="never loaded"):
        get_settings(flask_app())


def test_changed_setting_is_reported_until_reload(tmp_path, idp):
    """A setting changed after init_app is not silently ignored: requests raise,
    naming the key, until ``reload(app)`` applies it."""
    with app_for(tmp_path, [idp]) as h:
        h.app.config["SAML2_BEARER_AUDIENCES"] = ["https://elsewhere.example.com"]
        with pytest.raises(ConfigurationError, match="SAML2_BEARER_AUDIENCES changed"):
            h.token(mint_for(idp))
        h.app.extensions[EXTENSION_KEY].extension.reload(h.app)
        status, body = h.token(mint_for(idp))
        assert_rejected(status, body, h.reasons, "audience_mismatch")


def test_setting_changed_in_place_is_noticed():
    """Appending to a configured list is a change too."""
    app = flask_app()
    SAML2Bearer(app)
    app.config["SAML2_BEARER_AUDIENCES"].append("https://new.example.com")
    with pytest.raises(ConfigurationError, match="SAML2_BEARER_AUDIENCES changed"):
        get_settings(app)


def test_reload_keeps_the_memory_cache_and_the_old_settings_on_error():
    """Assertions spent before a reload stay spent; a bad value keeps the previous settings."""
    app = Flask("app")
    app.config.update(SAML2_BEARER_AUDIENCES=list(AUDIENCES))
    ext = SAML2Bearer(app)
    before = get_settings(app)
    app.config["SAML2_BEARER_CLOCK_SKEW"] = 5
    after = ext.reload(app)
    assert after.verifier.clock_skew == timedelta(seconds=5)
    assert after.replay_cache is before.replay_cache
    app.config["SAML2_BEARER_CLOCK_SKEW"] = -1
    with pytest.raises(ConfigurationError, match="SAML2_BEARER_CLOCK_SKEW"):
        ext.reload(app)
    assert app.extensions[EXTENSION_KEY].settings is after


def test_reload_needs_this_extensions_app():
    """``reload`` is for apps this extension initialised."""
    with pytest.raises(RuntimeError, match="reload"):
        SAML2Bearer().reload(flask_app())
    app = flask_app()
    SAML2Bearer(app)
    with pytest.raises(RuntimeError, match="reload"):
        SAML2Bearer().reload(app)


def test_settings_are_per_app():
    """One extension, two apps: each keeps its own settings."""
    ext = SAML2Bearer()
    first = flask_app("first", SAML2_BEARER_AUDIENCES=["https://a"])
    second = flask_app("second", SAML2_BEARER_AUDIENCES=["https://b"], SAML2_BEARER_CLOCK_SKEW=5)
    ext.init_app(first)
    ext.init_app(second)
    assert get_settings(first).verifier.audiences == frozenset(["https://a"])
    assert get_settings(second).verifier.audiences == frozenset(["https://b"])
    assert get_settings(second).verifier.clock_skew == timedelta(seconds=5)


def test_memory_cache_warning_once_per_extension(caplog):
    """Without SAML2_BEARER_REPLAY_CACHE, one warning per extension object: memory does
    not span processes. The flag lives on the extension, not in the module."""
    caplog.set_level(logging.WARNING, logger="authlib_saml2_grant.extension")
    ext = SAML2Bearer()
    for name in ("a", "b", "c"):
        app = Flask(name)
        app.config["SAML2_BEARER_AUDIENCES"] = list(AUDIENCES)
        ext.init_app(app)
    app = Flask("d")
    app.config["SAML2_BEARER_AUDIENCES"] = AUDIENCES
    SAML2Bearer(app)
    warnings = [r for r in caplog.records if "in-memory replay cache" in r.getMessage()]
    assert len(warnings) == 2
    assert all(r.levelno == logging.WARNING for r in warnings)
    assert "SAML2_BEARER_REPLAY_CACHE" in warnings[0].getMessage()


def test_no_memory_cache_warning_when_configured(caplog):
    """A configured replay cache logs no in-memory warning."""
    caplog.set_level(logging.WARNING, logger="authlib_saml2_grant.extension")
    SAML2Bearer(flask_app())
    assert not [r for r in caplog.records if "in-memory replay cache" in r.getMessage()]


def test_user_without_get_user_id_is_named_in_the_log(tmp_path, idp, caplog):
    """A user model without ``get_user_id`` (Authlib needs it) is an ERROR naming
    the model, and the client a 503 (the server is at fault, not the assertion)."""

    class Anonymous:
        pass

    class BadGrant(Grant):
        def authenticate_user(self, assertion):
            return Anonymous()

    with app_for(tmp_path, [idp], grant=BadGrant) as h:
        with caplog.at_level(logging.ERROR, logger="authlib_saml2_grant.grant"):
            status, body = h.token(mint_for(idp))
    assert_unavailable(status, body, h.reasons, "user_lookup_error")
    assert any(
        "without get_user_id()" in r.getMessage() and "Anonymous" in r.getMessage()
        for r in caplog.records
    )
