"""Honest answers while a store is down: 503 ``temporarily_unavailable``.

When the client store, the user store, the replay store or the token store
raises, the client gets a JSON 503 with ``Retry-After``, never
``invalid_client`` or ``invalid_grant`` (its credentials and assertion are
fine), never an HTML 500; the assertion is not spent, so the same request
succeeds once the store is back, without a restart. The reason code and the
reference of the client's ``error_description`` are in the log line and the
``assertion_rejected`` signal.

Failures are injected at each step into a real Flask app on a real SQLite
file: a hook raising SQLAlchemy's ``OperationalError`` (what a dropped
connection raises), or the database file taken away under the engine. The
last test stops and restarts a real PostgreSQL (a private cluster, not the
shared one) under concurrent load against the example app under gunicorn.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import queue
import shutil
import threading
import time
from urllib.parse import urlencode

import pytest
import sqlalchemy as sa
from authlib.oauth2.rfc6749 import grants

from authlib_saml2_grant import SAML2_BEARER_GRANT_TYPE
from authlib_saml2_grant import SAML2_CLIENT_ASSERTION_TYPE
from authlib_saml2_grant import SAML2BearerClientAssertion
from authlib_saml2_grant import SQLAlchemyReplayCache

from .conftest import TOKEN_ENDPOINT
from .conftest import Client
from .conftest import Grant
from .conftest import Token
from .conftest import basic_auth
from .conftest import db
from .conftest import mint_for
from .conftest import replay_cache
from .helpers import RETRY_LATER
from .helpers import app_for
from .helpers import assert_description
from .helpers import in_threads
from .helpers import replay_rows
from .servers import example_server
from .servers import free_port
from .servers import http_request
from .servers import initialise_example
from .servers import private_postgres

RETRY_AFTER = 7


def db_down(what="server closed the connection unexpectedly"):
    """What SQLAlchemy raises when the database connection is lost."""
    return sa.exc.OperationalError("SELECT 1", {}, ConnectionError(what))


class Switch:
    """A store that is down while ``down`` is set."""

    def __init__(self):
        self.down = False

    def check(self):
        if self.down:
            raise db_down()


def post_token(h, assertion, headers=None, **extra):
    data = {"grant_type": SAML2_BEARER_GRANT_TYPE, "assertion": assertion, **extra}
    return h.client.post(
        "/oauth/token", data=data, headers=basic_auth() if headers is None else headers
    )


def assert_503(h, response, reason, caplog):
    """503 JSON temporarily_unavailable with Retry-After; the signal and the log
    line name ``reason`` and carry the description's reference."""
    assert response.status_code == 503, response.data
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["Retry-After"] == str(RETRY_AFTER)
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert body["error"] == "temporarily_unavailable", body
    reference = assert_description(body, RETRY_LATER)
    assert h.reasons[-1] == reason, h.reasons
    assert h.references[-1] == reference
    lines = [r.getMessage() for r in caplog.records if f"reference={reference}" in r.getMessage()]
    assert len(lines) == 1 and f"reason={reason}" in lines[0], lines
    return reference


@pytest.fixture
def outage_app(tmp_path, idp, caplog):
    """The test app with failure switches on its client, user and token stores."""
    switches = {"client": Switch(), "user": Switch(), "permission": Switch()}

    class OutageGrant(Grant):
        def authenticate_user(self, assertion):
            switches["user"].check()
            return super().authenticate_user(assertion)

        def has_granted_permission(self, client, user):
            switches["permission"].check()
            return True

    caplog.set_level(logging.INFO, logger="authlib_saml2_grant")
    with app_for(tmp_path, [idp], grant=OutageGrant, SAML2_BEARER_RETRY_AFTER=RETRY_AFTER) as h:
        storage = h.app.extensions["test_storage"]
        query_client, save_token = storage.query_client, storage.save_token

        def flaky_query_client(client_id):
            switches["client"].check()
            return query_client(client_id)

        storage.query_client = flaky_query_client
        h.switches = switches
        h.save_token = save_token
        yield h


