"""The Flask extension: ``SAML2_BEARER_*`` settings loaded once per app.

In the style of Flask-SQLAlchemy::

    saml2_bearer = SAML2Bearer()

    def create_app():
        app = Flask(__name__)
        app.config.update(SAML2_BEARER_AUDIENCES=[...], ...)
        saml2_bearer.init_app(app)  # validates every setting now
        ...

:meth:`SAML2Bearer.init_app` validates the settings and stores the ready
objects in ``app.extensions["saml2_bearer"]``; the grant only looks them up.
Settings changed afterwards are not silently ignored: the next token request
raises until :meth:`SAML2Bearer.reload` has read them again.

:meth:`SAML2Bearer.token_endpoint` decorates the token view with the request
limits of :mod:`.limits` (size, type, parameter count), checked before the
body is parsed::

    @app.post("/oauth/token")
    @saml2_bearer.token_endpoint
    def issue_token():
        return server.create_token_response()
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from authlib.oauth2 import OAuth2Error
from flask import Flask
from flask import current_app
from flask import request

from .errors import ConfigurationError
from .health import flask_commands
from .limits import check_token_request
from .limits import error_response
from .replay import MemoryReplayCache
from .replay import ReplayCache
from .settings import DEFAULTS
from .settings import Saml2BearerSettings
from .settings import load_settings

__all__ = ["EXTENSION_KEY", "SAML2Bearer", "get_settings", "init_app"]

log = logging.getLogger(__name__)

#: The key of the extension's state in ``app.extensions``.
EXTENSION_KEY = "saml2_bearer"


@dataclass(frozen=True)
class _AppState:
    """What one app registered: the extension, its ready settings, and the
    configuration they were built from (to notice later changes)."""

    extension: SAML2Bearer
    settings: Saml2BearerSettings
    snapshot: Mapping[str, Any]


class SAML2Bearer:
    """Loads and validates the ``SAML2_BEARER_*`` settings of Flask apps.

    :param app: an app to initialise now; or call :meth:`init_app` later,
        once per app (one extension object may serve several apps).
    """

    def __init__(self, app: Flask | None = None) -> None:
        self._lock = threading.Lock()
        self._warned_memory_cache = False
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> Saml2BearerSettings:
        """Validate ``app``'s settings and register them for its grants.

        :raise ConfigurationError: naming the first invalid setting.
        :raise RuntimeError: if the app was already initialised.
        """
        if EXTENSION_KEY in app.extensions:
            raise RuntimeError(
                "SAML2Bearer.init_app() was already called on this Flask app. Use that "
                "extension object, and its reload(app) to read changed settings again."
            )
        settings = self._register(app, None)
        # flask saml2-bearer check / refresh-metadata (health.py)
        app.cli.add_command(flask_commands)
        return settings

    def reload(self, app: Flask) -> Saml2BearerSettings:
        """Read ``app``'s settings again, after changing ``app.config``.

        An unset ``SAML2_BEARER_REPLAY_CACHE`` keeps the in-memory cache it
        had, so assertions spent before the reload stay spent.

        :raise ConfigurationError: naming the first invalid setting; the
            previous settings stay in force.
        """
        state = app.extensions.get(EXTENSION_KEY)
        if state is None or state.extension is not self:
            raise RuntimeError("reload(app) needs an app this extension's init_app() was called on")
        return self._register(app, state.settings.replay_cache)

    def get_settings(self, app: Flask | None = None) -> Saml2BearerSettings:
        """The ready settings of ``app`` (default: the current app)."""
        return get_settings(app)

    def token_endpoint(self, view: Callable[..., Any]) -> Callable[..., Any]:
        """Decorate the token endpoint's view with the token request limits:
        a body over ``SAML2_BEARER_MAX_REQUEST_SIZE`` is refused (413) before it
        is read, one with more than ``SAML2_BEARER_MAX_REQUEST_PARAMETERS``
        parameters before it is parsed (413), and a JSON or non-UTF-8 body is
        ``invalid_request`` (400); see :mod:`.limits`. Put it under the route::

            @app.post("/oauth/token")
            @saml2_bearer.token_endpoint
            def issue_token():
                return server.create_token_response()
        """

        @functools.wraps(view)
        def limited_view(*args: Any, **kwargs: Any) -> Any:
            try:
                check_token_request(request, get_settings())
            except OAuth2Error as error:
                log.info("Token request refused before parsing: %s", error.description)
                return error_response(error)
            return view(*args, **kwargs)

        return limited_view

    def _register(self, app: Flask, previous_cache: ReplayCache | None) -> Saml2BearerSettings:
        with self._lock:
            snapshot = _snapshot(app.config)

            def memory_cache() -> ReplayCache:
                if isinstance(previous_cache, MemoryReplayCache):
                    return previous_cache
                self._warn_memory_cache()
                return MemoryReplayCache()

            settings = load_settings(
                app.config, default_replay_cache=memory_cache, instance_path=app.instance_path
            )
            app.extensions[EXTENSION_KEY] = _AppState(self, settings, snapshot)
        return settings

    def _warn_memory_cache(self) -> None:
        if not self._warned_memory_cache:
            self._warned_memory_cache = True
            log.warning(
                "SAML2_BEARER_REPLAY_CACHE is not set: using an in-memory replay cache, "
                "which does not protect deployments with several processes"
            )


def init_app(app: Flask) -> SAML2Bearer:
    """Shorthand for ``SAML2Bearer(app)``: validate and register ``app``'s settings."""
    return SAML2Bearer(app)


def get_settings(app: Flask | None = None) -> Saml2BearerSettings:
    """The ready settings of ``app`` (default: the current app).

    :raise RuntimeError: if the app was never initialised with
        :class:`SAML2Bearer`, or a ``SAML2_BEARER_*`` setting changed since.
    """
    if app is None:
        app = current_app._get_current_object()  # type: ignore[attr-defined]  # a LocalProxy
    state: _AppState | None = app.extensions.get(EXTENSION_KEY)
    if state is None:
        raise RuntimeError(
            f"The SAML2 bearer grant is used on the Flask app {app.name!r}, but its settings "
            "were never loaded: call SAML2Bearer(app), or saml2_bearer.init_app(app), in the "
            "app factory after setting SAML2_BEARER_*."
        )
    changed = _changed_setting(app.config, state.snapshot)
    if changed is not None:
        raise ConfigurationError(
            f"{changed} changed after SAML2Bearer.init_app(app): call reload(app) on the "
            "extension to apply it (or set it before init_app)."
        )
    return state.settings


def _snapshot(config: Mapping[str, Any]) -> dict[str, Any]:
    return {key: _copy(config.get(key, default)) for key, default in DEFAULTS.items()}


def _changed_setting(config: Mapping[str, Any], snapshot: Mapping[str, Any]) -> str | None:
    """The first ``SAML2_BEARER_*`` key whose value differs from ``snapshot``."""
    for key, value in snapshot.items():
        current = config.get(key, DEFAULTS[key])
        if current is not value and current != value:
            return key
    return None


def _copy(value: Any) -> Any:
    """A copy of the containers in a setting (so changes in place show), not of objects."""
    kind = type(value)
    if kind is dict:
        return {key: _copy(item) for key, item in value.items()}
    if kind in (list, tuple, set, frozenset):
        return kind(_copy(item) for item in value)
    return value
