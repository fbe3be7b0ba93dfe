"""The processing rules of :rfc:`7522#section-3`, applied to the signed Assertion.

Each rule is one function, named after what it checks; they read only the
element signxml proved signed, and only its direct children (never ``.//``,
never ``local-name()``). :func:`check_assertion` applies them in a fixed
order and builds the :class:`~authlib_saml2_grant.VerifiedAssertion`.
Replay (item 6) is recorded later, by the grant: see :mod:`~.replay`.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta
from typing import Any

from lxml import etree

from .assertion import Attributes
from .assertion import Claims
from .assertion import VerifiedAssertion
from .errors import AssertionRejected
from .xml import SAML_NS
from .xml import element_text
from .xml import parse_instant
from .xml import qname

__all__ = [
    "BEARER",
    "ClaimMap",
    "Clock",
    "Trace",
    "check_assertion",
    "check_issuer",
    "check_root",
    "passed",
]

#: ``SubjectConfirmation/@Method`` of a bearer confirmation (SAML profiles 3.3).
BEARER = "urn:oasis:names:tc:SAML:2.0:cm:bearer"
_ENTITY_FORMAT = "urn:oasis:names:tc:SAML:2.0:nameid-format:entity"

#: A callable told of each check that passed: ``trace(check, details)``.
Trace = Callable[[str, dict[str, Any]], None]

_ISSUER = qname(SAML_NS, "Issuer")
_CONDITIONS = qname(SAML_NS, "Conditions")
_SUBJECT = qname(SAML_NS, "Subject")
_NAME_ID = qname(SAML_NS, "NameID")
_BASE_ID = qname(SAML_NS, "BaseID")
_ENCRYPTED_ID = qname(SAML_NS, "EncryptedID")
_CONFIRMATION = qname(SAML_NS, "SubjectConfirmation")
_CONFIRMATION_DATA = qname(SAML_NS, "SubjectConfirmationData")
_AUDIENCE_RESTRICTION = qname(SAML_NS, "AudienceRestriction")
_AUDIENCE = qname(SAML_NS, "Audience")
_ONE_TIME_USE = qname(SAML_NS, "OneTimeUse")
_PROXY_RESTRICTION = qname(SAML_NS, "ProxyRestriction")
_AUTHN_STATEMENT = qname(SAML_NS, "AuthnStatement")
_AUTHN_CONTEXT = qname(SAML_NS, "AuthnContext")
_AUTHN_CLASS_REF = qname(SAML_NS, "AuthnContextClassRef")
_ATTRIBUTE_STATEMENT = qname(SAML_NS, "AttributeStatement")
_ATTRIBUTE = qname(SAML_NS, "Attribute")
_ATTRIBUTE_VALUE = qname(SAML_NS, "AttributeValue")
#: What a ``SubjectConfirmation`` may hold besides ``SubjectConfirmationData``.
_CONFIRMATION_IDENTIFIERS = frozenset((_NAME_ID, _BASE_ID, _ENCRYPTED_ID))

_Children = dict[Any, list[etree._Element]]
#: ``SAML2_BEARER_CLAIMS`` made ready: (claim, attribute names tried in order) pairs.
ClaimMap = tuple[tuple[str, tuple[str, ...]], ...]


@dataclass(frozen=True)
class Clock:
    """The time of one verification and its tolerances (:rfc:`7522#section-3`, item 4)."""

    now: datetime
    skew: timedelta
    max_lifetime: timedelta

    def check_window(
        self,
        not_before: datetime | None,
        not_on_or_after: datetime | None,
        issue_instant: datetime,
        where: str,
    ) -> None:
        """A ``NotBefore``/``NotOnOrAfter`` window, with skew and a maximum lifetime."""
        conditions = where == "Conditions"
        if not_before and not_on_or_after and not_before >= not_on_or_after:
            raise AssertionRejected(
                "time_window_invalid",
                f"{where} NotBefore is not before NotOnOrAfter",
                not_before=not_before.isoformat(),
                not_on_or_after=not_on_or_after.isoformat(),
            )
        if not_before and not_before > self.now + self.skew:
            raise AssertionRejected(
                "not_yet_valid" if conditions else "confirmation_not_yet_valid",
                f"{where} NotBefore is in the future",
                not_before=not_before.isoformat(),
                now=self.now.isoformat(),
                clock_skew=self.skew.total_seconds(),
            )
        if not_on_or_after is None:
            return
        if self.now - self.skew >= not_on_or_after:  # not NotOnOrAfter + skew: year 9999
            raise AssertionRejected(
                "expired" if conditions else "confirmation_expired",
                f"{where} NotOnOrAfter has passed",
                not_on_or_after=not_on_or_after.isoformat(),
                now=self.now.isoformat(),
                clock_skew=self.skew.total_seconds(),
            )
        if not_on_or_after - issue_instant > self.max_lifetime:
            raise AssertionRejected(
                "lifetime_too_long",
                f"{where} NotOnOrAfter is too far after IssueInstant",
                issue_instant=issue_instant.isoformat(),
                not_on_or_after=not_on_or_after.isoformat(),
                max_lifetime=self.max_lifetime.total_seconds(),
            )


def passed(trace: Trace | None, check: str, details: Callable[[], dict[str, Any]]) -> None:
    """Tell ``trace`` that ``check`` passed; details are built only when tracing."""
    if trace is not None:
        trace(check, details())


def check_assertion(
    signed: etree._Element,
    issuer: str,
    audiences: frozenset[str],
    recipients: frozenset[str],
    clock: Clock,
    trace: Trace | None = None,
    claim_map: ClaimMap = (),
) -> VerifiedAssertion:
    """Apply every rule of :rfc:`7522#section-3` to the signed Assertion.

    :param signed: the Assertion signxml proved signed.
    :param issuer: the entity ID of the IdP whose key verified it.
    :param claim_map: how claims are read from the signed attributes.
    :raise AssertionRejected: with the reason of the first rule that failed.
    """
    children = child_groups(signed)
    signed_issuer = check_issuer(children)
    if signed_issuer != issuer:  # item 1: the Issuer that selected the key
        raise AssertionRejected(
            "signature_reference_invalid",
            "The signed Issuer differs from the one that selected the key",
            expected=issuer,
            actual=signed_issuer[:200],
        )
    conditions = _single(children, _CONDITIONS, "conditions_missing", "Conditions")
    restrictions, one_time_use = _check_condition_types(conditions)
    passed(
        trace,
        "conditions",
        lambda: {"restrictions": len(restrictions), "one_time_use": one_time_use},
    )
    issue_instant, not_before, not_on_or_after = _check_validity(signed, conditions, clock)
    passed(
        trace,
        "time",
        lambda: {
            "issue_instant": _iso(issue_instant),
            "not_before": _iso(not_before),
            "not_on_or_after": _iso(not_on_or_after),
            "now": _iso(clock.now),
            "clock_skew": clock.skew.total_seconds(),
            "max_lifetime": clock.max_lifetime.total_seconds(),
        },
    )
    found_audiences = _check_audiences(restrictions, audiences)
    passed(
        trace, "audience", lambda: {"found": list(found_audiences), "accepted": sorted(audiences)}
    )
    subject = child_groups(_single(children, _SUBJECT, "subject_missing", "Subject"))
    name_id, subject_value = _check_subject(subject)
    passed(trace, "subject", lambda: {"name_id": subject_value, "format": name_id.get("Format")})
    recipient, confirmed_until = _check_confirmation(
        subject, issue_instant, not_on_or_after, recipients, clock
    )
    passed(
        trace,
        "subject_confirmation",
        lambda: {"recipient": recipient, "not_on_or_after": _iso(confirmed_until)},
    )
    authn = children.get(_AUTHN_STATEMENT)
    statement = authn[0] if authn else None
    records = _read_attribute_records(children.get(_ATTRIBUTE_STATEMENT, ()), bool(claim_map))
    return VerifiedAssertion(
        issuer=issuer,
        subject=subject_value,
        name_id_format=name_id.get("Format"),
        name_qualifier=name_id.get("NameQualifier"),
        sp_name_qualifier=name_id.get("SPNameQualifier"),
        assertion_id=signed.get("ID", ""),
        issue_instant=issue_instant,
        expires_at=min(filter(None, (not_on_or_after, confirmed_until))),
        not_before=not_before,
        audiences=found_audiences,
        recipient=recipient,
        authn_instant=_read_authn_instant(statement),
        authn_context_class_ref=_read_authn_class(statement),
        session_index=None if statement is None else statement.get("SessionIndex"),
        attributes=Attributes((name, values) for name, _, values in records),
        one_time_use=one_time_use,
        claims=_map_claims(records, claim_map),
    )


def child_groups(element: etree._Element) -> _Children:
    """Direct children grouped by tag: one pass, no descendant search."""
    groups: _Children = {}
    for child in element:
        groups.setdefault(child.tag, []).append(child)
    return groups


def check_root(element: etree._Element, tag: str, reason: str) -> None:
    """Item 11 (SAML core 2.3.3, 3.2.2): the element expected, of ``Version``
    2.0, with an ``ID``; else ``reason``, ``version_unsupported`` or ``id_missing``."""
    name = tag.rpartition("}")[2]
    if element.tag != tag:
        raise AssertionRejected(
            reason,
            f"The root element is not a SAML 2.0 {name}",
            expected=tag,
            actual=str(element.tag)[:200],
        )
    if element.get("Version") != "2.0":
        raise AssertionRejected(
            "version_unsupported",
            f"The {name} Version is not 2.0",
            actual=element.get("Version"),
        )
    if not element.get("ID"):
        raise AssertionRejected("id_missing", f"The {name} has no ID attribute")


def check_issuer(children: _Children) -> str:
    """Item 1: one non-empty ``Issuer``, of the entity format if it names one."""
    issuer = _single(children, _ISSUER, "issuer_missing", "Issuer")
    value = element_text(issuer)
    if not value or value != value.strip():
        raise AssertionRejected("issuer_missing", "The Issuer is empty, padded or contains markup")
    issuer_format = issuer.get("Format")
    if issuer_format is not None and issuer_format != _ENTITY_FORMAT:
        raise AssertionRejected(
            "issuer_unknown",
            "The Issuer Format is not the entity format",
            actual=issuer_format[:200],
        )
    return value


def _check_condition_types(
    conditions: etree._Element,
) -> tuple[list[etree._Element], bool]:
    """Item 11 (SAML core 2.5.1.1): refuse conditions we do not understand."""
    restrictions: list[etree._Element] = []
    one_time_use = False
    for condition in conditions:
        tag = condition.tag
        if not isinstance(tag, str):
            continue  # a comment or processing instruction
        if tag == _AUDIENCE_RESTRICTION:
            restrictions.append(condition)
        elif tag == _ONE_TIME_USE:
            one_time_use = True
        elif tag != _PROXY_RESTRICTION:
            raise AssertionRejected(
                "condition_unsupported",
                "The Conditions contain a condition this server does not understand",
                condition=tag[:200],
            )
    return restrictions, one_time_use


def _check_validity(
    signed: etree._Element, conditions: etree._Element, clock: Clock
) -> tuple[datetime, datetime | None, datetime | None]:
    """Item 4 and SAML core 2.5.1.2: ``IssueInstant`` and the ``Conditions`` window."""
    issue_instant = parse_instant(signed.get("IssueInstant"), "IssueInstant")
    if issue_instant is None:
        raise AssertionRejected("issue_instant_invalid", "The assertion has no IssueInstant")
    if issue_instant > clock.now + clock.skew:
        raise AssertionRejected(
            "issued_in_future",
            "The assertion IssueInstant is in the future",
            issue_instant=issue_instant.isoformat(),
            now=clock.now.isoformat(),
            clock_skew=clock.skew.total_seconds(),
        )
    not_before = parse_instant(conditions.get("NotBefore"), "Conditions/@NotBefore")
    not_on_or_after = parse_instant(conditions.get("NotOnOrAfter"), "Conditions/@NotOnOrAfter")
    clock.check_window(not_before, not_on_or_after, issue_instant, "Conditions")
    return issue_instant, not_before, not_on_or_after


def _check_audiences(
    restrictions: list[etree._Element], audiences: frozenset[str]
) -> tuple[str, ...]:
    """Item 2: every ``AudienceRestriction`` names us (exact string match)."""
    if not restrictions:
        raise AssertionRejected(
            "audience_missing",
            "The Conditions have no AudienceRestriction",
            accepted=sorted(audiences),
        )
    found: list[str] = []
    for restriction in restrictions:
        values = [element_text(a) for a in restriction if a.tag == _AUDIENCE]
        named = [v for v in values if v]
        found.extend(named)
        if not audiences.intersection(named):
            raise AssertionRejected(
                "audience_mismatch",
                "An AudienceRestriction does not include this authorization server",
                found=named[:10],
                accepted=sorted(audiences),
            )
    return tuple(found)


def _check_subject(subject: _Children) -> tuple[etree._Element, str]:
    """Item 3: one ``NameID`` whose whole text is the non-empty subject."""
    if _BASE_ID in subject or _ENCRYPTED_ID in subject:
        raise AssertionRejected(
            "subject_malformed", "The Subject uses BaseID or EncryptedID instead of NameID"
        )
    name_id = _single(subject, _NAME_ID, "subject_missing", "NameID")
    value = element_text(name_id)
    if value is None:
        raise AssertionRejected(
            "subject_malformed",
            "The NameID contains markup (comment, processing instruction or element)",
        )
    if not value.strip():
        raise AssertionRejected("subject_missing", "The NameID is empty")
    return name_id, value


def _check_confirmation(
    subject: _Children,
    issue_instant: datetime,
    conditions_expiry: datetime | None,
    recipients: frozenset[str],
    clock: Clock,
) -> tuple[str | None, datetime | None]:
    """Items 3 and 5: one bearer confirmation, to our token endpoint, valid now."""
    first_failure: AssertionRejected | None = None
    confirmations = subject.get(_CONFIRMATION, ())
    for confirmation in confirmations:
        if confirmation.get("Method") != BEARER:
            continue
        try:
            return _check_bearer(confirmation, issue_instant, conditions_expiry, recipients, clock)
        except AssertionRejected as exc:
            first_failure = first_failure or exc
    if first_failure is not None:
        raise first_failure
    raise AssertionRejected(
        "subject_confirmation_missing",
        "The Subject has no bearer SubjectConfirmation",
        methods=[c.get("Method") for c in confirmations][:5],
        bearer_seen=False,
    )


def _check_bearer(
    confirmation: etree._Element,
    issue_instant: datetime,
    conditions_expiry: datetime | None,
    recipients: frozenset[str],
    clock: Clock,
) -> tuple[str | None, datetime | None]:
    """One bearer confirmation: its ``SubjectConfirmationData`` (Recipient, no
    InResponseTo, its window), which item 5 lets it omit only when
    ``Conditions/@NotOnOrAfter`` bounds the assertion."""
    found = child_groups(confirmation)
    if conditions_expiry is not None and not any(
        isinstance(tag, str) and tag not in _CONFIRMATION_IDENTIFIERS for tag in found
    ):
        return None, None  # no data at all: nothing unknown stands in for it
    data = _single(
        found,
        _CONFIRMATION_DATA,
        "subject_confirmation_missing",
        "SubjectConfirmationData",
    )
    recipient = data.get("Recipient")
    if recipient is None or recipient not in recipients:
        raise AssertionRejected(
            "recipient_mismatch",
            "The bearer confirmation Recipient is not this token endpoint",
            actual=None if recipient is None else recipient[:200],
            accepted=sorted(recipients),
        )
    in_response_to = data.get("InResponseTo")
    if in_response_to is not None:
        raise AssertionRejected(
            "in_response_to_present",
            "The bearer confirmation answers a browser SSO request (InResponseTo)",
            in_response_to=in_response_to[:200],
        )
    not_on_or_after = parse_instant(
        data.get("NotOnOrAfter"), "SubjectConfirmationData/@NotOnOrAfter"
    )
    if not_on_or_after is None:
        raise AssertionRejected(
            "confirmation_expired", "The bearer confirmation has no NotOnOrAfter"
        )
    not_before = parse_instant(data.get("NotBefore"), "SubjectConfirmationData/@NotBefore")
    clock.check_window(not_before, not_on_or_after, issue_instant, "SubjectConfirmationData")
    return recipient, not_on_or_after


def _single(children: _Children, tag: str, reason: str, name: str) -> etree._Element:
    found = children.get(tag, ())
    if len(found) != 1:
        raise AssertionRejected(
            reason, f"Expected exactly one {name} element", element=name, count=len(found)
        )
    return found[0]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _read_authn_instant(statement: etree._Element | None) -> datetime | None:
    if statement is None:
        return None
    return parse_instant(statement.get("AuthnInstant"), "AuthnStatement/@AuthnInstant")


def _read_authn_class(statement: etree._Element | None) -> str | None:
    for context in () if statement is None else statement:
        if context.tag == _AUTHN_CONTEXT:
            for ref in context:
                if ref.tag == _AUTHN_CLASS_REF:
                    return element_text(ref)
    return None


def _read_attribute_records(
    statements: Iterable[etree._Element], friendly_names: bool
) -> list[tuple[str, str | None, tuple[str, ...]]]:
    """``(Name, FriendlyName, values)`` of each ``Attribute`` of the signed
    statements; ``FriendlyName`` is read only when claims may match it."""
    records = []
    for statement in statements:
        for attribute in statement.iterchildren(_ATTRIBUTE):
            name = attribute.get("Name")
            if name:
                friendly_name = attribute.get("FriendlyName") if friendly_names else None
                values = [_value_text(v) for v in attribute.iterchildren(_ATTRIBUTE_VALUE)]
                records.append((name, friendly_name, tuple(values)))
    return records


def _map_claims(
    records: list[tuple[str, str | None, tuple[str, ...]]], claim_map: ClaimMap
) -> Claims:
    """Each claim from the first of its attribute names present, matched against
    ``Name`` first, then ``FriendlyName``; a claim with no value is absent."""
    if not claim_map or not records:
        return _NO_CLAIMS
    by_name: dict[str, tuple[str, ...]] = {}
    by_friendly_name: dict[str, tuple[str, ...]] = {}
    for name, friendly_name, values in records:
        by_name[name] = by_name.get(name, ()) + values
        if friendly_name:
            by_friendly_name[friendly_name] = by_friendly_name.get(friendly_name, ()) + values
    claims = []
    for claim, names in claim_map:
        for name in names:
            found = by_name.get(name) or by_friendly_name.get(name)
            if found:
                claims.append((claim, found))
                break
    return Claims(claims)


_NO_CLAIMS = Claims()


def _value_text(value: etree._Element) -> str:
    if not len(value):
        return value.text or ""
    # lxml-stubs 0.5 type itertext() as str | bytes; lxml yields str.
    return "".join(value.itertext())  # type: ignore[arg-type]
