"""The SAML 2.0 Bearer Assertion grant for Authlib, :rfc:`7522#section-2.1`."""

from __future__ import annotations

import logging
from functools import cached_property
from typing import Any
from typing import NoReturn

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import BaseGrant
from authlib.oauth2.rfc6749 import InvalidGrantError
from authlib.oauth2.rfc6749 import InvalidRequestError
from authlib.oauth2.rfc6749 import TokenEndpointMixin
from authlib.oauth2.rfc6749 import UnauthorizedClientError
from authlib.oauth2.rfc6749.hooks import hooked
from authlib.oauth2.rfc6749.util import scope_to_list
from flask import current_app

from .assertion import VerifiedAssertion
from .errors import AssertionRejected
from .errors import describe_error
from .errors import fail_closed
from .extension import get_settings
from .outages import OUTAGE_REASONS
from .outages import TemporarilyUnavailableError
from .replay import release_spent
from .replay import spend_assertion
from .settings import OFFLINE_ACCESS
from .settings import Saml2BearerSettings
from .signals import assertion_accepted
from .signals import report_rejection
from .signals import with_reference
from .trust import IdentityProvider
from .trust import RecordingResolver
from .trust import client_not_allowed
from .verifier import AssertionVerifier

__all__ = ["SAML2_BEARER_GRANT_TYPE", "SAML2BearerGrant"]

log = logging.getLogger(__name__)

#: The grant type URI of :rfc:`7522#section-2.1`.
SAML2_BEARER_GRANT_TYPE = "urn:ietf:params:oauth:grant-type:saml2-bearer"


