"""Flask settings (``SAML2_BEARER_*``) turned into ready objects.

:func:`load_settings` reads and validates every setting, failing with a
:class:`ConfigurationError` that names the bad key, and builds the
:class:`AssertionVerifier` (parsed certificates, compiled allow-lists) and
the replay cache. The :class:`~authlib_saml2_grant.SAML2Bearer` extension
calls it once per app, at start-up; requests only look the result up.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from werkzeug.utils import ImportStringError
from werkzeug.utils import import_string

from .errors import ConfigurationError
from .metadata import MetadataSource
from .metadata import RefreshingTrustStore
from .metadata import RefreshPolicy
from .metadata import metadata_source
from .metadata import read_metadata_file
from .metadata import report_expired
from .replay import MemoryReplayCache
from .replay import ReplayCache
from .replay import TransactionalReplayCache
from .replay import check_replay_cache
from .replay_redis import REDIS_URL_SCHEMES
from .replay_redis import RedisReplayCache
from .signature import DEFAULT_DIGEST_ALGORITHMS
from .signature import DEFAULT_SIGNATURE_ALGORITHMS
from .signature import SignaturePolicy
from .trust import IdentityProvider
from .trust import TrustStore
from .trust import load_certificate
from .trust import load_metadata
from .verifier import AssertionVerifier

__all__ = ["DEFAULTS", "OFFLINE_ACCESS", "Saml2BearerSettings", "load_settings"]

log = logging.getLogger(__name__)

#: Every setting with its default; ``SAML2_BEARER_AUDIENCES`` is required.
DEFAULTS: Mapping[str, Any] = {
    "SAML2_BEARER_AUDIENCES": None,
    "SAML2_BEARER_RECIPIENTS": None,
    "SAML2_BEARER_IDENTITY_PROVIDERS": (),
    "SAML2_BEARER_CLOCK_SKEW": 60,
    "SAML2_BEARER_MAX_ASSERTION_LIFETIME": 7200,
    "SAML2_BEARER_MAX_ASSERTION_SIZE": 131_072,
    "SAML2_BEARER_SIGNATURE_ALGORITHMS": DEFAULT_SIGNATURE_ALGORITHMS,
    "SAML2_BEARER_DIGEST_ALGORITHMS": DEFAULT_DIGEST_ALGORITHMS,
    "SAML2_BEARER_ISSUE_REFRESH_TOKEN": False,
    "SAML2_BEARER_REPLAY_CACHE": None,
    "SAML2_BEARER_CLAIMS": {},
    "SAML2_BEARER_METADATA_MIN_REFRESH": 300,
    "SAML2_BEARER_METADATA_MAX_REFRESH": 14_400,
    "SAML2_BEARER_METADATA_RETRY_MIN": 30,
    "SAML2_BEARER_METADATA_RETRY_MAX": 1_800,
    "SAML2_BEARER_METADATA_TIMEOUT": 10,
    "SAML2_BEARER_METADATA_MAX_SIZE": 16 << 20,
    "SAML2_BEARER_METADATA_CACHE_DIR": None,
    "SAML2_BEARER_MAX_REQUEST_SIZE": None,
    "SAML2_BEARER_MAX_REQUEST_PARAMETERS": 100,
    "SAML2_BEARER_RETRY_AFTER": 5,
    "SAML2_BEARER_LEGACY_CLIENT_ID": None,
}

#: The scope that asks for a refresh token (OpenID Connect Core 11).
OFFLINE_ACCESS = "offline_access"
_ENTRY_KEYS = frozenset(
    ("entity_id", "certificates", "metadata", "client_ids", "metadata_certificate")
)


@dataclass(frozen=True)
class Saml2BearerSettings:
    """The validated settings of one Flask app, as ready objects."""

    #: Verifies assertions: trusted IdPs, audiences, recipients, limits.
    verifier: AssertionVerifier
    #: Where spent assertions are recorded (``SAML2_BEARER_REPLAY_CACHE``).
    replay_cache: ReplayCache
    #: ``SAML2_BEARER_ISSUE_REFRESH_TOKEN``: ``False``, ``True`` or
    #: ``"offline_access"`` (only when the granted scope contains it).
    issue_refresh_token: bool | str
    #: ``SAML2_BEARER_LEGACY_CLIENT_ID``: the client a credential-less request
    #: of :class:`~.SAML2LegacyAssertionGrant` is issued to, or ``None``.
    legacy_client_id: str | None = None
    #: The replay cache again when it writes within the request's transaction
    #: (a :class:`~.replay.TransactionalReplayCache`), else ``None``; derived, once.
    transactional_cache: TransactionalReplayCache | None = field(init=False)
    #: ``SAML2_BEARER_MAX_REQUEST_SIZE``: the largest token request body, in bytes
    #: (default: 4 x ``SAML2_BEARER_MAX_ASSERTION_SIZE``); see :mod:`.limits`.
    max_request_size: int = 4 * 131_072
    #: ``SAML2_BEARER_MAX_REQUEST_PARAMETERS``: the most parameters a token request carries.
    max_request_parameters: int = 100
    #: ``SAML2_BEARER_RETRY_AFTER``: seconds in the ``Retry-After`` header of a 503
    #: ``temporarily_unavailable`` answer (a store is down); see :mod:`.outages`.
    retry_after: int = 5

    def __post_init__(self) -> None:
        cache = self.replay_cache
        transactional = cache if isinstance(cache, TransactionalReplayCache) else None
        object.__setattr__(self, "transactional_cache", transactional)


def load_settings(
    config: Mapping[str, Any],
    default_replay_cache: Callable[[], ReplayCache] = MemoryReplayCache,
    instance_path: str | None = None,
) -> Saml2BearerSettings:
    """Build :class:`Saml2BearerSettings` from a mapping such as ``app.config``.

    IdP metadata URLs are fetched now (:mod:`~.metadata`) and refreshed in
    the background afterwards.

    :param default_replay_cache: makes the cache used when
        ``SAML2_BEARER_REPLAY_CACHE`` is not set.
    :param instance_path: the app's instance folder; the backing files of
        metadata URLs go to its ``saml2-bearer-metadata`` folder unless
        ``SAML2_BEARER_METADATA_CACHE_DIR`` is set.
    :raise ConfigurationError: naming the first invalid setting.
    """

    def get(key: str) -> Any:
        return config.get(key, DEFAULTS[key])

    audiences = _strings(get("SAML2_BEARER_AUDIENCES"), "SAML2_BEARER_AUDIENCES")
    recipients = get("SAML2_BEARER_RECIPIENTS")
    if recipients is not None:
        recipients = _strings(recipients, "SAML2_BEARER_RECIPIENTS")
    policy = SignaturePolicy(
        signature_algorithms=tuple(
            _strings(get("SAML2_BEARER_SIGNATURE_ALGORITHMS"), "SAML2_BEARER_SIGNATURE_ALGORITHMS")
        ),
        digest_algorithms=tuple(
            _strings(get("SAML2_BEARER_DIGEST_ALGORITHMS"), "SAML2_BEARER_DIGEST_ALGORITHMS")
        ),
    )
    verifier = AssertionVerifier(
        trust=_identity_providers(
            get("SAML2_BEARER_IDENTITY_PROVIDERS"), policy, _metadata_options(get, instance_path)
        ),
        audiences=audiences,
        recipients=recipients,
        clock_skew=_seconds(get("SAML2_BEARER_CLOCK_SKEW"), "SAML2_BEARER_CLOCK_SKEW", 0, 3600),
        max_lifetime=_seconds(
            get("SAML2_BEARER_MAX_ASSERTION_LIFETIME"),
            "SAML2_BEARER_MAX_ASSERTION_LIFETIME",
            1,
            86_400,
        ),
        max_size=_seconds(
            get("SAML2_BEARER_MAX_ASSERTION_SIZE"), "SAML2_BEARER_MAX_ASSERTION_SIZE", 512, 10**7
        ),
        signature_policy=policy,
        claims=get("SAML2_BEARER_CLAIMS"),
    )
    if isinstance(verifier.trust, RefreshingTrustStore):
        verifier.trust.load()  # fetch now (else the backing file), then in the background
    elif not len(verifier.trust):
        log.warning(
            "SAML2_BEARER_IDENTITY_PROVIDERS is empty: every assertion is refused unless "
            "resolve_identity_provider() is overridden"
        )
    refresh = get("SAML2_BEARER_ISSUE_REFRESH_TOKEN")
    if not isinstance(refresh, bool) and refresh != OFFLINE_ACCESS:
        raise ConfigurationError(
            f"SAML2_BEARER_ISSUE_REFRESH_TOKEN must be True, False or {OFFLINE_ACCESS!r}"
        )
    cache = get("SAML2_BEARER_REPLAY_CACHE")
    return Saml2BearerSettings(
        verifier=verifier,
        replay_cache=default_replay_cache() if cache is None else _replay_cache(cache),
        issue_refresh_token=refresh,
        **_request_limits(get, verifier.max_size),
        legacy_client_id=_optional_string(
            get("SAML2_BEARER_LEGACY_CLIENT_ID"), "SAML2_BEARER_LEGACY_CLIENT_ID"
        ),
    )


def _request_limits(get: Callable[[str], Any], max_assertion_size: int) -> dict[str, int]:
    """``SAML2_BEARER_MAX_REQUEST_SIZE`` (at least the assertion size; default four
    times it), ``SAML2_BEARER_MAX_REQUEST_PARAMETERS`` and ``SAML2_BEARER_RETRY_AFTER``."""
    key = "SAML2_BEARER_MAX_REQUEST_SIZE"
    size = get(key)
    if size is None:
        size = 4 * max_assertion_size
    elif _seconds(size, key, 1024, 10**9) < max_assertion_size:
        raise ConfigurationError(
            f"{key} must be at least SAML2_BEARER_MAX_ASSERTION_SIZE ({max_assertion_size})"
        )
    parameters = "SAML2_BEARER_MAX_REQUEST_PARAMETERS"
    retry_after = "SAML2_BEARER_RETRY_AFTER"
    return {
        "max_request_size": size,
        "max_request_parameters": _seconds(get(parameters), parameters, 8, 10_000),
        "retry_after": _seconds(get(retry_after), retry_after, 1, 3600),
    }


def _strings(value: Any, key: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if value is None or not isinstance(value, (list, tuple, set, frozenset)):
        raise ConfigurationError(f"{key} must be a list of strings")
    values = list(value)
    if not values or not all(isinstance(v, str) and v for v in values):
        raise ConfigurationError(f"{key} must list at least one non-empty string")
    return values


def _optional_string(value: Any, key: str) -> str | None:
    if value is not None and (not isinstance(value, str) or not value):
        raise ConfigurationError(f"{key} must be a non-empty string or None")
    return value


def _seconds(value: Any, key: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigurationError(f"{key} must be an integer from {low} to {high}")
    return value


def _metadata_options(
    get: Callable[[str], Any], instance_path: str | None
) -> tuple[RefreshPolicy, str | None]:
    """The ``SAML2_BEARER_METADATA_*`` settings: the refresh policy and the backing-file folder."""
    names = {
        "min_interval": ("SAML2_BEARER_METADATA_MIN_REFRESH", 1, 30 * 86_400),
        "max_interval": ("SAML2_BEARER_METADATA_MAX_REFRESH", 1, 30 * 86_400),
        "retry_min": ("SAML2_BEARER_METADATA_RETRY_MIN", 1, 86_400),
        "retry_max": ("SAML2_BEARER_METADATA_RETRY_MAX", 1, 86_400),
        "timeout": ("SAML2_BEARER_METADATA_TIMEOUT", 1, 300),
        "max_size": ("SAML2_BEARER_METADATA_MAX_SIZE", 4096, 1 << 30),
    }
    policy = RefreshPolicy(
        **{field: _seconds(get(key), key, low, high) for field, (key, low, high) in names.items()}
    )
    key = "SAML2_BEARER_METADATA_CACHE_DIR"
    cache_dir = get(key)
    if cache_dir is not None and not isinstance(cache_dir, (str, os.PathLike)):
        raise ConfigurationError(f"{key} must be a folder path")
    if cache_dir is None and instance_path:
        cache_dir = os.path.join(instance_path, "saml2-bearer-metadata")
    return policy, None if cache_dir is None else os.fspath(cache_dir)


def _identity_providers(
    entries: Any, signature_policy: SignaturePolicy, metadata: tuple[RefreshPolicy, str | None]
) -> TrustStore:
    key = "SAML2_BEARER_IDENTITY_PROVIDERS"
    if isinstance(entries, (str, Mapping)) or not isinstance(entries, (list, tuple)):
        raise ConfigurationError(f"{key} must be a list")
    providers: list[IdentityProvider] = []
    sources: list[MetadataSource] = []
    for index, entry in enumerate(entries):
        where = f"{key}[{index}]"
        if isinstance(entry, IdentityProvider):
            providers.append(entry)
            continue
        if not isinstance(entry, Mapping):
            raise ConfigurationError(f"{where} must be a dict")
        try:
            if "metadata_url" in entry:  # fetched and refreshed by metadata.py
                policy, cache_dir = metadata
                sources.append(
                    metadata_source(
                        entry,
                        signature_policy=signature_policy,
                        refresh=policy,
                        cache_dir=cache_dir,
                    )
                )
                continue
            unknown = set(entry) - _ENTRY_KEYS
            if unknown:
                raise ConfigurationError(f"unknown keys {sorted(map(str, unknown))}")
            client_ids = entry.get("client_ids")
            if "metadata" in entry:
                providers.extend(
                    dataclasses.replace(provider, client_ids=client_ids)
                    for provider in _from_metadata(entry, signature_policy)
                )
                continue
            if "metadata_certificate" in entry:
                raise ConfigurationError(
                    "'metadata_certificate' needs 'metadata' or 'metadata_url'"
                )
            certificates = entry.get("certificates")
            if isinstance(certificates, str):
                certificates = [certificates]
            if not entry.get("entity_id") or not isinstance(entry["entity_id"], str):
                raise ConfigurationError("needs an 'entity_id' string (or 'metadata')")
            if not certificates or not isinstance(certificates, (list, tuple)):
                raise ConfigurationError("needs a non-empty 'certificates' list")
            providers.append(
                IdentityProvider(
                    entity_id=entry["entity_id"],
                    certificates=tuple(load_certificate(cert) for cert in certificates),
                    client_ids=client_ids,
                )
            )
        except ConfigurationError as exc:
            raise ConfigurationError(f"{where}: {exc}") from None
    try:
        if sources:
            return RefreshingTrustStore(providers, sources)
        return TrustStore(providers)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{key}: {exc}") from None


def _from_metadata(
    entry: Mapping[str, Any], signature_policy: SignaturePolicy
) -> list[IdentityProvider]:
    # An aggregate (federation) metadata file names many IdPs: with an
    # 'entity_id' only that one is trusted, never silently all of them.
    if "certificates" in entry:
        raise ConfigurationError("takes 'metadata' or 'certificates', not both")
    if "metadata_certificate" in entry:  # signed metadata: verified, read from what was signed
        providers = read_metadata_file(
            entry["metadata"], entry["metadata_certificate"], signature_policy
        )
    else:
        providers = load_metadata(entry["metadata"])
    report_expired(providers)
    if "entity_id" not in entry:
        return providers
    selected = [p for p in providers if p.entity_id == entry["entity_id"]]
    if not selected:
        raise ConfigurationError(f"the metadata names no IdP {entry['entity_id']!r}")
    return selected


def _replay_cache(value: Any) -> ReplayCache:
    key = "SAML2_BEARER_REPLAY_CACHE"
    if isinstance(value, str) and value.startswith(REDIS_URL_SCHEMES):
        try:
            value = RedisReplayCache(value)
        except ImportError as exc:
            raise ConfigurationError(
                f"{key}: a Redis URL needs redis-py: pip install 'authlib-saml2-grant[redis]'"
            ) from exc
        except ValueError as exc:  # redis-py's message names the bad part, not the password
            raise ConfigurationError(f"{key}: invalid Redis URL: {exc}") from None
    elif isinstance(value, str):
        try:
            value = import_string(value)
        except ImportStringError as exc:
            raise ConfigurationError(f"{key}: cannot import {value!r}") from exc
        if isinstance(value, type):
            try:
                value = value()
            except Exception as exc:
                raise ConfigurationError(
                    f"{key}: cannot instantiate {value.__name__} without arguments: {exc}"
                ) from exc
    return check_replay_cache(value, key)
