"""The immutable result of a successful verification."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from datetime import datetime
from types import MappingProxyType

__all__ = ["VerifiedAssertion"]


@dataclass(frozen=True)
class VerifiedAssertion:
    """A SAML 2.0 assertion that passed every check of :rfc:`7522#section-3`.

    Every value was read from the element signxml proved signed. The grant
    stores it on the request as ``request.saml2_assertion`` so that hooks,
    token generators and extensions can read it.
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
    #: The ``Recipient`` of the bearer confirmation that was accepted.
    recipient: str
    #: ``AuthnStatement/@AuthnInstant``, if the IdP included one.
    authn_instant: datetime | None = None
    #: ``AuthnContext/AuthnContextClassRef``, if any.
    authn_context_class_ref: str | None = None
    #: ``AuthnStatement/@SessionIndex``, if any.
    session_index: str | None = None
    #: Attribute name to its values, from every ``AttributeStatement``.
    attributes: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    #: Whether ``Conditions/OneTimeUse`` was present (always enforced anyway).
    one_time_use: bool = False

    def get_attribute(self, name: str, default: str | None = None) -> str | None:
        """The first value of an attribute, or ``default``."""
        values = self.attributes.get(name)
        return values[0] if values else default
