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
from collections.abc import Callable
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from werkzeug.utils import ImportStringError
from werkzeug.utils import import_string

from .errors import ConfigurationError
from .replay import MemoryReplayCache
from .replay import ReplayCache
from .replay import TransactionalReplayCache
from .replay import check_replay_cache
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
    "SAML2_BEARER_LEGACY_CLIENT_ID": None,
}

#: The scope that asks for a refresh token (OpenID Connect Core 11).
OFFLINE_ACCESS = "offline_access"
_ENTRY_KEYS = frozenset(("entity_id", "certificates", "metadata", "client_ids"))


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

    def __post_init__(self) -> None:
        cache = self.replay_cache
        transactional = cache if isinstance(cache, TransactionalReplayCache) else None
        object.__setattr__(self, "transactional_cache", transactional)


def load_settings(
    config: Mapping[str, Any],
    default_replay_cache: Callable[[], ReplayCache] = MemoryReplayCache,
) -> Saml2BearerSettings:
    """Build :class:`Saml2BearerSettings` from a mapping such as ``app.config``.

    :param default_replay_cache: makes the cache used when
        ``SAML2_BEARER_REPLAY_CACHE`` is not set.
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
        trust=_identity_providers(get("SAML2_BEARER_IDENTITY_PROVIDERS")),
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
    if not len(verifier.trust):
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
        legacy_client_id=_optional_string(
            get("SAML2_BEARER_LEGACY_CLIENT_ID"), "SAML2_BEARER_LEGACY_CLIENT_ID"
        ),
    )


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


def _identity_providers(entries: Any) -> TrustStore:
    key = "SAML2_BEARER_IDENTITY_PROVIDERS"
    if isinstance(entries, (str, Mapping)) or not isinstance(entries, (list, tuple)):
        raise ConfigurationError(f"{key} must be a list")
    providers: list[IdentityProvider] = []
    for index, entry in enumerate(entries):
        where = f"{key}[{index}]"
        if isinstance(entry, IdentityProvider):
            providers.append(entry)
            continue
        if not isinstance(entry, Mapping):
            raise ConfigurationError(f"{where} must be a dict")
        try:
            unknown = set(entry) - _ENTRY_KEYS
            if unknown:
                raise ConfigurationError(f"unknown keys {sorted(map(str, unknown))}")
            client_ids = entry.get("client_ids")
            if "metadata" in entry:
                providers.extend(
                    dataclasses.replace(provider, client_ids=client_ids)
                    for provider in _from_metadata(entry)
                )
                continue
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
        return TrustStore(providers)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{key}: {exc}") from None


def _from_metadata(entry: Mapping[str, Any]) -> list[IdentityProvider]:
    # An aggregate (federation) metadata file names many IdPs: with an
    # 'entity_id' only that one is trusted, never silently all of them.
    if "certificates" in entry:
        raise ConfigurationError("takes 'metadata' or 'certificates', not both")
    providers = load_metadata(entry["metadata"])
    if "entity_id" not in entry:
        return providers
    selected = [p for p in providers if p.entity_id == entry["entity_id"]]
    if not selected:
        raise ConfigurationError(f"the metadata names no IdP {entry['entity_id']!r}")
    return selected


def _replay_cache(value: Any) -> ReplayCache:
    key = "SAML2_BEARER_REPLAY_CACHE"
    if isinstance(value, str):
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
