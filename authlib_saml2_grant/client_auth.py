"""Client authentication with a SAML 2.0 assertion, :rfc:`7522#section-2.2`.

The client sends, with any grant::

    client_assertion_type=urn:ietf:params:oauth:client-assertion-type:saml2-bearer
    client_assertion=<base64url assertion>

The assertion is verified by the grant's own verifier and settings (trusted
IdPs, algorithms, clock skew, size, replay), then by the client rules of
:rfc:`7522#section-3`: its ``NameID`` is the ``client_id``, its ``Audience``
names this server, its ``Issuer`` is a trusted IdP (serving this client) or the
client itself with certificates of its own, and the client is registered for
this method. Every failure is ``invalid_client`` (401), and a failing client
or replay store a 503 ``temporarily_unavailable``
(:class:`~.outages.TemporarilyUnavailableError`); the reason goes to the log
and the ``assertion_rejected`` signal, with the reference the client's
``error_description`` ends with. Modelled on Authlib's
``JWTBearerClientAssertion`` (:rfc:`7523#section-2.2`).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from collections.abc import Sequence
from typing import Any
from typing import NoReturn

from authlib.oauth2.rfc6749 import InvalidClientError
from cryptography import x509

from .assertion import VerifiedAssertion
from .errors import AssertionRejected
from .errors import describe_error
from .errors import fail_closed
from .extension import get_settings
from .outages import OUTAGE_REASONS
from .outages import TemporarilyUnavailableError
from .replay import release_spent
from .replay import spend_assertion
from .signals import report_rejection
from .signals import with_reference
from .trust import IdentityProvider
from .trust import RecordingResolver
from .trust import client_not_allowed

__all__ = ["SAML2_CLIENT_ASSERTION_TYPE", "SAML2BearerClientAssertion"]

log = logging.getLogger(__name__)

#: ``client_assertion_type`` of :rfc:`7522#section-2.2`.
SAML2_CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:saml2-bearer"


class SAML2BearerClientAssertion:
    """Authenticate clients by a SAML 2.0 bearer assertion, :rfc:`7522#section-2.2`.

    Register it, then list :attr:`CLIENT_AUTH_METHOD` in the grants that accept
    it and in the clients' ``token_endpoint_auth_method``::

        server.register_client_auth_method(
            SAML2BearerClientAssertion.CLIENT_AUTH_METHOD,
            SAML2BearerClientAssertion("https://as.example.com/oauth/token"),
        )

    :param token_url: the token endpoint URL: the ``Recipient`` (and an
        accepted ``Audience``) besides ``SAML2_BEARER_RECIPIENTS`` and
        ``SAML2_BEARER_AUDIENCES``.
    """

    #: Value of ``client_assertion_type`` for SAML 2.0 assertions.
    CLIENT_ASSERTION_TYPE = SAML2_CLIENT_ASSERTION_TYPE
    #: Name of the client authentication method.
    CLIENT_AUTH_METHOD = "client_assertion_saml2_bearer"
    #: The ``error_description`` of every refused client assertion.
    INVALID_ASSERTION_DESCRIPTION = "The SAML client assertion is invalid, expired or already used."

    def __init__(self, token_url: str | None = None) -> None:
        self.token_url = token_url

    def __call__(self, query_client: Callable[[str], Any], request: Any) -> Any | None:
        """Authlib's client authentication call: the client, or ``None`` when the
        request carries no SAML client assertion (another method may apply).

        :raise InvalidClientError: when the SAML client assertion is refused.
        :raise TemporarilyUnavailableError: when the client or replay store failed.
        """
        form = request.payload.datalist if request.payload is not None else {}
        if form.get("client_assertion_type") != [SAML2_CLIENT_ASSERTION_TYPE]:
            return None
        assertions = form.get("client_assertion") or []
        claimed = form.get("client_id") or []
        try:
            if len(assertions) != 1 or not assertions[0]:
                raise AssertionRejected(
                    "encoding_invalid",
                    "Expected exactly one non-empty client_assertion",
                    count=len(assertions),
                )
            client = self._authenticate(query_client, assertions[0], claimed)
        except AssertionRejected as exc:
            self._reject(exc, claimed[0] if claimed else None)
        log.debug("Authenticated %r via %r", client.get_client_id(), self.CLIENT_AUTH_METHOD)
        return client

    def _authenticate(self, query_client: Callable[[str], Any], raw: str, claimed: list[str]):
        settings = get_settings()
        verifier = settings.verifier
        query_client = _client_store(query_client)
        resolve = RecordingResolver(functools.partial(self.resolve_identity_provider, query_client))
        with fail_closed():  # a failing client lookup or hook refuses, never a 500
            assertion = verifier.verify(
                raw,
                audiences=self.get_audiences(),
                recipients=self.get_recipients(),
                resolve_identity_provider=resolve,
            )
            client = self._check_client(query_client, assertion, claimed, resolve.provider)
        spend_assertion(settings.replay_cache, assertion, verifier.clock_skew)
        return client

    def _check_client(
        self,
        query_client: Callable[[str], Any],
        assertion: VerifiedAssertion,
        claimed: list[str],
        provider: IdentityProvider | None,
    ) -> Any:
        """:rfc:`7522#section-3` item 3 for client authentication: the NameID is the
        client, the one named by ``client_id`` when sent, registered for this method."""
        client_id = assertion.subject
        if any(value != client_id for value in claimed):
            raise AssertionRejected(
                "client_id_mismatch",
                "A client_id parameter is not the assertion's NameID",
                client_id=[value[:200] for value in claimed[:5]],
                name_id=client_id[:200],
            )
        client = query_client(client_id)
        if client is None:
            raise AssertionRejected(
                "client_unknown", "No client has the assertion's NameID", name_id=client_id[:200]
            )
        if not client.check_endpoint_auth_method(self.CLIENT_AUTH_METHOD, "token"):
            raise AssertionRejected(
                "client_auth_method_not_allowed",
                "The client is not registered for SAML client assertions",
                client_id=client_id,
                method=self.CLIENT_AUTH_METHOD,
            )
        if provider is None or not provider.check_client(client_id):
            raise client_not_allowed(client_id, assertion.issuer, provider)
        return client

    def get_audiences(self) -> list[str]:
        """Accepted ``Audience`` values: ``SAML2_BEARER_AUDIENCES`` and the token URL."""
        audiences = list(get_settings().verifier.audiences)
        return audiences + [self.token_url] if self.token_url else audiences

    def get_recipients(self) -> list[str]:
        """Accepted ``Recipient`` values: ``SAML2_BEARER_RECIPIENTS`` and the token URL."""
        recipients = list(get_settings().verifier.recipients)
        return recipients + [self.token_url] if self.token_url else recipients

    def resolve_identity_provider(
        self, query_client: Callable[[str], Any], issuer: str
    ) -> IdentityProvider | None:
        """The IdP whose pinned keys verify an assertion of ``issuer``: a trusted
        IdP of ``SAML2_BEARER_IDENTITY_PROVIDERS``, else the client whose
        ``client_id`` is ``issuer``, with the certificates
        :meth:`resolve_client_certificates` gives (a self-issued assertion)."""
        provider = get_settings().verifier.trust.get(issuer)
        if provider is not None:
            return provider
        client = query_client(issuer)
        certificates = self.resolve_client_certificates(client) if client is not None else None
        if not certificates:
            return None
        return _self_issuer(issuer, tuple(certificates))

    def resolve_client_certificates(self, client: Any) -> Sequence[str | x509.Certificate]:
        """The certificates a client signs its own assertions with (PEM text or
        ``x509.Certificate``), or an empty list when it may not self-issue.

        The default reads the list ``saml2_certificates`` of the client metadata.
        Override to read them elsewhere, e.g.::

            def resolve_client_certificates(self, client):
                return [client.signing_certificate_pem]
        """
        metadata = getattr(client, "client_metadata", None) or {}
        certificates = metadata.get("saml2_certificates") or []
        return [c for c in certificates if isinstance(c, (str, x509.Certificate))]

    def _reject(self, exc: AssertionRejected, client_id: str | None) -> NoReturn:
        reference = report_rejection(log, self, exc, client_id, "client assertion")
        if exc.reason in OUTAGE_REASONS:
            settings = get_settings()
            release_spent(settings.transactional_cache)
            raise TemporarilyUnavailableError(
                with_reference(TemporarilyUnavailableError.RETRY_DESCRIPTION, reference),
                retry_after=settings.retry_after,
            ) from exc
        raise InvalidClientError(
            status_code=401,
            description=with_reference(self.INVALID_ASSERTION_DESCRIPTION, reference),
        ) from exc


def _client_store(query_client: Callable[[str], Any]) -> Callable[[str], Any]:
    """``query_client`` whose failure (the client database is down) is
    ``client_lookup_error``, answered 503, rather than a refused assertion."""

    def lookup(client_id: str) -> Any:
        try:
            return query_client(client_id)
        except Exception as exc:
            log.exception("Looking up the client of a SAML client assertion failed")
            raise AssertionRejected(
                "client_lookup_error", "Looking up the client failed", error=describe_error(exc)
            ) from exc

    return lookup


@functools.lru_cache(maxsize=256)
def _self_issuer(client_id: str, certificates: tuple[Any, ...]) -> IdentityProvider:
    """A client as the issuer of its own assertions, serving that client only;
    parsed once per certificate set."""
    return IdentityProvider(client_id, certificates, client_ids=frozenset({client_id}))
