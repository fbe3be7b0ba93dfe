"""The Redis replay cache, :rfc:`7522#section-3` item 6, against a real Redis.

``SAML2_TEST_REDIS_URL`` names the server (``.ci/redis.sh`` starts one on
loopback); with ``SAML2_TEST_REQUIRE_REDIS=1`` a missing one fails the tests
instead of skipping them. Each test writes under its own key prefix and
deletes it afterwards. What the cache wrote is read back with a client of the
test's own, never through the cache under test.
"""

from __future__ import annotations

import base64
import hashlib
import socket
import sys
import time
import uuid

import pytest

from authlib_saml2_grant import ConfigurationError
from authlib_saml2_grant import RedisReplayCache
from authlib_saml2_grant import ReplayCache
from authlib_saml2_grant import TransactionalReplayCache
from authlib_saml2_grant.replay import replay_key
from authlib_saml2_grant.replay_redis import DEFAULT_KEY_PREFIX
from authlib_saml2_grant.settings import load_settings
from authlib_saml2_grant.testing import encode_assertion

from .conftest import AUDIENCES
from .conftest import basic_auth
from .conftest import request_token
from .conftest import unsigned_tree
from .helpers import INVALID_GRANT
from .helpers import app_for
from .helpers import assert_redeemed_once
from .helpers import assert_rejected
from .helpers import assert_unavailable
from .helpers import from_now
from .helpers import in_threads
from .helpers import redeem_concurrently
from .helpers import token_store_down

redis = pytest.importorskip("redis")  # the [redis] extra, in the [test] extra too


@pytest.fixture
def prefix(redis_url):
    """A key prefix of this test's own; its keys are deleted afterwards."""
    value = f"saml2-test:{uuid.uuid4().hex}:"
    yield value
    raw = redis.Redis.from_url(redis_url)
    keys = list(raw.scan_iter(match=value + "*"))
    if keys:
        raw.delete(*keys)
    raw.close()


@pytest.fixture
def raw(redis_url):
    """A plain client of the test's own, to look at what the cache wrote."""
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def cache(redis_url, prefix):
    return RedisReplayCache(redis_url, key_prefix=prefix)


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def keys_under(raw, prefix) -> list[str]:
    return sorted(key.decode() for key in raw.scan_iter(match=prefix + "*"))


# -- the cache ----------------------------------------------------------------------------


def test_implements_the_protocols(cache):
    """A ReplayCache that can release a key when no token was issued."""
    assert isinstance(cache, ReplayCache)
    assert isinstance(cache, TransactionalReplayCache)
    assert cache.ping() is True


def test_add_once(cache, raw, prefix):
    """The first add of a key is True, later adds False, whatever their expiry."""
    assert cache.add("k", from_now(60)) is True
    assert cache.add("k", from_now(60)) is False
    assert cache.add("k", from_now(3600)) is False
    assert cache.add("other", from_now(60)) is True
    assert keys_under(raw, prefix) == [prefix + "k", prefix + "other"]


def test_concurrent_adds_have_one_winner(redis_url, prefix):
    """SET NX is atomic: 24 threads on 4 separate connection pools race on each
    of 5 keys, in lock step; exactly one wins each key."""
    caches = [RedisReplayCache(redis_url, key_prefix=prefix) for _ in range(4)]
    keys = [f"race-{index}" for index in range(5)]
    expires_at = from_now(120)

    def race(index):
        cache = caches[index % len(caches)]
        return [cache.add(key, expires_at) for key in keys]

    results = in_threads(24, race)
    for column in range(len(keys)):
        assert sum(result[column] for result in results) == 1, results


def test_expiry_is_the_given_instant(cache, raw, prefix):
    """The record lives until ``expires_at`` (the grant passes NotOnOrAfter + skew)."""
    cache.add("k", from_now(300))
    ttl = raw.pttl(prefix + "k")
    assert 290_000 < ttl <= 300_000, ttl
    cache.add("later", from_now(7200))
    assert 7_190_000 < raw.pttl(prefix + "later") <= 7_200_000


def test_expired_record_frees_the_key(cache, raw, prefix):
    """Redis drops the record at its expiry; the key may then be recorded again.
    An expiry already past still conflicts with a live record."""
    assert cache.add("k", from_now(0.05)) is True
    assert cache.add("k", from_now(-5)) is False
    for _ in range(200):  # Redis expires it about 50 ms later
        if not raw.exists(prefix + "k"):
            break
        time.sleep(0.01)
    assert not raw.exists(prefix + "k")
    assert cache.add("k", from_now(60)) is True
    assert raw.pttl(prefix + "k") > 50_000


