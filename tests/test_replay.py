"""Replay caches, :rfc:`7522#section-3` item 6: each assertion yields at most one token.

The SQLAlchemy cache runs on a SQLite file and on a real PostgreSQL
(``SAML2_TEST_POSTGRES_URL``); with ``SAML2_TEST_REQUIRE_POSTGRES=1`` a missing
PostgreSQL is a failure, not a skip.
"""

from __future__ import annotations

import multiprocessing
import uuid
from datetime import datetime
from datetime import timedelta
from datetime import timezone

import pytest
import sqlalchemy as sa

from authlib_saml2_grant import MemoryReplayCache
from authlib_saml2_grant import ReplayCache
from authlib_saml2_grant import SQLAlchemyReplayCache
from authlib_saml2_grant import replay as replay_module
from authlib_saml2_grant.replay import replay_key

from .conftest import basic_auth
from .conftest import db
from .conftest import mint_for
from .conftest import postgres_url
from .conftest import replay_cache as conftest_replay_cache
from .conftest import request_token
from .helpers import BAD_CLIENT_CREDENTIALS
from .helpers import GRANT_NOT_ALLOWED
from .helpers import INVALID_GRANT
from .helpers import ago
from .helpers import app_for
from .helpers import assert_redeemed_once
from .helpers import assert_rejected
from .helpers import assert_unavailable
from .helpers import from_now
from .helpers import in_threads
from .helpers import race_add
from .helpers import redeem_concurrently
from .helpers import replay_rows
from .helpers import token_store_down

UNREACHABLE_POSTGRES = "postgresql+psycopg://saml2_test:saml2_test@127.0.0.1:1/saml2_test"


class FakeClock:
    """Stands in for the ``time`` module inside :mod:`authlib_saml2_grant.replay`."""

    def __init__(self):
        self.now = datetime.now(timezone.utc).timestamp()
        self.offset = 0.0

    def time(self):
        return self.now

    def monotonic(self):
        return self.offset

    def advance(self, seconds):
        self.now += seconds
        self.offset += seconds


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(replay_module, "time", fake)
    return fake


def at(clock, seconds):
    """A datetime ``seconds`` after the fake clock's now."""
    return datetime.fromtimestamp(clock.now + seconds, timezone.utc)


def threads_add(cache, keys, expires_at):
    """Add each key from its own thread, all released at once; return the results."""
    return in_threads(len(keys), lambda index: cache.add(keys[index], expires_at))


# -- the key --------------------------------------------------------------------------------


def test_replay_key_is_issuer_and_id():
    """:rfc:`7522#section-3` item 6: the set of used ID values, per issuer."""
    assert replay_key("https://idp", "_1") == replay_key("https://idp", "_1")
    assert replay_key("https://idp", "_1") != replay_key("https://other", "_1")
    assert replay_key("https://idp", "_1") != replay_key("https://idp", "_2")
    assert len(replay_key("https://idp", "_1")) == 64


def test_caches_satisfy_protocol(tmp_path):
    """Both caches implement the ReplayCache protocol."""
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'p.db'}")
    assert isinstance(MemoryReplayCache(), ReplayCache)
    assert isinstance(SQLAlchemyReplayCache(engine), ReplayCache)
    engine.dispose()


# -- MemoryReplayCache ----------------------------------------------------------------------


def test_memory_add_once(clock):
    """The first add of a key is True, later adds False until it expires."""
    cache = MemoryReplayCache()
    assert cache.add("k", at(clock, 60)) is True
    assert cache.add("k", at(clock, 60)) is False
    assert cache.add("k", at(clock, 600)) is False
    assert cache.add("other", at(clock, 60)) is True
    assert len(cache) == 2


def test_memory_expiry_eviction(clock):
    """An expired entry is evicted and its key may be used again."""
    cache = MemoryReplayCache()
    assert cache.add("k", at(clock, 60))
    assert cache.add("j", at(clock, 120))
    clock.advance(59)
    assert not cache.add("k", at(clock, 60))
    clock.advance(1)
    assert len(cache) == 1
    assert cache.add("k", at(clock, 60)) is True
    clock.advance(61)
    assert len(cache) == 0


