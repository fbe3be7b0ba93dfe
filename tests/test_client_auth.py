"""Client authentication with a SAML 2.0 assertion, :rfc:`7522#section-2.2`, on the
saml2-bearer grant and on Authlib's client-credentials grant."""

from __future__ import annotations

from datetime import timedelta

import pytest
from authlib.oauth2.rfc6749 import grants

from authlib_saml2_grant import SAML2_BEARER_GRANT_TYPE
from authlib_saml2_grant import SAML2_CLIENT_ASSERTION_TYPE
from authlib_saml2_grant import SAML2BearerClientAssertion
from authlib_saml2_grant.testing import OMIT
from authlib_saml2_grant.testing import TestIdentityProvider
from authlib_saml2_grant.testing import encode_assertion

from .conftest import AS_ENTITY_ID
from .conftest import TOKEN_ENDPOINT
from .conftest import Client
from .conftest import Grant
from .conftest import db
from .conftest import mint_for
from .helpers import Referenced
from .helpers import ago
from .helpers import app_for

METHOD = SAML2BearerClientAssertion.CLIENT_AUTH_METHOD
SERVICE = "service-1"
INVALID_CLIENT = {
    "error": "invalid_client",
    "error_description": Referenced(
        "The SAML client assertion is invalid, expired or already used."
    ),
}


class AssertionClientGrant(Grant):
    TOKEN_ENDPOINT_AUTH_METHODS = [*Grant.TOKEN_ENDPOINT_AUTH_METHODS, METHOD]


class ClientCredentialsGrant(grants.ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", METHOD]


@pytest.fixture(scope="module")
def service_idp():
    """The service client as the issuer of its own assertions."""
    return TestIdentityProvider(SERVICE)


@pytest.fixture
def h(tmp_path, idp, service_idp):
    """An app whose server registers the method, a client-credentials grant, and
    a client ``service-1`` registered for SAML client assertions."""
    with app_for(tmp_path, [idp], grant=AssertionClientGrant) as harness:
        server = harness.app.extensions["test_server"]
        server.register_client_auth_method(METHOD, SAML2BearerClientAssertion(TOKEN_ENDPOINT))
        server.register_grant(ClientCredentialsGrant)
        service = Client(client_id=SERVICE, client_secret="")
        service.set_client_metadata(
            {
                "grant_types": [SAML2_BEARER_GRANT_TYPE, "client_credentials"],
                "scope": "profile",
                "token_endpoint_auth_method": METHOD,
                "saml2_certificates": [service_idp.certificate_pem],
            }
        )
        db.session.add(service)
        db.session.commit()
        yield harness


def client_assertion(idp, subject=SERVICE, **fields):
    fields.setdefault("audience", AS_ENTITY_ID)
    return mint_for(idp, subject=subject, **fields)


def post(h, client_assertion, grant_type="client_credentials", **extra):
    data = {
        "grant_type": grant_type,
        "client_assertion_type": SAML2_CLIENT_ASSERTION_TYPE,
        "client_assertion": client_assertion,
        **extra,
    }
    response = h.client.post("/oauth/token", data=data)
    return response.status_code, response.get_json()


def assert_refused(h, status, body, reason):
    """:rfc:`6749#section-5.2`: ``invalid_client``, 401; operators see ``reason``."""
    assert (status, body) == (401, INVALID_CLIENT)
    assert h.reasons == [reason]


@pytest.mark.parametrize("issuer", ["idp", "self"])
def test_client_credentials_with_a_client_assertion(h, idp, service_idp, issuer):
    """Section 2.2: an IdP-issued or a self-issued assertion whose NameID is the
    client authenticates it, to Authlib's client-credentials grant."""
    signer = idp if issuer == "idp" else service_idp
    status, body = post(h, client_assertion(signer), scope="profile")
    assert status == 200, body
    assert body["token_type"] == "Bearer" and body["scope"] == "profile"


@pytest.mark.parametrize("issuer", ["idp", "self"])
def test_saml2_bearer_grant_with_a_client_assertion(h, idp, service_idp, issuer):
    """Sections 2.1 and 2.2 together (section 2.3): the grant's assertion names
    the user, the client assertion authenticates the client."""
    signer = idp if issuer == "idp" else service_idp
    status, body = post(
        h,
        client_assertion(signer),
        grant_type=SAML2_BEARER_GRANT_TYPE,
        assertion=mint_for(idp),
    )
    assert status == 200, body
    assert [a.subject for a in h.accepted] == ["alice@example.com"]


def test_client_id_parameter_must_be_the_name_id(h, idp):
    """Section 3 item 3: the NameID is the client_id, and equals the client_id
    parameter when one is sent."""
    status, body = post(h, client_assertion(idp), client_id=SERVICE)
    assert status == 200, body
    status, body = post(h, client_assertion(idp), client_id="client-1")
    assert_refused(h, status, body, "client_id_mismatch")
    h.reasons.clear()
    status, body = post(h, client_assertion(idp), client_id=[SERVICE, "client-1"])
    assert_refused(h, status, body, "client_id_mismatch")


@pytest.mark.parametrize(
    ("subject", "reason"),
    [("nobody", "client_unknown"), ("client-1", "client_auth_method_not_allowed")],
)
def test_name_id_must_be_a_client_registered_for_the_method(h, idp, subject, reason):
    """Section 3 item 3: the NameID names a client whose token_endpoint_auth_method
    is this one (client-1 authenticates with a secret)."""
    assert_refused(h, *post(h, client_assertion(idp, subject=subject)), reason)


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"audience": "https://elsewhere.example.com"}, "audience_mismatch"),
        ({"recipient": "https://elsewhere.example.com/token"}, "recipient_mismatch"),
        ({"issue_instant": ago(3600), "lifetime": timedelta(minutes=5)}, "expired"),
        ({"subject": OMIT}, "subject_missing"),
    ],
    ids=["audience", "recipient", "expired", "no-name-id"],
)
def test_section_3_rules_apply_to_client_assertions(h, idp, fields, reason):
    """Section 3 items 2-5: audience, recipient, expiry and subject, as for the grant."""
    assert_refused(h, *post(h, client_assertion(idp, **fields)), reason)


