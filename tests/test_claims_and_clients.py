"""What the products our users come from give them: attribute claims
(``SAML2_BEARER_CLAIMS``), IdPs bound to clients (``client_ids``), the refresh-token
policy, and authenticated clients by default."""

from __future__ import annotations

import pytest

from authlib_saml2_grant import ConfigurationError
from authlib_saml2_grant import get_settings
from authlib_saml2_grant.settings import load_settings

from .conftest import AUDIENCES
from .conftest import CLIENT_ID
from .conftest import Client
from .conftest import Grant
from .conftest import db
from .conftest import mint_for
from .helpers import BAD_CLIENT_CREDENTIALS
from .helpers import app_for
from .helpers import assert_accepted
from .helpers import assert_rejected
from .helpers import unsigned_tree

CLAIMS = {
    "email": ["mail", "urn:oid:0.9.2342.19200300.100.1.3"],
    "groups": "memberOf",
    "name": ["displayName", "cn"],
    "department": "department",
}


def friendly(idp, attributes):
    """A signed assertion whose attributes have OID Names and the given FriendlyNames."""
    from .helpers import saml

    tree = unsigned_tree(idp)
    statement = tree.makeelement(saml("AttributeStatement"))
    tree.append(statement)
    for oid, (friendly_name, values) in attributes.items():
        attribute = statement.makeelement(saml("Attribute"), Name=oid, FriendlyName=friendly_name)
        statement.append(attribute)
        for value in values:
            element = attribute.makeelement(saml("AttributeValue"))
            element.text = value
            attribute.append(element)
    return idp.sign(tree)


# -- SAML2_BEARER_CLAIMS -----------------------------------------------------------------


def test_claims_mapped_from_signed_attributes(tmp_path, idp):
    """Attribute contract (PingFederate): each claim from the first attribute name
    present; one value a string, several a list; a missing attribute is absent."""
    attributes = {
        "urn:oid:0.9.2342.19200300.100.1.3": "alice@example.com",
        "memberOf": ["admins", "staff"],
        "cn": "Alice",
    }
    with app_for(tmp_path, [idp], SAML2_BEARER_CLAIMS=CLAIMS) as h:
        verified = assert_accepted(*h.token(mint_for(idp, attributes=attributes)), h.accepted)
    assert dict(verified.claims) == {
        "email": "alice@example.com",
        "groups": ["admins", "staff"],
        "name": "Alice",
    }
    assert "department" not in verified.claims
    verified.claims["groups"].append("mallory")  # a copy: the mapping never changes
    assert verified.claims["groups"] == ["admins", "staff"]


def test_claims_first_name_wins_and_friendly_names_match(tmp_path, idp):
    """A list of names is tried in order; a name matches an attribute's ``Name``
    first, then its ``FriendlyName`` (SAML core 2.7.3.1)."""
    from .helpers import send

    xml = friendly(
        idp,
        {
            "urn:oid:0.9.2342.19200300.100.1.3": ("mail", ["alice@example.com"]),
            "urn:oid:2.16.840.1.113730.3.1.241": ("displayName", ["Alice Example"]),
            "urn:oid:2.5.4.3": ("cn", ["alice"]),
        },
    )
    with app_for(tmp_path, [idp], SAML2_BEARER_CLAIMS=CLAIMS) as h:
        verified = assert_accepted(*send(h.client, xml), h.accepted)
    assert verified.claims["email"] == "alice@example.com"
    assert verified.claims["name"] == "Alice Example"


def test_claims_read_only_from_the_signed_element(tmp_path, idp):
    """:rfc:`7522#section-3` item 9: an AttributeStatement added after signing breaks
    the signature; claims never come from unsigned XML."""
    from lxml import etree

    from .helpers import saml
    from .helpers import send

    signed = etree.fromstring(idp.sign(unsigned_tree(idp)))
    statement = etree.SubElement(signed, saml("AttributeStatement"))
    attribute = etree.SubElement(statement, saml("Attribute"), Name="memberOf")
    etree.SubElement(attribute, saml("AttributeValue")).text = "admins"
    with app_for(tmp_path, [idp], SAML2_BEARER_CLAIMS=CLAIMS) as h:
        status, body = send(h.client, etree.tostring(signed))
        assert_rejected(status, body, h.reasons, "signature_invalid")


