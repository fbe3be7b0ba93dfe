"""The immutable result of a successful verification, and its attributes."""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from datetime import datetime
from typing import Any

__all__ = ["Attributes", "Claims", "VerifiedAssertion"]


class _FrozenMapping(Mapping[str, Any]):
    """A read-only mapping over a tuple of ``(key, values)`` pairs: hashable,
    picklable, equal to a plain dict with the same items."""

    __slots__ = ("_items", "_index")

    def __init__(self, items: Iterable[tuple[str, tuple[str, ...]]] = ()) -> None:
        self._items: tuple[tuple[str, tuple[str, ...]], ...] = tuple(items)
        self._index = dict(self._items)

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(self._items)

    def __eq__(self, other: object) -> bool:
        if type(other) is type(self):
            return self._items == other._items
        return Mapping.__eq__(self, other)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self._items,))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({dict(self)!r})"


class Attributes(_FrozenMapping):
    """SAML attribute ``Name`` to its values, read-only, hashable and picklable.

    It holds plain tuples (no XML tree), in document order: a name that
    appears in several ``Attribute`` elements has all their values, in order.

    :param items: ``(name, values)`` pairs.
    """

    __slots__ = ()

    def __init__(self, items: Iterable[tuple[str, Iterable[str]]] = ()) -> None:
        merged: dict[str, tuple[str, ...]] = {}
        for name, values in items:
            merged[name] = merged.get(name, ()) + tuple(values)
        super().__init__(merged.items())

    def __getitem__(self, name: str) -> tuple[str, ...]:
        return self._index[name]


class Claims(_FrozenMapping):
    """Claim name to value, mapped from signed attributes by ``SAML2_BEARER_CLAIMS``.

    A claim whose attribute has one value is that string; several values are
    a list (a new list on each access: the mapping itself never changes). A
    claim whose attributes are all missing is absent. Hashable and picklable.

    :param items: ``(claim, values)`` pairs, values a non-empty tuple.
    """

    __slots__ = ()

    def __getitem__(self, claim: str) -> str | list[str]:
        values = self._index[claim]
        return values[0] if len(values) == 1 else list(values)


@dataclass(frozen=True)
class VerifiedAssertion:
    """A SAML 2.0 assertion that passed every check of :rfc:`7522#section-3`.

    Every value was read from the element signxml proved signed; nothing of
    the XML tree is kept, so the object is immutable, hashable and picklable.
    The grant stores it on the request as ``request.saml2_assertion`` so that
    hooks, token generators and extensions can read it.
    """

    #: The IdP entity ID (``saml:Issuer``).
    issuer: str
    #: The value of ``Subject/NameID``: the resource owner.
    subject: str
    #: ``NameID/@Format``, e.g. ``urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress``.
    name_id_format: str | None
    #: ``NameID/@NameQualifier``.
    name_qualifier: str | None
    #: ``NameID/@SPNameQualifier``.
    sp_name_qualifier: str | None
    #: ``Assertion/@ID``: with the issuer, the replay-cache key.
    assertion_id: str
    #: ``Assertion/@IssueInstant``.
    issue_instant: datetime
    #: The earliest ``NotOnOrAfter`` that bounds this use of the assertion.
    expires_at: datetime
    #: ``Conditions/@NotBefore``, if any.
    not_before: datetime | None
    #: The ``Audience`` values of every ``AudienceRestriction``.
    audiences: tuple[str, ...]
    #: The ``Recipient`` of the bearer confirmation that was accepted; ``None``
    #: when that confirmation had no ``SubjectConfirmationData`` (allowed by
    #: :rfc:`7522#section-3` item 5 when ``Conditions`` bounds the lifetime).
    recipient: str | None
    #: ``AuthnStatement/@AuthnInstant``, if the IdP included one.
    authn_instant: datetime | None = None
    #: ``AuthnContext/AuthnContextClassRef``, if any.
    authn_context_class_ref: str | None = None
    #: ``AuthnStatement/@SessionIndex``, if any.
    session_index: str | None = None
    #: Attribute name to its values, from every ``AttributeStatement``.
    attributes: Attributes = field(default_factory=Attributes)
    #: Whether ``Conditions/OneTimeUse`` was present (always enforced anyway).
    one_time_use: bool = False
    #: Claims mapped from :attr:`attributes` by ``SAML2_BEARER_CLAIMS``.
    claims: Claims = field(default_factory=Claims)

    def __post_init__(self) -> None:
        if not isinstance(self.attributes, Attributes):  # e.g. a dict in a test
            object.__setattr__(self, "attributes", Attributes(dict(self.attributes).items()))
        if not isinstance(self.claims, Claims):
            claims = Claims(
                (name, (value,) if isinstance(value, str) else tuple(value))
                for name, value in dict(self.claims).items()
            )
            object.__setattr__(self, "claims", claims)

    def get_attribute(self, name: str, default: str | None = None) -> str | None:
        """The first value of an attribute, or ``default``."""
        values = self.attributes.get(name)
        return values[0] if values else default
