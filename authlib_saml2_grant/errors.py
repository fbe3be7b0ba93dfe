"""Errors raised while verifying a SAML 2.0 bearer assertion.

The client only ever sees a generic ``invalid_grant``; the precise reason, a
stable code from :data:`REASONS`, and the expected-versus-actual values travel
in :class:`AssertionRejected` to logs and signals for operators.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from collections.abc import Mapping
from contextlib import contextmanager
from types import MappingProxyType
from typing import Any

__all__ = [
    "REASONS",
    "AssertionRejected",
    "ConfigurationError",
    "describe_error",
    "fail_closed",
]

log = logging.getLogger(__name__)

#: Every reason code the verifier and the grant can report, with the check
#: that produces it. The codes are stable: operators alert and dashboard on them.
REASONS: Mapping[str, str] = MappingProxyType(
    {
        "assertion_too_large": "size",
        "encoding_invalid": "decoding",
        "xml_malformed": "parsing",
        "doctype_forbidden": "parsing",
        "namespace_invalid": "parsing",
        "not_a_response": "envelope",
        "response_status_failed": "envelope",
        "destination_mismatch": "envelope",
        "assertion_count_invalid": "envelope",
        "id_duplicated": "envelope",
        "response_issuer_mismatch": "envelope",
        "not_an_assertion": "structure",
        "encrypted_assertion_unsupported": "structure",
        "version_unsupported": "structure",
        "id_missing": "structure",
        "issuer_missing": "issuer",
        "issuer_unknown": "issuer",
        "metadata_expired": "issuer",
        "signature_missing": "signature",
        "signature_algorithm_forbidden": "signature",
        "signature_reference_invalid": "signature",
        "certificate_invalid": "signature",
        "signature_invalid": "signature",
        "issue_instant_invalid": "time",
        "time_malformed": "time",
        "issued_in_future": "time",
        "conditions_missing": "conditions",
        "condition_unsupported": "conditions",
        "time_window_invalid": "time",
        "not_yet_valid": "time",
        "expired": "time",
        "lifetime_too_long": "time",
        "audience_missing": "audience",
        "audience_mismatch": "audience",
        "subject_missing": "subject",
        "subject_malformed": "subject",
        "subject_confirmation_missing": "subject_confirmation",
        "recipient_mismatch": "subject_confirmation",
        "confirmation_expired": "subject_confirmation",
        "confirmation_not_yet_valid": "subject_confirmation",
        "in_response_to_present": "subject_confirmation",
        "client_not_allowed": "client",
        "client_id_mismatch": "client",
        "client_unknown": "client",
        "client_auth_method_not_allowed": "client",
        "client_lookup_error": "client",
        "replayed": "replay",
        "replay_cache_error": "replay",
        "user_unknown": "user",
        "user_lookup_error": "user",
        "permission_denied": "user",
        "verification_error": "internal",
        "token_error": "token",
    }
)


class AssertionRejected(Exception):
    """An assertion failed one of the checks of :rfc:`7522#section-3`.

    :param reason: a stable code, one of :data:`REASONS`.
    :param message: a sentence for operators; may quote values from the
        assertion, so it is never sent to the client.
    :param details: expected-versus-actual values, for logs and signals.
    """

    def __init__(self, reason: str, message: str, **details: Any) -> None:
        if reason not in REASONS:  # pragma: no cover - programming error
            raise KeyError(f"unknown reason code {reason!r}")
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.details: Mapping[str, Any] = MappingProxyType(details)

    @property
    def check(self) -> str:
        """The name of the check that failed, e.g. ``audience``."""
        return REASONS[self.reason]

    def __repr__(self) -> str:
        return f"AssertionRejected({self.reason!r}, {self.message!r})"


def describe_error(exc: BaseException) -> str:
    """An exception as a short detail for logs: its type and the start of its message."""
    return f"{type(exc).__name__}: {str(exc)[:160]}"


@contextmanager
def fail_closed() -> Iterator[None]:
    """Turn any unexpected exception of the block into ``verification_error``.

    A bug, or a failing hook, during verification refuses the assertion
    (never a 500, never an acceptance); the traceback goes to the log.
    """
    try:
        yield
    except AssertionRejected:
        raise
    except Exception as exc:
        log.exception("SAML2 bearer assertion verification failed unexpectedly")
        raise AssertionRejected(
            "verification_error",
            "Verification raised an unexpected error",
            error=describe_error(exc),
        ) from exc


class ConfigurationError(ValueError):
    """A ``SAML2_BEARER_*`` setting is missing or invalid.

    The message always names the offending setting, so a misconfigured app
    fails at start-up with an actionable error.
    """
