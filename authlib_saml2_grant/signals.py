"""Blinker signals for operators: every accepted and rejected assertion.

Subscribe to feed audit logs, metrics or alerts::

    from authlib_saml2_grant import assertion_rejected

    @assertion_rejected.connect
    def on_rejected(sender, reason, details, **kwargs):
        metrics.increment("saml2_bearer.rejected", tags=[reason])

``sender`` is the Flask app. ``assertion_accepted`` receives ``grant``,
``assertion`` (a :class:`VerifiedAssertion`) and ``client``;
``assertion_rejected`` receives ``grant``, ``reason`` (a stable code),
``message``, ``details`` (expected-versus-actual values) and ``reference``,
the short random code the client got at the end of its ``error_description``
(``Reference: K7Q2M9X4PA``) and the log line carries too, so a client's
support ticket finds the operator's record. For a client assertion
(:class:`~authlib_saml2_grant.SAML2BearerClientAssertion`), ``grant`` is that
client authentication method.
"""

from __future__ import annotations

import base64
import logging
import secrets
from typing import Any

from blinker import Namespace
from flask import current_app

from .errors import AssertionRejected

__all__ = [
    "assertion_accepted",
    "assertion_rejected",
    "new_reference",
    "report_rejection",
    "with_reference",
]

_signals = Namespace()

#: Sent when an assertion was verified, consumed and a token is about to be issued.
assertion_accepted = _signals.signal("saml2-bearer-assertion-accepted")
#: Sent when a token request failed on its assertion, with the reason code.
assertion_rejected = _signals.signal("saml2-bearer-assertion-rejected")


def new_reference() -> str:
    """A short random reference for one rejection: 10 characters of base32
    (``A-Z``, ``2-7``; 50 bits), safe in an ``error_description`` and a log line."""
    return base64.b32encode(secrets.token_bytes(10)).decode("ascii")[:10]


def with_reference(description: str, reference: str) -> str:
    """``description`` followed by ``Reference: <reference>``, as the client sees it."""
    return f"{description} Reference: {reference}"


def report_rejection(
    logger: logging.Logger, source: Any, exc: AssertionRejected, client_id: str | None, what: str
) -> str:
    """Tell operators why an assertion was refused: one INFO line with a new
    reference, the reason code and the expected-versus-actual values, and the
    ``assertion_rejected`` signal.

    :return: the reference, for the client's ``error_description``.
    """
    reference = new_reference()
    logger.info(
        "SAML2 bearer %s rejected: reason=%s client=%r: %s %r reference=%s",
        what,
        exc.reason,
        client_id,
        exc.message,
        dict(exc.details),
        reference,
    )
    assertion_rejected.send(
        current_app._get_current_object(),  # type: ignore[attr-defined]  # a LocalProxy
        grant=source,
        reason=exc.reason,
        message=exc.message,
        details=exc.details,
        reference=reference,
    )
    return reference