def test_no_claims_setting_no_claims(client, mint, accepted):
    """Without SAML2_BEARER_CLAIMS the assertion has attributes but no claims."""
    verified = assert_accepted(*client_token(client, mint(attributes={"mail": "a@x"})), accepted)
    assert dict(verified.claims) == {}
    assert verified.attributes["mail"] == ("a@x",)


def client_token(client, assertion, **extra):
    from .conftest import request_token

    return request_token(client, assertion, **extra)


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ("mail", "must map claim names"),
        ({"email": []}, r"SAML2_BEARER_CLAIMS\['email'\]"),
        ({"email": [""]}, "attribute names must be strings"),
        ({"email": 3}, r"SAML2_BEARER_CLAIMS\['email'\]"),
        ({"": "mail"}, "claim names must be non-empty"),
    ],
)
def test_claims_setting_validated_at_start_up(claims, message):
    """A bad SAML2_BEARER_CLAIMS fails at start-up, naming the setting."""
    with pytest.raises(ConfigurationError, match=message):
        load_settings({"SAML2_BEARER_AUDIENCES": list(AUDIENCES), "SAML2_BEARER_CLAIMS": claims})


# -- IdPs bound to clients ------------------------------------------------------------------


def bound_entry(idp, client_ids):
    return {**idp.settings_entry(), "client_ids": client_ids}


def test_idp_bound_to_its_client(tmp_path, idp, other_idp):
    """Ubisecure registers an IdP for a client: that client's assertions from it are
    accepted, and an IdP entry without ``client_ids`` serves every client."""
    idps = [bound_entry(idp, [CLIENT_ID]), other_idp.settings_entry()]
    with app_for(tmp_path, [], SAML2_BEARER_IDENTITY_PROVIDERS=idps) as h:
        assert_accepted(*h.token(mint_for(idp)), h.accepted)
        status, body = h.token(mint_for(other_idp))
    assert status == 200, body
    assert [a.issuer for a in h.accepted] == [idp.entity_id, other_idp.entity_id]


def test_idp_bound_to_another_client_is_refused(tmp_path, idp, caplog):
    """An assertion of an IdP bound to other clients is ``invalid_grant``; the log
    names the client and the allowed ids, and the assertion is not spent."""
    idps = [bound_entry(idp, ["client-9"])]
    with app_for(tmp_path, [], SAML2_BEARER_IDENTITY_PROVIDERS=idps) as h:
        assertion = mint_for(idp)
        with caplog.at_level("INFO", logger="authlib_saml2_grant.grant"):
            status, body = h.token(assertion)
        assert_rejected(status, body, h.reasons, "client_not_allowed")
        line = next(
            r.getMessage() for r in caplog.records if "client_not_allowed" in r.getMessage()
        )
        assert "client-1" in line and "client-9" in line
        provider = get_settings(h.app).verifier.trust.get(idp.entity_id)
        assert provider.client_ids == frozenset({"client-9"})


def test_client_binding_from_metadata_entries(tmp_path, idp):
    """``client_ids`` applies to every IdP a metadata entry trusts."""
    entry = {"metadata": idp.metadata(), "client_ids": ["client-9"]}
    with app_for(tmp_path, [], SAML2_BEARER_IDENTITY_PROVIDERS=[entry]) as h:
        assert_rejected(*h.token(mint_for(idp)), h.reasons, "client_not_allowed")


def test_client_binding_hook(tmp_path, idp):
    """Apps decide from their own client model by overriding
    ``check_client_identity_provider``."""

    class PerClientIdP(Grant):
        def check_client_identity_provider(self, client, provider):
            return client.client_metadata.get("saml_idp") == provider.entity_id

    with app_for(tmp_path, [idp], grant=PerClientIdP) as h:
        assert_rejected(*h.token(mint_for(idp)), h.reasons, "client_not_allowed")
        client = db.session.execute(db.select(Client).filter_by(client_id=CLIENT_ID)).scalar_one()
        client.set_client_metadata({**client.client_metadata, "saml_idp": idp.entity_id})
        db.session.commit()
        assert_accepted(*h.token(mint_for(idp)), h.accepted)


