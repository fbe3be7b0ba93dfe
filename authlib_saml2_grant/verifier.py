"""The :rfc:`7522#section-3` pipeline: assertion parameter in, verified assertion out.

Order matters and is fixed: size, decoding, one hardened parse, root shape,
key selection by Issuer, signature (signxml), then every processing rule of
section 3 on the signed element only (:mod:`~.rules`). The verifier is a pure
function of the assertion, its configuration and the trusted IdPs: it keeps
no state between calls and records nothing. Replay is the grant's business
(:mod:`~.replay`), so the inspector can run the very same verification
without spending the assertion.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from datetime import datetime
from datetime import timedelta
from datetime import timezone
from typing import Any

from lxml import etree

from .assertion import VerifiedAssertion
from .errors import AssertionRejected
from .errors import ConfigurationError
from .errors import fail_closed
from .response import SUCCESS
from .response import check_response
from .response import check_response_issuer
from .response import verify_response_signatures
from .rules import BEARER
from .rules import ClaimMap
from .rules import Clock
from .rules import Trace
from .rules import check_assertion
from .rules import check_issuer
from .rules import check_root
from .rules import child_groups
from .rules import passed
from .signature import SignaturePolicy
from .trust import IdentityProvider
from .trust import TrustStore
from .trust import metadata_expired
from .xml import ASSERTION_TAG
from .xml import RESPONSE_TAG
from .xml import SAML_NS
from .xml import check_size
from .xml import decode_assertion
from .xml import parse_xml
from .xml import qname

__all__ = ["AssertionVerifier", "BEARER", "Trace"]

_ENCRYPTED_ASSERTION = qname(SAML_NS, "EncryptedAssertion")
_ENVELOPES = frozenset(("assertion", "response", "any"))

#: ``resolve_identity_provider(issuer)``: the trusted IdP with that entity ID, or ``None``.
ProviderResolver = Callable[[str], IdentityProvider | None]


class AssertionVerifier:
    """Verifies SAML 2.0 bearer assertions for one authorization server.

    All configuration is parsed once, here; :meth:`verify` parses nothing but
    the assertion, changes nothing and remembers nothing.

    :param trust: the trusted identity providers.
    :param audiences: our identities accepted as ``Audience``.
    :param recipients: accepted ``Recipient`` values; default: ``audiences``.
    :param clock_skew: seconds of tolerated clock difference.
    :param max_lifetime: longest accepted window, in seconds, from
        ``IssueInstant`` to any ``NotOnOrAfter``.
    :param max_size: largest accepted ``assertion`` parameter, in bytes.
    :param signature_policy: allowed signature and digest algorithms.
    :param claims: claim name to the SAML attribute ``Name`` (or
        ``FriendlyName``) it is read from, or a list of names tried in order;
        the result is :attr:`VerifiedAssertion.claims`.
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
        claims: Mapping[str, str | Sequence[str]] | None = None,
    ) -> None:
        self.trust = trust if isinstance(trust, TrustStore) else TrustStore(trust)
        self.audiences = _identifiers(audiences, "SAML2_BEARER_AUDIENCES", "audience")
        self.recipients = (
            self.audiences
            if recipients is None
            else _identifiers(recipients, "SAML2_BEARER_RECIPIENTS", "recipient")
        )
        self.clock_skew = timedelta(seconds=clock_skew)
        self.max_lifetime = timedelta(seconds=max_lifetime)
        self.max_size = max_size
        self.signature_policy = signature_policy or SignaturePolicy()
        self.claim_map = _claim_map(claims or {})

    def verify(
        self,
        assertion: str | bytes,
        *,
        xml: bool = False,
        envelope: str = "assertion",
        audiences: Iterable[str] | None = None,
        recipients: Iterable[str] | None = None,
        resolve_identity_provider: ProviderResolver | None = None,
        now: datetime | None = None,
        trace: Trace | None = None,
    ) -> VerifiedAssertion:
        """Verify the ``assertion`` request parameter (base64url or Base64).

        :param xml: ``assertion`` is the decoded XML, bytes (see :meth:`verify_xml`).
        :param envelope: ``"assertion"``: the root is the ``Assertion``
            (:rfc:`7522#section-2.1`); ``"response"``: a whole Web SSO
            ``samlp:Response`` carrying one (see :mod:`~.response`); ``"any"``:
            either, as the root says (the inspector).
        :param audiences: accepted ``Audience`` values for this call.
        :param recipients: accepted ``Recipient`` values for this call.
        :param resolve_identity_provider: the IdP lookup for this call;
            default: the configured trust store.
        :param now: the time to verify at; default: now.
        :param trace: told of every check that passed, with its values.
        :raise AssertionRejected: with the reason of the first failed check;
            an unexpected exception becomes ``verification_error``.
        """
        if envelope not in _ENVELOPES:
            raise ValueError(f"envelope must be one of {sorted(_ENVELOPES)}, not {envelope!r}")
        with fail_closed():
            return self._verify(
                assertion,
                xml,
                envelope,
                self.audiences if audiences is None else frozenset(audiences),
                self.recipients if recipients is None else frozenset(recipients),
                resolve_identity_provider or self.trust.get,
                Clock(now or datetime.now(timezone.utc), self.clock_skew, self.max_lifetime),
                trace,
            )

    def verify_xml(self, data: bytes, **options: Any) -> VerifiedAssertion:
        """Verify an assertion given as XML bytes (the decoded parameter).

        Takes the keyword arguments of :meth:`verify`.
        """
        return self.verify(data, xml=True, **options)

    def _verify(
        self,
        assertion: str | bytes,
        xml: bool,
        envelope: str,
        audiences: frozenset[str],
        recipients: frozenset[str],
        resolve: ProviderResolver,
        clock: Clock,
        trace: Trace | None,
    ) -> VerifiedAssertion:
        check_size(len(assertion), self.max_size)
        passed(trace, "size", lambda: {"size": len(assertion), "limit": self.max_size})
        if xml:
            data = assertion if isinstance(assertion, bytes) else assertion.encode("utf-8")
        else:
            text = assertion if isinstance(assertion, str) else assertion.decode("latin-1")
            data = decode_assertion(text, self.max_size, line_breaks=envelope != "assertion")
            passed(trace, "decoding", lambda: {"bytes": len(data)})
        root = parse_xml(data)
        passed(trace, "parsing", lambda: {"root": str(root.tag).rpartition("}")[2]})
        response = envelope == "response" or (envelope == "any" and root.tag == RESPONSE_TAG)
        if not response and not xml and envelope == "any":
            # Decoded as a Response would be; a bare assertion allows no line breaks.
            decode_assertion(text, self.max_size)
        if response:
            signed, provider = self._open_response(root, recipients, resolve, clock, trace)
        else:
            signed, provider = self._open_assertion(root, resolve, clock, trace)
        return check_assertion(
            signed, provider.entity_id, audiences, recipients, clock, trace, self.claim_map
        )

    def _open_assertion(
        self, root: etree._Element, resolve: ProviderResolver, clock: Clock, trace: Trace | None
    ) -> tuple[etree._Element, IdentityProvider]:
        """A bare Assertion (:rfc:`7522#section-2.1`): its shape, IdP and signature."""
        _check_assertion_root(root)
        passed(trace, "structure", lambda: {"id": root.get("ID")})
        provider = _select_provider(root, resolve, clock.now)
        passed(trace, "issuer", lambda: {"issuer": provider.entity_id})
        signed = self.signature_policy.verify(root, provider)
        passed(trace, "signature", lambda: {"fingerprints": list(provider.fingerprints)})
        return signed, provider

    def _open_response(
        self,
        root: etree._Element,
        recipients: frozenset[str],
        resolve: ProviderResolver,
        clock: Clock,
        trace: Trace | None,
    ) -> tuple[etree._Element, IdentityProvider]:
        """A Web SSO Response: the envelope step (:mod:`~.response`), then its
        Assertion's shape, IdP and the signatures of either or both."""
        assertion = check_response(root, recipients)
        passed(
            trace,
            "envelope",
            lambda: {
                "response_id": root.get("ID"),
                "status": SUCCESS,
                "destination": root.get("Destination"),
                "assertion_id": assertion.get("ID"),
            },
        )
        _check_assertion_root(assertion)
        passed(trace, "structure", lambda: {"id": assertion.get("ID")})
        provider = _select_provider(assertion, resolve, clock.now)
        check_response_issuer(root, provider.entity_id)
        passed(trace, "issuer", lambda: {"issuer": provider.entity_id})
        signed, what = verify_response_signatures(self.signature_policy, root, assertion, provider)
        passed(
            trace,
            "signature",
            lambda: {"signed": list(what), "fingerprints": list(provider.fingerprints)},
        )
        return signed, provider


