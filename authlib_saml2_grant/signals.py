"""Blinker signals for operators: every accepted and rejected assertion.

Subscribe to feed audit logs, metrics or alerts::

    from authlib_saml2_grant import assertion_rejected

    @assertion_rejected.connect
    def on_rejected(sender, reason, details, **kwargs):
        metrics.increment("saml2_bearer.rejected", tags=[reason])

``sender`` is the Flask app. ``assertion_accepted`` receives ``grant``,
``assertion`` (a :class:`VerifiedAssertion`) and ``client``;
``assertion_rejected`` receives ``grant``, ``reason`` (a stable code),
``message`` and ``details`` (expected-versus-actual values). For a client
assertion (:class:`~authlib_saml2_grant.SAML2BearerClientAssertion`), ``grant``
is that client authentication method.
"""

from __future__ import annotations

import logging
from typing import Any

from blinker import Namespace
from flask import current_app

from .errors import AssertionRejected

__all__ = ["assertion_accepted", "assertion_rejected", "report_rejection"]

_signals = Namespace()

#: Sent when an assertion was verified, consumed and a token is about to be issued.
assertion_accepted = _signals.signal("saml2-bearer-assertion-accepted")
#: Sent when a token request failed on its assertion, with the reason code.
assertion_rejected = _signals.signal("saml2-bearer-assertion-rejected")


def report_rejection(
    logger: logging.Logger, source: Any, exc: AssertionRejected, client_id: str | None, what: str
) -> None:
    """Tell operators why an assertion was refused: one INFO line with the reason
    code and the expected-versus-actual values, and the ``assertion_rejected`` signal."""
    logger.info(
        "SAML2 bearer %s rejected: reason=%s client=%r: %s %r",
        what,
        exc.reason,
        client_id,
        exc.message,
        dict(exc.details),
    )
    assertion_rejected.send(
        current_app._get_current_object(),  # type: ignore[attr-defined]  # a LocalProxy
        grant=source,
        reason=exc.reason,
        message=exc.message,
        details=exc.details,
    )