@pytest.mark.parametrize("client_ids", ["client-1", [""], [1]])
def test_client_ids_validated_at_start_up(idp, client_ids):
    """``client_ids`` must be a list of client IDs (a bare string is a mistake)."""
    with pytest.raises(ConfigurationError, match="client_ids"):
        load_settings(
            {
                "SAML2_BEARER_AUDIENCES": list(AUDIENCES),
                "SAML2_BEARER_IDENTITY_PROVIDERS": [bound_entry(idp, client_ids)],
            }
        )


# -- refresh-token policy ---------------------------------------------------------------


REFRESH = {"OAUTH2_REFRESH_TOKEN_GENERATOR": True}


def allow_offline_access():
    client = db.session.execute(db.select(Client).filter_by(client_id=CLIENT_ID)).scalar_one()
    client.set_client_metadata({**client.client_metadata, "scope": "profile offline_access"})
    db.session.commit()


@pytest.mark.parametrize(
    ("policy", "scope", "refresh"),
    [
        (False, "profile offline_access", False),
        (True, "profile", True),
        ("offline_access", "profile", False),
        ("offline_access", "profile offline_access", True),
    ],
)
def test_refresh_token_policy(tmp_path, idp, policy, scope, refresh):
    """SAML2_BEARER_ISSUE_REFRESH_TOKEN: never, always, or (Okta, Entra ID) only
    when the granted scope contains ``offline_access``."""
    settings = {**REFRESH, "SAML2_BEARER_ISSUE_REFRESH_TOKEN": policy}
    settings["OAUTH2_SCOPES_SUPPORTED"] = ["profile", "offline_access"]
    with app_for(tmp_path, [idp], **settings) as h:
        allow_offline_access()
        status, body = h.token(mint_for(idp), scope=scope)
    assert status == 200, body
    assert ("refresh_token" in body) is refresh
    assert body["scope"] == scope


def test_offline_access_must_be_granted_not_only_requested(tmp_path, idp):
    """The client asked for ``offline_access`` but may not have it: the granted scope
    lacks it, so no refresh token."""
    settings = {**REFRESH, "SAML2_BEARER_ISSUE_REFRESH_TOKEN": "offline_access"}
    settings["OAUTH2_SCOPES_SUPPORTED"] = ["profile", "offline_access"]
    with app_for(tmp_path, [idp], **settings) as h:
        status, body = h.token(mint_for(idp), scope="profile offline_access")
    assert status == 200, body
    assert body["scope"] == "profile"
    assert "refresh_token" not in body


def test_refresh_policy_validated_at_start_up():
    """Only False, True and "offline_access" are accepted."""
    with pytest.raises(ConfigurationError, match="SAML2_BEARER_ISSUE_REFRESH_TOKEN"):
        load_settings(
            {"SAML2_BEARER_AUDIENCES": list(AUDIENCES), "SAML2_BEARER_ISSUE_REFRESH_TOKEN": "yes"}
        )


# -- client authentication -------------------------------------------------------------------


def make_public():
    client = db.session.execute(db.select(Client).filter_by(client_id=CLIENT_ID)).scalar_one()
    client.client_secret = ""
    client.set_client_metadata({**client.client_metadata, "token_endpoint_auth_method": "none"})
    db.session.commit()


def test_public_clients_refused_by_default(tmp_path, idp):
    """:rfc:`7522#section-3.1` leaves client authentication optional, but a bearer
    assertion is a credential anyone holding it could redeem: by default the
    client must authenticate, so a public client is ``invalid_client``."""
    from .conftest import request_token

    with app_for(tmp_path, [idp]) as h:
        make_public()
        status, body = request_token(h.client, mint_for(idp), headers={}, client_id=CLIENT_ID)
    assert (status, body) == (401, BAD_CLIENT_CREDENTIALS)
    assert h.reasons == []


def test_public_clients_are_an_explicit_opt_in(tmp_path, idp):
    """A grant subclass that lists ``none`` lets public clients in."""
    from .conftest import request_token

    class PublicGrant(Grant):
        TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]

    with app_for(tmp_path, [idp], grant=PublicGrant) as h:
        make_public()
        status, body = request_token(h.client, mint_for(idp), headers={}, client_id=CLIENT_ID)
        assert_accepted(status, body, h.accepted)
