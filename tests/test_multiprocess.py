"""One token per assertion across worker processes, :rfc:`7522#section-3` item 6.

The example app, set up as the README says (``flask --app example_app init``,
here called in-process), runs under a real gunicorn with four sync workers on
127.0.0.1, its replay store shared by the workers: the SQL table on the real
PostgreSQL (``SAML2_TEST_POSTGRES_URL``), or Redis (``SAML2_TEST_REDIS_URL``,
selected with ``EXAMPLE_APP_REPLAY_CACHE=redis://...``, which sets
``SAML2_BEARER_REPLAY_CACHE``). 128 threads released together post 8 assertions, 16 times
each, over real HTTP. Each assertion yields exactly one token, every other
answer is ``invalid_grant`` (the log says ``reason=replayed`` for each), and
every issued token has its durable records: the token row and the replay
record. Without the store's URL a test is skipped (failed with
``SAML2_TEST_REQUIRE_*=1``).
"""

from __future__ import annotations

import base64
import contextlib
import json
import uuid
from pathlib import Path
from urllib.parse import urlencode

import sqlalchemy as sa

from authlib_saml2_grant import SAML2_BEARER_GRANT_TYPE
from authlib_saml2_grant.replay import replay_key
from authlib_saml2_grant.replay_redis import DEFAULT_KEY_PREFIX

from .conftest import POSTGRES_URL
from .conftest import postgres_url
from .conftest import redis_server_url
from .helpers import in_threads
from .servers import example_server
from .servers import free_port
from .servers import http_request
from .servers import initialise_example

WORKERS = 4
ASSERTIONS = 8
POSTS_EACH = 16


@contextlib.contextmanager
def postgres_schema(url):
    """A fresh schema on the real PostgreSQL, dropped afterwards: the example
    app's tables never meet the other tests' tables of the same names."""
    schema = f"mp_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in url else "?"
    try:
        yield f"{url}{separator}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def redeem_all(port, credentials, minted):
    """Every assertion posted ``POSTS_EACH`` times, all requests released together."""
    secret = f"{credentials.client_id}:{credentials.client_secret}".encode()
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "Authorization": "Basic " + base64.b64encode(secret).decode(),
    }
    ids = list(minted)
    bodies = [
        urlencode({"grant_type": SAML2_BEARER_GRANT_TYPE, "assertion": minted[i]}) for i in ids
    ]

    def post(index):
        status, _, body = http_request(
            port, "POST", "/oauth/token", bodies[index % len(ids)], headers
        )
        return ids[index % len(ids)], status, json.loads(body)

    return in_threads(len(ids) * POSTS_EACH, post)


def check_one_token_each(results, log_path):
    """Per assertion one 200 and ``POSTS_EACH - 1`` ``invalid_grant``; the issued tokens."""
    tokens = {}
    for assertion_id, status, body in results:
        if status == 200:
            assert assertion_id not in tokens, f"two tokens for {assertion_id}"
            tokens[assertion_id] = body["access_token"]
        else:
            assert (status, body["error"]) == (400, "invalid_grant"), body
    assert len(tokens) == ASSERTIONS, tokens
    refused = ASSERTIONS * (POSTS_EACH - 1)
    log = Path(log_path).read_text(errors="replace")
    assert log.count("reason=replayed") == refused, log[-4000:]
    assert "reason=replay_cache_error" not in log
    return tokens


def token_rows(database_url, tokens) -> int:
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            query = sa.text("SELECT count(*) FROM oauth2_token WHERE access_token = :token")
            return sum(conn.execute(query, {"token": t}).scalar_one() for t in tokens.values())
    finally:
        engine.dispose()


def test_postgresql_replay_table_across_workers(tmp_path, no_example_env):
    """The example app's own replay store: ``SQLAlchemyReplayCache`` on PostgreSQL."""
    from example_app.idp import DEMO_IDP_ENTITY_ID

    port = free_port()
    log_path = tmp_path / "gunicorn.log"
    with postgres_schema(postgres_url()) as database_url:
        credentials, minted = initialise_example(tmp_path, database_url, port, ASSERTIONS)
        with example_server(tmp_path, database_url, port, log_path, workers=WORKERS):
            results = redeem_all(port, credentials, minted)
        tokens = check_one_token_each(results, log_path)
        assert token_rows(database_url, tokens) == ASSERTIONS
        engine = sa.create_engine(database_url)
        with engine.connect() as conn:
            keys = set(conn.execute(sa.text("SELECT key FROM saml2_bearer_replay")).scalars())
        engine.dispose()
        assert keys == {replay_key(DEMO_IDP_ENTITY_ID, i) for i in minted}


def test_redis_replay_store_across_workers(tmp_path, no_example_env):
    """``EXAMPLE_APP_REPLAY_CACHE=redis://...`` (``SAML2_BEARER_REPLAY_CACHE``); tokens
    on PostgreSQL when it is configured, else on a SQLite file."""
    import redis

    from example_app.idp import DEMO_IDP_ENTITY_ID

    url = redis_server_url()
    port = free_port()
    log_path = tmp_path / "gunicorn.log"
    raw = redis.Redis.from_url(url)
    with contextlib.ExitStack() as stack:
        if POSTGRES_URL:
            database_url = stack.enter_context(postgres_schema(POSTGRES_URL))
        else:
            database_url = f"sqlite:///{tmp_path / 'tokens.db'}"
        credentials, minted = initialise_example(tmp_path, database_url, port, ASSERTIONS)
        names = [DEFAULT_KEY_PREFIX + replay_key(DEMO_IDP_ENTITY_ID, i) for i in minted]
        stack.callback(raw.delete, *names)
        with example_server(
            tmp_path, database_url, port, log_path, workers=WORKERS, replay_cache=url
        ):
            results = redeem_all(port, credentials, minted)
        tokens = check_one_token_each(results, log_path)
        assert token_rows(database_url, tokens) == ASSERTIONS
        assert raw.exists(*names) == ASSERTIONS
        # The replay table of the example app stayed empty: Redis decided.
        engine = sa.create_engine(database_url)
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT count(*) FROM saml2_bearer_replay")).scalar_one()
        engine.dispose()
        assert rows == 0
    raw.close()
