"""Fixtures for the attack suite, on top of :mod:`tests.conftest`."""

from __future__ import annotations

import pytest

from authlib_saml2_grant import assertion_rejected

from ..conftest import create_app
from ..conftest import db


@pytest.fixture
def rejections(app):
    """Every rejection as ``(reason, details)``: proves which check fired."""
    seen = []

    def record(sender, reason, details=None, **kwargs):
        seen.append((reason, dict(details or {})))

    assertion_rejected.connect(record, app)
    yield seen
    assertion_rejected.disconnect(record, app)


@pytest.fixture
def trio_app(tmp_path, idp, ec_idp, other_idp):
    """An app that trusts three IdPs, for cross-IdP key confusion."""
    app = create_app(tmp_path, [idp, ec_idp, other_idp])
    ctx = app.app_context()
    ctx.push()
    yield app
    db.session.remove()
    ctx.pop()


@pytest.fixture
def race_app(tmp_path, idp, ec_idp):
    """The test app on its SQLite file, with Flask-SQLAlchemy's default pool
    (5 + 10): 16 simultaneous requests exceed it, and must still not starve."""
    app = create_app(tmp_path, [idp, ec_idp])
    ctx = app.app_context()
    ctx.push()
    yield app
    db.session.remove()
    ctx.pop()
