"""IdP metadata URLs (``{"metadata_url": ...}``): fetched from a real local HTTP
server that serves, rotates, breaks and expires signed metadata; refreshed in
the background; the last good copy kept in memory and in the backing file;
``validUntil`` honoured for URL and file metadata alike.

Keys and certificates are generated at test time. Schedules are checked with
an injected clock, never with sleeps; where the background thread itself is
under test, the test polls for the outcome with a generous deadline.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import threading
import time
import uuid
from datetime import datetime
from datetime import timedelta
from datetime import timezone
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer

import pytest
from lxml import etree

from authlib_saml2_grant import ConfigurationError
from authlib_saml2_grant import get_settings
from authlib_saml2_grant.metadata import REFRESHER
from authlib_saml2_grant.metadata import HttpFetcher
from authlib_saml2_grant.metadata import MetadataError
from authlib_saml2_grant.metadata import MetadataSource
from authlib_saml2_grant.metadata import RefreshPolicy
from authlib_saml2_grant.metadata import parse_duration
from authlib_saml2_grant.settings import load_settings
from authlib_saml2_grant.signature import SignaturePolicy
from authlib_saml2_grant.signature import sign_enveloped
from authlib_saml2_grant.testing import TestIdentityProvider
from authlib_saml2_grant.testing import format_instant
from authlib_saml2_grant.xml import DS_NS
from authlib_saml2_grant.xml import MD_NS

from .conftest import AS_ENTITY_ID
from .conftest import mint_for
from .helpers import ECDSA_SHA256
from .helpers import INVALID_GRANT
from .helpers import RSA_SHA256
from .helpers import app_for
from .helpers import metadata_with_key_of

ENTITY_ID = "https://rolling-idp.example.com"


# -- a real metadata server ------------------------------------------------------------


class MetadataServer:
    """``http.server`` on 127.0.0.1 (port 0) in a thread, serving one document
    at ``/metadata.xml``; the test changes what it answers between requests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.body = b""
        self.status = 200
        self.delay = 0.0
        self.drip = False
        self.requests = 0
        self.redirect_to: str | None = None
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                with server._lock:
                    server.requests += 1
                    body, status, delay, drip = (
                        server.body,
                        server.status,
                        server.delay,
                        server.drip,
                    )
                    redirect = server.redirect_to
                if self.path == "/metadata.xml" and redirect is not None:
                    self.send_response(302)
                    self.send_header("Location", redirect)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if self.path != ("/moved.xml" if redirect else "/metadata.xml"):
                    self.send_error(404)
                    return
                time.sleep(delay)
                self.send_response(status)
                self.send_header("Content-Type", "application/samlmetadata+xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not drip:
                    self.wfile.write(body)
                    return
                with contextlib.suppress(OSError):  # the client gives up: broken pipe
                    for index in range(len(body)):  # one byte at a time, slowly
                        self.wfile.write(body[index : index + 1])
                        self.wfile.flush()
                        time.sleep(0.2)

            def log_message(self, format, *args):  # quiet
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/metadata.xml"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def serve(self, body: bytes) -> None:
        """Answer 200 with ``body`` from now on."""
        with self._lock:
            self.body, self.status, self.delay, self.drip = body, 200, 0.0, False

    def fail(self, status: int = 500, body: bytes = b"Internal Server Error") -> None:
        with self._lock:
            self.body, self.status = body, status

    def close(self) -> None:
        """Stop answering: connections are refused from now on."""
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    running = MetadataServer()
    try:
        yield running
    finally:
        with contextlib.suppress(OSError):
            running.close()


@pytest.fixture(scope="module")
def signer():
    """The federation operator's key that signs the metadata documents."""
    return TestIdentityProvider("https://federation.example.org", key_type="ec")


@pytest.fixture(scope="module")
def old_key():
    return TestIdentityProvider(ENTITY_ID, key_type="ec")


@pytest.fixture(scope="module")
def new_key():
    return TestIdentityProvider(ENTITY_ID, key_type="ec")


def metadata(
    *entities,
    signer=None,
    valid_until: datetime | None = None,
    cache_duration: str | None = None,
) -> bytes:
    """An EntitiesDescriptor of the IdPs' EntityDescriptors (TestIdentityProviders or
    trees), signed over its root by ``signer`` when given."""
    root = etree.Element(f"{{{MD_NS}}}EntitiesDescriptor", nsmap={"md": MD_NS, "ds": DS_NS})
    root.set("ID", f"_{uuid.uuid4().hex}")
    if valid_until is not None:
        root.set("validUntil", format_instant(valid_until))
    if cache_duration is not None:
        root.set("cacheDuration", cache_duration)
    if signer is not None:
        etree.SubElement(root, f"{{{DS_NS}}}Signature").set("Id", "placeholder")
    for entity in entities:
        root.append(etree.fromstring(entity.metadata()) if hasattr(entity, "metadata") else entity)
    if signer is not None:
        method = ECDSA_SHA256 if signer.key_type == "ec" else RSA_SHA256
        root = sign_enveloped(root, signer.key, signer.certificate, signature_algorithm=method)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def url_entry(server, signer=None, **extra):
    """The SAML2_BEARER_IDENTITY_PROVIDERS entry of ``server``'s document."""
    entry = {"metadata_url": server.url, "entity_id": ENTITY_ID, **extra}
    if signer is not None:
        entry["metadata_certificate"] = signer.certificate_pem
    return entry


@contextlib.contextmanager
def metadata_app(tmp_path, server, signer=None, entries=None, **settings):
    """A real app (the test grant, SQLite) trusting ``server``'s metadata."""
    settings.setdefault("SAML2_BEARER_METADATA_CACHE_DIR", str(tmp_path / "metadata-cache"))
    settings.setdefault("SAML2_BEARER_METADATA_TIMEOUT", 2)
    entries = entries if entries is not None else [url_entry(server, signer)]
    tmp_path.mkdir(parents=True, exist_ok=True)
    with app_for(tmp_path, [], SAML2_BEARER_IDENTITY_PROVIDERS=entries, **settings) as harness:
        yield harness


def source_of(harness) -> MetadataSource:
    return get_settings(harness.app).verifier.trust.sources[0]


def accepted(harness, idp) -> bool:
    """Whether a fresh assertion signed by ``idp`` gets a token (asserted either way)."""
    before = len(harness.accepted)
    status, body = harness.token(mint_for(idp))
    if status == 200:
        assert len(harness.accepted) == before + 1
        return True
    assert (status, body) == (400, INVALID_GRANT), body
    return False


def last_reason(harness) -> str:
    return harness.reasons[-1]


# -- key rollover ------------------------------------------------------------------------


def test_key_rollover_through_the_grant_endpoint(tmp_path, server, signer, old_key, new_key):
    """The IdP publishes a new signing key: after the next refresh it is trusted
    and the removed one is refused, without a restart; during the overlap (both
    keys published) both are trusted."""
    server.serve(metadata(old_key, signer=signer))
    with metadata_app(tmp_path, server, signer) as harness:
        assert accepted(harness, old_key)
        assert not accepted(harness, new_key)
        assert last_reason(harness) == "signature_invalid"

        server.serve(metadata(metadata_with_key_of(old_key, new_key), signer=signer))
        assert source_of(harness).refresh()
        assert accepted(harness, old_key) and accepted(harness, new_key)

        server.serve(metadata(new_key, signer=signer))
        assert source_of(harness).refresh()
        assert accepted(harness, new_key)
        assert not accepted(harness, old_key)
        assert last_reason(harness) == "signature_invalid"


def test_background_thread_refreshes_without_any_call(tmp_path, server, signer, old_key, new_key):
    """With a one-second refresh interval the process's refresher thread alone
    brings in the rotated key (the test only polls the token endpoint)."""
    server.serve(metadata(old_key, signer=signer))
    settings = {"SAML2_BEARER_METADATA_MIN_REFRESH": 1, "SAML2_BEARER_METADATA_MAX_REFRESH": 1}
    with metadata_app(tmp_path, server, signer, **settings) as harness:
        assert accepted(harness, old_key)
        server.serve(metadata(new_key, signer=signer))
        deadline = time.monotonic() + 20
        while not accepted(harness, new_key):
            assert time.monotonic() < deadline, "the refresher never fetched the new key"
            time.sleep(0.2)
        assert not accepted(harness, old_key)
        assert REFRESHER.thread is not None and REFRESHER.thread.is_alive()


def _child_waits_for_rollover(trust, fingerprint, results):
    """In a forked child: the parent's refresher thread did not survive the fork;
    the first lookup starts the child's own, which fetches the new key."""
    results.put(("thread after fork", REFRESHER.thread is None))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        provider = trust.get(ENTITY_ID)
        if provider is not None and fingerprint in provider.fingerprints:
            results.put(("rolled over", True))
            return
        time.sleep(0.2)
    results.put(("rolled over", False))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_forked_worker_starts_its_own_refresher(tmp_path, server, signer, old_key, new_key):
    """gunicorn forks workers after creating the app: a worker gets no refresher
    thread from its parent, starts one on its first lookup, and follows a key
    rollover on its own."""
    server.serve(metadata(old_key, signer=signer))
    settings = {"SAML2_BEARER_METADATA_MIN_REFRESH": 1, "SAML2_BEARER_METADATA_MAX_REFRESH": 1}
    with metadata_app(tmp_path, server, signer, **settings) as harness:
        trust = get_settings(harness.app).verifier.trust
        assert REFRESHER.thread is not None
        server.serve(metadata(new_key, signer=signer))
        context = multiprocessing.get_context("fork")
        results = context.Queue()
        child = context.Process(
            target=_child_waits_for_rollover,
            args=(trust, new_key.identity_provider.fingerprints[0], results),
        )
        child.start()
        child.join(timeout=60)
        assert child.exitcode == 0
        assert dict([results.get(timeout=5), results.get(timeout=5)]) == {
            "thread after fork": True,
            "rolled over": True,
        }


# -- outages -----------------------------------------------------------------------------


def test_outage_keeps_the_last_good_copy(tmp_path, server, signer, old_key, caplog):
    """500, a timeout, a body that is not XML, a body cut by the size limit, a
    server dripping bytes past the deadline, and connection refused: each
    refresh fails, logs why, backs off, and the last good keys stay trusted."""
    server.serve(good := metadata(old_key, signer=signer))
    settings = {"SAML2_BEARER_METADATA_TIMEOUT": 1, "SAML2_BEARER_METADATA_MAX_SIZE": 20_000}
    with metadata_app(tmp_path, server, signer, **settings) as harness:
        source = source_of(harness)
        outages = [
            ("HTTP status 500", lambda: server.fail(500)),
            ("TimeoutError", lambda: setattr(server, "delay", 2.5)),
            ("not usable XML", lambda: server.serve(b"<html><body>maintenance")),
            ("limit", lambda: server.serve(good + b" " * 30_000)),
            ("took more than", lambda: (server.serve(good), setattr(server, "drip", True))),
        ]
        with caplog.at_level(logging.WARNING, logger="authlib_saml2_grant.metadata"):
            for number, (error, outage) in enumerate(outages, start=1):
                outage()
                assert not source.refresh()
                assert source.failures == number
                assert error in source.last_error, source.last_error
                assert accepted(harness, old_key)
            server.close()
            assert not source.refresh()
            assert "cannot fetch" in source.last_error
        assert accepted(harness, old_key)
        assert source.snapshot is not None and source.snapshot.origin == "network"
        warnings = [
            r
            for r in caplog.records
            if server.url in r.getMessage() and "last good copy stays in force" in r.getMessage()
        ]
        assert len(warnings) == 6 and all(r.levelname == "WARNING" for r in warnings)


def test_restart_during_an_outage_uses_the_backing_file(tmp_path, server, signer, old_key, caplog):
    """The backing file written by the last good fetch (atomically, the exact
    bytes) lets an app started while the IdP is down trust its keys; the copy
    is verified again when read."""
    server.serve(document := metadata(old_key, signer=signer))
    with metadata_app(tmp_path, server, signer) as harness:
        backing_file = source_of(harness).cache_path
    assert backing_file.startswith(str(tmp_path / "metadata-cache"))
    with open(backing_file, "rb") as handle:
        assert handle.read() == document
    assert not [name for name in os.listdir(tmp_path / "metadata-cache") if name.startswith(".")]
    server.close()
    with caplog.at_level(logging.WARNING, logger="authlib_saml2_grant.metadata"):
        with metadata_app(tmp_path / "restarted", server, signer, **cache_of(tmp_path)) as harness:
            source = source_of(harness)
            assert source.snapshot is not None and source.snapshot.origin == "file"
            assert source.failures == 1
            assert accepted(harness, old_key)
    assert any("using the copy saved at" in record.getMessage() for record in caplog.records)


def cache_of(tmp_path):
    return {"SAML2_BEARER_METADATA_CACHE_DIR": str(tmp_path / "metadata-cache")}


def test_tampered_backing_file_is_refused(tmp_path, server, signer, old_key, new_key, caplog):
    """The backing file is not trusted blindly: a copy whose signature does not
    verify (someone swapped the key in it) is refused at start-up."""
    server.serve(metadata(old_key, signer=signer))
    with metadata_app(tmp_path, server, signer) as harness:
        backing_file = source_of(harness).cache_path
    with open(backing_file, "rb") as handle:
        data = handle.read()
    old_b64 = etree.fromstring(old_key.metadata()).findtext(f".//{{{DS_NS}}}X509Certificate")
    new_b64 = etree.fromstring(new_key.metadata()).findtext(f".//{{{DS_NS}}}X509Certificate")
    with open(backing_file, "wb") as handle:
        handle.write(data.replace(old_b64.encode(), new_b64.encode()))
    server.close()
    with caplog.at_level(logging.ERROR, logger="authlib_saml2_grant.metadata"):
        with metadata_app(tmp_path / "restarted", server, signer, **cache_of(tmp_path)) as harness:
            assert source_of(harness).snapshot is None
            assert not accepted(harness, new_key)
            assert last_reason(harness) == "issuer_unknown"
    assert any(
        "backing file" in r.getMessage() and "refused" in r.getMessage() for r in caplog.records
    )


def test_no_network_and_no_copy_starts_with_the_idp_untrusted(
    tmp_path, server, signer, old_key, caplog
):
    """Neither the IdP nor a backing file: the app still starts (one IdP down does
    not take the server down), logs an ERROR, refuses that IdP's assertions
    (issuer_unknown), and trusts it once a fetch succeeds."""
    server.fail(503)
    with caplog.at_level(logging.ERROR, logger="authlib_saml2_grant.metadata"):
        with metadata_app(tmp_path, server, signer) as harness:
            assert any("its IdP is untrusted" in r.getMessage() for r in caplog.records)
            assert not accepted(harness, old_key)
            assert last_reason(harness) == "issuer_unknown"
            server.serve(metadata(old_key, signer=signer))
            assert source_of(harness).refresh()
            assert accepted(harness, old_key)


# -- signed metadata ---------------------------------------------------------------------


def test_wrongly_signed_or_unsigned_metadata_is_refused(tmp_path, server, signer, old_key, new_key):
    """With a metadata_certificate, a document signed by another key, an unsigned
    one, and a signed EntityDescriptor wrapped in an unsigned aggregate with an
    attacker's entity are refused; the last good keys stay, the new ones are
    never trusted."""
    server.serve(metadata(old_key, signer=signer))
    attacker = TestIdentityProvider("https://attacker.example", key_type="ec")
    signed_entity = etree.fromstring(metadata(old_key, signer=signer))
    wrapped = metadata(new_key)  # unsigned aggregate ...
    wrapper = etree.fromstring(wrapped)
    wrapper.append(signed_entity)  # ... around the genuine signed document
    with metadata_app(tmp_path, server, signer) as harness:
        source = source_of(harness)
        for document, reason in (
            (metadata(new_key, signer=attacker), "signature_invalid"),
            (metadata(new_key), "signature_missing"),
            (etree.tostring(wrapper), "signature_missing"),
        ):
            server.serve(document)
            assert not source.refresh()
            assert f"signature refused ({reason})" in source.last_error
            assert accepted(harness, old_key)
            assert not accepted(harness, new_key)


def test_signature_must_cover_the_root(tmp_path, server, signer, old_key, new_key):
    """A signature that references another element than the root (here: the
    signed document hidden as a child, the root's own Reference pointing at
    it) is refused: values are read only from the signed root."""
    genuine = etree.fromstring(metadata(old_key, signer=signer))
    forged = etree.fromstring(metadata(new_key))
    signature = genuine.find(f"{{{DS_NS}}}Signature")
    forged.insert(0, signature)  # the root carries a Signature that covers another ID
    forged.append(genuine)
    server.serve(metadata(old_key, signer=signer))
    with metadata_app(tmp_path, server, signer) as harness:
        server.serve(etree.tostring(forged))
        assert not source_of(harness).refresh()
        assert "signature refused" in source_of(harness).last_error
        assert not accepted(harness, new_key)


def test_signed_metadata_file_is_verified(tmp_path, signer, old_key, new_key):
    """A ``metadata`` file with a ``metadata_certificate`` is verified at start-up:
    its keys are trusted when the signature holds, and start-up fails otherwise."""
    path = tmp_path / "federation.xml"
    path.write_bytes(metadata(old_key, signer=signer))
    entry = {"metadata": str(path), "metadata_certificate": signer.certificate_pem}
    with app_for(tmp_path, [], SAML2_BEARER_IDENTITY_PROVIDERS=[entry]) as harness:
        assert accepted(harness, old_key)
    path.write_bytes(metadata(old_key, signer=new_key))
    with pytest.raises(ConfigurationError, match=r"IDENTITY_PROVIDERS\[0\].*signature refused"):
        load_settings({"SAML2_BEARER_AUDIENCES": [AS_ENTITY_ID], **_providers([entry])})


def _providers(entries):
    return {"SAML2_BEARER_IDENTITY_PROVIDERS": entries}


# -- validUntil --------------------------------------------------------------------------


def test_expired_metadata_file_refuses_with_metadata_expired(tmp_path, old_key, caplog):
    """A metadata file whose validUntil has passed: the app starts with an ERROR
    in the log, and the IdP's assertions are refused as metadata_expired."""
    path = tmp_path / "idp.xml"
    path.write_bytes(metadata(old_key, valid_until=datetime.now(timezone.utc) - timedelta(1)))
    with caplog.at_level(logging.ERROR, logger="authlib_saml2_grant.metadata"):
        entries = [{"metadata": str(path)}]
        with app_for(tmp_path, [], SAML2_BEARER_IDENTITY_PROVIDERS=entries) as harness:
            assert not accepted(harness, old_key)
            assert harness.rejections[-1][0] == "metadata_expired"
            assert harness.rejections[-1][1]["source"] == str(path)
    assert any("expired at" in record.getMessage() for record in caplog.records)


def test_url_metadata_expires_while_the_idp_is_down(tmp_path, server, signer, old_key):
    """The last good copy is valid for a few seconds more and every refresh
    fails: once its validUntil passes the IdP's assertions are refused as
    metadata_expired; a fresh document brings them back."""
    soon = datetime.now(timezone.utc) + timedelta(seconds=3)
    server.serve(metadata(old_key, signer=signer, valid_until=soon))
    with metadata_app(tmp_path, server, signer) as harness:
        assert accepted(harness, old_key)
        server.fail(500)
        assert not source_of(harness).refresh()
        deadline = time.monotonic() + 15
        while accepted(harness, old_key):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert last_reason(harness) == "metadata_expired"
        later = datetime.now(timezone.utc) + timedelta(days=7)
        server.serve(metadata(old_key, signer=signer, valid_until=later))
        assert source_of(harness).refresh()
        assert accepted(harness, old_key)


def test_expired_document_is_refused_and_the_last_good_copy_kept(
    tmp_path, server, signer, old_key, new_key
):
    """A fetched document whose validUntil already passed is refused (it would
    only narrow trust to nothing, or replay an old key set)."""
    server.serve(metadata(old_key, signer=signer))
    with metadata_app(tmp_path, server, signer) as harness:
        past = datetime.now(timezone.utc) - timedelta(hours=1)
        server.serve(metadata(new_key, signer=signer, valid_until=past))
        assert not source_of(harness).refresh()
        assert "expired" in source_of(harness).last_error
        assert accepted(harness, old_key)
        assert not accepted(harness, new_key)


def test_backing_file_past_valid_until_means_metadata_expired(tmp_path, server, signer, old_key):
    """Restarted during a long outage, with a backing file that has expired since:
    the IdP is known but refused as metadata_expired (not issuer_unknown), so
    the log says what to fix."""
    soon = datetime.now(timezone.utc) + timedelta(seconds=2)
    server.serve(metadata(old_key, signer=signer, valid_until=soon))
    with metadata_app(tmp_path, server, signer):
        pass
    server.close()
    time.sleep(max(0.0, (soon - datetime.now(timezone.utc)).total_seconds()) + 0.1)
    with metadata_app(tmp_path / "restarted", server, signer, **cache_of(tmp_path)) as harness:
        assert source_of(harness).snapshot.origin == "file"
        assert not accepted(harness, old_key)
        assert last_reason(harness) == "metadata_expired"


# -- schedule and back-off (injected clock) ------------------------------------------------


def test_refresh_schedule_and_back_off(server, signer, old_key):
    """After a success the next fetch is due after cacheDuration, or three
    quarters of the time left to validUntil, clamped to the minimum and maximum
    intervals; after failures the wait doubles from RETRY_MIN up to RETRY_MAX and
    resets with the next success."""
    policy = RefreshPolicy(min_interval=60, max_interval=3600, retry_min=10, retry_max=80)
    t0 = datetime(2030, 1, 1, tzinfo=timezone.utc)
    source = MetadataSource(
        server.url,
        signature_policy=SignaturePolicy(),
        refresh=policy,
        signer=signer.certificate,
        entity_id=ENTITY_ID,
        clock=lambda: t0,
    )
    for cache_duration, valid_until, expected in (
        ("PT20M", None, timedelta(minutes=20)),
        ("PT5S", None, timedelta(seconds=60)),  # the minimum
        ("P2D", None, timedelta(seconds=3600)),  # the maximum
        (None, None, timedelta(seconds=3600)),  # nothing said: the maximum
        ("PT50M", t0 + timedelta(minutes=40), timedelta(minutes=30)),  # 3/4 of 40 min
    ):
        server.serve(
            metadata(old_key, signer=signer, cache_duration=cache_duration, valid_until=valid_until)
        )
        assert source.refresh(now=t0)
        assert source.next_refresh - t0 == expected, cache_duration
    server.fail(502)
    waits = []
    for attempt in range(6):
        now = t0 + timedelta(hours=attempt)
        assert not source.refresh(now=now)
        waits.append((source.next_refresh - now).total_seconds())
    assert waits == [10, 20, 40, 80, 80, 80]
    server.serve(metadata(old_key, signer=signer, cache_duration="PT30M"))
    assert source.refresh(now=t0)
    assert (source.failures, source.next_refresh - t0) == (0, timedelta(minutes=30))


def test_parse_duration():
    """xs:duration values as metadata carries them; malformed, zero and negative
    ones are ignored (the maximum interval then applies)."""
    assert parse_duration("PT6H") == timedelta(hours=6)
    assert parse_duration("P1DT30M") == timedelta(days=1, minutes=30)
    assert parse_duration("P0Y0M0DT0H10M0.500S") == timedelta(minutes=10, seconds=0.5)
    assert parse_duration("P1W") == timedelta(days=7)
    for bad in ("", "P", "PT", "P1DT", "-PT1H", "PT0S", "6 hours", "PT1H junk"):
        assert parse_duration(bad) is None, bad


# -- the HTTP client -----------------------------------------------------------------------


def test_fetcher_follows_a_redirect_and_refuses_404(server, signer, old_key):
    """A 404 is an error naming the status; a loopback redirect is followed."""
    document = metadata(old_key, signer=signer)
    server.serve(document)
    fetch = HttpFetcher(timeout=2, max_size=1 << 20)
    assert fetch(server.url) == document
    with pytest.raises(MetadataError, match="HTTP status 404"):
        fetch(server.url.replace("metadata.xml", "other.xml"))
    server.redirect_to = f"http://127.0.0.1:{server.port}/moved.xml"
    assert fetch(server.url) == document  # 302 to /moved.xml, then 200
    assert server.requests == 4


# -- configuration ---------------------------------------------------------------------------


def test_entry_validation(tmp_path, server, signer, idp):
    """Entries are checked at start-up, naming the bad key."""
    base = {"SAML2_BEARER_AUDIENCES": [AS_ENTITY_ID]}
    for entry, message in (
        ({"metadata_url": "http://idp.example.com/md.xml"}, "plain http"),
        ({"metadata_url": "ftp://idp.example.com/md.xml"}, "http\\(s\\) URL"),
        ({"metadata_url": server.url, "certificates": ["x"]}, "unknown keys"),
        ({"metadata_url": server.url, "client_ids": "client-1"}, "client_ids"),
        ({"metadata_url": server.url, "metadata_certificate": "junk"}, "certificate"),
        ({"metadata_url": server.url, "entity_id": ""}, "entity_id"),
        (
            {"certificates": [idp.certificate_pem], "entity_id": "x", "metadata_certificate": "y"},
            "needs 'metadata' or 'metadata_url'",
        ),
    ):
        with pytest.raises(ConfigurationError, match=r"IDENTITY_PROVIDERS\[0\]: .*" + message):
            load_settings({**base, **_providers([entry])})
    twice = [idp.settings_entry(), {"metadata_url": server.url, "entity_id": idp.entity_id}]
    with pytest.raises(ConfigurationError, match="configured twice"):
        load_settings({**base, **_providers(twice)})
    for key, value in (
        ("SAML2_BEARER_METADATA_MIN_REFRESH", 0),
        ("SAML2_BEARER_METADATA_TIMEOUT", "10"),
        ("SAML2_BEARER_METADATA_MAX_SIZE", 10),
    ):
        with pytest.raises(ConfigurationError, match=key):
            load_settings({**base, key: value})
    with pytest.raises(ConfigurationError, match="MIN_REFRESH must not exceed"):
        load_settings(
            {
                **base,
                "SAML2_BEARER_METADATA_MIN_REFRESH": 7200,
                "SAML2_BEARER_METADATA_MAX_REFRESH": 3600,
            }
        )


def test_signed_http_and_default_backing_file(tmp_path, server, signer, old_key):
    """Plain http is fine for a signed document; the backing file defaults to the
    instance folder; one IdP of an aggregate is picked by entity_id, with the
    entry's client_ids."""
    other = TestIdentityProvider("https://someone-else.example", key_type="ec")
    server.serve(metadata(other, old_key, signer=signer))
    entry = url_entry(server, signer, client_ids=["client-1"])
    settings = load_settings(
        {"SAML2_BEARER_AUDIENCES": [AS_ENTITY_ID], **_providers([entry])},
        instance_path=str(tmp_path / "instance"),
    )
    trust = settings.verifier.trust
    source = trust.sources[0]
    assert source.cache_path.startswith(str(tmp_path / "instance" / "saml2-bearer-metadata"))
    assert os.path.isfile(source.cache_path)
    assert [p.entity_id for p in trust] == [ENTITY_ID]
    assert trust.get(ENTITY_ID).client_ids == frozenset({"client-1"})
    assert trust.get(ENTITY_ID).source == server.url
    assert trust.get(other.entity_id) is None
    server.serve(metadata(other, signer=signer))
    assert not source.refresh()
    assert "names no IdP" in source.last_error
    assert trust.get(ENTITY_ID) is not None