@pytest.mark.parametrize(
    ("store", "reason"),
    [
        ("client", "client_lookup_error"),
        ("user", "user_lookup_error"),
        ("permission", "user_lookup_error"),
    ],
)
def test_store_down_then_back(outage_app, idp, caplog, store, reason):
    """The client store (query_client), the user store (authenticate_user) or the
    permission check down: 503, nothing spent; once it is back the same assertion
    yields its token."""
    h = outage_app
    assertion = mint_for(idp)
    h.switches[store].down = True
    assert_503(h, post_token(h, assertion), reason, caplog)
    assert replay_rows(replay_cache) == 0
    h.switches[store].down = False
    response = post_token(h, assertion)
    assert response.status_code == 200, response.data
    assert replay_rows(replay_cache) == 1


def test_token_store_down_then_back(outage_app, idp, caplog):
    """save_token fails: 503 (token_error), the replay record rolled back with
    the token's transaction; the retry gets the token, once."""
    h = outage_app
    storage = h.app.extensions["test_storage"]

    def broken(token, request):
        raise db_down()

    storage.save_token = broken
    assertion = mint_for(idp)
    assert_503(h, post_token(h, assertion), "token_error", caplog)
    assert h.rejections[-1][1]["assertion_spent"] is False
    assert replay_rows(replay_cache) == 0
    storage.save_token = h.save_token
    assert post_token(h, assertion).status_code == 200
    assert post_token(h, assertion).status_code == 400  # now it is spent


def test_token_generator_down(outage_app, idp, caplog):
    """generate_token fails (e.g. a signing service): 503, the assertion unspent."""
    h = outage_app
    server = h.app.extensions["test_server"]
    original = server._token_generators["default"]

    def broken(**kwargs):
        raise db_down("key service unreachable")

    server.register_token_generator("default", broken)
    assertion = mint_for(idp)
    try:
        assert_503(h, post_token(h, assertion), "token_error", caplog)
    finally:
        server.register_token_generator("default", original)
    assert post_token(h, assertion).status_code == 200


def test_replay_commit_fails(tmp_path, idp, caplog):
    """The replay record's commit fails after save_token (which did not commit):
    503, both rolled back, the retry succeeds."""

    class FailingCommit(SQLAlchemyReplayCache):
        failures = 1

        def commit(self):
            if self.failures:
                self.failures -= 1
                raise db_down()
            super().commit()

    cache = FailingCommit(db, table_name="saml2_bearer_replay")
    caplog.set_level(logging.INFO, logger="authlib_saml2_grant")
    with app_for(
        tmp_path, [idp], SAML2_BEARER_REPLAY_CACHE=cache, SAML2_BEARER_RETRY_AFTER=RETRY_AFTER
    ) as h:
        storage = h.app.extensions["test_storage"]

        def save_without_commit(token, request):
            db.session.add(
                Token(client_id=request.client.client_id, user_id=request.user.id, **token)
            )

        storage.save_token = save_without_commit
        assertion = mint_for(idp)
        assert_503(h, post_token(h, assertion), "token_error", caplog)
        assert replay_rows(cache) == 0
        assert post_token(h, assertion).status_code == 200
        assert replay_rows(cache) == 1


def test_replay_store_unreachable_then_back(tmp_path, idp, caplog):
    """A replay store of its own (committing at once) that is unreachable: 503
    (replay_cache_error); once it answers, the same assertion is accepted."""
    broken_url = f"sqlite:///{tmp_path / 'missing-dir' / 'replay.db'}"
    engine = sa.create_engine(broken_url)
    cache = SQLAlchemyReplayCache(engine, table_name="saml2_replay_outage")
    caplog.set_level(logging.INFO, logger="authlib_saml2_grant")
    with app_for(
        tmp_path, [idp], SAML2_BEARER_REPLAY_CACHE=cache, SAML2_BEARER_RETRY_AFTER=RETRY_AFTER
    ) as h:
        assertion = mint_for(idp)
        assert_503(h, post_token(h, assertion), "replay_cache_error", caplog)
        (tmp_path / "missing-dir").mkdir()
        cache.create_table()
        assert post_token(h, assertion).status_code == 200
        assert post_token(h, assertion).status_code == 400
    engine.dispose()


