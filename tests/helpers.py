"""Helpers shared by the rule, decoding, settings and replay tests."""

from __future__ import annotations

import contextlib
from datetime import datetime
from datetime import timedelta
from datetime import timezone

from lxml import etree

from authlib_saml2_grant import assertion_accepted
from authlib_saml2_grant import assertion_rejected
from authlib_saml2_grant.xml import SAML_NS

from .conftest import AS_ENTITY_ID
from .conftest import TOKEN_ENDPOINT
from .conftest import create_app
from .conftest import in_context
from .conftest import request_token

__all__ = [
    "GENERIC",
    "NS",
    "app_for",
    "assert_rejected",
    "ago",
    "from_now",
    "race_add",
    "replay_rows",
    "send",
    "token_store_down",
]

#: The only ``error_description`` a rejected assertion gets.
GENERIC = "The SAML assertion is invalid, expired or already used."
NS = {"saml": SAML_NS}


def ago(seconds: float) -> datetime:
    return datetime.now(timezone.utc) - timedelta(seconds=seconds)


def from_now(seconds: float) -> datetime:
    return datetime.now(timezone.utc) + timedelta(seconds=seconds)


def assert_rejected(status, body, reasons, reason):
    """The client sees a generic invalid_grant; operators see ``reason``."""
    assert status == 400, body
    assert body == {"error": "invalid_grant", "error_description": GENERIC}
    assert body["error_description"].isascii()
    assert reasons == [reason]


def send(client, idp, xml_or_tree, **extra):
    """Sign ``xml_or_tree`` (an unsigned tree) with ``idp`` if needed, then request a token."""
    from authlib_saml2_grant.testing import encode_assertion

    data = xml_or_tree if isinstance(xml_or_tree, bytes) else idp.sign(xml_or_tree)
    return request_token(client, encode_assertion(data), **extra)


def find(tree: etree._Element, path: str) -> etree._Element:
    found = tree.xpath(path, namespaces=NS)
    assert len(found) == 1, path
    return found[0]


class AppHarness:
    """A Flask app from ``create_app`` with its client and signal recorders."""

    def __init__(self, app):
        self.app = app
        self.client = app.test_client()
        self.reasons: list[str] = []
        self.accepted: list = []

    def _rejected(self, sender, reason, **kwargs):
        self.reasons.append(reason)

    def _accepted(self, sender, assertion, **kwargs):
        self.accepted.append(assertion)

    def token(self, assertion, **extra):
        return request_token(self.client, assertion, **extra)


@contextlib.contextmanager
def app_for(tmp_path, idps, **settings):
    """An app configured with ``settings`` (on top of the test defaults), in context."""
    app = create_app(tmp_path, idps, **settings)
    harness = AppHarness(app)
    assertion_rejected.connect(harness._rejected, app)
    assertion_accepted.connect(harness._accepted, app)
    try:
        with in_context(app):
            yield harness
    finally:
        assertion_rejected.disconnect(harness._rejected, app)
        assertion_accepted.disconnect(harness._accepted, app)


def mint_for(idp, **fields):
    """Mint an assertion addressed to the test server."""
    fields.setdefault("audience", AS_ENTITY_ID)
    fields.setdefault("recipient", TOKEN_ENDPOINT)
    return idp.mint(**fields)


def race_add(url, table_name, keys, barrier, results):
    """Child process body: add each key to the shared cache, in lock step."""
    import sqlalchemy as sa

    from authlib_saml2_grant import SQLAlchemyReplayCache

    engine = sa.create_engine(url)
    cache = SQLAlchemyReplayCache(engine, table_name=table_name)
    expires_at = datetime.now(timezone.utc) + timedelta(minutes=5)
    outcome = []
    for key in keys:
        barrier.wait(timeout=30)
        outcome.append(cache.add(key, expires_at))
    engine.dispose()
    results.put(outcome)


def replay_rows(cache) -> int:
    """Committed rows of a ``SQLAlchemyReplayCache``, read through a connection of its own."""
    import sqlalchemy as sa

    with cache.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(cache.table)).scalar_one()


@contextlib.contextmanager
def token_store_down(app):
    """Make the app's ``save_token`` raise, as a token database outage would."""
    server = app.extensions["test_server"]
    original = server._save_token

    def broken(token, request):
        raise RuntimeError("token database is down")

    server._save_token = broken
    try:
        yield
    finally:
        server._save_token = original
