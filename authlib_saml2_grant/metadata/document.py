"""A SAML metadata document: verified, then read from what was signed.

With a ``metadata_certificate`` the document must carry an enveloped
signature over its root (``EntityDescriptor`` or ``EntitiesDescriptor``),
verified by :class:`~authlib_saml2_grant.signature.SignaturePolicy` (signxml,
the same algorithm allow-lists as assertions); every value is then read from
the element signxml proved signed. ``validUntil`` bounds each IdP's trust and
``cacheDuration`` says when to fetch again.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta
from datetime import timezone
from typing import Any

from lxml import etree

from ..errors import AssertionRejected
from ..errors import ConfigurationError
from ..signature import SignaturePolicy
from ..trust import IdentityProvider
from ..trust import load_certificate
from ..trust import providers_from_metadata
from ..xml import MD_NS
from ..xml import parse_xml
from ..xml import qname
from .fetch import MetadataError

__all__ = [
    "MetadataSnapshot",
    "parse_duration",
    "read_metadata",
    "read_metadata_file",
    "report_expired",
]

log = logging.getLogger(__name__)

_ENTITY = qname(MD_NS, "EntityDescriptor")
_ENTITIES = qname(MD_NS, "EntitiesDescriptor")
_DURATION = re.compile(
    r"P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?"
)


@dataclass(frozen=True)
class MetadataSnapshot:
    """An accepted metadata document, as the trust store uses it."""

    #: The IdPs it trusts (only ``entity_id``'s when the entry names one).
    providers: tuple[IdentityProvider, ...]
    #: The earliest ``validUntil`` of those IdPs, or ``None``.
    valid_until: datetime | None
    #: The shortest ``cacheDuration`` on the way to them, or ``None``.
    cache_duration: timedelta | None
    #: When it was fetched (for a backing file: when the file was written).
    loaded_at: datetime
    #: ``"network"`` or ``"file"`` (the backing file).
    origin: str


def read_metadata(
    data: bytes,
    *,
    source: str,
    signature_policy: SignaturePolicy,
    signer: IdentityProvider | None = None,
    entity_id: str | None = None,
    client_ids: Iterable[str] | None = None,
) -> tuple[tuple[IdentityProvider, ...], timedelta | None]:
    """The IdPs of a metadata document and its ``cacheDuration``.

    :param signer: the metadata signer's certificate as an IdP: the document
        must carry an enveloped signature over its root by that key, and
        every value is then read from what signxml proved signed.
    :param entity_id: keep only this IdP (one IdP of an aggregate).
    :raise MetadataError: when the document is unusable or not trusted.
    """
    try:
        root = parse_xml(data.strip())
    except AssertionRejected as exc:
        raise MetadataError(f"not usable XML: {exc.message}") from exc
    if root.tag not in (_ENTITY, _ENTITIES):
        raise MetadataError("the root is not an EntityDescriptor or EntitiesDescriptor")
    if signer is not None:
        try:
            root = signature_policy.verify(root, signer, tag=str(root.tag))
        except AssertionRejected as exc:
            raise MetadataError(f"signature refused ({exc.reason}): {exc.message}") from exc
    try:
        providers = providers_from_metadata(root, source=source)
    except ConfigurationError as exc:
        raise MetadataError(str(exc)) from exc
    if entity_id is not None:
        providers = [p for p in providers if p.entity_id == entity_id]
        if not providers:
            raise MetadataError(f"the metadata names no IdP {entity_id!r}")
    if client_ids is not None:
        allowed = frozenset(client_ids)
        providers = [dataclasses.replace(p, client_ids=allowed) for p in providers]
    return tuple(providers), _cache_duration(root, {p.entity_id for p in providers})


def read_metadata_file(
    path: Any, certificate: Any, signature_policy: SignaturePolicy
) -> list[IdentityProvider]:
    """The IdPs of a signed metadata file (a ``metadata`` entry with a
    ``metadata_certificate``), verified as a downloaded document is.

    :raise ConfigurationError: when it is unreadable, or not signed by ``certificate``.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise ConfigurationError("'metadata' with 'metadata_certificate' must be a file path")
    source = os.fspath(path)
    signer = IdentityProvider(f"metadata signer of {source}", (load_certificate(certificate),))
    try:
        with open(source, "rb") as handle:
            data = handle.read()
        providers, _ = read_metadata(
            data, source=source, signature_policy=signature_policy, signer=signer
        )
    except (OSError, MetadataError) as exc:
        raise ConfigurationError(f"SAML metadata {source!r} refused: {exc}") from exc
    return list(providers)


def report_expired(providers: Iterable[IdentityProvider], now: datetime | None = None) -> None:
    """Log an ERROR for each IdP whose metadata ``validUntil`` has passed."""
    now = now or datetime.now(timezone.utc)
    for provider in providers:
        if provider.valid_until is not None and provider.valid_until <= now:
            log.error(
                "SAML metadata %s expired at %s: the assertions of %r are refused "
                "(metadata_expired) until it is renewed",
                provider.source or "(inline)",
                provider.valid_until.isoformat(),
                provider.entity_id,
            )


def _cache_duration(root: etree._Element, entity_ids: set[str]) -> timedelta | None:
    """The shortest ``cacheDuration`` from the root down to the selected IdPs."""
    entities = [root] if root.tag == _ENTITY else list(root.iter(_ENTITY))
    durations = set()
    for entity in entities:
        if entity.get("entityID") not in entity_ids:
            continue
        node: etree._Element | None = entity
        while node is not None:
            value = node.get("cacheDuration")
            if value is not None:
                durations.add(value)
            node = node.getparent()
    parsed = [d for d in map(parse_duration, durations) if d is not None]
    return min(parsed) if parsed else None


def parse_duration(value: str) -> timedelta | None:
    """An ``xs:duration`` (``PT6H``, ``P1D``...) as a timedelta; ``None`` if
    malformed, negative or zero (a year is 365 days, a month 30)."""
    match = _DURATION.fullmatch(value.strip())
    if match is None or value.strip() in ("P", "PT") or value.strip().endswith("T"):
        return None
    years, months, weeks, days, hours, minutes = (int(g or 0) for g in match.groups()[:6])
    seconds = float(match.group(7) or 0)
    duration = timedelta(
        days=365 * years + 30 * months + 7 * weeks + days,
        hours=hours,
        minutes=minutes,
        seconds=seconds,
    )
    return duration if duration > timedelta(0) else None
