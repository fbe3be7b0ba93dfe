"""Every refusal carries a short random reference (issue 13, item 5).

The client's ``error_description`` ends with ``Reference: <10 base32
characters>``; the same reference is in the operator's log line
(``reference=...``) and the ``assertion_rejected`` signal, so a support
ticket quoting the client's error finds the reason code. A new reference is
drawn for every refusal.
"""

from __future__ import annotations

import logging

from authlib.oauth2.rfc6749 import grants

from authlib_saml2_grant import SAML2_CLIENT_ASSERTION_TYPE
from authlib_saml2_grant import SAML2BearerClientAssertion
from authlib_saml2_grant.signals import new_reference

from .conftest import TOKEN_ENDPOINT
from .conftest import Client
from .conftest import db
from .conftest import mint_for
from .helpers import GENERIC
from .helpers import REFERENCE
from .helpers import app_for
from .helpers import assert_description

METHOD = SAML2BearerClientAssertion.CLIENT_AUTH_METHOD


def log_lines(caplog, reference):
    return [r.getMessage() for r in caplog.records if f"reference={reference}" in r.getMessage()]


def test_invalid_grant_reference_is_in_the_log_and_the_signal(tmp_path, idp, caplog):
    """The reference of an invalid_grant finds its log line, which names the reason."""
    caplog.set_level(logging.INFO, logger="authlib_saml2_grant")
    with app_for(tmp_path, [idp]) as h:
        status, body = h.token(mint_for(idp, audience="https://other.example.com"))
        assert status == 400
        reference = assert_description(body, GENERIC)
        assert h.references == [reference]
        (line,) = log_lines(caplog, reference)
        assert "reason=audience_mismatch client='client-1'" in line
        status, again = h.token(mint_for(idp, audience="https://other.example.com"))
        assert assert_description(again, GENERIC) != reference  # one per refusal


def test_client_assertion_reference(tmp_path, idp, caplog):
    """A refused SAML client assertion's invalid_client carries its reference too."""

    class ClientCredentialsGrant(grants.ClientCredentialsGrant):
        TOKEN_ENDPOINT_AUTH_METHODS = [METHOD]

    caplog.set_level(logging.INFO, logger="authlib_saml2_grant")
    with app_for(tmp_path, [idp]) as h:
        server = h.app.extensions["test_server"]
        server.register_client_auth_method(METHOD, SAML2BearerClientAssertion(TOKEN_ENDPOINT))
        server.register_grant(ClientCredentialsGrant)
        service = Client(client_id="service-1", client_secret="")
        service.set_client_metadata(
            {"grant_types": ["client_credentials"], "token_endpoint_auth_method": METHOD}
        )
        db.session.add(service)
        db.session.commit()
        response = h.client.post(
            "/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_assertion_type": SAML2_CLIENT_ASSERTION_TYPE,
                "client_assertion": mint_for(idp, subject="nobody"),
            },
        )
        assert response.status_code == 401
        body = response.get_json()
        reference = assert_description(
            body, SAML2BearerClientAssertion.INVALID_ASSERTION_DESCRIPTION
        )
        assert h.references == [reference] and h.reasons == ["client_unknown"]
        (line,) = log_lines(caplog, reference)
        assert "SAML2 bearer client assertion rejected: reason=client_unknown" in line
        assert reference in response.headers["WWW-Authenticate"]


def test_references_are_short_random_ascii():
    """10 characters of RFC 4648 base32: safe in an error_description (RFC 6749
    section 5.2 characters) and a log line; never the same twice here."""
    references = {new_reference() for _ in range(2000)}
    assert len(references) == 2000
    assert all(REFERENCE.search(f" Reference: {r}") for r in references)
