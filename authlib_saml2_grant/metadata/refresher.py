"""The background refresh: one daemon thread per process, and the trust store it feeds."""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Callable
from collections.abc import Iterable
from datetime import datetime
from datetime import timezone

from ..errors import ConfigurationError
from ..trust import IdentityProvider
from ..trust import TrustStore
from .source import MetadataSource

__all__ = ["REFRESHER", "MetadataRefresher", "RefreshingTrustStore"]

log = logging.getLogger(__name__)


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class MetadataRefresher:
    """One daemon thread that fetches every watched source when it is due.

    A process has one (:data:`REFRESHER`). A thread does not survive
    ``fork()`` (gunicorn forks its workers after the app is created): the
    child forgets it, and the next trust-store lookup starts a new one.
    Sources are watched weakly: an app that is gone is not refreshed.
    """

    #: The longest sleep between two looks at the schedule, in seconds.
    MAX_SLEEP = 60.0

    def __init__(self, clock: Callable[[], datetime] = _utcnow) -> None:
        self._clock = clock
        self._sources: weakref.WeakSet[MetadataSource] = weakref.WeakSet()
        self._after_fork()

    def _after_fork(self) -> None:
        self._wake = threading.Condition(threading.Lock())
        #: The refresher thread of this process, ``None`` before it starts.
        self.thread: threading.Thread | None = None
        for source in list(self._sources):
            source._after_fork()

    def watch(self, sources: Iterable[MetadataSource]) -> None:
        """Refresh ``sources`` from now on, and start the thread if needed."""
        with self._wake:
            self._sources.update(sources)
            self._wake.notify()
        self.start()

    def start(self) -> None:
        """Start this process's thread, unless it runs."""
        with self._wake:
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(
                    target=self._run, name="saml2-bearer-metadata", daemon=True
                )
                self.thread.start()

    def _run(self) -> None:
        while True:
            try:
                for source in self._due():
                    source.refresh()
            except Exception:  # never let the thread die
                log.exception("SAML metadata refresh failed unexpectedly")

    def _due(self) -> list[MetadataSource]:
        with self._wake:
            now = self._clock()
            sources = list(self._sources)
            due = [source for source in sources if source.next_refresh <= now]
            if not due:
                wait = self.MAX_SLEEP
                if sources:
                    soonest = min(source.next_refresh for source in sources)
                    wait = min(wait, max((soonest - now).total_seconds(), 0.05))
                self._wake.wait(wait)
            return due


#: This process's refresher.
REFRESHER = MetadataRefresher()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=REFRESHER._after_fork)


class RefreshingTrustStore(TrustStore):
    """A :class:`TrustStore` whose metadata-URL IdPs follow their refreshed documents.

    A lookup is one dict lookup (plus a check that this process's refresher
    thread exists); each accepted document replaces the dict whole. IdPs
    configured inline or by file win over an IdP of the same entity ID that
    a document starts naming later (logged as an ERROR, never merged).
    """

    def __init__(
        self,
        providers: Iterable[IdentityProvider],
        sources: Iterable[MetadataSource],
        refresher: MetadataRefresher = REFRESHER,
    ) -> None:
        super().__init__(providers)  # refuses an entity ID configured twice
        self._static = dict(self._providers)
        #: The ``metadata_url`` entries, in configuration order.
        self.sources = tuple(sources)
        named = set(self._static)
        for source in self.sources:
            if source.entity_id in named:
                raise ConfigurationError(
                    f"Identity provider {source.entity_id!r} is configured twice"
                )
            if source.entity_id:
                named.add(source.entity_id)
        self._refresher = refresher
        self._rebuild_lock = threading.Lock()
        for source in self.sources:
            source.subscribe(self._rebuild)

    @property
    def static_providers(self) -> tuple[IdentityProvider, ...]:
        """The IdPs configured inline or by metadata file (not by URL)."""
        return tuple(self._static.values())

    def load(self) -> None:
        """The start-up load of every source, then background refresh."""
        for source in self.sources:
            source.load()
        self._rebuild()
        self._refresher.watch(self.sources)

    def get(self, entity_id: str) -> IdentityProvider | None:
        if self._refresher.thread is None:  # a forked worker: no thread yet
            self._refresher.start()
        return self._providers.get(entity_id)

    def _rebuild(self) -> None:
        with self._rebuild_lock:
            providers = dict(self._static)
            for source in self.sources:
                snapshot = source.snapshot
                for provider in snapshot.providers if snapshot else ():
                    if provider.entity_id in providers:
                        log.error(
                            "SAML metadata %s names %r, which another entry of "
                            "SAML2_BEARER_IDENTITY_PROVIDERS already trusts: ignored there",
                            source.url,
                            provider.entity_id,
                        )
                        continue
                    providers[provider.entity_id] = provider
            self._providers = providers
