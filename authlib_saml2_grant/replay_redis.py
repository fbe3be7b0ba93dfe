"""A replay cache in Redis, shared by every process and machine using it.

:rfc:`7522#section-3` item 6: each (Issuer, ID) pair is recorded with one
atomic ``SET key token NX PX ms``, so Redis itself decides which of several
concurrent redemptions wins, and the record expires with the assertion (its
``NotOnOrAfter`` plus the clock skew). Any Redis error propagates, and
:func:`~authlib_saml2_grant.replay.spend_assertion` turns it into
``replay_cache_error``: no token without a record.

Redis has no transaction to share with the token's database, so the record is
written (and visible to every worker) at once. To keep "nothing lost" when the
token cannot be saved, the cache remembers the keys it wrote during the current
Flask request: the grant's ``rollback()`` deletes them again, each only if it
still holds the random value this request wrote, and ``commit()`` forgets them.

Needs ``redis-py`` (``pip install "authlib-saml2-grant[redis]"``), imported
when a cache is created, so the package itself works without it.
"""

from __future__ import annotations

import logging
import math
import secrets
import time
from datetime import datetime
from typing import TYPE_CHECKING

from flask import has_request_context
from flask import request

if TYPE_CHECKING:  # redis-py is an optional dependency
    from redis import Redis

__all__ = ["DEFAULT_KEY_PREFIX", "REDIS_URL_SCHEMES", "RedisReplayCache"]

log = logging.getLogger(__name__)

#: Prepended to every key, so the records are easy to find and to keep apart.
DEFAULT_KEY_PREFIX = "saml2-bearer:replay:"
#: URL schemes redis-py connects to; ``SAML2_BEARER_REPLAY_CACHE`` set to such a
#: URL makes a :class:`RedisReplayCache` with the defaults below.
REDIS_URL_SCHEMES = ("redis://", "rediss://", "unix://")

# Deletes KEYS[1] only if it still holds ARGV[1], the value this request wrote.
_RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisReplayCache:
    """A replay cache in Redis: one atomic ``SET ... NX PX`` per assertion.

    The key is ``key_prefix`` followed by the replay key the grant computes
    (SHA-256 of the Issuer and the assertion ID, never the raw parameter).
    Expiry is relative (``PX``), measured with this server's clock as the
    verifier's checks are, so a Redis host whose clock is off cannot shorten it.

    :param redis: a ``redis://``, ``rediss://`` or ``unix://`` URL, or a
        ``redis.Redis`` client (used as it is configured, e.g. with Sentinel,
        TLS or its own timeouts).
    :param key_prefix: prepended to every key.
    :param socket_timeout: seconds to wait for Redis, with a URL; each command
        is tried twice at most (a stale pooled connection after a Redis
        restart), so a request waits about twice this before failing closed.
    :param socket_connect_timeout: seconds to wait for a connection, with a URL.
    """

    def __init__(
        self,
        redis: str | Redis,
        key_prefix: str = DEFAULT_KEY_PREFIX,
        socket_timeout: float = 0.5,
        socket_connect_timeout: float = 0.5,
    ) -> None:
        import redis as redis_py
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        if not isinstance(key_prefix, str):
            raise TypeError("key_prefix must be a string")
        self.key_prefix = key_prefix
        if isinstance(redis, str):
            if not redis.startswith(REDIS_URL_SCHEMES):
                raise ValueError(
                    f"a Redis URL starts with one of {', '.join(REDIS_URL_SCHEMES)}, not {redis!r}"
                )
            redis = redis_py.Redis.from_url(
                redis,
                socket_timeout=socket_timeout,
                socket_connect_timeout=socket_connect_timeout,
                retry=Retry(NoBackoff(), 1),
            )
        elif not callable(getattr(redis, "register_script", None)):
            raise TypeError("RedisReplayCache takes a Redis URL or a redis.Redis client")
        self.redis: Redis = redis
        self._release = redis.register_script(_RELEASE_SCRIPT)
        # Per cache, so that two caches in one app keep their own keys.
        self._pending_attribute = f"_saml2_bearer_redis_pending_{id(self):x}"

    def __repr__(self) -> str:
        pool = getattr(self.redis, "connection_pool", None)
        kwargs = getattr(pool, "connection_kwargs", {})
        where = kwargs.get("path") or f"{kwargs.get('host')}:{kwargs.get('port')}"
        return f"<RedisReplayCache {where} prefix={self.key_prefix!r}>"

    def add(self, key: str, expires_at: datetime) -> bool:
        """Record ``key`` until ``expires_at`` with ``SET NX PX``, atomically.

        :return: ``True`` on first use, ``False`` for a replay.
        :raise redis.RedisError: Redis did not answer (the grant fails closed).
        """
        name = self.key_prefix + key
        # At least 1 ms: an assertion already past its expiry still conflicts
        # with a live record instead of skipping Redis.
        milliseconds = max(1, math.ceil((expires_at.timestamp() - time.time()) * 1000))
        token = secrets.token_hex(16)
        if self.redis.set(name, token, nx=True, px=milliseconds):
            self._remember(name, token)
            return True
        # Taken. If a retried SET hit our own first write (the reply was lost,
        # not the command), the key holds our random token: still a first use.
        if self.redis.get(name) in (token, token.encode()):
            self._remember(name, token)
            return True
        return False

    def commit(self) -> None:
        """The token is saved: the keys written in this request stay, for good."""
        if has_request_context():
            setattr(request, self._pending_attribute, [])

    def rollback(self) -> bool:
        """No token was issued: delete the keys written in this request.

        Each is deleted only if it still holds the value this request wrote.
        Meanwhile a concurrent redemption of the same assertion was refused as
        a replay: a client may retry it after this failure, once.

        :return: whether every key was released (``False``: outside a Flask
            request, nothing is known; or a key had changed hands).
        :raise redis.RedisError: Redis did not answer (the keys stay: spent).
        """
        if not has_request_context():
            return False
        pending = getattr(request, self._pending_attribute, None) or []
        setattr(request, self._pending_attribute, [])
        released = True
        for name, token in pending:
            if not self._release(keys=[name], args=[token]):
                released = False
        return released

    def ping(self) -> bool:
        """Whether Redis answers; a cheap health check for operators.

        :raise redis.RedisError: when it does not.
        """
        return bool(self.redis.ping())

    def _remember(self, name: str, token: str) -> None:
        if has_request_context():
            pending: list[tuple[str, str]] | None = getattr(request, self._pending_attribute, None)
            if pending is None:
                pending = []
                setattr(request, self._pending_attribute, pending)
            pending.append((name, token))
