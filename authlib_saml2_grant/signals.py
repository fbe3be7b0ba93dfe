"""Blinker signals for operators: every accepted and rejected assertion.

Subscribe to feed audit logs, metrics or alerts::

    from authlib_saml2_grant import assertion_rejected

    @assertion_rejected.connect
    def on_rejected(sender, reason, details, **kwargs):
        metrics.increment("saml2_bearer.rejected", tags=[reason])

``sender`` is the Flask app. ``assertion_accepted`` receives ``grant``,
``assertion`` (a :class:`VerifiedAssertion`) and ``client``;
``assertion_rejected`` receives ``grant``, ``reason`` (a stable code),
``message`` and ``details`` (expected-versus-actual values).
"""

from blinker import Namespace

__all__ = ["assertion_accepted", "assertion_rejected"]

_signals = Namespace()

#: Sent when an assertion was verified, consumed and a token is about to be issued.
assertion_accepted = _signals.signal("saml2-bearer-assertion-accepted")
#: Sent when a token request failed on its assertion, with the reason code.
assertion_rejected = _signals.signal("saml2-bearer-assertion-rejected")
