"""Trusted identity providers: entity ID to pinned signing certificates.

An assertion's key is chosen by its ``Issuer`` (:rfc:`7522#section-3`, item 1)
and never by the message: ``KeyInfo`` is only a hint that orders the pinned
certificates by SHA-256 fingerprint, so key rollover with several
certificates costs one signature check in the common case.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from datetime import datetime
from types import MappingProxyType

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree

from .errors import AssertionRejected
from .errors import ConfigurationError
from .xml import DS_NS
from .xml import MD_NS
from .xml import element_xpath
from .xml import parse_datetime
from .xml import parse_xml
from .xml import qname

__all__ = [
    "IdentityProvider",
    "TrustStore",
    "load_certificate",
    "load_metadata",
    "metadata_expired",
    "providers_from_metadata",
    "RecordingResolver",
    "client_not_allowed",
    "fingerprint",
]

_PEM = re.compile(r"-----BEGIN CERTIFICATE-----\s*(.+?)\s*-----END CERTIFICATE-----", re.DOTALL)
_WHITESPACE = re.compile(r"\s+")
_ENTITY_DESCRIPTOR = qname(MD_NS, "EntityDescriptor")
_ENTITIES_DESCRIPTOR = qname(MD_NS, "EntitiesDescriptor")
_IDP_SIGNING_CERTS = element_xpath(
    "md:IDPSSODescriptor/md:KeyDescriptor[not(@use) or @use='signing']"
    "/ds:KeyInfo/ds:X509Data/ds:X509Certificate",
    namespaces={"md": MD_NS, "ds": DS_NS},
)


def fingerprint(der: bytes) -> str:
    """SHA-256 fingerprint of a DER certificate, lowercase hex."""
    return hashlib.sha256(der).hexdigest()


@dataclass(frozen=True)
class IdentityProvider:
    """An IdP trusted to issue assertions: its entity ID and pinned certificates.

    :param entity_id: compared with the assertion's ``Issuer`` by simple string
        comparison (:rfc:`3986#section-6.2.1`).
    :param certificates: every certificate the IdP may sign with (several
        during a key rollover): ``x509.Certificate`` objects, or anything
        :func:`load_certificate` reads.
    :param client_ids: the OAuth clients that may present this IdP's
        assertions; ``None`` (the default): every client.
    :param valid_until: the ``validUntil`` of the metadata the keys come from
        (the earliest on the way from its root to this IdP); from then on the
        IdP's assertions are refused (``metadata_expired``). ``None``: no limit.
    :param source: where the keys come from: a metadata file or URL; ``None``
        for certificates configured inline. Reported by ``saml2-bearer check``.
    """

    entity_id: str
    certificates: tuple[x509.Certificate, ...]
    client_ids: frozenset[str] | None = None
    valid_until: datetime | None = None
    source: str | None = None
    _by_fingerprint: Mapping[str, x509.Certificate] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.entity_id:
            raise ConfigurationError("An identity provider needs a non-empty entity_id")
        if not self.certificates:
            raise ConfigurationError(
                f"Identity provider {self.entity_id!r} has no signing certificate"
            )
        certificates = tuple(load_certificate(cert) for cert in self.certificates)
        object.__setattr__(self, "certificates", certificates)
        if self.client_ids is not None:
            client_ids = self.client_ids
            if isinstance(client_ids, str) or not all(
                isinstance(client_id, str) and client_id for client_id in client_ids
            ):
                raise ConfigurationError(
                    f"Identity provider {self.entity_id!r}: client_ids must be a list of client IDs"
                )
            object.__setattr__(self, "client_ids", frozenset(client_ids))
        if self.valid_until is not None and (
            not isinstance(self.valid_until, datetime) or self.valid_until.tzinfo is None
        ):
            raise ConfigurationError(
                f"Identity provider {self.entity_id!r}: valid_until must be an aware datetime"
            )
        by_fingerprint = {
            fingerprint(cert.public_bytes(Encoding.DER)): cert for cert in certificates
        }
        object.__setattr__(self, "_by_fingerprint", MappingProxyType(by_fingerprint))

    @property
    def fingerprints(self) -> tuple[str, ...]:
        """SHA-256 fingerprints of the pinned certificates, in order."""
        return tuple(self._by_fingerprint)

    def check_client(self, client_id: str) -> bool:
        """Whether the client ``client_id`` may present this IdP's assertions."""
        return self.client_ids is None or client_id in self.client_ids

    def get_candidate_certificates(self, hint: str | None) -> tuple[x509.Certificate, ...]:
        """The pinned certificates, the one whose fingerprint is ``hint`` first.

        :param hint: fingerprint of the certificate the message names in its
            ``KeyInfo``; it only orders the pinned set and is never trusted.
        """
        first = self._by_fingerprint.get(hint) if hint else None
        if first is None or len(self.certificates) == 1:
            return self.certificates
        return (first, *(cert for cert in self.certificates if cert is not first))