def _identifiers(values: Iterable[str], setting: str, what: str) -> frozenset[str]:
    found = frozenset(values)
    if not found or not all(isinstance(v, str) and v for v in found):
        raise ConfigurationError(f"{setting} must list at least one {what}")
    return found


def _claim_map(claims: Mapping[str, str | Sequence[str]]) -> ClaimMap:
    setting = "SAML2_BEARER_CLAIMS"
    if not isinstance(claims, Mapping):
        raise ConfigurationError(f"{setting} must map claim names to attribute names")
    ready = []
    for claim, names in claims.items():
        candidates = (names,) if isinstance(names, str) else names
        if not isinstance(claim, str) or not claim:
            raise ConfigurationError(f"{setting}: claim names must be non-empty strings")
        if not isinstance(candidates, (list, tuple)) or not candidates:
            raise ConfigurationError(
                f"{setting}[{claim!r}] must be an attribute name or a non-empty list of them"
            )
        if not all(isinstance(name, str) and name for name in candidates):
            raise ConfigurationError(f"{setting}[{claim!r}]: attribute names must be strings")
        ready.append((claim, tuple(candidates)))
    return tuple(ready)


def _check_assertion_root(root: etree._Element) -> None:
    """:rfc:`7522#section-3` item 11: a SAML 2.0 ``Assertion`` with an ``ID``."""
    if root.tag == _ENCRYPTED_ASSERTION:
        raise AssertionRejected(
            "encrypted_assertion_unsupported", "Encrypted assertions are not supported"
        )
    check_root(root, ASSERTION_TAG, "not_an_assertion")


def _select_provider(
    root: etree._Element, resolve: ProviderResolver, now: datetime
) -> IdentityProvider:
    """The trusted IdP named by the (not yet verified) ``Issuer``: it only chooses keys,
    and only while the metadata that published them is valid (``validUntil``)."""
    issuer = check_issuer(child_groups(root))
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
    if provider.valid_until is not None and now >= provider.valid_until:
        raise metadata_expired(provider, now)
    return provider
