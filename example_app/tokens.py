"""Signed tokens: :rfc:`9068` JWT access tokens and OpenID Connect ID tokens.

Both are Authlib's own: :class:`JWTAccessTokenGenerator` subclasses
:class:`authlib.oauth2.rfc9068.JWTBearerTokenGenerator`, registered with
``server.register_token_generator("default", ...)`` (see
:func:`example_app.oauth.init_signing_key`), and :class:`ExampleOpenIDToken`
subclasses the library's :class:`~authlib_saml2_grant.SAML2OpenIDToken`, an
Authlib ``OpenIDToken`` extension of the grant. Both sign with the key of
:mod:`example_app.keys`.

An Authlib token generator is called with ``client``, ``grant_type``,
``user`` and ``scope`` only, not with the request that holds the verified
assertion (``request.saml2_assertion``). So each grant of this app hands the
claims of the token it issues to the generator explicitly: around its
``generate_token`` call it enters :func:`asserted_claims`, which keeps them
in a :class:`~contextvars.ContextVar` (per thread and per task, reset on
exit even when generation fails):

- the saml2-bearer grant passes :func:`claims_from_assertion`:
  ``auth_time`` and ``acr`` from the ``AuthnStatement``
  (:rfc:`9068#section-2.2.1`) and the claims ``SAML2_BEARER_CLAIMS`` maps
  from the signed attributes (``email``, ``name``, ``groups``...);
- the refresh-token grant passes :func:`claims_from_access_token`: the same
  claims, read back from the signed access token being refreshed, since the
  IdP vouched for them once, at the exchange.

The access token carries every mapped claim (it is meant for the resource
servers this server protects); the ID token only those its scope requests
(OpenID Connect Core 1.0 section 5.4: ``name`` with ``profile``, ``email``
with ``email``). In both, ``sub`` is the local user id: stable, never
reassigned, the same for one user whatever IdP or NameID format vouched for
them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from collections.abc import Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType
from typing import Any

from authlib.oauth2.rfc9068 import JWTBearerTokenGenerator
from authlib.oidc.core import UserInfo
from authlib.oidc.core.grants.util import is_openid_scope
from flask import current_app
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from authlib_saml2_grant import SAML2OpenIDToken
from authlib_saml2_grant import VerifiedAssertion

from .keys import SIGNING_ALG
from .keys import signing_keys

__all__ = [
    "RESOURCE_PATH",
    "JWTAccessTokenGenerator",
    "ExampleOpenIDToken",
    "asserted_claims",
    "claims_from_assertion",
    "claims_from_access_token",
]

log = logging.getLogger(__name__)

#: Where the protected API lives; ``{EXAMPLE_APP_BASE_URL}/api`` is the
#: ``aud`` of access tokens (:rfc:`9068#section-3`: a resource indicator).
RESOURCE_PATH = "/api"

#: The claims the generator sets itself (:rfc:`9068#section-2.2`); an
#: asserted claim of the same name is never copied over them.
GENERATED_CLAIMS = frozenset(
    ("iss", "exp", "aud", "sub", "client_id", "iat", "jti", "scope", "nbf")
)

#: The authentication information claims (:rfc:`9068#section-2.2.1`): from
#: the assertion's ``AuthnStatement`` only, never from its attributes.
AUTHENTICATION_CLAIMS = frozenset(("auth_time", "acr"))

_EMPTY: Mapping[str, Any] = MappingProxyType({})

#: The asserted claims of the access token being generated (see the module documentation).
_asserted: ContextVar[Mapping[str, Any]] = ContextVar("example_app_asserted_claims", default=_EMPTY)


@contextmanager
def asserted_claims(claims: Mapping[str, Any]) -> Iterator[None]:
    """Give ``claims`` to the access tokens generated in this block."""
    reset = _asserted.set(MappingProxyType(dict(claims)))
    try:
        yield
    finally:
        _asserted.reset(reset)


def claims_from_assertion(assertion: VerifiedAssertion) -> dict[str, Any]:
    """``auth_time``, ``acr`` and the mapped claims of a verified assertion."""
    excluded = GENERATED_CLAIMS | AUTHENTICATION_CLAIMS
    claims: dict[str, Any] = {
        name: value for name, value in assertion.claims.items() if name not in excluded
    }
    if assertion.authn_instant is not None:
        claims["auth_time"] = int(assertion.authn_instant.timestamp())
    if assertion.authn_context_class_ref:
        claims["acr"] = assertion.authn_context_class_ref
    return claims


def claims_from_access_token(access_token: str, keys: KeySet | None) -> dict[str, Any]:
    """The asserted claims of an access token this server signed with ``keys``.

    An opaque token (issued before the signing key existed), or one whose
    signature does not verify, has none.
    """
    if keys is None:
        return {}
    try:
        claims = jwt.decode(access_token, keys, algorithms=[SIGNING_ALG]).claims
    except (JoseError, ValueError):
        return {}
    return {name: value for name, value in claims.items() if name not in GENERATED_CLAIMS}


class JWTAccessTokenGenerator(JWTBearerTokenGenerator):
    """:rfc:`9068` access tokens, signed with the app's key.

    The refresh-token generator and the lifetimes are those Authlib's default
    generator has (``OAUTH2_REFRESH_TOKEN_GENERATOR``,
    ``OAUTH2_TOKEN_EXPIRES_IN``), so switching to JWTs changes nothing else.

    :param issuer: the ``iss`` claim, ``EXAMPLE_APP_BASE_URL``.
    :param keys: the private key set (:func:`example_app.keys.signing_keys`).
    """

    def __init__(self, issuer: str, keys: KeySet, **kwargs: Any) -> None:
        super().__init__(issuer, alg=SIGNING_ALG, **kwargs)
        self.keys = keys

    def get_jwks(self) -> KeySet:
        return self.keys

    def get_audiences(self, client: Any, user: Any, scope: str) -> str:
        """The protected API of this app, ``{issuer}/api``: the resource the
        token is for, rather than the client it is issued to."""
        return f"{self.issuer}{RESOURCE_PATH}"

    def get_auth_time(self, user: Any) -> int | None:
        """``AuthnStatement/@AuthnInstant`` of the assertion, in epoch seconds."""
        return _asserted.get().get("auth_time")

    def get_acr(self, user: Any) -> str | None:
        """``AuthnContext/AuthnContextClassRef`` of the assertion."""
        return _asserted.get().get("acr")

    def get_extra_claims(
        self, client: Any, grant_type: str, user: Any, scope: str
    ) -> dict[str, Any]:
        """The claims ``SAML2_BEARER_CLAIMS`` mapped from the assertion's
        signed attributes (see the module documentation)."""
        excluded = GENERATED_CLAIMS | AUTHENTICATION_CLAIMS
        return {name: value for name, value in _asserted.get().items() if name not in excluded}


class ExampleOpenIDToken(SAML2OpenIDToken):
    """ID tokens for the saml2-bearer grant when the granted scope has ``openid``.

    ``iss`` is ``EXAMPLE_APP_BASE_URL``, ``aud`` the client ID, ``exp`` one
    hour after ``iat``; ``auth_time`` and ``acr`` come from the assertion,
    ``sub`` is the local user id, and the scope's claims are mapped from the
    assertion (see the module documentation). Signed ``RS256`` with the
    app's key; until ``flask --app example_app init`` created it, no ID
    token is issued and a WARNING says why.
    """

    #: Lifetime of an ID token, in seconds.
    DEFAULT_EXPIRES_IN = 3600

    def resolve_client_private_key(self, client: Any) -> KeySet | None:
        return signing_keys()

    def get_client_algorithm(self, client: Any) -> str:
        """``RS256`` for every client: the app has one RSA key."""
        return SIGNING_ALG

    def get_client_claims(self, client: Any) -> dict[str, Any]:
        return {"iss": current_app.config["EXAMPLE_APP_BASE_URL"]}

    def generate_user_info(self, user: Any, scope: str) -> UserInfo:
        assertion = self.get_assertion()
        return self.get_user_info_from_assertion(assertion, scope, sub=str(user.get_user_id()))

    def process_token(self, grant: Any, response: tuple) -> dict[str, Any]:
        """Add the ``id_token`` unless the signing key is missing."""
        token = response[1]
        if signing_keys() is None and is_openid_scope(token.get("scope")):
            log.warning(
                "No id_token for client %r: the signing key is missing; "
                "run flask --app example_app init and restart",
                grant.client.get_client_id(),
            )
            return token
        return super().process_token(grant, response)
