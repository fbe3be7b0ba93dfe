"""The :rfc:`7522#section-3` pipeline: assertion parameter in, verified assertion out.

Order matters and is fixed: size, decoding, one hardened parse, root shape,
key selection by Issuer, signature (signxml), then every processing rule of
section 3 on the signed element only, with direct-child paths. Replay is the
last step and is separate (:meth:`AssertionVerifier.consume`), so the grant
records an assertion as used only once the client and user checks passed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from datetime import datetime
from datetime import timedelta
from datetime import timezone
from typing import Any

from lxml import etree

from .assertion import VerifiedAssertion
from .errors import AssertionRejected
from .errors import ConfigurationError
from .replay import MemoryReplayCache
from .replay import ReplayCache
from .replay import replay_key
from .signature import SignaturePolicy
from .trust import IdentityProvider
from .trust import TrustStore
from .xml import SAML_NS
from .xml import check_size
from .xml import decode_assertion
from .xml import element_text
from .xml import parse_instant
from .xml import parse_xml
from .xml import qname

__all__ = ["AssertionVerifier", "BEARER", "Trace"]

log = logging.getLogger(__name__)

#: ``SubjectConfirmation/@Method`` of a bearer confirmation (SAML profiles 3.3).
BEARER = "urn:oasis:names:tc:SAML:2.0:cm:bearer"
_ENTITY_FORMAT = "urn:oasis:names:tc:SAML:2.0:nameid-format:entity"

#: A callable told of each check that passed: ``trace(check, details)``.
Trace = Callable[[str, dict], None]


def _tag(name: str) -> str:
    return qname(SAML_NS, name)


_ASSERTION = _tag("Assertion")
_ENCRYPTED_ASSERTION = _tag("EncryptedAssertion")
_ISSUER = _tag("Issuer")
_CONDITIONS = _tag("Conditions")
_SUBJECT = _tag("Subject")
_NAME_ID = _tag("NameID")
_BASE_ID = _tag("BaseID")
_ENCRYPTED_ID = _tag("EncryptedID")
_CONFIRMATION = _tag("SubjectConfirmation")
_CONFIRMATION_DATA = _tag("SubjectConfirmationData")
_AUDIENCE_RESTRICTION = _tag("AudienceRestriction")
_AUDIENCE = _tag("Audience")
_ONE_TIME_USE = _tag("OneTimeUse")
_PROXY_RESTRICTION = _tag("ProxyRestriction")
_AUTHN_STATEMENT = _tag("AuthnStatement")
_AUTHN_CONTEXT = _tag("AuthnContext")
_AUTHN_CLASS_REF = _tag("AuthnContextClassRef")
_ATTRIBUTE_STATEMENT = _tag("AttributeStatement")
_ATTRIBUTE = _tag("Attribute")
_ATTRIBUTE_VALUE = _tag("AttributeValue")


def _children(element: etree._Element) -> dict[Any, list[etree._Element]]:
    """Direct children grouped by tag: one pass, no descendant search."""
    groups: dict[Any, list[etree._Element]] = {}
    for child in element:
        groups.setdefault(child.tag, []).append(child)
    return groups


class AssertionVerifier:
    """Verifies SAML 2.0 bearer assertions for one authorization server.

    All configuration is parsed once, here; :meth:`verify` parses nothing but
    the assertion.

    :param trust: the trusted identity providers.
    :param audiences: our identities accepted as ``Audience``.
    :param recipients: accepted ``Recipient`` values; default: ``audiences``.
    :param clock_skew: seconds of tolerated clock difference.
    :param max_lifetime: longest accepted window, in seconds, from
        ``IssueInstant`` to any ``NotOnOrAfter``.
    :param max_size: largest accepted ``assertion`` parameter, in bytes.
    :param signature_policy: allowed signature and digest algorithms.
    :param replay_cache: where used assertions are recorded.
    """

    def __init__(
        self,
        trust: TrustStore | Iterable[IdentityProvider],
        audiences: Iterable[str],
        recipients: Iterable[str] | None = None,
        clock_skew: int = 60,
        max_lifetime: int = 7200,
        max_size: int = 131_072,
        signature_policy: SignaturePolicy | None = None,
        replay_cache: ReplayCache | None = None,
    ) -> None:
        self.trust = trust if isinstance(trust, TrustStore) else TrustStore(trust)
        self.audiences = frozenset(audiences)
        if not self.audiences or not all(isinstance(a, str) and a for a in self.audiences):
            raise ConfigurationError("SAML2_BEARER_AUDIENCES must list at least one audience")
        self.recipients = self.audiences if recipients is None else frozenset(recipients)
        if not self.recipients or not all(isinstance(r, str) and r for r in self.recipients):
            raise ConfigurationError("SAML2_BEARER_RECIPIENTS must list at least one recipient")
        self.clock_skew = timedelta(seconds=clock_skew)
        self.max_lifetime = timedelta(seconds=max_lifetime)
        self.max_size = max_size
        self.signature_policy = signature_policy or SignaturePolicy()
        if replay_cache is None:
            replay_cache = MemoryReplayCache()
        self.replay_cache = replay_cache

    # -- entry points -------------------------------------------------------

    def verify(
        self,
        assertion: str,
        *,
        audiences: Iterable[str] | None = None,
        recipients: Iterable[str] | None = None,
        resolve_identity_provider: Callable[[str], IdentityProvider | None] | None = None,
        now: datetime | None = None,
        trace: Trace | None = None,
    ) -> VerifiedAssertion:
        """Verify the ``assertion`` request parameter (base64url or Base64).

        Keyword arguments override the configured audiences, recipients and
        IdP lookup for this call. Replay is not checked: see :meth:`consume`.

        :raise AssertionRejected: with the reason of the first failed check.
        """
        check_size(len(assertion), self.max_size)
        _passed(trace, "size", lambda: {"size": len(assertion), "limit": self.max_size})
        data = decode_assertion(assertion, self.max_size)
        _passed(trace, "decoding", lambda: {"bytes": len(data)})
        return self._verify_document(
            data, audiences, recipients, resolve_identity_provider, now, trace
        )

    def verify_xml(
        self,
        data: bytes,
        *,
        audiences: Iterable[str] | None = None,
        recipients: Iterable[str] | None = None,
        resolve_identity_provider: Callable[[str], IdentityProvider | None] | None = None,
        now: datetime | None = None,
        trace: Trace | None = None,
    ) -> VerifiedAssertion:
        """Verify an assertion given as XML bytes (the decoded parameter)."""
        check_size(len(data), self.max_size)
        _passed(trace, "size", lambda: {"size": len(data), "limit": self.max_size})
        return self._verify_document(
            data, audiences, recipients, resolve_identity_provider, now, trace
        )

    def _verify_document(
        self, data: bytes, audiences, recipients, resolve_identity_provider, now, trace
    ) -> VerifiedAssertion:
        """Parsing onwards, shared by :meth:`verify` and :meth:`verify_xml`."""
        now = now or datetime.now(timezone.utc)
        root = parse_xml(data)
        _passed(trace, "parsing", dict)
        self._check_root(root)
        _passed(trace, "structure", lambda: {"id": root.get("ID")})
        provider = self._resolve_provider(root, resolve_identity_provider or self.trust.get)
        _passed(trace, "issuer", lambda: {"issuer": provider.entity_id})
        signed = self.signature_policy.verify(root, provider)
        _passed(trace, "signature", lambda: {"fingerprints": list(provider.fingerprints)})
        return self._check_signed(
            signed,
            provider.entity_id,
            self.audiences if audiences is None else frozenset(audiences),
            self.recipients if recipients is None else frozenset(recipients),
            now,
            trace,
        )

    def consume(self, assertion: VerifiedAssertion) -> None:
        """Record the assertion as used until it expires, atomically.

        :raise AssertionRejected: ``replayed`` if it was used before, or
            ``replay_cache_error`` if the cache cannot be reached.
        """
        key = replay_key(assertion.issuer, assertion.assertion_id)
        try:
            first_use = self.replay_cache.add(key, assertion.expires_at + self.clock_skew)
        except Exception as exc:  # a database or network outage fails closed
            log.exception("Replay cache failure")
            raise AssertionRejected(
                "replay_cache_error",
                "The replay cache could not record the assertion",
                error=f"{type(exc).__name__}: {str(exc)[:160]}",
            ) from exc
        if not first_use:
            raise AssertionRejected(
                "replayed",
                "The assertion was already used",
                issuer=assertion.issuer,
                assertion_id=assertion.assertion_id,
            )

    def commit_consumed(self) -> None:
        """Make the records of :meth:`consume` durable: the grant calls it once
        the token is saved, before the token is sent. Only a cache that writes
        within the request's transaction (it has ``commit()``) has work to do.
        """
        commit = getattr(self.replay_cache, "commit", None)
        if commit is not None:
            commit()

    def release_consumed(self) -> bool:
        """Undo uncommitted records of :meth:`consume` (the token was not issued).

        :return: whether the cache could undo them; a cache that records at
            once (e.g. :class:`MemoryReplayCache`) cannot, and the assertion
            stays spent.
        """
        rollback = getattr(self.replay_cache, "rollback", None)
        if rollback is None or not getattr(self.replay_cache, "transactional", False):
            return False
        return rollback() is not False

    # -- steps ----------------------------------------------------------------

    def _check_root(self, root: etree._Element) -> None:
        if root.tag == _ENCRYPTED_ASSERTION:
            raise AssertionRejected(
                "encrypted_assertion_unsupported", "Encrypted assertions are not supported"
            )
        if root.tag != _ASSERTION:
            raise AssertionRejected(
                "not_an_assertion",
                "The root element is not a SAML 2.0 Assertion",
                expected=_ASSERTION,
                actual=str(root.tag)[:200],
            )
        if root.get("Version") != "2.0":
            raise AssertionRejected(
                "version_unsupported",
                "The assertion Version is not 2.0",
                actual=root.get("Version"),
            )
        if not root.get("ID"):
            raise AssertionRejected("id_missing", "The assertion has no ID attribute")

    def _resolve_provider(
        self, root: etree._Element, resolve: Callable[[str], IdentityProvider | None]
    ) -> IdentityProvider:
        # The unsigned Issuer only selects which pinned keys to try.
        issuer = _single_issuer(_children(root))
        provider = resolve(issuer)
        if provider is None:
            raise AssertionRejected(
                "issuer_unknown", "The assertion Issuer is not a trusted IdP", issuer=issuer[:200]
            )
        if provider.entity_id != issuer:
            raise AssertionRejected(
                "issuer_unknown",
                "The resolved IdP does not have the assertion Issuer as entity ID",
                issuer=issuer[:200],
                resolved=provider.entity_id,
            )
        return provider

    def _check_signed(
        self,
        signed: etree._Element,
        expected_issuer: str,
        audiences: frozenset[str],
        recipients: frozenset[str],
        now: datetime,
        trace: Trace | None,
    ) -> VerifiedAssertion:
        """Apply :rfc:`7522#section-3` to the signed Assertion; values only from it."""
        skew = self.clock_skew
        children = _children(signed)
        # Item 1: the Issuer, the same one that selected the key.
        issuer = _single_issuer(children)
        if issuer != expected_issuer:
            raise AssertionRejected(
                "signature_reference_invalid",
                "The signed Issuer differs from the one that selected the key",
                expected=expected_issuer,
                actual=issuer[:200],
            )
        # Items 2 and 4: one Conditions element with understood conditions only.
        conditions = _single(children, _CONDITIONS, "conditions_missing", "Conditions")
        restrictions, one_time_use = _check_condition_types(conditions)
        _passed(
            trace,
            "conditions",
            lambda: {"restrictions": len(restrictions), "one_time_use": one_time_use},
        )

        # Item 4 and SAML core 2.5.1.2: IssueInstant and the validity window.
        issue_instant = parse_instant(signed.get("IssueInstant"), "IssueInstant")
        if issue_instant is None:
            raise AssertionRejected("issue_instant_invalid", "The assertion has no IssueInstant")
        if issue_instant > now + skew:
            raise AssertionRejected(
                "issued_in_future",
                "The assertion IssueInstant is in the future",
                issue_instant=issue_instant.isoformat(),
                now=now.isoformat(),
                clock_skew=skew.total_seconds(),
            )
        not_before = parse_instant(conditions.get("NotBefore"), "Conditions/@NotBefore")
        not_on_or_after = parse_instant(conditions.get("NotOnOrAfter"), "Conditions/@NotOnOrAfter")
        self._check_window(not_before, not_on_or_after, issue_instant, now, "Conditions")
        _passed(
            trace,
            "time",
            lambda: {
                "issue_instant": _iso(issue_instant),
                "not_before": _iso(not_before),
                "not_on_or_after": _iso(not_on_or_after),
                "now": _iso(now),
                "clock_skew": skew.total_seconds(),
                "max_lifetime": self.max_lifetime.total_seconds(),
            },
        )
        found_audiences = _check_audiences(restrictions, audiences)
        _passed(
            trace,
            "audience",
            lambda: {"found": list(found_audiences), "accepted": sorted(audiences)},
        )

        # Item 3: the subject and a bearer confirmation addressed to us.
        subject = _children(_single(children, _SUBJECT, "subject_missing", "Subject"))
        name_id = _subject_name_id(subject)
        subject_value = element_text(name_id)
        if subject_value is None:
            raise AssertionRejected(
                "subject_malformed",
                "The NameID contains markup (comment, processing instruction or element)",
            )
        if not subject_value.strip():
            raise AssertionRejected("subject_missing", "The NameID is empty")
        _passed(
            trace, "subject", lambda: {"name_id": subject_value, "format": name_id.get("Format")}
        )
        recipient, confirmed_until = self._check_confirmation(
            subject, issue_instant, recipients, now
        )
        _passed(
            trace,
            "subject_confirmation",
            lambda: {"recipient": recipient, "not_on_or_after": _iso(confirmed_until)},
        )

        expires_at = min(filter(None, (not_on_or_after, confirmed_until)))
        authn = children.get(_AUTHN_STATEMENT)
        authn_statement = authn[0] if authn else None
        return VerifiedAssertion(
            issuer=issuer,
            subject=subject_value,
            name_id_format=name_id.get("Format"),
            name_qualifier=name_id.get("NameQualifier"),
            sp_name_qualifier=name_id.get("SPNameQualifier"),
            assertion_id=signed.get("ID"),
            issue_instant=issue_instant,
            expires_at=expires_at,
            not_before=not_before,
            audiences=found_audiences,
            recipient=recipient,
            authn_instant=_authn_instant(authn_statement),
            authn_context_class_ref=_authn_class(authn_statement),
            session_index=None if authn_statement is None else authn_statement.get("SessionIndex"),
            attributes=_SignedAttributes(children.get(_ATTRIBUTE_STATEMENT, ())),
            one_time_use=one_time_use,
        )

    def _check_window(
        self,
        not_before: datetime | None,
        not_on_or_after: datetime | None,
        issue_instant: datetime,
        now: datetime,
        where: str,
    ) -> None:
        """Times of :rfc:`7522#section-3` item 4, with skew and a maximum lifetime."""
        skew = self.clock_skew
        if not_before and not_on_or_after and not_before >= not_on_or_after:
            raise AssertionRejected(
                "time_window_invalid",
                f"{where} NotBefore is not before NotOnOrAfter",
                not_before=not_before.isoformat(),
                not_on_or_after=not_on_or_after.isoformat(),
            )
        if not_before and not_before > now + skew:
            raise AssertionRejected(
                "not_yet_valid" if where == "Conditions" else "confirmation_not_yet_valid",
                f"{where} NotBefore is in the future",
                not_before=not_before.isoformat(),
                now=now.isoformat(),
                clock_skew=skew.total_seconds(),
            )
        if not_on_or_after is None:
            return
        if now - skew >= not_on_or_after:  # not NotOnOrAfter + skew: year 9999 overflows
            raise AssertionRejected(
                "expired" if where == "Conditions" else "confirmation_expired",
                f"{where} NotOnOrAfter has passed",
                not_on_or_after=not_on_or_after.isoformat(),
                now=now.isoformat(),
                clock_skew=skew.total_seconds(),
            )
        if not_on_or_after - issue_instant > self.max_lifetime:
            raise AssertionRejected(
                "lifetime_too_long",
                f"{where} NotOnOrAfter is too far after IssueInstant",
                issue_instant=issue_instant.isoformat(),
                not_on_or_after=not_on_or_after.isoformat(),
                max_lifetime=self.max_lifetime.total_seconds(),
            )

    def _check_confirmation(
        self,
        subject: dict,
        issue_instant: datetime,
        recipients: frozenset[str],
        now: datetime,
    ) -> tuple[str, datetime]:
        """Find one bearer confirmation for our token endpoint that is valid now."""
        first_failure: AssertionRejected | None = None
        bearer_seen = False
        for confirmation in subject.get(_CONFIRMATION, ()):
            if confirmation.get("Method") != BEARER:
                continue
            bearer_seen = True
            try:
                return self._check_bearer(confirmation, issue_instant, recipients, now)
            except AssertionRejected as exc:
                first_failure = first_failure or exc
        if first_failure is not None:
            raise first_failure
        raise AssertionRejected(
            "subject_confirmation_missing",
            "The Subject has no bearer SubjectConfirmation",
            methods=[c.get("Method") for c in subject.get(_CONFIRMATION, ())][:5],
            bearer_seen=bearer_seen,
        )

    def _check_bearer(
        self,
        confirmation: etree._Element,
        issue_instant: datetime,
        recipients: frozenset[str],
        now: datetime,
    ) -> tuple[str, datetime]:
        data = _single(
            _children(confirmation),
            _CONFIRMATION_DATA,
            "subject_confirmation_missing",
            "SubjectConfirmationData",
        )
        recipient = data.get("Recipient")
        if recipient not in recipients:
            raise AssertionRejected(
                "recipient_mismatch",
                "The bearer confirmation Recipient is not this token endpoint",
                actual=None if recipient is None else recipient[:200],
                accepted=sorted(recipients),
            )
        if data.get("InResponseTo") is not None:
            raise AssertionRejected(
                "in_response_to_present",
                "The bearer confirmation answers a browser SSO request (InResponseTo)",
                in_response_to=data.get("InResponseTo")[:200],
            )
        not_on_or_after = parse_instant(
            data.get("NotOnOrAfter"), "SubjectConfirmationData/@NotOnOrAfter"
        )
        if not_on_or_after is None:
            raise AssertionRejected(
                "confirmation_expired",
                "The bearer confirmation has no NotOnOrAfter",
            )
        not_before = parse_instant(data.get("NotBefore"), "SubjectConfirmationData/@NotBefore")
        self._check_window(
            not_before, not_on_or_after, issue_instant, now, "SubjectConfirmationData"
        )
        return recipient, not_on_or_after


def _passed(trace: Trace | None, check: str, details: Callable[[], dict]) -> None:
    # Details are built only when someone is tracing (the inspect command).
    if trace is not None:
        trace(check, details())


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _single(children: dict, tag: str, reason: str, name: str) -> etree._Element:
    found = children.get(tag, ())
    if len(found) != 1:
        raise AssertionRejected(
            reason, f"Expected exactly one {name} element", element=name, count=len(found)
        )
    return found[0]


def _single_issuer(children: dict) -> str:
    issuer = _single(children, _ISSUER, "issuer_missing", "Issuer")
    value = element_text(issuer)
    if not value or value != value.strip():
        raise AssertionRejected("issuer_missing", "The Issuer is empty, padded or contains markup")
    issuer_format = issuer.get("Format")
    if issuer_format not in (None, _ENTITY_FORMAT):
        raise AssertionRejected(
            "issuer_unknown",
            "The Issuer Format is not the entity format",
            actual=issuer_format[:200],
        )
    return value


def _check_condition_types(conditions: etree._Element) -> tuple[list, bool]:
    """Unknown conditions are refused (SAML core 2.5.1.1); return the restrictions."""
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


def _check_audiences(
    restrictions: list[etree._Element], audiences: frozenset[str]
) -> tuple[str, ...]:
    """:rfc:`7522#section-3` item 2: every AudienceRestriction must name us."""
    if not restrictions:
        raise AssertionRejected(
            "audience_missing",
            "The Conditions have no AudienceRestriction",
            accepted=sorted(audiences),
        )
    found: list[str] = []
    for restriction in restrictions:
        values = [element_text(a) for a in restriction if a.tag == _AUDIENCE]
        found.extend(v for v in values if v)
        if not audiences.intersection(values):
            raise AssertionRejected(
                "audience_mismatch",
                "An AudienceRestriction does not include this authorization server",
                found=[v for v in values if v][:10],
                accepted=sorted(audiences),
            )
    return tuple(found)


def _subject_name_id(subject: dict) -> etree._Element:
    if _BASE_ID in subject or _ENCRYPTED_ID in subject:
        raise AssertionRejected(
            "subject_malformed", "The Subject uses BaseID or EncryptedID instead of NameID"
        )
    return _single(subject, _NAME_ID, "subject_missing", "NameID")


def _authn_instant(statement: Any) -> datetime | None:
    if statement is None:
        return None
    return parse_instant(statement.get("AuthnInstant"), "AuthnStatement/@AuthnInstant")


def _authn_class(statement: Any) -> str | None:
    for context in () if statement is None else statement:
        if context.tag == _AUTHN_CONTEXT:
            for ref in context:
                if ref.tag == _AUTHN_CLASS_REF:
                    return element_text(ref)
    return None


class _SignedAttributes(Mapping):
    """Attribute name to values, read from the signed statements on first use.

    Most grants never look at attributes, so they are not extracted up front;
    the statements are those of the signed element, which nothing else holds.
    """

    __slots__ = ("_statements", "_values")

    def __init__(self, statements: Iterable[etree._Element]) -> None:
        self._statements = tuple(statements)
        self._values: dict[str, tuple[str, ...]] | None = None

    def _load(self) -> dict[str, tuple[str, ...]]:
        values = self._values
        if values is None:
            values = {}
            for statement in self._statements:
                for attribute in statement:
                    name = attribute.get("Name") if attribute.tag == _ATTRIBUTE else None
                    if name:
                        values[name] = values.get(name, ()) + tuple(
                            (value.text or "") if not len(value) else "".join(value.itertext())
                            for value in attribute
                            if value.tag == _ATTRIBUTE_VALUE
                        )
            self._values = values
        return values

    def __getitem__(self, name: str) -> tuple[str, ...]:
        return self._load()[name]

    def __iter__(self):
        return iter(self._load())

    def __len__(self) -> int:
        return len(self._load())

    def __repr__(self) -> str:
        return repr(self._load())
