"""Replay caches: each signed assertion yields at most one token.

A bearer assertion can be redeemed by whoever holds it, so once every check
of :rfc:`7522#section-3` has passed, its (Issuer, ID) pair is recorded until
it expires; a second redemption finds the record and is refused. The key is
derived from the signed values, never from the raw parameter, because one
signed assertion has many byte encodings.

A cache implements one atomic operation, :meth:`ReplayCache.add`.
"""

from __future__ import annotations

import hashlib
import heapq
import logging
import threading
import time
from datetime import datetime
from typing import Any
from typing import Protocol
from typing import runtime_checkable

__all__ = [
    "ReplayCache",
    "MemoryReplayCache",
    "SQLAlchemyReplayCache",
    "replay_key",
]

log = logging.getLogger(__name__)


def replay_key(issuer: str, assertion_id: str) -> str:
    """The cache key of an assertion: SHA-256 of its Issuer and ID."""
    return hashlib.sha256(f"{issuer}\x00{assertion_id}".encode()).hexdigest()


@runtime_checkable
class ReplayCache(Protocol):
    """What the grant needs from a replay cache."""

    def add(self, key: str, expires_at: datetime) -> bool:
        """Record ``key`` until ``expires_at``, atomically.

        :return: ``True`` if the key was not present (first use), ``False`` if
            it was already recorded and has not expired (a replay).
        """
        ...  # pragma: no cover


class MemoryReplayCache:
    """A thread-safe, bounded in-process replay cache.

    It protects a single process only: behind several workers use
    :class:`SQLAlchemyReplayCache` or another shared store. When full of
    unexpired entries it refuses new assertions rather than forget old ones.

    :param max_entries: how many unexpired assertions it holds at most.
    """

    def __init__(self, max_entries: int = 100_000) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be positive")
        self.max_entries = max_entries
        self._expiry: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []
        self._lock = threading.Lock()

    def add(self, key: str, expires_at: datetime) -> bool:
        deadline = expires_at.timestamp()
        now = time.time()
        with self._lock:
            self._evict(now)
            current = self._expiry.get(key)
            if current is not None and current > now:
                return False
            if len(self._expiry) >= self.max_entries:
                raise OverflowError("the in-memory replay cache is full")
            self._expiry[key] = deadline
            heapq.heappush(self._heap, (deadline, key))
            return True

    def _evict(self, now: float) -> None:
        heap = self._heap
        while heap and heap[0][0] <= now:
            deadline, key = heapq.heappop(heap)
            if self._expiry.get(key) == deadline:
                del self._expiry[key]

    def __len__(self) -> int:
        with self._lock:
            self._evict(time.time())
            return len(self._expiry)


class SQLAlchemyReplayCache:
    """A replay cache in a SQL table, shared by every process using the database.

    The table's primary key is the replay key, so the database itself decides
    which of several concurrent redemptions wins: an ``IntegrityError`` means
    the assertion was already used. Expired rows are purged as it goes.
    Works on SQLite and PostgreSQL (and any database SQLAlchemy supports).

    :param db: a SQLAlchemy ``Engine``, or a Flask-SQLAlchemy ``db`` object.
        With ``db``, the cache connects to the app's database through an
        engine of its own (same URL, own pool): a request holds its session's
        connection while the cache records the assertion, so sharing one pool
        would let as many simultaneous requests as pool slots starve each
        other. An in-memory SQLite database has one connection and is shared.
        An ``Engine`` you pass is used as is: give it a pool of its own.
    :param table_name: the table to use.
    :param metadata: a ``MetaData`` to declare the table in, e.g.
        ``db.metadata`` so that ``db.create_all()`` creates it.
    :param purge_interval: seconds between purges of expired rows.
    """

    def __init__(
        self,
        db: Any,
        table_name: str = "saml2_bearer_replay",
        metadata: Any = None,
        purge_interval: float = 60.0,
    ) -> None:
        import sqlalchemy as sa

        self._sa = sa
        self._db = db
        if metadata is None:
            metadata = getattr(db, "metadata", None) or sa.MetaData()
        self.metadata = metadata
        if table_name in metadata.tables:
            self.table = metadata.tables[table_name]
        else:
            self.table = sa.Table(
                table_name,
                metadata,
                sa.Column("key", sa.String(64), primary_key=True),
                sa.Column("expires_at", sa.BigInteger, nullable=False, index=True),
            )
        self.purge_interval = purge_interval
        self._next_purge = 0.0
        self._engines: dict[Any, Any] = {}
        self._lock = threading.Lock()

    @property
    def engine(self):
        """The engine the cache writes with (see ``db`` above)."""
        db = self._db
        if isinstance(db, self._sa.engine.Engine):
            return db
        app_engine = db.engine  # the current app's, inside its app context
        engine = self._engines.get(app_engine)
        if engine is None:
            with self._lock:
                engine = self._engines.get(app_engine)
                if engine is None:
                    engine = self._engines[app_engine] = self._own_engine(app_engine)
        return engine

    def _own_engine(self, app_engine):
        url = app_engine.url
        if url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"):
            return app_engine  # one shared in-memory connection: nothing to starve
        return self._sa.create_engine(url)

    def create_table(self) -> None:
        """Create the table if it does not exist."""
        self.table.create(self.engine, checkfirst=True)

    def add(self, key: str, expires_at: datetime) -> bool:
        sa = self._sa
        now = int(time.time())
        deadline = int(expires_at.timestamp()) + 1
        engine = self.engine
        try:
            with engine.begin() as conn:
                conn.execute(self.table.insert().values(key=key, expires_at=deadline))
        except sa.exc.IntegrityError:
            # Present: a replay, unless the earlier use has expired.
            with engine.begin() as conn:
                taken = conn.execute(
                    self.table.update()
                    .where(self.table.c.key == key, self.table.c.expires_at <= now)
                    .values(expires_at=deadline)
                )
            return taken.rowcount == 1
        if time.monotonic() >= self._next_purge:
            try:
                self.purge(now)
            except sa.exc.SQLAlchemyError:
                # Housekeeping only: the key is recorded, the next add retries.
                log.warning("Purging expired replay-cache rows failed", exc_info=True)
        return True

    def purge(self, now: int | None = None) -> int:
        """Delete expired rows; return how many were deleted."""
        self._next_purge = time.monotonic() + self.purge_interval
        if now is None:
            now = int(time.time())
        with self.engine.begin() as conn:
            result = conn.execute(self.table.delete().where(self.table.c.expires_at <= now))
        if result.rowcount:
            log.debug("Purged %d expired replay-cache rows", result.rowcount)
        return result.rowcount
