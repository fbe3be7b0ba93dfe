"""What the tests build on :mod:`tests.conftest`, defined once.

Every test module takes its constants, XML helpers, assertion checks and app
harness from here (and its fixtures from the conftest files); the attacker's
hand-signing toolbox is :mod:`tests.security.forge`.
"""

from __future__ import annotations

import contextlib
import re
import threading
from datetime import datetime
from datetime import timedelta
from datetime import timezone

from lxml import etree

from authlib_saml2_grant import SAML2_BEARER_GRANT_TYPE
from authlib_saml2_grant.testing import encode_assertion
from authlib_saml2_grant.xml import DS_NS
from authlib_saml2_grant.xml import SAML_NS

from .conftest import create_app
from .conftest import db
from .conftest import in_context
from .conftest import record_signals
from .conftest import request_token
from .conftest import unsigned_tree

#: What ends every rejection's ``error_description``: a random reference of
#: 10 base32 characters, also in the log line and the signal.
REFERENCE = re.compile(r" Reference: ([A-Z2-7]{10})\Z")


class Referenced(str):
    """An expected ``error_description``: equal to this text followed by
    ``Reference: <10 base32 characters>``, so bodies still compare with ``==``."""

    def __eq__(self, other):
        if not isinstance(other, str):
            return NotImplemented
        match = REFERENCE.search(other)
        return match is not None and other[: match.start()] == str(self)

    def __ne__(self, other):
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    __hash__ = str.__hash__

    def __repr__(self):
        return f"{str(self)!r} + ' Reference: ...'"


def assert_description(body, expected_prefix):
    """``body``'s ``error_description`` is ``expected_prefix`` and a well-formed
    reference; returns the reference."""
    description = body["error_description"]
    match = REFERENCE.search(description)
    assert match is not None, description
    assert description[: match.start()] == expected_prefix, description
    assert description.isascii() and '"' not in description and "\\" not in description
    return match.group(1)


#: The only ``error_description`` a rejected assertion gets (before its reference).
GENERIC = "The SAML assertion is invalid, expired or already used."
#: The body of every rejected assertion.
INVALID_GRANT = {"error": "invalid_grant", "error_description": Referenced(GENERIC)}
#: The descriptions of a 503 while a store is down: retry, or retry with a new assertion.
RETRY_LATER = "The service is temporarily unavailable; retry the same request later."
RETRY_WITH_NEW_ASSERTION = (
    "The service is temporarily unavailable and the assertion was used up; "
    "retry later with a new assertion."
)
#: The body of a token request while the client, user, replay or token store is down.
TEMPORARILY_UNAVAILABLE = {
    "error": "temporarily_unavailable",
    "error_description": Referenced(RETRY_LATER),
}
#: The bodies of requests refused before the assertion is verified.
MISSING_ASSERTION = {
    "error": "invalid_request",
    "error_description": "Missing 'assertion' in request.",
}
BAD_CLIENT_CREDENTIALS = {
    "error": "invalid_client",
    "error_description": "The client cannot authenticate with methods: "
    "['client_secret_basic', 'client_secret_post']",
}
GRANT_NOT_ALLOWED = {
    "error": "unauthorized_client",
    "error_description": "The client is not authorized to use "
    f"'grant_type={SAML2_BEARER_GRANT_TYPE}'",
}
INVALID_SCOPE = {
    "error": "invalid_scope",
    "error_description": "The requested scope is invalid, unknown, or malformed.",
}

SAMLP_NS = "urn:oasis:names:tc:SAML:2.0:protocol"
MD_NS = "urn:oasis:names:tc:SAML:2.0:metadata"
NS = {"saml": SAML_NS, "samlp": SAMLP_NS, "ds": DS_NS, "md": MD_NS}

HOLDER_OF_KEY = "urn:oasis:names:tc:SAML:2.0:cm:holder-of-key"
SENDER_VOUCHES = "urn:oasis:names:tc:SAML:2.0:cm:sender-vouches"

# XML-DSig algorithm and transform URIs.
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
EXC_C14N_COMMENTS = "http://www.w3.org/2001/10/xml-exc-c14n#WithComments"
XSLT = "http://www.w3.org/TR/1999/REC-xslt-19991116"
XPATH = "http://www.w3.org/TR/1999/REC-xpath-19991116"
XPATH_FILTER2 = "http://www.w3.org/2002/06/xmldsig-filter2"
BASE64_TRANSFORM = "http://www.w3.org/2000/09/xmldsig#base64"
RSA_SHA1 = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
ECDSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
HMAC_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#hmac-sha256"
HMAC_SHA1 = "http://www.w3.org/2000/09/xmldsig#hmac-sha1"
SHA1 = "http://www.w3.org/2000/09/xmldsig#sha1"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"


def ago(seconds: float) -> datetime:
    return datetime.now(timezone.utc) - timedelta(seconds=seconds)


def from_now(seconds: float) -> datetime:
    return datetime.now(timezone.utc) + timedelta(seconds=seconds)


# -- XML -----------------------------------------------------------------------------


def saml(name: str) -> str:
    return f"{{{SAML_NS}}}{name}"


def ds(name: str) -> str:
    return f"{{{DS_NS}}}{name}"


def one(tree: etree._Element, path: str) -> etree._Element:
    """The single element at ``path`` (prefixes of :data:`NS`)."""
    found = tree.xpath(path, namespaces=NS)
    assert len(found) == 1, (path, len(found))
    return found[0]


