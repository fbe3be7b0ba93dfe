"""One metadata URL: its document in force, its refresh schedule and its backing file."""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
import weakref
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta
from datetime import timezone
from typing import Any

from ..errors import ConfigurationError
from ..signature import SignaturePolicy
from ..trust import IdentityProvider
from ..trust import load_certificate
from .document import MetadataSnapshot
from .document import read_metadata
from .fetch import HttpFetcher
from .fetch import MetadataError
from .fetch import check_metadata_url

__all__ = ["ENTRY_KEYS", "MetadataSource", "RefreshPolicy", "metadata_source"]

log = logging.getLogger(__name__)

#: The keys of a ``metadata_url`` entry of ``SAML2_BEARER_IDENTITY_PROVIDERS``.
ENTRY_KEYS = frozenset(
    ("metadata_url", "metadata_certificate", "entity_id", "client_ids", "metadata_cache")
)


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class RefreshPolicy:
    """When and how metadata documents are fetched: the ``SAML2_BEARER_METADATA_*`` settings."""

    #: Shortest time between two fetches of a document, in seconds.
    min_interval: float = 300
    #: Longest time between two fetches of a document, in seconds.
    max_interval: float = 14_400
    #: Wait after a first failure, in seconds; it doubles with each failure in a row.
    retry_min: float = 30
    #: Longest wait between attempts after failures, in seconds.
    retry_max: float = 1_800
    #: Seconds allowed for one fetch (connection, each read and the whole body).
    timeout: float = 10
    #: Largest accepted document, in bytes.
    max_size: int = 16 << 20

    def __post_init__(self) -> None:
        if self.min_interval > self.max_interval:
            raise ConfigurationError(
                "SAML2_BEARER_METADATA_MIN_REFRESH must not exceed "
                "SAML2_BEARER_METADATA_MAX_REFRESH"
            )
        if self.retry_min > self.retry_max:
            raise ConfigurationError(
                "SAML2_BEARER_METADATA_RETRY_MIN must not exceed SAML2_BEARER_METADATA_RETRY_MAX"
            )

    def next_refresh(
        self, now: datetime, cache_duration: timedelta | None, valid_until: datetime | None
    ) -> datetime:
        """When to fetch a document accepted at ``now`` again."""
        delays = [] if cache_duration is None else [cache_duration.total_seconds()]
        if valid_until is not None:
            delays.append((valid_until - now).total_seconds() * 0.75)
        delay = min(delays) if delays else self.max_interval
        return now + timedelta(seconds=min(self.max_interval, max(self.min_interval, delay)))

    def retry_at(self, now: datetime, failures: int) -> datetime:
        """When to try again after ``failures`` failed attempts in a row."""
        delay = self.retry_min * 2 ** min(max(failures - 1, 0), 32)
        return now + timedelta(seconds=min(self.retry_max, delay))