def test_key_prefix_is_configurable(redis_url, raw, prefix):
    """Two prefixes are two separate stores; the default prefix is documented."""
    first = RedisReplayCache(redis_url, key_prefix=prefix + "a:")
    second = RedisReplayCache(redis_url, key_prefix=prefix + "b:")
    assert first.add("k", from_now(60)) is True
    assert second.add("k", from_now(60)) is True
    assert first.add("k", from_now(60)) is False
    assert keys_under(raw, prefix) == [prefix + "a:k", prefix + "b:k"]
    assert RedisReplayCache(redis_url).key_prefix == DEFAULT_KEY_PREFIX == "saml2-bearer:replay:"


def test_takes_a_client(redis_url, raw, prefix):
    """A ``redis.Redis`` client is used as it is configured."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    cache = RedisReplayCache(client, key_prefix=prefix)
    assert cache.redis is client
    assert cache.add("k", from_now(60)) is True
    assert cache.add("k", from_now(60)) is False
    client.close()


def test_refuses_what_is_not_redis(prefix):
    with pytest.raises(ValueError, match="Redis URL"):
        RedisReplayCache("http://127.0.0.1:6379/0")
    with pytest.raises(TypeError, match="Redis URL or a redis.Redis client"):
        RedisReplayCache(object())  # type: ignore[arg-type]


def test_repr_hides_the_password():
    cache = RedisReplayCache("redis://user:s3cret@127.0.0.1:6390/2", key_prefix="p:")
    assert repr(cache) == "<RedisReplayCache 127.0.0.1:6390 prefix='p:'>"


def test_rollback_releases_only_this_requests_keys(cache, raw, prefix, redis_url):
    """``rollback()`` deletes the keys written during the current Flask request,
    each only while it holds this request's value; ``commit()`` keeps them."""
    from flask import Flask

    app = Flask(__name__)
    assert cache.add("before", from_now(60)) is True  # outside any request
    with app.test_request_context():
        assert cache.add("kept", from_now(60)) is True
        cache.commit()
        assert cache.add("released", from_now(60)) is True
        assert cache.add("before", from_now(60)) is False  # a replay writes nothing
        assert cache.rollback() is True
    assert keys_under(raw, prefix) == [prefix + "before", prefix + "kept"]
    with app.test_request_context():
        assert cache.add("taken-over", from_now(60)) is True
        raw.set(prefix + "taken-over", "another writer")
        assert cache.rollback() is False
    assert raw.get(prefix + "taken-over") == b"another writer"
    assert cache.rollback() is False  # outside a request nothing is known: stays spent


# -- failing closed -------------------------------------------------------------------------


def test_unreachable_redis_raises():
    """Nothing listens: add() and ping() raise (the grant turns it into a refusal)."""
    cache = RedisReplayCache(f"redis://127.0.0.1:{closed_port()}/0")
    with pytest.raises(redis.ConnectionError):
        cache.add("k", from_now(60))
    with pytest.raises(redis.ConnectionError):
        cache.ping()