def test_memory_already_expired_entry(clock):
    """An entry already past its expiry never blocks anything."""
    cache = MemoryReplayCache()
    assert cache.add("k", at(clock, -1)) is True
    assert cache.add("k", at(clock, 60)) is True
    assert cache.add("k", at(clock, 60)) is False


def test_memory_bounded(clock):
    """Full of unexpired entries, the cache refuses rather than forgets."""
    cache = MemoryReplayCache(max_entries=2)
    assert cache.add("a", at(clock, 10))
    assert cache.add("b", at(clock, 20))
    with pytest.raises(OverflowError):
        cache.add("c", at(clock, 30))
    assert cache.add("a", at(clock, 10)) is False  # a replay is still a replay when full
    clock.advance(10)
    assert cache.add("c", at(clock, 30)) is True
    with pytest.raises(OverflowError):
        cache.add("d", at(clock, 30))


@pytest.mark.parametrize("max_entries", [0, -1])
def test_memory_bound_must_be_positive(max_entries):
    """A cache that can hold nothing is a configuration mistake."""
    with pytest.raises(ValueError):
        MemoryReplayCache(max_entries=max_entries)


def test_memory_full_cache_is_temporarily_unavailable(tmp_path, idp):
    """:rfc:`7522#section-3` item 6: a full cache fails closed with ``replay_cache_error``,
    a 503 (the server, not the assertion, is the problem)."""
    with app_for(tmp_path, [idp], SAML2_BEARER_REPLAY_CACHE=MemoryReplayCache(max_entries=1)) as h:
        assert h.token(mint_for(idp))[0] == 200
        status, body = h.token(mint_for(idp))
        assert_unavailable(status, body, h.reasons, "replay_cache_error")


def test_memory_same_key_many_threads():
    """Concurrent adds of one key from 32 threads: exactly one wins."""
    cache = MemoryReplayCache()
    for round_ in range(5):
        results = threads_add(cache, [f"key-{round_}"] * 32, from_now(60))
        assert results.count(True) == 1
        assert results.count(False) == 31


def test_memory_many_keys_many_threads():
    """Distinct keys from 16 threads at once are all recorded."""
    cache = MemoryReplayCache()
    expires_at = from_now(60)

    def add_500(worker):
        return all(cache.add(f"{worker}-{i}", expires_at) for i in range(500))

    assert in_threads(16, add_500) == [True] * 16
    assert len(cache) == 16 * 500


def test_replay_through_grant_with_memory_cache(tmp_path, idp):
    """:rfc:`7522#section-3` item 6: the default in-memory cache refuses a replay."""
    with app_for(tmp_path, [idp], SAML2_BEARER_REPLAY_CACHE=MemoryReplayCache()) as h:
        assertion = mint_for(idp)
        assert h.token(assertion)[0] == 200
        status, body = h.token(assertion)
        assert_rejected(status, body, h.reasons, "replayed")


def test_replay_entry_lasts_until_expiry_plus_skew(tmp_path, idp):
    """:rfc:`7522#section-3` item 6: the ID is kept while the assertion could be accepted."""
    seen = []

    class Recording(MemoryReplayCache):
        def add(self, key, expires_at):
            seen.append((key, expires_at))
            return super().add(key, expires_at)

    with app_for(tmp_path, [idp], SAML2_BEARER_REPLAY_CACHE=Recording()) as h:
        end = from_now(120)
        assert h.token(mint_for(idp, not_on_or_after=end, assertion_id="_abc"))[0] == 200
    key, expires_at = seen[0]
    assert key == replay_key(idp.entity_id, "_abc")
    assert abs((expires_at - (end + timedelta(seconds=60))).total_seconds()) < 0.01


# -- SQLAlchemyReplayCache on SQLite and PostgreSQL ---------------------------------------------