def test_untrusted_issuer_refused(h, other_idp):
    """Section 3 item 1: an issuer that is neither a trusted IdP nor a client with
    certificates of its own."""
    assert_refused(h, *post(h, client_assertion(other_idp)), "issuer_unknown")


def test_client_cannot_issue_for_another_client(h, service_idp):
    """A self-issued assertion speaks for its issuer only: service-1's key cannot
    authenticate client-1 (nor any other client)."""
    from .conftest import CLIENT_ID

    with h.app.app_context():
        client = db.session.execute(db.select(Client).filter_by(client_id=CLIENT_ID)).scalar_one()
        client.set_client_metadata({**client.client_metadata, "token_endpoint_auth_method": METHOD})
        db.session.commit()
    forged = client_assertion(service_idp, subject=CLIENT_ID)
    assert_refused(h, *post(h, forged), "client_not_allowed")


def test_replayed_client_assertion_refused(h, idp):
    """Section 3 item 6: a client assertion authenticates once."""
    assertion = client_assertion(idp)
    assert post(h, assertion)[0] == 200
    assert_refused(h, *post(h, assertion), "replayed")


def test_unsigned_client_assertion_refused(h, idp):
    """Section 3 item 9: the assertion must be signed by the issuer's pinned key."""
    from lxml import etree

    from .conftest import unsigned_tree
    from .helpers import one

    tree = unsigned_tree(idp, subject=SERVICE)
    tree.remove(one(tree, "ds:Signature"))  # the placeholder: nothing signs it
    unsigned = encode_assertion(etree.tostring(tree))
    assert_refused(h, *post(h, unsigned), "signature_missing")


@pytest.mark.parametrize(
    "assertion", ["", "%%%", "PHNhbWw+", ["a", "b"]], ids=["empty", "junk", "not-xml", "twice"]
)
def test_malformed_client_assertions_are_invalid_client(h, assertion):
    """Every bad input is a JSON ``invalid_client``, never a 500."""
    data = {
        "grant_type": "client_credentials",
        "client_assertion_type": SAML2_CLIENT_ASSERTION_TYPE,
        "client_assertion": assertion,
    }
    response = h.client.post("/oauth/token", data=data)
    assert (response.status_code, response.get_json()) == (401, INVALID_CLIENT)
    assert len(h.reasons) == 1


def test_other_methods_still_work_beside_it(h, mint):
    """Registering the method leaves secret-based clients as they were."""
    from .conftest import request_token

    status, body = request_token(h.client, mint())
    assert status == 200, body
