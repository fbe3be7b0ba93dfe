"""The app factory."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from flask import Flask

import authlib_saml2_grant

from .commands import FACTORY_CONFIG_KEY
from .commands import register_commands
from .config import configure
from .models import db
from .oauth import init_oauth
from .routes import bp

__all__ = ["INSTANCE_PATH_ENV", "create_app"]

log = logging.getLogger(__name__)

#: Environment variable that moves the instance folder (database, demo IdP keys).
INSTANCE_PATH_ENV = "EXAMPLE_APP_INSTANCE_PATH"


def create_app(config: Mapping[str, Any] | None = None, instance_path: str | None = None) -> Flask:
    """Create the example authorization server.

    :param config: settings overriding the defaults and ``instance/config.py``.
    :param instance_path: the instance folder; default ``$EXAMPLE_APP_INSTANCE_PATH``
        or Flask's ``instance/`` next to the package.
    """
    instance_path = instance_path or os.environ.get(INSTANCE_PATH_ENV) or None
    app = Flask(
        __name__.rpartition(".")[0],
        instance_path=os.path.abspath(instance_path) if instance_path else None,
        instance_relative_config=True,
    )
    configure(app, config)
    db.init_app(app)
    # Validate every SAML2_BEARER_* setting now: a bad one fails at start-up.
    authlib_saml2_grant.init_app(app)
    init_oauth(app)
    app.register_blueprint(bp)
    app.extensions[FACTORY_CONFIG_KEY] = dict(config or {})
    register_commands(app)
    return app