def test_postgresql_available_when_required():
    """CI sets SAML2_TEST_REQUIRE_POSTGRES=1: then a real PostgreSQL must answer."""
    engine = sa.create_engine(postgres_url(), connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as conn:
            assert engine.dialect.name == "postgresql"
            assert conn.execute(sa.text("select 1")).scalar_one() == 1
    finally:
        engine.dispose()


@pytest.fixture
def engine(database_url):
    engine = sa.create_engine(database_url, pool_size=20, max_overflow=0)
    yield engine
    engine.dispose()


@pytest.fixture
def sql_cache(engine):
    """A cache in a table of its own, dropped afterwards."""
    cache = SQLAlchemyReplayCache(engine, table_name=f"saml2_replay_{uuid.uuid4().hex[:12]}")
    cache.create_table()
    yield cache
    cache.table.drop(engine, checkfirst=True)


def test_sql_dialect(sql_cache, database_url):
    """The PostgreSQL runs really run on PostgreSQL."""
    assert sql_cache.engine.dialect.name == database_url.split(":")[0].split("+")[0]


def test_sql_add_once(sql_cache):
    """The first add of a key is True, the second False."""
    assert sql_cache.add("k" * 64, from_now(60)) is True
    assert sql_cache.add("k" * 64, from_now(60)) is False
    assert sql_cache.add("j" * 64, from_now(60)) is True
    assert replay_rows(sql_cache) == 2


def test_sql_create_table_idempotent(sql_cache):
    """create_table may run at every start."""
    sql_cache.create_table()
    assert sql_cache.add("k", from_now(60)) is True


def test_sql_expired_row_taken_over(sql_cache):
    """An expired row is taken over by the next add, which then blocks replays."""
    assert sql_cache.add("k", ago(10)) is True
    assert sql_cache.add("k", from_now(60)) is True
    assert sql_cache.add("k", from_now(60)) is False
    assert replay_rows(sql_cache) == 1


def test_sql_purge(sql_cache):
    """purge deletes expired rows only."""
    sql_cache.purge_interval = 3600
    assert sql_cache.purge() == 0  # and no purge from add() for an hour
    for index in range(3):
        sql_cache.add(f"old-{index}", ago(10 + index))
    sql_cache.add("live", from_now(60))
    assert sql_cache.purge() == 3
    assert replay_rows(sql_cache) == 1
    assert sql_cache.purge() == 0
    assert sql_cache.add("live", from_now(60)) is False


def test_sql_purge_as_it_goes(sql_cache):
    """Expired rows are purged by add once the purge interval has passed."""
    sql_cache.purge_interval = 0
    sql_cache.add("old", ago(10))
    sql_cache.add("new", from_now(60))
    assert replay_rows(sql_cache) == 1


def test_sql_same_key_16_threads(sql_cache):
    """Concurrent adds of one key from 16 threads: exactly one True."""
    for round_ in range(3):
        results = threads_add(sql_cache, [f"key-{round_}"] * 16, from_now(60))
        assert results.count(True) == 1, results


def test_sql_takeover_16_threads(sql_cache):
    """Concurrent takeovers of one expired row: exactly one True."""
    assert sql_cache.add("k", ago(30))
    results = threads_add(sql_cache, ["k"] * 16, from_now(60))
    assert results.count(True) == 1, results


def test_sql_two_processes_race(sql_cache, database_url):
    """Two processes adding the same keys in lock step: each key won exactly once."""
    context = multiprocessing.get_context("spawn")
    keys = [f"race-{i}" for i in range(10)]
    barrier = context.Barrier(2)
    results = context.Queue()
    processes = [
        context.Process(
            target=race_add, args=(database_url, sql_cache.table.name, keys, barrier, results)
        )
        for _ in range(2)
    ]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=60) for _ in processes]
    for process in processes:
        process.join(timeout=30)
        assert process.exitcode == 0
    for index, key in enumerate(keys):
        assert [outcome[index] for outcome in outcomes].count(True) == 1, key


