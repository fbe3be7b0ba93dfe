"""Explain a verification: every :rfc:`7522#section-3` check, passed or failed.

:func:`inspect_assertion` runs an :class:`~authlib_saml2_grant.AssertionVerifier`
(the grant's own, or one built like it) with a trace, and turns the checks it
reports as passed and the :class:`~authlib_saml2_grant.AssertionRejected` it
raises into an :class:`Inspection`: one :class:`CheckResult` per check, in
order, with the expected-versus-actual values. Nothing is re-verified here,
and replay is never checked nor recorded (the verifier never touches a replay
cache), so inspecting an assertion does not burn it.
"""

from __future__ import annotations

import codecs
import dataclasses
from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from datetime import datetime
from typing import Any

from .assertion import VerifiedAssertion
from .errors import AssertionRejected
from .trust import client_not_allowed
from .verifier import AssertionVerifier
from .xml import decode_assertion

__all__ = [
    "CHECKS",
    "DESCRIPTIONS",
    "PASS",
    "FAIL",
    "NOT_RUN",
    "SKIPPED",
    "CheckResult",
    "Inspection",
    "detect_format",
    "inspect_assertion",
]

#: The checks of the verifier, in the order it runs them; names as in
#: :data:`~authlib_saml2_grant.errors.REASONS`. Replay and the user lookup
#: belong to the grant and are never run by an inspection.
CHECKS: tuple[str, ...] = (
    "size",
    "decoding",
    "parsing",
    "envelope",
    "structure",
    "issuer",
    "signature",
    "conditions",
    "time",
    "audience",
    "subject",
    "subject_confirmation",
    "client",
)
#: What each check verifies, for people reading the report.
DESCRIPTIONS: Mapping[str, str] = {
    "size": "the assertion is within the size limit",
    "decoding": "base64url or Base64 decodes to bytes (RFC 7522 section 2.1)",
    "parsing": "well-formed UTF-8 XML, no DOCTYPE, absolute namespaces (item 11)",
    "envelope": "a Web SSO Response: Version 2.0, Success, our Destination, exactly one "
    "Assertion (SAML profiles 4.1.4.3); only grant_type=assertion takes one",
    "structure": "a saml:Assertion, Version 2.0, with an ID (item 11)",
    "issuer": "the Issuer is a trusted IdP (section 3, item 1)",
    "signature": "signed by a pinned key of that IdP (item 9); in a Response, the Response "
    "or its Assertion or both",
    "time": "IssueInstant and the Conditions window, with clock skew (items 4, 6)",
    "conditions": "one Conditions element, only understood conditions (item 11)",
    "audience": "every AudienceRestriction names this server (item 2)",
    "subject": "a Subject with a NameID (item 3)",
    "subject_confirmation": "a bearer confirmation to our token endpoint, unexpired (items 5, 6)",
    "client": "the IdP serves the client presenting it (its client_ids)",
}

PASS = "pass"
FAIL = "fail"
NOT_RUN = "not_run"
SKIPPED = "skipped"

_BASE64_BYTES = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_=%")


@dataclass
class CheckResult:
    """The outcome of one check, with the values it looked at."""

    name: str
    status: str = NOT_RUN
    details: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None
    message: str | None = None

    @property
    def description(self) -> str:
        return DESCRIPTIONS.get(self.name, "")

    def to_dict(self) -> dict[str, Any]:
        result = {"check": self.name, "status": self.status, "details": _jsonable(self.details)}
        if self.reason:
            result.update(reason=self.reason, message=self.message)
        return result


@dataclass
class Inspection:
    """Every check of one verification, the failure if any, the verified fields."""

    input_format: str
    input_size: int
    checks: list[CheckResult]
    failure: AssertionRejected | None = None
    assertion: VerifiedAssertion | None = None

    @property
    def valid(self) -> bool:
        return self.failure is None

    def get(self, name: str) -> CheckResult:
        return next(check for check in self.checks if check.name == name)

    def assertion_fields(self) -> dict[str, Any]:
        """The verified assertion as plain JSON-ready values."""
        if self.assertion is None:
            return {}
        return {
            f.name: _jsonable(getattr(self.assertion, f.name))
            for f in dataclasses.fields(self.assertion)
        }

    def to_dict(self) -> dict[str, Any]:
        failure = None
        if self.failure is not None:
            failure = {
                "reason": self.failure.reason,
                "check": self.failure.check,
                "message": self.failure.message,
                "details": _jsonable(dict(self.failure.details)),
            }
        return {
            "valid": self.valid,
            "input": {"format": self.input_format, "size": self.input_size},
            "checks": [check.to_dict() for check in self.checks],
            "failure": failure,
            "assertion": self.assertion_fields() if self.valid else None,
        }


def detect_format(data: bytes) -> str:
    """``"xml"``, ``"base64url"``, ``"base64"`` or ``"unknown"`` (left to the verifier)."""
    text = data.strip()
    if text.startswith(codecs.BOM_UTF8):
        text = text[len(codecs.BOM_UTF8) :].lstrip()
    if text.startswith(b"<"):
        return "xml"
    if not _BASE64_BYTES.issuperset(text):
        return "unknown"
    url = b"-" in text or b"_" in text
    std = b"+" in text or b"/" in text
    if url and std:
        return "unknown"
    return "base64" if std else "base64url"


