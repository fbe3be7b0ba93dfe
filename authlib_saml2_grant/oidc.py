"""OpenID Connect ID tokens for the SAML 2.0 bearer grant.

An extension of the grant, in the shape of Authlib's own
:class:`~authlib.oidc.core.grants.OpenIDToken`: when the granted scope
contains ``openid``, the token response carries an ``id_token``
(`OpenID Connect Core 1.0 section 2
<https://openid.net/specs/openid-connect-core-1_0.html#IDToken>`__) describing the
authentication the identity provider vouched for in the verified assertion.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType
from typing import Any
from typing import ClassVar

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import OAuth2Request
from authlib.oauth2.rfc6749 import scope_to_list
from authlib.oidc.core import UserInfo
from authlib.oidc.core.grants import OpenIDToken

from .assertion import VerifiedAssertion
from .errors import AssertionRejected
from .errors import describe_error

__all__ = ["SAML2OpenIDToken"]

log = logging.getLogger(__name__)

#: The assertion of the ID token being encoded: the extension instance is
#: shared by every request, so the per-request value lives in the context.
_current_assertion: ContextVar[VerifiedAssertion | None] = ContextVar(
    "saml2_id_token_assertion", default=None
)


class SAML2OpenIDToken(OpenIDToken):
    """Add an ``id_token`` to the tokens of the SAML 2.0 bearer grant.

    The ID token is issued only when the granted scope (the token's
    ``scope``, after the client's allowed scopes were applied) contains
    ``openid``, per `OpenID Connect Core 1.0 section 3.1.2.1
    <https://openid.net/specs/openid-connect-core-1_0.html#AuthRequest>`__. Its claims
    are Authlib's (``iss`` and ``exp`` from :meth:`get_client_claims`,
    ``aud`` defaulting to the client ID, ``iat``, ``at_hash`` per section
    3.1.3.6), the user info of :meth:`generate_user_info` (``sub`` and
    more), and, from the verified assertion, the claims of
    :meth:`get_assertion_claims`: ``auth_time`` and ``acr`` when the IdP
    sent an ``AuthnStatement``. Developers MUST implement the missing
    methods::

        class MyOpenIDToken(SAML2OpenIDToken):
            def resolve_client_private_key(self, client):
                return private_key  # a joserfc key or KeySet

            def get_client_claims(self, client):
                return {"iss": "https://as.example.com"}

            def generate_user_info(self, user, scope):
                return self.get_user_info_from_assertion(self.get_assertion(), scope)

    Then register it with the grant::

        server.register_grant(SAML2BearerGrant, [MyOpenIDToken()])

    Authlib's ``get_client_algorithm`` picks the signing algorithm (the
    client's ``id_token_signed_response_alg``, else ``RS256``) and
    ``DEFAULT_EXPIRES_IN`` the ID token lifetime in seconds. Authlib's
    deprecated ``get_jwt_config`` is not supported.
    """

    #: Scope value to the claims it requests, per `OpenID Connect Core 1.0
    #: section 5.4 <https://openid.net/specs/openid-connect-core-1_0.html#ScopeClaims>`__;
    #: :meth:`get_user_info_from_assertion` releases no other mapped claim.
    #: Extend it in a subclass for claims of your own scopes.
    SCOPES_CLAIMS_MAPPING: ClassVar[Mapping[str, Sequence[str]]] = MappingProxyType(
        dict(UserInfo.SCOPES_CLAIMS_MAPPING)
    )

    def resolve_client_private_key(self, client: Any) -> Any:
        """The private key that signs the ``id_token`` of ``client``. Developers
        MUST implement this method in subclass, e.g.::

            import json
            from joserfc.jwk import KeySet


            def resolve_client_private_key(self, client):
                with open(jwks_file_path) as f:
                    return KeySet.import_key_set(json.load(f))

        :param client: the authenticated client.
        :return: a joserfc key or key set, for the algorithm of
            ``get_client_algorithm``.
        """
        raise NotImplementedError()

    def get_client_claims(self, client: Any) -> dict[str, Any]:
        """The claims every ``id_token`` of ``client`` carries; ``iss`` is
        REQUIRED by `OpenID Connect Core 1.0 section 2
        <https://openid.net/specs/openid-connect-core-1_0.html#IDToken>`__.
        Developers MUST implement this method in subclass, e.g.::

            def get_client_claims(self, client):
                return {"iss": "https://as.example.com"}

        ``aud`` defaults to ``[client.get_client_id()]``, ``iat`` to now and
        ``exp`` to now plus ``DEFAULT_EXPIRES_IN``; an ``exp`` returned here
        is an absolute time (epoch seconds). ``auth_time`` comes from the
        assertion only (see :meth:`get_assertion_claims`).

        :param client: the authenticated client.
        :return: a dict of claims.
        """
        raise NotImplementedError()

    def generate_user_info(self, user: Any, scope: str) -> UserInfo:
        """The user claims of the ``id_token``, ``sub`` REQUIRED. Developers MUST
        implement this method in subclass. :meth:`get_assertion` is the
        verified assertion, and :meth:`get_user_info_from_assertion` derives
        ``sub`` (its NameID) and the claims that ``scope`` requests from it::

            def generate_user_info(self, user, scope):
                return self.get_user_info_from_assertion(self.get_assertion(), scope)

        ``sub`` must be stable and never reassigned (`OpenID Connect Core 1.0
        section 2 <https://openid.net/specs/openid-connect-core-1_0.html#IDToken>`__):
        with a transient NameID, or several IdPs whose NameIDs may collide,
        take it from your user model instead::

            def generate_user_info(self, user, scope):
                assertion = self.get_assertion()
                return self.get_user_info_from_assertion(assertion, scope, sub=str(user.id))

        :param user: the user returned by the grant's ``authenticate_user``.
        :param scope: the granted scope, a space-separated string.
        :return: an :class:`authlib.oidc.core.UserInfo`.
        """
        raise NotImplementedError()

    def get_assertion(self) -> VerifiedAssertion:
        """The verified assertion of the token whose ``id_token`` is being
        encoded, for :meth:`generate_user_info` and the other hooks.

        :raise RuntimeError: when called outside the encoding of an ID token.
        """
        assertion = _current_assertion.get()
        if assertion is None:
            raise RuntimeError("get_assertion() is only available while an ID token is encoded")
        return assertion

    def get_assertion_claims(self, assertion: VerifiedAssertion) -> dict[str, Any]:
        """The ID token claims the assertion states about the authentication,
        per `OpenID Connect Core 1.0 section 2
        <https://openid.net/specs/openid-connect-core-1_0.html#IDToken>`__, each only when present:

        auth_time
            ``AuthnStatement/@AuthnInstant``, in seconds since the epoch.
        acr
            ``AuthnContext/AuthnContextClassRef``, an absolute URI.

        Override to translate them, e.g. to add ``amr`` values::

            def get_assertion_claims(self, assertion):
                claims = super().get_assertion_claims(assertion)
                if claims.get("acr") == MFA_CONTEXT_CLASS:
                    claims["amr"] = ["mfa"]
                return claims

        :param assertion: the :class:`~authlib_saml2_grant.VerifiedAssertion`.
        :return: a dict of claims.
        """
        claims: dict[str, Any] = {}
        if assertion.authn_instant is not None:
            claims["auth_time"] = int(assertion.authn_instant.timestamp())
        if assertion.authn_context_class_ref:
            claims["acr"] = assertion.authn_context_class_ref
        return claims

    def get_user_info_from_assertion(
        self, assertion: VerifiedAssertion, scope: str, sub: str | None = None
    ) -> UserInfo:
        """User info from the assertion: ``sub`` and the claims ``scope`` requests.

        The claims are those ``SAML2_BEARER_CLAIMS`` mapped from the signed
        attributes (``assertion.claims``) that a scope value of ``scope``
        requests in :attr:`SCOPES_CLAIMS_MAPPING`: ``profile``, ``email``,
        ``address`` and ``phone`` per `OpenID Connect Core 1.0 section 5.4
        <https://openid.net/specs/openid-connect-core-1_0.html#ScopeClaims>`__.
        Values are kept as mapped, strings or lists of strings; convert them
        in a subclass where a claim has another type (``email_verified``,
        ``updated_at``, ``address``).

        :param assertion: the :class:`~authlib_saml2_grant.VerifiedAssertion`.
        :param scope: the granted scope, a space-separated string.
        :param sub: the subject identifier; defaults to the NameID
            (``assertion.subject``). A mapped ``sub`` claim is never used.
        :return: an :class:`authlib.oidc.core.UserInfo`.
        """
        requested = {
            claim
            for value in scope_to_list(scope) or ()
            for claim in self.SCOPES_CLAIMS_MAPPING.get(value, ())
        }
        requested.discard("sub")
        user_info = UserInfo(sub=assertion.subject if sub is None else sub)
        user_info.update(
            (claim, value) for claim, value in assertion.claims.items() if claim in requested
        )
        return user_info

    def get_compatible_claims(self, request: OAuth2Request) -> dict[str, Any]:
        """Authlib's default claims, with those of :meth:`get_assertion_claims`.

        Authlib defaults ``auth_time`` to now; the end-user authenticated to
        the identity provider, so only the assertion's ``AuthnInstant`` is used.
        """
        claims: dict[str, Any] = super().get_compatible_claims(request)
        claims.pop("auth_time", None)
        claims.update(self.get_assertion_claims(self.get_assertion()))
        return claims

    def process_token(self, grant: Any, response: Any) -> Any:
        """Authlib's ``after_create_token_response`` hook: add the ``id_token``.

        It runs after the access token was saved and the assertion spent, so a
        failure here (a signing key that cannot be loaded, a hook that raises)
        is reported by the grant as ``token_error``: a JSON 503 telling the
        client to retry with a new assertion, never a 500.
        """
        try:
            return super().process_token(grant, response)
        except OAuth2Error:
            raise
        except Exception as exc:
            reject = getattr(grant, "_reject", None)
            if reject is None:  # not a SAML2 grant: Authlib's own behaviour
                raise
            log.exception("The ID token could not be issued")
            reject(
                AssertionRejected(
                    "token_error",
                    "Generating the ID token failed",
                    error=describe_error(exc),
                    assertion_spent=True,
                )
            )

    def encode_id_token(self, token: dict[str, Any], request: OAuth2Request) -> str:
        """Encode the ``id_token`` of ``token``, the assertion of ``request``
        available to the hooks through :meth:`get_assertion`."""
        with _assertion_context(request):
            id_token: str = super().encode_id_token(token, request)
        log.debug("Issue ID token to %r", request.client)
        return id_token


@contextmanager
def _assertion_context(request: OAuth2Request) -> Iterator[None]:
    assertion = getattr(request, "saml2_assertion", None)
    if not isinstance(assertion, VerifiedAssertion):
        raise RuntimeError(
            "SAML2OpenIDToken needs the verified assertion the SAML2 bearer grant "
            "stores as request.saml2_assertion: register it with that grant"
        )
    reset = _current_assertion.set(assertion)
    try:
        yield
    finally:
        _current_assertion.reset(reset)