def test_sql_cache_through_grant(sql_cache, tmp_path, idp):
    """:rfc:`7522#section-3` item 6: the grant refuses a replay recorded in the database."""
    with app_for(tmp_path, [idp], SAML2_BEARER_REPLAY_CACHE=sql_cache) as h:
        assertion = mint_for(idp, one_time_use=True)
        assert h.token(assertion)[0] == 200
        status, body = h.token(assertion)
        assert_rejected(status, body, h.reasons, "replayed")
    assert replay_rows(sql_cache) == 1


def test_sql_cache_shared_between_apps(sql_cache, tmp_path, idp):
    """Two apps (as two workers would) sharing the table accept an assertion once."""
    assertion = mint_for(idp)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with app_for(tmp_path / "a", [idp], SAML2_BEARER_REPLAY_CACHE=sql_cache) as h:
        assert h.token(assertion)[0] == 200
    other = SQLAlchemyReplayCache(sql_cache.engine, table_name=sql_cache.table.name)
    with app_for(tmp_path / "b", [idp], SAML2_BEARER_REPLAY_CACHE=other) as h:
        status, body = h.token(assertion)
        assert_rejected(status, body, h.reasons, "replayed")


def test_flask_sqlalchemy_metadata():
    """Given a Flask-SQLAlchemy ``db``, the table is declared in ``db.metadata``."""
    assert conftest_replay_cache.table.name in db.metadata.tables
    assert conftest_replay_cache.metadata is db.metadata


# -- outages fail closed --------------------------------------------------------------------------


def _unreachable_postgres():
    return sa.create_engine(UNREACHABLE_POSTGRES, connect_args={"connect_timeout": 2})


def _missing_sqlite_directory(tmp_path):
    return sa.create_engine(f"sqlite:///{tmp_path / 'no-such-dir' / 'replay.db'}")


@pytest.mark.parametrize("outage", ["unreachable postgresql", "missing sqlite directory"])
def test_database_outage_is_temporarily_unavailable(tmp_path, idp, outage):
    """:rfc:`7522#section-3` item 6: an unreachable replay store fails closed with a
    503, not a 500 nor ``invalid_grant``."""
    engine = {
        "unreachable postgresql": _unreachable_postgres,
        "missing sqlite directory": lambda: _missing_sqlite_directory(tmp_path),
    }[outage]()
    cache = SQLAlchemyReplayCache(engine, table_name="saml2_replay_outage")
    with app_for(tmp_path, [idp], SAML2_BEARER_REPLAY_CACHE=cache) as h:
        status, body = h.token(mint_for(idp))
        assert_unavailable(status, body, h.reasons, "replay_cache_error")
    engine.dispose()


def test_lost_table_fails_closed_and_does_not_burn(sql_cache, tmp_path, idp):
    """A replay table gone missing refuses tokens; once restored, the assertion works."""
    with app_for(tmp_path, [idp], SAML2_BEARER_REPLAY_CACHE=sql_cache) as h:
        sql_cache.table.drop(sql_cache.engine)
        assertion = mint_for(idp)
        status, body = h.token(assertion)
        assert_unavailable(status, body, h.reasons, "replay_cache_error")
        sql_cache.create_table()
        status, body = h.token(assertion)
        assert status == 200, body


def test_cache_exception_is_temporarily_unavailable(tmp_path, idp):
    """Any exception from a custom cache is ``replay_cache_error`` (503), never a 500."""

    class Broken:
        def add(self, key, expires_at):
            raise ConnectionError("redis is down")

    with app_for(tmp_path, [idp], SAML2_BEARER_REPLAY_CACHE=Broken()) as h:
        status, body = h.token(mint_for(idp))
        assert_unavailable(status, body, h.reasons, "replay_cache_error")
        assert "redis" not in body["error_description"]