def inspect_assertion(
    verifier: AssertionVerifier,
    data: bytes,
    *,
    now: datetime | None = None,
    audiences: Iterable[str] | None = None,
    recipients: Iterable[str] | None = None,
    client_id: str | None = None,
) -> Inspection:
    """Verify ``data`` with ``verifier`` and report every check.

    :param data: the assertion parameter (base64url or Base64) or raw XML.
    :param now: the time to verify at; default: now.
    :param audiences: accepted ``Audience`` values; default: the verifier's.
    :param recipients: accepted ``Recipient`` values; default: the verifier's.
    :param client_id: the client that would present the assertion, to check
        the IdP's client binding (``client_ids``); not checked without it.
    :return: an :class:`Inspection`; it never raises :class:`AssertionRejected`.
    """
    input_format = detect_format(data)
    checks = {name: CheckResult(name) for name in CHECKS}

    def trace(check: str, details: dict[str, Any]) -> None:
        result = checks.setdefault(check, CheckResult(check))
        result.status = PASS
        result.details = dict(details)

    xml = input_format == "xml"
    if xml:
        checks["decoding"].status = SKIPPED
        checks["decoding"].details = {"input": "raw XML"}
    inspection = Inspection(input_format, len(data), list(checks.values()))
    try:
        inspection.assertion = verifier.verify(
            _payload(data) if xml else data.decode("latin-1"),
            xml=xml,
            envelope="any",
            audiences=audiences,
            recipients=recipients,
            now=now,
            trace=trace,
        )
        _check_client(inspection.assertion, verifier, client_id, checks["client"])
    except AssertionRejected as exc:  # reported as the grant reports it
        inspection.failure = exc
        failed = checks.setdefault(exc.check, CheckResult(exc.check))
        failed.status = FAIL
        failed.reason = exc.reason
        failed.message = exc.message
        failed.details = dict(exc.details)
        _explain(failed, verifier, data, input_format, now)
    envelope = checks["envelope"]
    if envelope.status == NOT_RUN and checks["parsing"].details.get("root") == "Assertion":
        envelope.status = SKIPPED
        envelope.details = {"input": "a bare Assertion (RFC 7522 section 2.1)"}
    inspection.checks = list(checks.values())
    _complete_time(inspection, verifier)
    return inspection


def _check_client(
    assertion: VerifiedAssertion,
    verifier: AssertionVerifier,
    client_id: str | None,
    check: CheckResult,
) -> None:
    """The grant's default client binding, for ``client_id`` when one is given."""
    provider = verifier.trust.get(assertion.issuer)
    allowed = sorted(provider.client_ids) if provider and provider.client_ids else None
    check.details = {"client_id": client_id, "allowed_client_ids": allowed or "(every client)"}
    if client_id is None:
        return  # not run: no client named
    if provider is not None and not provider.check_client(client_id):
        raise client_not_allowed(client_id, assertion.issuer, provider)
    check.status = PASS


def _payload(data: bytes) -> bytes:
    """Raw XML input without surrounding blanks and byte-order mark."""
    payload = data.strip()
    return payload[len(codecs.BOM_UTF8) :] if payload.startswith(codecs.BOM_UTF8) else payload


def _complete_time(inspection: Inspection, verifier: AssertionVerifier) -> None:
    """Give the time check the whole picture: limits, and the resulting expiry."""
    time = inspection.get("time")
    if time.status == FAIL:
        time.details.setdefault("clock_skew", verifier.clock_skew.total_seconds())
        time.details.setdefault("max_lifetime", verifier.max_lifetime.total_seconds())
    elif time.status == PASS and inspection.assertion is not None:
        time.details["expires_at"] = inspection.assertion.expires_at.isoformat()


def _explain(
    failed: CheckResult,
    verifier: AssertionVerifier,
    data: bytes,
    input_format: str,
    now: datetime | None,
) -> None:
    """Add context the failure does not carry but an operator needs."""
    if failed.name == "issuer":
        failed.details.setdefault("trusted", sorted(p.entity_id for p in verifier.trust))
    elif failed.name == "decoding":
        text = data.strip()
        if b"%25" in text:
            failed.details.setdefault(
                "hint", "the input looks URL-encoded twice ('%25'); URL-decode it once"
            )
        elif b"\n" in text or b" " in text:
            failed.details.setdefault(
                "hint", "the input contains line breaks or spaces; encode with 'base64 -w0'"
            )
        failed.details.setdefault("input_format", input_format)
    elif failed.name == "parsing" and input_format != "xml" and _encoded_twice(data, verifier):
        failed.details.setdefault(
            "hint", "the decoded input is Base64 again: the assertion was encoded twice"
        )
    if failed.name in ("time", "subject_confirmation") and now is not None:
        failed.details.setdefault("now", now.isoformat())


def _encoded_twice(data: bytes, verifier: AssertionVerifier) -> bool:
    """Whether ``data`` decodes to text that is itself a Base64-encoded document."""
    try:
        inner = decode_assertion(data.decode("latin-1"), verifier.max_size)
        return decode_assertion(inner.decode("ascii"), verifier.max_size).lstrip()[:1] == b"<"
    except (AssertionRejected, UnicodeDecodeError):
        return False


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    return value
