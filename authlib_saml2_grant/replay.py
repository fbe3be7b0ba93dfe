"""Replay caches: each signed assertion yields at most one token.

A bearer assertion can be redeemed by whoever holds it, so once every check
of :rfc:`7522#section-3` has passed, its (Issuer, ID) pair is recorded until
it expires (item 6); a second redemption finds the record and is refused.
The key is derived from the signed values, never from the raw parameter,
because one signed assertion has many byte encodings.

A cache implements one atomic operation, :meth:`ReplayCache.add`. A cache that
writes within the request's database transaction is a
:class:`TransactionalReplayCache`: it also has ``commit()`` and ``rollback()``.
The grant records the assertion with :func:`spend_assertion`, commits once the
token is saved and before answering, and rolls back when the token could not
be issued (a ``rollback()`` that returns ``False`` could not release the
keys: the assertion stays spent). The verifier never touches a cache.
"""

from __future__ import annotations

import hashlib
import heapq
import logging
import threading
import time
from datetime import datetime
from datetime import timedelta
from typing import TYPE_CHECKING
from typing import Any
from typing import Protocol
from typing import runtime_checkable

from .assertion import VerifiedAssertion
from .errors import AssertionRejected
from .errors import ConfigurationError
from .errors import describe_error

if TYPE_CHECKING:  # SQLAlchemy is an optional dependency
    from sqlalchemy import Engine
    from sqlalchemy import MetaData
    from sqlalchemy.dialects.postgresql import Insert as PostgreSQLInsert
    from sqlalchemy.dialects.sqlite import Insert as SQLiteInsert

