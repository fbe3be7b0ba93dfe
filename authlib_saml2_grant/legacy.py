"""Salesforce's SAML assertion flow: ``grant_type=assertion`` with a whole Response.

Before :rfc:`7522`, Salesforce's "SAML Assertion Flow for Accessing the API"
exchanged the Web SSO ``samlp:Response`` an IdP posts to an ACS for an access
token, and many integrations are still written against it::

    POST /oauth/token HTTP/1.1
    Content-Type: application/x-www-form-urlencoded

    grant_type=assertion&
    assertion_type=urn%3Aoasis%3Anames%3Atc%3ASAML%3A2.0%3Aprofiles%3ASSO%3Abrowser&
    assertion=PHNhbWxwOlJlc3BvbnNlIH...

:class:`SAML2LegacyAssertionGrant` is that flow on the same verifier, settings,
hooks and replay cache as :class:`~.SAML2BearerGrant`; the Response envelope is
checked by :mod:`~.response`. What differs is the request (``assertion_type``,
no client credentials needed), the answer (never a refresh token; ``format``
selects JSON, form encoding or XML) and nothing else.
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import urlencode

from authlib.oauth2.rfc6749 import InvalidClientError
from authlib.oauth2.rfc6749 import InvalidRequestError
from lxml import etree
from werkzeug.datastructures import MIMEAccept
from werkzeug.http import parse_accept_header

from .grant import SAML2BearerGrant

__all__ = ["SAML2_BROWSER_SSO_ASSERTION_TYPE", "SAML2LegacyAssertionGrant"]

log = logging.getLogger(__name__)

#: The one ``assertion_type`` of the flow: a Web SSO (browser profile) Response.
SAML2_BROWSER_SSO_ASSERTION_TYPE = "urn:oasis:names:tc:SAML:2.0:profiles:SSO:browser"

#: Parameters that carry client credentials; without any of them the token
#: goes to ``SAML2_BEARER_LEGACY_CLIENT_ID``.
_CLIENT_PARAMETERS = ("client_id", "client_secret", "client_assertion", "client_assertion_type")
_XML_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")


class SAML2LegacyAssertionGrant(SAML2BearerGrant):
    """Exchange a signed Web SSO ``Response`` for an access token, as Salesforce does.

    Subclass and register it like :class:`~.SAML2BearerGrant`, with the same
    :meth:`authenticate_user`; both grants can be registered on one server::

        class LegacyGrant(authlib_saml2_grant.SAML2LegacyAssertionGrant):
            def authenticate_user(self, assertion):
                return User.query.filter_by(email=assertion.subject).first()

        server.register_grant(LegacyGrant)

    Clients that send credentials authenticate as usual; a request without
    any is issued to the client named by ``SAML2_BEARER_LEGACY_CLIENT_ID``
    (unset: ``invalid_client``). A refresh token is never issued.
    """

    GRANT_TYPE = "assertion"
    ASSERTION_ENVELOPE = "response"

    #: The only accepted ``assertion_type``.
    ASSERTION_TYPE = SAML2_BROWSER_SSO_ASSERTION_TYPE

    SINGLE_PARAMETERS = (*SAML2BearerGrant.SINGLE_PARAMETERS, "assertion_type", "format")

    #: ``format`` values and the media types they answer with; the first is the default.
    RESPONSE_FORMATS = {
        "json": "application/json",
        "urlencoded": "application/x-www-form-urlencoded",
        "xml": "application/xml",
    }

    def validate_token_request(self) -> None:
        """Validate a Salesforce-style SAML assertion flow request.

        grant_type
             REQUIRED. ``assertion``.
        assertion_type
             REQUIRED. ``urn:oasis:names:tc:SAML:2.0:profiles:SSO:browser``.
        assertion
             REQUIRED. The signed ``samlp:Response``, Base64-encoded (then
             URL-encoded, as every form value).
        format
             OPTIONAL. ``json`` (default), ``urlencoded`` or ``xml``.

        Request-shape faults are ``invalid_request`` before anything else.
        """
        self.check_single_parameters()
        self.check_assertion_type()
        self.get_response_format()
        super().validate_token_request()

    def check_assertion_type(self) -> None:
        """The ``assertion_type`` parameter must be exactly :attr:`ASSERTION_TYPE`.

        :raise InvalidRequestError: when it is missing or another value.
        """
        values = self.request.payload.datalist.get("assertion_type") or []
        if not values or not values[0]:
            raise InvalidRequestError("Missing 'assertion_type' in request.")
        if values[0] != self.ASSERTION_TYPE:
            raise InvalidRequestError(f"The 'assertion_type' must be {self.ASSERTION_TYPE}.")

    def get_response_format(self) -> str:
        """The answer's format: the ``format`` parameter, else the ``Accept`` header.

        :return: a key of :attr:`RESPONSE_FORMATS`.
        :raise InvalidRequestError: for an unknown ``format`` value.
        """
        values = self.request.payload.datalist.get("format") or []
        if values:
            if values[0] not in self.RESPONSE_FORMATS:
                raise InvalidRequestError(
                    "The 'format' must be one of " + ", ".join(self.RESPONSE_FORMATS) + "."
                )
            return values[0]
        accept = parse_accept_header(self.request.headers.get("Accept"), MIMEAccept)
        types = {media: name for name, media in self.RESPONSE_FORMATS.items()}
        types["text/xml"] = "xml"
        best = accept.best_match(list(types), default=self.RESPONSE_FORMATS["json"])
        return types[best]

    def authenticate_token_endpoint_client(self) -> Any:
        """Authenticate the client, or take ``SAML2_BEARER_LEGACY_CLIENT_ID``
        when the request carries no client credentials at all (the flow works
        "without a connected app").

        :raise InvalidClientError: without credentials and without a
            configured, registered legacy client.
        """
        if self._sends_client_credentials():
            return super().authenticate_token_endpoint_client()
        client_id = self.settings.legacy_client_id
        if client_id is None:
            raise InvalidClientError(description="Client authentication is required.")
        client = self.server.query_client(client_id)
        if client is None:
            log.error("SAML2_BEARER_LEGACY_CLIENT_ID %r is not a registered client", client_id)
            raise InvalidClientError(description="Client authentication is required.")
        self.server.send_signal("after_authenticate_client", client=client, grant=self)
        return client

    def _sends_client_credentials(self) -> bool:
        if "Authorization" in self.request.headers:
            return True
        datalist = self.request.payload.datalist
        return any(datalist.get(name) for name in _CLIENT_PARAMETERS)

    def _include_refresh_token(self, scope: str | None) -> bool:
        return False  # "a refresh_token is never issued in this flow"

    def create_token_response(self) -> tuple[int, Any, list[tuple[str, str]]]:
        """Issue the access token (never a refresh token) in the requested format.

        Extra fields, such as Salesforce's ``id`` and ``instance_url``, come
        from an ``after_create_token_response`` hook, which sees the token
        as a dict before it is rendered (see the README).
        """
        status, token, headers = super().create_token_response()
        return status, *self._render(token, headers)

    def _render(
        self, token: dict[str, Any], headers: list[tuple[str, str]]
    ) -> tuple[Any, list[tuple[str, str]]]:
        name = self.get_response_format()
        if name == "json":
            return token, headers
        media = self.RESPONSE_FORMATS[name]
        headers = [(k, v) for k, v in headers if k.lower() != "content-type"]
        headers.insert(0, ("Content-Type", f"{media}; charset=utf-8"))
        if name == "urlencoded":
            return urlencode({k: str(v) for k, v in token.items()}), headers
        return _to_xml(token), headers


def _to_xml(token: dict[str, Any]) -> str:
    """Salesforce's XML answer: ``<OAuth><access_token>...</access_token>...</OAuth>``."""
    root = etree.Element("OAuth")
    for key, value in token.items():
        if not _XML_NAME.fullmatch(key):
            log.warning("Token field %r is not an XML name: left out of the XML answer", key)
            continue
        etree.SubElement(root, key).text = str(value)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8").decode("utf-8")