def test_database_gone_after_failed_save_is_not_a_500(tmp_path, idp, caplog):
    """The bug the issue measured: after a failed save_token the session rollback
    expires the client, and reading its ID for the log reloaded it from the dead
    database: an HTML 500. Now the ID is read once, before: a JSON 503. The
    database file is really taken away, then restored."""
    caplog.set_level(logging.INFO, logger="authlib_saml2_grant")
    with app_for(tmp_path, [idp], SAML2_BEARER_RETRY_AFTER=RETRY_AFTER) as h:
        path = tmp_path / "test.db"
        storage = h.app.extensions["test_storage"]
        save_token = storage.save_token

        def database_dies(token, request):
            db.session.rollback()  # e.g. a failed flush: every loaded object expires
            db.engine.dispose()
            shutil.move(path, tmp_path / "test.db.away")
            raise db_down()

        storage.save_token = database_dies
        assertion = mint_for(idp)
        response = post_token(h, assertion)
        assert_503(h, response, "token_error", caplog)
        assert h.rejections[-1][1]["assertion_spent"] is False
        db.session.remove()
        db.engine.dispose()
        # Still down for the next request: the client lookup now fails, honestly.
        assert_503(h, post_token(h, assertion), "client_lookup_error", caplog)
        db.session.remove()
        db.engine.dispose()
        os.remove(path)  # the empty file SQLite created
        shutil.move(tmp_path / "test.db.away", path)
        storage.save_token = save_token
        response = post_token(h, assertion)
        assert response.status_code == 200, response.data


# -- SAML client assertions (RFC 7522 section 2.2) ---------------------------------------------

METHOD = SAML2BearerClientAssertion.CLIENT_AUTH_METHOD
SERVICE = "service-1"


class ClientCredentialsGrant(grants.ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = [METHOD]


def test_client_assertion_store_down(tmp_path, idp, caplog):
    """The client lookup of a SAML client assertion fails: 503 (client_lookup_error),
    not invalid_client; the client assertion is not spent and works afterwards."""
    caplog.set_level(logging.INFO, logger="authlib_saml2_grant")
    with app_for(tmp_path, [idp], SAML2_BEARER_RETRY_AFTER=RETRY_AFTER) as h:
        server = h.app.extensions["test_server"]
        server.register_client_auth_method(METHOD, SAML2BearerClientAssertion(TOKEN_ENDPOINT))
        server.register_grant(ClientCredentialsGrant)
        service = Client(client_id=SERVICE, client_secret="")
        service.set_client_metadata(
            {"grant_types": ["client_credentials"], "token_endpoint_auth_method": METHOD}
        )
        db.session.add(service)
        db.session.commit()
        storage = h.app.extensions["test_storage"]
        query_client = storage.query_client
        switch = Switch()

        def flaky(client_id):
            switch.check()
            return query_client(client_id)

        storage.query_client = flaky
        data = {
            "grant_type": "client_credentials",
            "client_assertion_type": SAML2_CLIENT_ASSERTION_TYPE,
            "client_assertion": mint_for(idp, subject=SERVICE),
        }
        switch.down = True
        assert_503(h, h.client.post("/oauth/token", data=data), "client_lookup_error", caplog)
        switch.down = False
        response = h.client.post("/oauth/token", data=data)
        assert response.status_code == 200, response.data


# -- a real PostgreSQL stopped and restarted under load ---------------------------------------

ASSERTIONS = 48
THREADS = 8


def test_postgresql_stopped_and_restarted_under_load(tmp_path):
    """The example app under gunicorn (2 workers x 4 threads) on a private
    PostgreSQL cluster; 8 client threads redeem 48 assertions, retrying each 503
    after its Retry-After (shortened here); the cluster is stopped (fast shutdown,
    sessions killed) once a third are redeemed, and restarted 3 s later.

    No 500, no 401, no HTML, every answer JSON; every 503 has Retry-After; every
    assertion yields exactly one token (none burned: one refused during the outage
    succeeds later) and every token has its row and replay record."""
    with private_postgres() as cluster:
        port = free_port()
        credentials, minted = initialise_example(tmp_path, cluster.url, port, ASSERTIONS)
        secret = f"{credentials.client_id}:{credentials.client_secret}".encode()
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Authorization": "Basic " + base64.b64encode(secret).decode(),
        }
        log_path = tmp_path / "gunicorn.log"
        with example_server(tmp_path, cluster.url, port, log_path, workers=2, threads=4):
            results = _redeem_through_an_outage(cluster, port, headers, minted)
        log = log_path.read_text(errors="replace")
        answers, tokens = results["answers"], results["tokens"]
        statuses = sorted({status for status, _, _ in answers})
        print(f"answers by status: { {s: sum(a[0] == s for a in answers) for s in statuses} }")
        assert set(statuses) <= {200, 503}, [a for a in answers if a[0] not in (200, 503)][:5]
        assert 503 in statuses, "the outage was not observed"
        for status, answer_headers, body in answers:
            assert answer_headers.get("Content-Type") == "application/json", (status, body)
            if status == 503:
                assert answer_headers.get("Retry-After") == "5", answer_headers
                assert body["error"] == "temporarily_unavailable", body
                assert_description(body, RETRY_LATER)
        assert sorted(tokens) == sorted(minted), "an assertion never got its token"
        assert results["retried_ok"], "no assertion refused during the outage succeeded later"
        engine = sa.create_engine(cluster.url)
        try:
            with engine.connect() as conn:
                saved = set(
                    conn.execute(sa.text("SELECT access_token FROM oauth2_token")).scalars()
                )
                replay = conn.execute(sa.text("SELECT count(*) FROM saml2_bearer_replay")).scalar()
        finally:
            engine.dispose()
        assert set(tokens.values()) <= saved, "a token was sent without its database row"
        assert replay == ASSERTIONS
        assert "Exception on /oauth/token" not in log  # Flask's line for an unhandled error
        assert "Error handling request" not in log  # gunicorn's