class RecordingResolver:
    """An IdP lookup that remembers the provider it found, so the caller knows
    which IdP's keys verified the assertion without looking it up twice.

    :param resolve: ``resolve(issuer)``: the trusted IdP, or ``None``.
    """

    def __init__(self, resolve: Callable[[str], IdentityProvider | None]) -> None:
        self._resolve = resolve
        #: The last provider found, ``None`` before (or if none was).
        self.provider: IdentityProvider | None = None

    def __call__(self, issuer: str) -> IdentityProvider | None:
        provider = self._resolve(issuer)
        if provider is not None:
            self.provider = provider
        return provider


def metadata_expired(provider: IdentityProvider, now: datetime) -> AssertionRejected:
    """The refusal of an assertion whose IdP's metadata passed its ``validUntil``."""
    return AssertionRejected(
        "metadata_expired",
        "The metadata that names the IdP's keys has expired (validUntil)",
        issuer=provider.entity_id,
        valid_until=provider.valid_until.isoformat() if provider.valid_until else None,
        now=now.isoformat(),
        source=provider.source,
    )


def client_not_allowed(
    client_id: str, issuer: str, provider: IdentityProvider | None
) -> AssertionRejected:
    """The refusal of an assertion whose IdP does not serve the client ``client_id``."""
    return AssertionRejected(
        "client_not_allowed",
        "The IdP that issued the assertion is not bound to this client",
        client_id=client_id,
        issuer=issuer,
        allowed_client_ids=sorted(provider.client_ids or ()) if provider else [],
    )


class TrustStore:
    """The trusted identity providers, looked up by exact entity ID."""

    def __init__(self, providers: Iterable[IdentityProvider] = ()) -> None:
        self._providers: dict[str, IdentityProvider] = {}
        for provider in providers:
            if provider.entity_id in self._providers:
                raise ConfigurationError(
                    f"Identity provider {provider.entity_id!r} is configured twice"
                )
            self._providers[provider.entity_id] = provider

    def get(self, entity_id: str) -> IdentityProvider | None:
        """The provider whose entity ID is exactly ``entity_id``, or ``None``."""
        return self._providers.get(entity_id)

    def __len__(self) -> int:
        return len(self._providers)

    def __iter__(self) -> Iterator[IdentityProvider]:
        return iter(self._providers.values())


