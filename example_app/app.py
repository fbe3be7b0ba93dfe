"""The app factory."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from flask import Flask

from .commands import FACTORY_CONFIG_KEY
from .commands import register_commands
from .config import INSTANCE_PATH_ENV
from .config import derive_settings
from .config import load_config
from .legacy import init_legacy
from .logs import configure_logging
from .models import db
from .oauth import init_oauth
from .oauth import saml2_bearer
from .routes import bp

__all__ = ["INSTANCE_PATH_ENV", "create_app"]

log = logging.getLogger(__name__)


def create_app(config: Mapping[str, Any] | None = None, instance_path: str | None = None) -> Flask:
    """Create the example authorization server.

    Creating it writes no key material: the demo IdP is trusted only once
    ``flask --app example_app init`` created it (see :mod:`example_app.idp`).

    :param config: settings overriding the defaults, ``instance/config.py``
        and the environment (see :mod:`example_app.config`).
    :param instance_path: the instance folder; default ``$EXAMPLE_APP_INSTANCE_PATH``
        or Flask's ``instance/`` next to the package.
    """
    instance_path = instance_path or os.environ.get(INSTANCE_PATH_ENV) or None
    app = Flask(
        __name__.rpartition(".")[0],
        instance_path=os.path.abspath(instance_path) if instance_path else None,
        instance_relative_config=True,
    )
    load_config(app, config)
    configure_logging(app)
    derive_settings(app)
    db.init_app(app)
    # Validate every SAML2_BEARER_* setting now: a bad one fails at start-up.
    saml2_bearer.init_app(app)
    server = init_oauth(app)
    # Salesforce's grant_type=assertion, its id and instance_url, the identity URLs.
    init_legacy(app, server)
    app.register_blueprint(bp)
    app.extensions[FACTORY_CONFIG_KEY] = dict(config or {})
    register_commands(app)
    return app