class MetadataSource:
    """One ``metadata_url`` entry: the current document, its schedule and backing file.

    :param url: where the document is published.
    :param signature_policy: the algorithm allow-lists its signature must use.
    :param refresh: the schedule and fetch limits.
    :param signer: the certificate that must sign the document; ``None``: no
        signature is required (the URL must then be https or loopback).
    :param entity_id: trust only this IdP of the document.
    :param client_ids: the clients its IdPs serve (``None``: every client).
    :param cache_path: the backing file; ``None``: none.
    :param fetch: ``fetch(url) -> bytes``; default: :class:`HttpFetcher`.
    :param clock: the current time, aware (tests pass their own).
    """

    def __init__(
        self,
        url: str,
        *,
        signature_policy: SignaturePolicy,
        refresh: RefreshPolicy | None = None,
        signer: Any = None,
        entity_id: str | None = None,
        client_ids: Iterable[str] | None = None,
        cache_path: str | None = None,
        fetch: Callable[[str], bytes] | None = None,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.url = check_metadata_url(url, signed=signer is not None)
        self.refresh_policy = refresh or RefreshPolicy()
        #: The certificate that signs the metadata, or ``None``.
        self.signer_certificate = None if signer is None else load_certificate(signer)
        self._signer = (
            None
            if self.signer_certificate is None
            else IdentityProvider(f"metadata signer of {url}", (self.signer_certificate,))
        )
        self.entity_id = entity_id
        self.client_ids = None if client_ids is None else frozenset(client_ids)
        self.cache_path = cache_path
        self._signature_policy = signature_policy
        policy = self.refresh_policy
        self._fetch = fetch or HttpFetcher(policy.timeout, policy.max_size)
        self._clock = clock
        #: The document in force, or ``None`` before one was accepted.
        self.snapshot: MetadataSnapshot | None = None
        #: When the refresher fetches it next.
        self.next_refresh: datetime = clock()
        #: Failed attempts in a row, and the last one's error.
        self.failures = 0
        self.last_error: str | None = None
        self.last_attempt: datetime | None = None
        self._lock = threading.Lock()
        self._subscribers: list[weakref.WeakMethod[Callable[[], None]]] = []

    def __repr__(self) -> str:
        return f"MetadataSource({self.url!r})"

    def subscribe(self, callback: Callable[[], None]) -> None:
        """Call the bound method ``callback`` after each accepted document (held weakly)."""
        self._subscribers.append(weakref.WeakMethod(callback))

    def load(self) -> bool:
        """The start-up load: from the network, else from the backing file.

        :return: whether a document is in force (it may have expired).
        """
        if self.refresh():
            return True
        with self._lock:
            if self._load_backing_file():
                return True
        log.error(
            "SAML metadata %s: no copy could be fetched or read from its backing file %s; "
            "its IdP is untrusted until a fetch succeeds (%s)",
            self.url,
            self.cache_path,
            self.last_error,
        )
        return False

    def refresh(self, now: datetime | None = None) -> bool:
        """Fetch, verify and accept the document now; a failure keeps the last good copy.

        :return: whether a new copy was accepted.
        """
        with self._lock:
            now = now or self._clock()
            self.last_attempt = now
            try:
                data = self._fetch(self.url)
                providers, cache_duration = self._read(data)
                valid_until = _earliest(providers)
                if valid_until is not None and valid_until <= now:
                    raise MetadataError(f"the document expired at {valid_until.isoformat()}")
            except Exception as exc:
                self._failed(now, exc)
                return False
            snapshot = MetadataSnapshot(providers, valid_until, cache_duration, now, "network")
            next_refresh = self.refresh_policy.next_refresh(now, cache_duration, valid_until)
            self._accept(snapshot, next_refresh)
            self._save(data)
            return True

    def _read(self, data: bytes) -> tuple[tuple[IdentityProvider, ...], timedelta | None]:
        return read_metadata(
            data,
            source=self.url,
            signature_policy=self._signature_policy,
            signer=self._signer,
            entity_id=self.entity_id,
            client_ids=self.client_ids,
        )

    def _failed(self, now: datetime, exc: Exception) -> None:
        self.failures += 1
        self.last_error = f"{type(exc).__name__}: {exc}"[:300]
        self.next_refresh = self.refresh_policy.retry_at(now, self.failures)
        current = self.snapshot
        usable = current is not None and (current.valid_until is None or current.valid_until > now)
        log.log(
            logging.WARNING if usable else logging.ERROR,
            "SAML metadata %s refused or unreachable (%d in a row): %s; %s; next attempt at %s",
            self.url,
            self.failures,
            self.last_error,
            "the last good copy stays in force" if usable else "no valid copy is in force",
            self.next_refresh.isoformat(),
            exc_info=not isinstance(exc, MetadataError),
        )

    def _accept(self, snapshot: MetadataSnapshot, next_refresh: datetime) -> None:
        previous = self.snapshot
        self.snapshot = snapshot
        self.next_refresh = next_refresh
        if snapshot.origin == "network":
            self.failures = 0
            self.last_error = None
        before = _fingerprints(previous)
        after = _fingerprints(snapshot)
        if previous is None or before != after:
            log.info(
                "SAML metadata %s accepted from the %s: IdPs %s, certificates added %s, "
                "removed %s, validUntil %s, next refresh at %s",
                self.url,
                snapshot.origin,
                sorted(p.entity_id for p in snapshot.providers),
                sorted(after - before),
                sorted(before - after),
                snapshot.valid_until.isoformat() if snapshot.valid_until else None,
                next_refresh.isoformat(),
            )
        for subscriber in self._subscribers:
            callback = subscriber()
            if callback is not None:
                callback()

    def _save(self, data: bytes) -> None:
        """Write the backing file atomically (a temporary file, then a rename)."""
        if self.cache_path is None:
            return
        directory = os.path.dirname(os.path.abspath(self.cache_path))
        try:
            os.makedirs(directory, exist_ok=True)
            fd, temporary = tempfile.mkstemp(prefix=".saml2-metadata-", dir=directory)
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.chmod(temporary, 0o644)
                os.replace(temporary, self.cache_path)
            except BaseException:
                os.unlink(temporary)
                raise
        except OSError as exc:
            log.warning("SAML metadata %s: cannot write %s: %s", self.url, self.cache_path, exc)

    def _load_backing_file(self) -> bool:
        if self.cache_path is None:
            return False
        try:
            with open(self.cache_path, "rb") as handle:
                data = handle.read()
            written = datetime.fromtimestamp(os.stat(self.cache_path).st_mtime, timezone.utc)
            providers, cache_duration = self._read(data)
        except FileNotFoundError:
            return False
        except (OSError, MetadataError) as exc:
            log.error(
                "SAML metadata %s: backing file %s refused: %s", self.url, self.cache_path, exc
            )
            return False
        valid_until = _earliest(providers)
        snapshot = MetadataSnapshot(providers, valid_until, cache_duration, written, "file")
        self._accept(snapshot, self.next_refresh)  # keep the retry schedule
        expired = valid_until is not None and valid_until <= self._clock()
        log.log(
            logging.ERROR if expired else logging.WARNING,
            "SAML metadata %s: using the copy saved at %s in %s%s",
            self.url,
            written.isoformat(),
            self.cache_path,
            " (expired: its IdP's assertions are refused)" if expired else "",
        )
        return True

    def _after_fork(self) -> None:
        self._lock = threading.Lock()  # the parent's may have been held by its thread


def _earliest(providers: Iterable[IdentityProvider]) -> datetime | None:
    instants = [p.valid_until for p in providers if p.valid_until is not None]
    return min(instants) if instants else None


def _fingerprints(snapshot: MetadataSnapshot | None) -> set[str]:
    if snapshot is None:
        return set()
    return {fp for provider in snapshot.providers for fp in provider.fingerprints}


def metadata_source(
    entry: Mapping[str, Any],
    *,
    signature_policy: SignaturePolicy,
    refresh: RefreshPolicy,
    cache_dir: str | None,
) -> MetadataSource:
    """The :class:`MetadataSource` of a ``metadata_url`` entry, checked.

    The backing file defaults to ``cache_dir``/``saml2-metadata-<hash of the URL>.xml``.

    :raise ConfigurationError: naming the bad key.
    """
    unknown = set(entry) - ENTRY_KEYS
    if unknown:
        raise ConfigurationError(f"unknown keys {sorted(map(str, unknown))} with 'metadata_url'")
    url = entry["metadata_url"]
    entity_id = entry.get("entity_id")
    if entity_id is not None and (not isinstance(entity_id, str) or not entity_id):
        raise ConfigurationError("'entity_id' must be a non-empty string")
    client_ids = entry.get("client_ids")
    if client_ids is not None and (
        isinstance(client_ids, str)
        or not isinstance(client_ids, (list, tuple, set, frozenset))
        or not all(isinstance(c, str) and c for c in client_ids)
    ):
        raise ConfigurationError("'client_ids' must be a list of client IDs")
    cache_path = entry.get("metadata_cache")
    if cache_path is not None and not isinstance(cache_path, (str, os.PathLike)):
        raise ConfigurationError("'metadata_cache' must be a file path")
    if cache_path is None and cache_dir is not None and isinstance(url, str):
        name = f"saml2-metadata-{hashlib.sha256(url.encode()).hexdigest()[:24]}.xml"
        cache_path = os.path.join(cache_dir, name)
    if cache_path is None:
        log.warning(
            "SAML metadata %s has no backing file (no instance path nor "
            "SAML2_BEARER_METADATA_CACHE_DIR): a restart during an outage of the IdP "
            "leaves it untrusted",
            url,
        )
    return MetadataSource(
        url,
        signature_policy=signature_policy,
        refresh=refresh,
        signer=entry.get("metadata_certificate"),
        entity_id=entity_id,
        client_ids=client_ids,
        cache_path=None if cache_path is None else os.fspath(cache_path),
    )