def _redeem_through_an_outage(cluster, port, headers, minted):
    work: queue.Queue = queue.Queue()
    for assertion_id in minted:
        work.put(assertion_id)
    lock = threading.Lock()
    answers: list = []
    tokens: dict = {}
    refused_once: set = set()
    retried_ok: list = []
    outage = {"stopped": False, "restarted": False}
    deadline = time.monotonic() + 120

    def client(_index):
        while time.monotonic() < deadline:
            try:
                assertion_id = work.get(timeout=0.5)
            except queue.Empty:
                with lock:
                    if len(tokens) == len(minted):
                        return None
                continue
            body = urlencode(
                {"grant_type": SAML2_BEARER_GRANT_TYPE, "assertion": minted[assertion_id]}
            )
            try:
                status, answer_headers, raw = http_request(
                    port, "POST", "/oauth/token", body, headers
                )
            except OSError:
                work.put(assertion_id)
                continue
            try:
                decoded = json.loads(raw)
            except ValueError:
                decoded = {"not json": raw[:200].decode("latin-1")}
            with lock:
                answers.append((status, answer_headers, decoded))
                if status == 200:
                    assert assertion_id not in tokens
                    tokens[assertion_id] = decoded["access_token"]
                    if assertion_id in refused_once:
                        retried_ok.append(assertion_id)
                elif status == 503:
                    refused_once.add(assertion_id)
            if status == 503:
                time.sleep(0.2)  # Retry-After says 5 s; shortened for the test
                work.put(assertion_id)
        return None

    def operator(_index):
        while time.monotonic() < deadline:
            with lock:
                done = len(tokens)
            if done >= len(minted) // 3:
                break
            time.sleep(0.02)
        cluster.stop()
        outage["stopped"] = True
        time.sleep(3)
        cluster.start()
        outage["restarted"] = True
        return None

    in_threads(THREADS + 1, lambda i: operator(i) if i == THREADS else client(i))
    assert outage == {"stopped": True, "restarted": True}
    return {"answers": answers, "tokens": tokens, "retried_ok": retried_ok}