def duplicate(tree: etree._Element, path: str) -> etree._Element:
    """Put a copy of the single element at ``path`` right after it; return the copy."""
    element = one(tree, path)
    copy = etree.fromstring(etree.tostring(element))
    element.addnext(copy)
    return copy


def mint_tree(idp, **fields) -> etree._Element:
    """A validly signed assertion for this server, parsed into a tree."""
    return etree.fromstring(idp.sign(unsigned_tree(idp, **fields)))


def metadata_with_key_of(idp, other, use="signing") -> etree._Element:
    """``idp``'s metadata (EntityDescriptor) listing ``other``'s key too, for ``use``."""
    root = etree.fromstring(idp.metadata())
    key = one(etree.fromstring(other.metadata()), "md:IDPSSODescriptor/md:KeyDescriptor")
    key.set("use", use)
    one(root, "md:IDPSSODescriptor").append(key)
    return root


def entities_descriptor(*entities) -> bytes:
    """Federation metadata: an EntitiesDescriptor of EntityDescriptors (bytes or trees)."""
    root = etree.Element(f"{{{MD_NS}}}EntitiesDescriptor", nsmap={"md": MD_NS})
    for entity in entities:
        root.append(etree.fromstring(entity) if isinstance(entity, bytes) else entity)
    return etree.tostring(root)


def send(client, xml, **extra):
    """POST an assertion given as XML bytes or a tree, as it is, base64url-encoded."""
    data = xml if isinstance(xml, bytes) else etree.tostring(xml)
    return request_token(client, encode_assertion(data), **extra)


# -- what the client and the operator see ------------------------------------------------


def assert_rejected(status, body, reasons, reason):
    """The client sees the generic invalid_grant; the operator signal names ``reason``."""
    assert status == 400, body
    assert body == INVALID_GRANT, body
    assert reasons == [reason], reasons


def assert_unavailable(status, body, reasons, reason, spent=False):
    """A store is down: 503 ``temporarily_unavailable`` (retry the same request, or
    with a new assertion when it was ``spent``); the signal names ``reason``."""
    assert status == 503, body
    description = RETRY_WITH_NEW_ASSERTION if spent else RETRY_LATER
    assert body["error"] == "temporarily_unavailable", body
    assert_description(body, description)
    assert reasons == [reason], reasons


def assert_accepted(status, body, accepted, subject="alice@example.com"):
    """A bearer token, for one verified assertion about ``subject``; returns it."""
    assert status == 200, body
    assert body["token_type"] == "Bearer", body
    assert len(accepted) == 1, accepted
    assert accepted[0].subject == subject
    return accepted[0]


# -- apps configured per test ----------------------------------------------------------


class AppHarness:
    """A Flask app from ``create_app`` with its client and signal recorder."""

    def __init__(self, app, signals):
        self.app = app
        self.client = app.test_client()
        self.reasons = signals.reasons
        self.rejections = signals.rejections
        self.references = signals.references
        self.accepted = signals.accepted

    def token(self, assertion, **extra):
        return request_token(self.client, assertion, **extra)


@contextlib.contextmanager
def app_for(tmp_path, idps, grant=None, **settings):
    """An app configured with ``settings`` (on top of the test defaults), in
    context; ``grant`` registers a subclass of ``tests.conftest.Grant`` instead."""
    app = create_app(tmp_path, idps, grant=grant, **settings)
    with record_signals(app) as signals, in_context(app):
        yield AppHarness(app, signals)


# -- replay caches and outages ---------------------------------------------------------


def in_threads(count, work):
    """Call ``work(index)`` from ``count`` threads released together; return the
    results in index order. An exception in any thread fails the test."""
    barrier = threading.Barrier(count)
    results = [None] * count
    errors = []

    def run(index):
        try:
            barrier.wait(timeout=30)
            results[index] = work(index)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)
    assert not errors, errors
    return results


def redeem_concurrently(app, assertion, threads):
    """POST ``assertion`` from ``threads`` threads at once; each result is
    ``(status, body)``, or ``(exception name, None)`` if the request raised
    (e.g. a database pool timeout escaping the grant)."""

    def redeem(index):
        with app.app_context():
            try:
                return request_token(app.test_client(), assertion)
            except Exception as exc:  # reported by the caller's assertions
                return type(exc).__name__, None
            finally:
                db.session.remove()

    return in_threads(threads, redeem)


def assert_redeemed_once(results, reasons):
    """One token; every other redemption the generic invalid_grant, ``replayed``."""
    refused = len(results) - 1
    assert sorted(str(status) for status, _ in results) == ["200"] + ["400"] * refused, results
    assert [body for status, body in results if status == 400] == [INVALID_GRANT] * refused
    assert sorted(reasons) == ["replayed"] * refused, reasons


def race_add(url, table_name, keys, barrier, results):
    """Child process body: add each key to the shared cache, in lock step."""
    import sqlalchemy as sa

    from authlib_saml2_grant import SQLAlchemyReplayCache

    engine = sa.create_engine(url)
    cache = SQLAlchemyReplayCache(engine, table_name=table_name)
    expires_at = from_now(300)
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
    storage = app.extensions["test_storage"]
    original = storage.save_token

    def broken(token, request):
        raise RuntimeError("token database is down")

    storage.save_token = broken
    try:
        yield
    finally:
        storage.save_token = original