def load_certificate(
    value: str | bytes | os.PathLike[str] | x509.Certificate,
) -> x509.Certificate:
    """Load a certificate from PEM text, a PEM or DER file path, or bare Base64 DER.

    :raise ConfigurationError: when nothing usable is found.
    """
    if isinstance(value, x509.Certificate):
        return value
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, (str, bytes)):
        raise ConfigurationError(
            f"Not a certificate, PEM text or file path: a {type(value).__name__}"
        )
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    text = value.strip()
    if "-----BEGIN" not in text and os.path.isfile(text):
        try:
            with open(text, "rb") as handle:
                raw = handle.read()
        except OSError as exc:
            raise ConfigurationError(f"Cannot read certificate file {text!r}: {exc}") from exc
        if b"-----BEGIN" not in raw:
            return _load_der(raw, text)
        text = raw.decode("ascii", "replace")
    bodies = _PEM.findall(text)
    if len(bodies) > 1:
        # Silently pinning only the first would break a rollover bundle later.
        raise ConfigurationError(
            f"{len(bodies)} certificates in one value: list each one separately ({text[:60]!r})"
        )
    body = bodies[0] if bodies else text
    try:
        der = base64.b64decode(_WHITESPACE.sub("", body), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ConfigurationError(
            f"Not a certificate, PEM text or file path: {text[:60]!r}"
        ) from exc
    return _load_der(der, text[:60])


def _load_der(der: bytes, origin: str) -> x509.Certificate:
    try:
        return x509.load_der_x509_certificate(der)
    except ValueError as exc:
        raise ConfigurationError(f"Cannot load certificate from {origin!r}: {exc}") from exc


def load_metadata(source: str | bytes | os.PathLike[str]) -> list[IdentityProvider]:
    """Read identity providers from SAML metadata (a file path or the XML itself).

    Every ``EntityDescriptor`` with an ``IDPSSODescriptor`` becomes an
    :class:`IdentityProvider` carrying each signing certificate, so a
    metadata document published during a key rollover trusts both keys.

    :raise ConfigurationError: when the metadata is unreadable or names no IdP.
    """
    if isinstance(source, os.PathLike):
        source = os.fspath(source)
    if not isinstance(source, (str, bytes)):
        raise ConfigurationError(
            f"SAML metadata must be a file path or XML text, not a {type(source).__name__}"
        )
    if isinstance(source, str) and not source.lstrip().startswith("<"):
        try:
            with open(source, "rb") as handle:
                data = handle.read()
        except OSError as exc:
            raise ConfigurationError(f"Cannot read SAML metadata file {source!r}: {exc}") from exc
    else:
        data = source.encode("utf-8") if isinstance(source, str) else source
    try:
        root = parse_xml(data.strip())
    except AssertionRejected as exc:
        raise ConfigurationError(f"SAML metadata is not usable XML: {exc.message}") from exc
    path = source if isinstance(source, str) and not source.lstrip().startswith("<") else None
    return providers_from_metadata(root, source=path)


def providers_from_metadata(
    root: etree._Element, source: str | None = None
) -> list[IdentityProvider]:
    """The IdPs of a parsed metadata document (its signature, if any, already verified).

    Each IdP's ``valid_until`` is the earliest ``validUntil`` from the root
    down to its ``EntityDescriptor``.

    :param source: where the document comes from, recorded on each IdP.
    :raise ConfigurationError: when it names no IdP, or a ``validUntil`` is malformed.
    """
    if root.tag == _ENTITY_DESCRIPTOR:
        entities = [root]
    elif root.tag == _ENTITIES_DESCRIPTOR:
        entities = list(root.iter(_ENTITY_DESCRIPTOR))
    else:
        raise ConfigurationError("SAML metadata must be an EntityDescriptor or EntitiesDescriptor")
    providers = []
    for entity in entities:
        certs = _IDP_SIGNING_CERTS(entity)
        if not certs:
            continue
        entity_id = entity.get("entityID") or ""
        providers.append(
            IdentityProvider(
                entity_id=entity_id,
                certificates=tuple(load_certificate(cert.text or "") for cert in certs),
                valid_until=metadata_valid_until(entity),
                source=source,
            )
        )
    if not providers:
        raise ConfigurationError("SAML metadata names no IdP with a signing certificate")
    return providers


def metadata_valid_until(element: etree._Element) -> datetime | None:
    """The earliest ``validUntil`` of ``element`` and its metadata ancestors."""
    earliest = None
    node: etree._Element | None = element
    while node is not None:
        value = node.get("validUntil")
        if value is not None:
            instant = parse_metadata_instant(value, "validUntil")
            if earliest is None or instant < earliest:
                earliest = instant
        node = node.getparent()
    return earliest


def parse_metadata_instant(value: str, attribute: str) -> datetime:
    """An ``xs:dateTime`` of metadata, as an aware UTC datetime (no zone: UTC).

    :raise ConfigurationError: when it is not a date and time.
    """
    try:
        return parse_datetime(value)
    except ValueError:
        raise ConfigurationError(
            f"SAML metadata {attribute} is not an xs:dateTime: {value[:40]!r}"
        ) from None