@pytest.mark.parametrize(
    ("refusal", "refused"),
    [
        ({"headers": basic_auth(secret="wrong")}, (401, BAD_CLIENT_CREDENTIALS)),
        ({"headers": basic_auth("client-2", "secret-2")}, (400, GRANT_NOT_ALLOWED)),
    ],
    ids=["bad-client-secret", "grant-not-allowed"],
)
def test_refused_requests_do_not_burn_the_assertion(client, mint, reasons, refusal, refused):
    """:rfc:`7522#section-3` item 6: only a granted request records the assertion as
    used; a request refused for its client leaves it redeemable (for a scope:
    ``tests/test_scope.py`` and ``tests/test_replay_transaction.py``)."""
    assertion = mint()
    assert request_token(client, assertion, **refusal) == refused
    assert reasons == []
    status, body = request_token(client, assertion)
    assert status == 200, body


def test_same_id_from_two_issuers(client, idp, ec_idp, accepted):
    """:rfc:`7522#section-3` item 6: IDs are unique per issuer, so the key includes it."""
    assert request_token(client, mint_for(idp, assertion_id="_shared"))[0] == 200
    assert request_token(client, mint_for(ec_idp, assertion_id="_shared"))[0] == 200
    assert [a.issuer for a in accepted] == [idp.entity_id, ec_idp.entity_id]


def test_concurrent_token_requests_memory(tmp_path, idp):
    """:rfc:`7522#section-3` item 6: eight simultaneous redemptions yield one token."""
    with app_for(tmp_path, [idp], SAML2_BEARER_REPLAY_CACHE=MemoryReplayCache()) as h:
        results = redeem_concurrently(h.app, mint_for(idp), threads=8)
    assert_redeemed_once(results, h.reasons)


def test_concurrent_token_requests_sql(tmp_path, idp, sql_cache):
    """:rfc:`7522#section-3` item 6: the same, with the cache in its own table."""
    with app_for(tmp_path, [idp], SAML2_BEARER_REPLAY_CACHE=sql_cache) as h:
        results = redeem_concurrently(h.app, mint_for(idp), threads=8)
    assert_redeemed_once(results, h.reasons)


def test_sql_purge_failure_does_not_fail_add(sql_cache, caplog, monkeypatch):
    """A failed purge is logged; the assertion it follows is recorded and accepted."""
    purges = []

    def purge(now=None):
        purges.append(now)
        sql_cache._next_purge = 0.0
        raise sa.exc.OperationalError("DELETE", {}, Exception("lock timeout"))

    monkeypatch.setattr(sql_cache, "purge", purge)
    assert sql_cache.add("k", from_now(60)) is True
    assert sql_cache.add("k", from_now(60)) is False
    assert len(purges) == 2
    assert "Purging expired replay-cache rows failed" in caplog.text


def test_sql_without_on_conflict(sql_cache, monkeypatch):
    """Databases without ``ON CONFLICT ... RETURNING``: insert, or take over an expired row."""
    monkeypatch.setattr(sql_cache, "_upsert", lambda dialect: None)
    assert sql_cache.add("k", ago(30)) is True
    assert sql_cache.add("k", from_now(60)) is True  # the expired row is taken over
    assert sql_cache.add("k", from_now(60)) is False
    assert threads_add(sql_cache, ["race"] * 16, from_now(60)).count(True) == 1


def test_memory_cache_failed_token_save_spends(tmp_path, idp, caplog):
    """A cache that records at once cannot undo the record: a failed token save
    spends the assertion, and the log says so (``assertion_spent``), as does the
    503's description (retry with a new assertion)."""
    with app_for(tmp_path, [idp], SAML2_BEARER_REPLAY_CACHE=MemoryReplayCache()) as h:
        assertion = mint_for(idp)
        with token_store_down(h.app), caplog.at_level("INFO", logger="authlib_saml2_grant"):
            assert_unavailable(*h.token(assertion), h.reasons, "token_error", spent=True)
        assert "'assertion_spent': True" in caplog.text
        status, body = h.token(assertion)
        assert (status, body) == (400, INVALID_GRANT)
        assert h.reasons == ["token_error", "replayed"]