def test_silent_redis_times_out():
    """A server that accepts connections but never answers: add() gives up after
    its short socket timeout and raises, it does not hang the worker."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        cache = RedisReplayCache(f"redis://127.0.0.1:{port}/0", socket_timeout=0.2)
        with pytest.raises(redis.TimeoutError):
            cache.add("k", from_now(60))


# -- settings -------------------------------------------------------------------------------


def test_setting_takes_a_redis_url(redis_url):
    """``SAML2_BEARER_REPLAY_CACHE = "redis://..."`` makes a RedisReplayCache."""
    settings = load_settings(
        {"SAML2_BEARER_AUDIENCES": list(AUDIENCES), "SAML2_BEARER_REPLAY_CACHE": redis_url}
    )
    assert isinstance(settings.replay_cache, RedisReplayCache)
    assert settings.transactional_cache is settings.replay_cache
    assert settings.replay_cache.ping() is True


def test_setting_with_a_bad_redis_url():
    with pytest.raises(ConfigurationError, match="SAML2_BEARER_REPLAY_CACHE: invalid Redis URL"):
        load_settings(
            {
                "SAML2_BEARER_AUDIENCES": list(AUDIENCES),
                "SAML2_BEARER_REPLAY_CACHE": "redis://127.0.0.1:port/0",
            }
        )


def test_setting_without_redis_py(monkeypatch):
    """A Redis URL without the ``redis`` extra installed fails at start-up, saying so."""
    monkeypatch.setitem(sys.modules, "redis", None)  # what an absent package looks like
    with pytest.raises(ConfigurationError, match=r"pip install 'authlib-saml2-grant\[redis\]'"):
        load_settings(
            {
                "SAML2_BEARER_AUDIENCES": list(AUDIENCES),
                "SAML2_BEARER_REPLAY_CACHE": "redis://127.0.0.1:6379/0",
            }
        )


# -- through the grant ------------------------------------------------------------------------


@pytest.fixture
def harness(tmp_path, idp, cache):
    with app_for(tmp_path, [idp], SAML2_BEARER_REPLAY_CACHE=cache) as h:
        yield h


def test_replayed_assertion_is_refused(harness, idp, raw, prefix):
    """One token; the second redemption is ``invalid_grant``, reason ``replayed``.
    The record is under the prefix, keyed by the hash of (Issuer, ID): neither
    the assertion nor its ID appears in Redis."""
    assertion_id = f"_{uuid.uuid4().hex}"
    xml = idp.sign(unsigned_tree(idp, assertion_id=assertion_id))
    status, body = harness.token(encode_assertion(xml))
    assert status == 200, body
    status, body = harness.token(encode_assertion(xml))
    assert_rejected(status, body, harness.reasons, "replayed")
    expected = hashlib.sha256(f"{idp.entity_id}\x00{assertion_id}".encode()).hexdigest()
    assert expected == replay_key(idp.entity_id, assertion_id)
    assert keys_under(raw, prefix) == [prefix + expected]
    assert assertion_id.encode() not in raw.get(prefix + expected)


def test_record_expires_with_the_assertion(harness, idp, raw, prefix):
    """The record lives until the assertion's NotOnOrAfter plus the clock skew (60 s)."""
    assertion_id = f"_{uuid.uuid4().hex}"
    not_on_or_after = from_now(240)
    xml = idp.sign(
        unsigned_tree(
            idp,
            assertion_id=assertion_id,
            not_on_or_after=not_on_or_after,
            confirmation_not_on_or_after=not_on_or_after,
        )
    )
    assert harness.token(encode_assertion(xml))[0] == 200
    ttl = raw.pttl(prefix + replay_key(idp.entity_id, assertion_id))
    assert 290_000 < ttl <= 301_000, ttl


def test_reencoded_copy_is_a_replay(harness, idp):
    """The same signed assertion in another Base64 spelling is the same key."""
    xml = idp.sign(unsigned_tree(idp))
    assert harness.token(encode_assertion(xml))[0] == 200
    standard = base64.b64encode(xml).decode()
    assert_rejected(*harness.token(standard), harness.reasons, "replayed")


def test_failed_token_save_releases_the_record(harness, idp, raw, prefix):
    """Nothing lost: when the token cannot be saved the grant's rollback deletes
    the record, so the client may retry the assertion; it still yields one token."""
    assertion_id = f"_{uuid.uuid4().hex}"
    assertion = encode_assertion(idp.sign(unsigned_tree(idp, assertion_id=assertion_id)))
    with token_store_down(harness.app):
        status, body = harness.token(assertion)
    assert_unavailable(status, body, harness.reasons, "token_error")
    assert dict(harness.rejections[0][1])["assertion_spent"] is False
    assert keys_under(raw, prefix) == []
    assert harness.token(assertion)[0] == 200
    assert harness.token(assertion) == (400, INVALID_GRANT)
    assert harness.reasons == ["token_error", "replayed"]


def test_sixteen_concurrent_requests_one_token(harness, idp):
    """16 threads redeem one assertion at once through the app: one token."""
    results = redeem_concurrently(harness.app, encode_assertion(idp.sign(unsigned_tree(idp))), 16)
    assert_redeemed_once(results, harness.reasons)


def test_redis_down_issues_no_token(tmp_path, idp):
    """Fail closed: with Redis unreachable no token is issued (``replay_cache_error``),
    and the client is told the service is unavailable, not that its assertion is bad."""
    down = RedisReplayCache(f"redis://127.0.0.1:{closed_port()}/0")
    with app_for(tmp_path, [idp], SAML2_BEARER_REPLAY_CACHE=down) as h:
        assertion = encode_assertion(idp.sign(unsigned_tree(idp)))
        status, body = request_token(h.client, assertion, headers=basic_auth())
        assert "access_token" not in body
        assert_unavailable(status, body, h.reasons, "replay_cache_error")
        assert h.accepted == []