class SAML2BearerGrant(BaseGrant, TokenEndpointMixin):
    """Exchange a signed SAML 2.0 assertion for an access token.

    The client authenticates as usual and sends the assertion an enterprise
    IdP issued for it; every check of :rfc:`7522#section-3` is delegated to
    the app's :class:`~authlib_saml2_grant.AssertionVerifier`, configured by
    the ``SAML2_BEARER_*`` settings. Subclass it and implement
    :meth:`authenticate_user`::

        class SAML2BearerGrant(authlib_saml2_grant.SAML2BearerGrant):
            def authenticate_user(self, assertion):
                return User.query.filter_by(email=assertion.subject).first()

        server.register_grant(SAML2BearerGrant)

    The verified assertion is stored on the request as
    ``request.saml2_assertion`` for hooks, token generators and extensions.
    """

    GRANT_TYPE = SAML2_BEARER_GRANT_TYPE

    #: Client authentication methods accepted at the token endpoint.
    #: :rfc:`7522#section-3.1` leaves client authentication optional, but an
    #: assertion is a bearer credential: whoever holds it gets the token. So
    #: clients must authenticate by default; add ``"none"`` in a subclass to
    #: let public clients in (see the README for the risk).
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

    #: Parameters a request may carry once only (:rfc:`6749#section-3.2`).
    SINGLE_PARAMETERS: tuple[str, ...] = (
        "grant_type",
        "assertion",
        "scope",
        "client_id",
        "client_secret",
        "client_assertion_type",
        "client_assertion",
    )

    #: What the ``assertion`` parameter holds: ``"assertion"``, a bare SAML
    #: ``Assertion`` (:rfc:`7522#section-2.1`); :class:`~.SAML2LegacyAssertionGrant`
    #: takes a whole Web SSO ``"response"``. Passed to :meth:`AssertionVerifier.verify`.
    ASSERTION_ENVELOPE = "assertion"

    #: The ``error_description`` every rejected assertion gets, followed by
    #: ``Reference: <10 characters>``. The precise reason goes to logs and the
    #: ``assertion_rejected`` signal only, with the same reference.
    INVALID_ASSERTION_DESCRIPTION = "The SAML assertion is invalid, expired or already used."

    #: The authenticated client's ID, read once: logging it later must not reload
    #: a client that a rolled-back session expired (the database may be down).
    _client_id: str | None = None

    @hooked
    def validate_token_request(self) -> None:
        """Validate a token request with a SAML 2.0 bearer assertion.

        The client sends, form-encoded, per :rfc:`7522#section-2.1`:

        grant_type
             REQUIRED. ``urn:ietf:params:oauth:grant-type:saml2-bearer``.
        assertion
             REQUIRED. A single SAML 2.0 Assertion, base64url-encoded.
        scope
             OPTIONAL.

        .. code-block:: http

            POST /oauth/token HTTP/1.1
            Host: as.example.com
            Authorization: Basic czZCaGRSa3F0MzpnWDFmQmF0M2JW
            Content-Type: application/x-www-form-urlencoded

            grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Asaml2-bearer&
            assertion=PHNhbWxwOl...[omitted for brevity]...ZT4
        """
        self.check_single_parameters()  # before client authentication spends anything
        client = self._authenticate_client()
        self._client_id = client.get_client_id()
        log.debug("Validate SAML2 bearer token request of %r", self._client_id)
        if not client.check_grant_type(self.GRANT_TYPE):
            raise UnauthorizedClientError(
                f"The client is not authorized to use 'grant_type={self.GRANT_TYPE}'"
            )
        self.request.client = client
        raw = self.get_assertion_parameter()
        verifier = self.get_verifier()
        resolve = RecordingResolver(self.resolve_identity_provider)
        try:
            with fail_closed():  # the hooks may fail too
                assertion = verifier.verify(
                    raw,
                    envelope=self.ASSERTION_ENVELOPE,
                    audiences=self.get_audiences(),
                    recipients=self.get_recipients(),
                    resolve_identity_provider=resolve,
                )
                self._check_client_binding(client, assertion, resolve.provider)
            self.request.saml2_assertion = assertion
            self.validate_requested_scope()
            user = self._resolve_user(client, assertion)
            # Last: a failed request above must not burn the assertion.
            spend_assertion(self.settings.replay_cache, assertion, verifier.clock_skew)
        except AssertionRejected as exc:
            self._reject(exc)
        self.request.user = user
        log.info(
            "SAML2 bearer assertion accepted: issuer=%r id=%r subject=%r client=%r",
            assertion.issuer,
            assertion.assertion_id,
            assertion.subject,
            self._client_id,
        )
        assertion_accepted.send(
            current_app._get_current_object(),  # type: ignore[attr-defined]  # a LocalProxy
            grant=self,
            assertion=assertion,
            client=client,
        )

    @hooked
    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        """Issue the access token, per :rfc:`7522#section-2.1` and :rfc:`6749#section-5.1`.

        Its lifetime comes from Authlib's ``OAUTH2_TOKEN_EXPIRES_IN`` for this
        grant type; a refresh token is included as ``SAML2_BEARER_ISSUE_REFRESH_TOKEN``
        says: never, always, or when the granted scope has ``offline_access``.
        """
        settings = self.settings
        try:
            scope = self.request.payload.scope
            token = self.generate_token(
                user=self.request.user,
                scope=scope,
                include_refresh_token=self._include_refresh_token(scope),
            )
            log.debug("Issue token %r to %r", token, self.client)
            self.save_token(token)
            if settings.transactional_cache is not None:
                # The replay record is durable before the token leaves the server.
                settings.transactional_cache.commit()
        except OAuth2Error:
            # Authlib's own answer, e.g. invalid_scope when the client's
            # get_allowed_scope() refuses the scope: no token, assertion unspent.
            release_spent(settings.transactional_cache)
            raise
        except Exception as exc:  # e.g. the token database is down: 503, never a 500
            log.exception("SAML2 bearer token could not be issued")
            self._reject(
                AssertionRejected(
                    "token_error",
                    "Generating or saving the token failed",
                    error=describe_error(exc),
                    assertion_spent=not release_spent(settings.transactional_cache),
                )
            )
        return 200, token, self.TOKEN_RESPONSE_HEADER

    def _authenticate_client(self) -> Any:
        try:
            return self.authenticate_token_endpoint_client()
        except OAuth2Error:
            raise
        except Exception as exc:  # e.g. the client database is down: 503, not invalid_client
            log.exception("SAML2 bearer client authentication failed unexpectedly")
            self._reject(
                AssertionRejected(
                    "client_lookup_error",
                    "Looking up or authenticating the client failed",
                    error=describe_error(exc),
                )
            )

    def _check_client_binding(
        self, client: Any, assertion: VerifiedAssertion, provider: IdentityProvider | None
    ) -> None:
        if provider is None:  # a get_verifier() of the app's own did not ask
            provider = self.resolve_identity_provider(assertion.issuer)
        if provider is None or not self.check_client_identity_provider(client, provider):
            raise client_not_allowed(client.get_client_id(), assertion.issuer, provider)

    def _include_refresh_token(self, scope: str | None) -> bool:
        """``SAML2_BEARER_ISSUE_REFRESH_TOKEN``: never, always, or only when the
        scope granted (the requested one the client is allowed) has ``offline_access``."""
        policy = self.settings.issue_refresh_token
        if policy != OFFLINE_ACCESS:
            return bool(policy)
        granted = self.client.get_allowed_scope(scope) if scope else None
        return OFFLINE_ACCESS in scope_to_list(granted or "")

    def _resolve_user(self, client: Any, assertion: VerifiedAssertion) -> Any:
        try:
            user = self.authenticate_user(assertion)
            allowed = user is not None and self.has_granted_permission(client, user)
        except Exception as exc:  # e.g. the user database is down: 503, unspent
            log.exception("SAML2 bearer user lookup failed")
            raise AssertionRejected(
                "user_lookup_error",
                "Looking up the user of the assertion failed",
                error=describe_error(exc),
            ) from exc
        if user is None:
            raise AssertionRejected(
                "user_unknown", "No user matches the assertion subject", subject=assertion.subject
            )
        if not callable(getattr(user, "get_user_id", None)):
            # Authlib's token generator and save_token call user.get_user_id().
            log.error(
                "%s.authenticate_user() returned a %s without get_user_id(): "
                "Authlib needs it on the user model to issue tokens",
                type(self).__name__,
                type(user).__name__,
            )
            raise AssertionRejected(
                "user_lookup_error",
                "authenticate_user() returned a user without get_user_id()",
                user_type=type(user).__name__,
            )
        if not allowed:
            raise AssertionRejected(
                "permission_denied",
                "The client may not obtain tokens for this user",
                subject=assertion.subject,
            )
        return user

    def check_single_parameters(self) -> None:
        """:rfc:`6749#section-3.2`: request parameters MUST NOT be included more
        than once; a repeated one of :attr:`SINGLE_PARAMETERS` is refused, as is
        an ``assertion`` in the URL query (:rfc:`7522#section-2.1` sends it in
        the body).

        :raise InvalidRequestError: naming the parameter.
        """
        try:
            in_query = "assertion" in (self.request.args or {})
        except NotImplementedError:  # a request type without a query string
            in_query = False
        if in_query:  # :rfc:`7522#section-2.1`: a credential copied into access logs
            raise InvalidRequestError("The 'assertion' must be sent in the request body.")
        datalist = self.request.payload.datalist
        for name in self.SINGLE_PARAMETERS:
            if len(datalist.get(name) or ()) > 1:
                raise InvalidRequestError(f"Multiple '{name}' parameters in request.")

    def get_assertion_parameter(self) -> str:
        """The single ``assertion`` parameter of the request.

        :rfc:`7522#section-2.1` sends it in the form-encoded entity-body; in
        the URL query it would be a credential copied into access logs.

        :raise InvalidRequestError: when it is missing or empty (in the query
            string or repeated: see :meth:`check_single_parameters`).
        """
        values = self.request.payload.datalist.get("assertion") or []
        if not values or not values[0]:
            raise InvalidRequestError("Missing 'assertion' in request.")
        return values[0]

    def authenticate_user(self, assertion: VerifiedAssertion) -> Any | None:
        """Find the resource owner the verified assertion is about. Developers
        MUST implement this method in subclass, e.g.::

            def authenticate_user(self, assertion):
                return User.query.filter_by(email=assertion.subject).first()

        :param assertion: the :class:`VerifiedAssertion`; ``assertion.subject``
            is the NameID, ``assertion.attributes`` the attribute values.
        :return: a user, or ``None`` to refuse with ``invalid_grant``.
        """
        raise NotImplementedError()

    def has_granted_permission(self, client: Any, user: Any) -> bool:
        """Whether ``client`` may obtain tokens on behalf of ``user``.

        The IdP already vouched for the user and named this server as the
        audience, so the default allows it. Override to restrict, e.g.::

            def has_granted_permission(self, client, user):
                return user.tenant_id == client.tenant_id

        :return: bool; ``False`` refuses with ``invalid_grant``.
        """
        return True

    def get_audiences(self) -> frozenset[str]:
        """Our identities accepted as ``Audience`` (:rfc:`7522#section-3`, item 2).

        Defaults to ``SAML2_BEARER_AUDIENCES``.
        """
        return self.get_verifier().audiences

    def get_recipients(self) -> frozenset[str]:
        """Accepted ``SubjectConfirmationData/@Recipient`` values (item 3).

        Defaults to ``SAML2_BEARER_RECIPIENTS``, itself defaulting to the audiences.
        """
        return self.get_verifier().recipients

    def resolve_identity_provider(self, issuer: str) -> IdentityProvider | None:
        """The trusted IdP whose entity ID is ``issuer``, or ``None``.

        Defaults to ``SAML2_BEARER_IDENTITY_PROVIDERS``; override to load IdPs
        from a database, e.g. per tenant. The returned provider's
        ``entity_id`` must equal ``issuer``.
        """
        return self.get_verifier().trust.get(issuer)

    def check_client_identity_provider(self, client: Any, provider: IdentityProvider) -> bool:
        """Whether ``client`` may present assertions of ``provider``.

        By default an IdP entry with ``"client_ids"`` serves only those
        clients, and one without serves every client. Override to decide
        from your own client model, e.g. an IdP stored per client::

            def check_client_identity_provider(self, client, provider):
                return provider.entity_id == client.saml_idp_entity_id

        :return: bool; ``False`` refuses with ``invalid_grant``
            (reason ``client_not_allowed``).
        """
        return provider.check_client(client.get_client_id())

    @cached_property
    def settings(self) -> Saml2BearerSettings:
        """The app's ready ``SAML2_BEARER_*`` settings (see :class:`~.SAML2Bearer`)."""
        return get_settings()

    def get_verifier(self) -> AssertionVerifier:
        """The app's verifier, built once from its settings."""
        return self.settings.verifier

    def _reject(self, exc: AssertionRejected) -> NoReturn:
        """Report ``exc`` (log line and signal, with a new reference) and refuse:
        ``invalid_grant``, or 503 ``temporarily_unavailable`` when a store failed
        (:data:`~.outages.OUTAGE_REASONS`)."""
        reference = report_rejection(log, self, exc, self._reported_client_id(), "assertion")
        if exc.reason in OUTAGE_REASONS:
            raise self._unavailable(exc, reference) from exc
        raise InvalidGrantError(
            description=with_reference(self.INVALID_ASSERTION_DESCRIPTION, reference)
        ) from exc

    def _unavailable(self, exc: AssertionRejected, reference: str) -> TemporarilyUnavailableError:
        settings = self.settings
        spent = exc.details.get("assertion_spent")
        if spent is None:  # failed before the token: leave the session clean, unspent
            spent = False
            release_spent(settings.transactional_cache)
        if spent:
            description = TemporarilyUnavailableError.SPENT_DESCRIPTION
        else:
            description = TemporarilyUnavailableError.RETRY_DESCRIPTION
        return TemporarilyUnavailableError(
            with_reference(description, reference), retry_after=settings.retry_after
        )

    def _reported_client_id(self) -> str | None:
        if self._client_id is None and self.request.client is not None:
            try:
                self._client_id = self.request.client.get_client_id()
            except Exception:  # an expired client whose database is down
                log.debug("The client ID could not be read for the log", exc_info=True)
        return self._client_id