__all__ = [
    "ReplayCache",
    "TransactionalReplayCache",
    "MemoryReplayCache",
    "SQLAlchemyReplayCache",
    "check_replay_cache",
    "release_spent",
    "replay_key",
    "spend_assertion",
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


@runtime_checkable
class TransactionalReplayCache(ReplayCache, Protocol):
    """A replay cache whose :meth:`add` writes within the request's transaction."""

    def commit(self) -> None:
        """Make the keys :meth:`add` wrote durable; called once the token is saved."""
        ...  # pragma: no cover

    def rollback(self) -> bool:
        """Undo the keys :meth:`add` wrote; called when no token was issued.

        :return: whether they were released (``False``: the assertion stays spent).
        """
        ...  # pragma: no cover


def check_replay_cache(cache: Any, setting: str = "SAML2_BEARER_REPLAY_CACHE") -> ReplayCache:
    """Check once, at start-up, that ``cache`` is a :class:`ReplayCache`, and
    a whole :class:`TransactionalReplayCache` if it has either of its methods.

    :raise ConfigurationError: naming ``setting``.
    """
    if not callable(getattr(cache, "add", None)):
        raise ConfigurationError(f"{setting} must have an add(key, expires_at) method")
    methods = [name for name in ("commit", "rollback") if callable(getattr(cache, name, None))]
    if len(methods) == 1:
        raise ConfigurationError(
            f"{setting} has {methods[0]}() but not both commit() and rollback(): a cache "
            "writing within the request's transaction needs both"
        )
    return cache


def spend_assertion(
    cache: ReplayCache, assertion: VerifiedAssertion, clock_skew: timedelta
) -> None:
    """Record the assertion as used until it expires (plus skew), atomically.

    :rfc:`7522#section-3` item 6 lets the server refuse replays; this server
    always does, so a bearer assertion yields at most one token.

    :raise AssertionRejected: ``replayed`` if it was used before, or
        ``replay_cache_error`` if the cache failed (fails closed).
    """
    key = replay_key(assertion.issuer, assertion.assertion_id)
    try:
        first_use = cache.add(key, assertion.expires_at + clock_skew)
    except Exception as exc:  # a database or network outage fails closed
        log.exception("Replay cache failure")
        raise AssertionRejected(
            "replay_cache_error",
            "The replay cache could not record the assertion",
            error=describe_error(exc),
        ) from exc
    if not first_use:
        raise AssertionRejected(
            "replayed",
            "The assertion was already used",
            issuer=assertion.issuer,
            assertion_id=assertion.assertion_id,
        )


def release_spent(cache: TransactionalReplayCache | None) -> bool:
    """Roll back the request's uncommitted replay record, when no token was issued.

    :param cache: the transactional cache, or ``None`` for one that records
        at once (the assertion then stays spent).
    :return: whether the assertion is unspent.
    """
    if cache is None:
        return False
    try:
        return cache.rollback() is not False
    except Exception:  # the database is gone: its transaction is lost with it
        log.exception("Rolling back the SAML2 bearer replay record failed")
        return False


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

    def ping(self) -> bool:
        """Whether the cache answers (always: it is this process's memory)."""
        return True


class SQLAlchemyReplayCache:
    """A replay cache in a SQL table, shared by every process using the database.

    The table's primary key is the replay key, so the database itself decides
    which of several concurrent redemptions wins. On SQLite and PostgreSQL a
    key is recorded with one ``INSERT ... ON CONFLICT DO UPDATE`` that takes
    over only an expired row; elsewhere an ``IntegrityError`` on insert means
    the assertion was already used. Expired rows are purged as it goes.

    :param db: a Flask-SQLAlchemy ``db`` object, or a SQLAlchemy ``Engine``.
    :param table_name: the table to use.
    :param metadata: a ``MetaData`` to declare the table in, e.g.
        ``db.metadata`` so that ``db.create_all()`` creates it.
    :param purge_interval: seconds between purges of expired rows.
    :param transactional: record the key in the request's own transaction.
        The default with a Flask-SQLAlchemy ``db`` (on SQLite and PostgreSQL):
        the key is written through ``db.session`` and committed together with
        the token (Authlib's ``save_token`` commits that session; the grant
        commits it too, before it answers). A request that fails after the
        key was written, e.g. because the token store is down, then leaves
        the assertion unspent, and no second connection or commit is needed.
        A concurrent redemption of the same key waits for the first
        transaction and is refused once it commits. With ``False``, or with
        an ``Engine``, each key is committed at once through an engine of the
        cache's own (with ``db``: same URL, own pool, so that requests holding
        their session's connection cannot starve the cache).
    """

    def __init__(
        self,
        db: Any,
        table_name: str = "saml2_bearer_replay",
        metadata: MetaData | None = None,
        purge_interval: float = 60.0,
        transactional: bool | None = None,
    ) -> None:
        import sqlalchemy as sa
        from sqlalchemy.orm import scoped_session

        self._sa = sa
        self._scoped_session = scoped_session
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
        is_engine = isinstance(db, sa.engine.Engine)
        if transactional is None:
            transactional = not is_engine
        if transactional and (is_engine or not hasattr(db, "session")):
            raise ValueError("transactional=True needs a Flask-SQLAlchemy db (its session)")
        self.transactional = transactional
        self.purge_interval = purge_interval
        self._next_purge = 0.0
        self._engines: dict[Engine, Engine] = {}
        self._upserts: dict[str, Any] = {}
        self._lock = threading.Lock()

    @property
    def engine(self) -> Engine:
        """The engine the cache commits with (see ``transactional`` above)."""
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

    def _own_engine(self, app_engine: Engine) -> Engine:
        url = app_engine.url
        if url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"):
            return app_engine  # one shared in-memory connection: nothing to starve
        return self._sa.create_engine(url)

    def create_table(self) -> None:
        """Create the table if it does not exist."""
        self.table.create(self.engine, checkfirst=True)

    def ping(self) -> bool:
        """Whether the database answers and has the table: reads at most one row.

        :raise sqlalchemy.exc.SQLAlchemyError: when it does not.
        """
        with self.engine.connect() as conn:
            conn.execute(self._sa.select(self.table.c.key).limit(1)).first()
        return True

    def add(self, key: str, expires_at: datetime) -> bool:
        now = int(time.time())
        params = {"key": key, "expires_at": int(expires_at.timestamp()) + 1, "now": now}
        if self.transactional:
            session = self._db.session
            upsert = self._upsert(session.get_bind(clause=self.table).dialect)
            if upsert is not None:
                # Written, not committed: commit() (or save_token) commits it.
                return session.execute(upsert, params).first() is not None
        engine = self.engine
        upsert = self._upsert(engine.dialect)
        if upsert is None:
            first_use = self._insert_or_take_over(engine, params)
        else:
            with engine.begin() as conn:
                first_use = conn.execute(upsert, params).first() is not None
        self._purge_as_it_goes(now)
        return first_use

    def commit(self) -> None:
        """Commit the request's transaction, with the keys :meth:`add` wrote in it.

        The grant calls it once the token is saved and before answering; it
        does nothing unless the cache is ``transactional``.
        """
        if self.transactional:
            session = self._db.session
            if isinstance(session, self._scoped_session):
                session = session()  # this request's Session
            if session.in_transaction():  # else save_token already committed it
                session.commit()
            self._purge_as_it_goes(int(time.time()))

    def rollback(self) -> bool:
        """Roll back the request's transaction: the keys it wrote are not spent.

        :return: whether the keys :meth:`add` wrote were released; ``False``
            when they were committed at once (not ``transactional``, or a
            database without ``ON CONFLICT``).
        """
        if not self.transactional:
            return False
        session = self._db.session
        session.rollback()
        return self._upsert(session.get_bind(clause=self.table).dialect) is not None

    def _upsert(self, dialect: Any) -> Any:
        """The prepared insert-or-take-over-expired statement for ``dialect``.

        It returns the key when it inserted or took over a row and nothing on
        a live conflict (``RETURNING``: drivers do not all report a rowcount).
        """
        try:
            return self._upserts[dialect.name]
        except KeyError:
            pass
        sa, table = self._sa, self.table
        statement: SQLiteInsert | PostgreSQLInsert
        if dialect.name == "sqlite" and dialect.insert_returning:  # SQLite 3.35+
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            statement = sqlite_insert(table)
        elif dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as postgresql_insert

            statement = postgresql_insert(table)
        else:
            self._upserts[dialect.name] = None
            return None
        values = statement.values(key=sa.bindparam("key"), expires_at=sa.bindparam("expires_at"))
        upsert = values.on_conflict_do_update(
            index_elements=[table.c.key],
            set_={"expires_at": values.excluded.expires_at},
            where=table.c.expires_at <= sa.bindparam("now"),
        ).returning(table.c.key)
        self._upserts[dialect.name] = upsert
        return upsert

    def _insert_or_take_over(self, engine: Any, params: dict) -> bool:
        """Databases without ``ON CONFLICT``: insert, or take over an expired row."""
        sa, table = self._sa, self.table
        try:
            with engine.begin() as conn:
                conn.execute(
                    table.insert().values(key=params["key"], expires_at=params["expires_at"])
                )
        except sa.exc.IntegrityError:
            with engine.begin() as conn:  # present: a replay, unless it has expired
                taken = conn.execute(
                    table.update()
                    .where(table.c.key == params["key"], table.c.expires_at <= params["now"])
                    .values(expires_at=params["expires_at"])
                )
            return taken.rowcount == 1
        return True

    def _purge_as_it_goes(self, now: int) -> None:
        if time.monotonic() < self._next_purge:
            return
        try:
            self.purge(now)
        except self._sa.exc.SQLAlchemyError:
            # Housekeeping only: the key is recorded, the next add retries.
            log.warning("Purging expired replay-cache rows failed", exc_info=True)

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
