"""Clients written for other products, against the example app: docs/compatibility.md.

For Okta, Salesforce, PingFederate, Ubisecure SSO, Microsoft Entra ID and WSO2
Identity Server the page shows the token request each product's client sends,
the settings and client registrations that make the example app accept it, and
the response. This module holds the same blocks, as data: ``REQUESTS`` (the
exact HTTP text), ``RESPONSES``, ``SETTINGS`` and ``CLIENTS``.
:func:`test_page_and_module_hold_the_same_blocks` proves the page and the module
agree block for block, :func:`test_every_block_is_exercised` that each block is
used; every other test builds the example app from ``SETTINGS`` and ``CLIENTS``
(``create_app(config, instance_path=...)``, then ``flask init``), sends one of
``REQUESTS`` byte for byte, and checks the answer against ``RESPONSES``.

The assertions are minted by throwaway IdPs (:mod:`authlib_saml2_grant.testing`)
under the entity IDs the page names; the certificate files the page names are
replaced by those IdPs' certificates.
"""

from __future__ import annotations

import ast
import base64
import copy
import inspect
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote
from urllib.parse import urlsplit

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from lxml import etree

from authlib_saml2_grant import SAML2_BEARER_GRANT_TYPE
from authlib_saml2_grant.testing import TestIdentityProvider
from authlib_saml2_grant.testing import build_assertion
from authlib_saml2_grant.testing import encode_assertion
from authlib_saml2_grant.xml import SAML_NS
from authlib_saml2_grant.xml import SAMLP_NS
from example_app import create_app
from example_app.bootstrap import DEMO_USER_EMAIL
from example_app.models import Client
from example_app.models import db

from .conftest import record_signals

PAGE = Path(__file__).resolve().parent.parent / "docs" / "compatibility.md"

AS = "https://as.example.com"
TOKEN_ENDPOINT = f"{AS}/oauth/token"
ACS_URL = "https://client.example.com/saml/acs"
#: The user ``flask init`` creates; every assertion is about them.
USER = DEMO_USER_EMAIL
RESOURCE_ID = "4e1c9a52-8d07-4f2b-b6a3-91d0c5e7f318"
ENTRA_SCOPE = f"{AS}/.default"

OKTA_IDP = "http://www.okta.com/exk1example2okta3idp"
SALESFORCE_APP = "3MVG9example.consumer.key"
#: The IdP a Salesforce org uses for single sign-on (its Web SSO Responses).
SALESFORCE_SSO_IDP = "https://sso.example.com"
SALESFORCE_SSO_CLIENT = "salesforce-sso"
PINGFEDERATE_IDP = "https://pingfederate.example.com"
UBISECURE_IDP = "urn:uuid:6f1c2d3e-4a5b-4c6d-8e7f-9a0b1c2d3e4f"
ENTRA_IDP = "https://sts.windows.net/0b6c3f2a-8e1d-4c7b-9a5e-2d4f6b8c0e1a/"
WSO2_IDP = "https://idp.example.org"

ENTITY_FORMAT = "urn:oasis:names:tc:SAML:2.0:nameid-format:entity"
MAIL_OID = "urn:oid:0.9.2342.19200300.100.1.3"
ENTRA_EMAIL = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress"
ENTRA_NAME = "http://schemas.microsoft.com/identity/claims/displayname"
ENTRA_OID = "http://schemas.microsoft.com/identity/claims/objectidentifier"
XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'

# -- the page's blocks, as data -----------------------------------------------------------


def request(*headers: str, body: str) -> str:
    """The HTTP text of a token request to as.example.com."""
    return "\n".join(("POST /oauth/token HTTP/1.1", "Host: as.example.com", *headers, "", body))


FORM = "Content-Type: application/x-www-form-urlencoded"
ACCEPT_JSON = "Accept: application/json"
OKTA_BASIC = "Authorization: Basic b2t0YS1jbGllbnQ6b2t0YS1zZWNyZXQ="  # okta-client:okta-secret
PF_BASIC = "Authorization: Basic cGYtY2xpZW50OnBmLXNlY3JldA=="  # pf-client:pf-secret
UBI_BASIC = "Authorization: Basic dWJpLW5hdGl2ZS1hcHA6dWJpLXNlY3JldA=="  # ubi-native-app:...
UBI_OTHER_BASIC = "Authorization: Basic dWJpLW90aGVyLWFwcDp1Ymktb3RoZXItc2VjcmV0"
WSO2_BASIC = "Authorization: Basic d3NvMi1jbGllbnQ6d3NvMi1zZWNyZXQ="  # wso2-client:wso2-secret
#: The grant type as curl --data-urlencode and most form encoders send it, and as typed.
GRANT_ENCODED = "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Asaml2-bearer"
GRANT_TYPED = f"grant_type={SAML2_BEARER_GRANT_TYPE}"
BASE64URL = "<assertion: base64url, unpadded>"
BASE64_ENCODED = "<assertion: Base64, padded, percent-encoded>"
BASE64_RAW = "<assertion: Base64, padded, not percent-encoded>"
RESPONSE_ENCODED = "<SAML Response: Base64, padded, percent-encoded>"
REFRESH_TOKEN = "<refresh_token>"

#: Every request of the page, exactly as sent.
REQUESTS: dict[str, str] = {
    "okta": request(
        ACCEPT_JSON,
        FORM,
        OKTA_BASIC,
        body=f"{GRANT_ENCODED}&scope=openid%20offline_access&assertion={BASE64_ENCODED}",
    ),
    "okta-refresh": request(
        ACCEPT_JSON,
        FORM,
        OKTA_BASIC,
        body=f"grant_type=refresh_token&refresh_token={REFRESH_TOKEN}",
    ),
    "salesforce-assertion-flow": request(
        FORM,
        body="grant_type=assertion&assertion_type="
        "urn%3Aoasis%3Anames%3Atc%3ASAML%3A2.0%3Aprofiles%3ASSO%3Abrowser"
        f"&assertion={RESPONSE_ENCODED}",
    ),
    "salesforce-bearer": request(FORM, body=f"{GRANT_ENCODED}&assertion={BASE64URL}"),
    "salesforce-bearer-with-credentials": request(
        FORM,
        body=f"{GRANT_ENCODED}&assertion={BASE64URL}"
        f"&client_id={SALESFORCE_APP}&client_secret=sf-secret",
    ),
    "pingfederate": request(FORM, PF_BASIC, body=f"{GRANT_TYPED}&assertion={BASE64URL}&scope=edit"),
    "pingfederate-credentials-in-body": request(
        FORM,
        body=f"{GRANT_TYPED}&assertion={BASE64URL}&scope=edit"
        "&client_id=pf-post-client&client_secret=pf-post-secret",
    ),
    "ubisecure": request(
        UBI_BASIC, FORM, body=f"{GRANT_TYPED}&scope=openid+{RESOURCE_ID}&assertion={BASE64URL}"
    ),
    "ubisecure-other-client": request(
        UBI_OTHER_BASIC,
        FORM,
        body=f"{GRANT_TYPED}&scope=openid+{RESOURCE_ID}&assertion={BASE64URL}",
    ),
    "entra-id": request(
        FORM,
        body=f"{GRANT_ENCODED}&client_id=entra-api&client_secret=entra-secret"
        f"&assertion={BASE64URL}&scope=https%3A%2F%2Fas.example.com%2F.default",
    ),
    "entra-id-base64": request(
        FORM,
        body=f"{GRANT_ENCODED}&client_id=entra-api&client_secret=entra-secret"
        f"&assertion={BASE64_ENCODED}&scope=https%3A%2F%2Fas.example.com%2F.default",
    ),
    "wso2": request(
        WSO2_BASIC, FORM, body=f"{GRANT_TYPED}&assertion={BASE64_ENCODED}&scope=PRODUCTION"
    ),
    "wso2-unencoded": request(
        WSO2_BASIC, FORM, body=f"{GRANT_TYPED}&assertion={BASE64_RAW}&scope=PRODUCTION"
    ),
}


@dataclass(frozen=True)
class Expected:
    """A response of the page: its status, the headers it must carry, its JSON body.

    A string value holding ``<...>`` is a placeholder: any non-empty text there,
    and a compact JWS when the value is ``<JWT...>``.
    """

    status: int
    headers: dict[str, str]
    body: dict[str, Any]


#: RFC 6749 section 5.1: a token response is JSON and never cached.
TOKEN_HEADERS = {
    "Content-Type": "application/json",
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
}
#: An error response (RFC 6749 section 5.2) is JSON too, and Authlib sends it uncached.
ERROR_HEADERS = {"Content-Type": "application/json", "Cache-Control": "no-store"}
ACCESS_TOKEN = "<JWT: RFC 9068 access token>"
ID_TOKEN = "<JWT: ID token>"
OPAQUE_REFRESH_TOKEN = "<opaque refresh token>"
REFUSED = Expected(
    400,
    ERROR_HEADERS,
    {
        "error": "invalid_grant",
        "error_description": "The SAML assertion is invalid, expired or already used. "
        "Reference: <reference>",
    },
)


def token(scope: str | None = None, **extra: str) -> Expected:
    """A 200 token response (RFC 6749 section 5.1) of the example app."""
    body: dict[str, Any] = {
        "access_token": ACCESS_TOKEN,
        "token_type": "Bearer",
        "expires_in": 3600,
    }
    if scope is not None:
        body["scope"] = scope
    return Expected(200, TOKEN_HEADERS, {**body, **extra})


#: Every response of the page.
RESPONSES: dict[str, Expected] = {
    "okta": token("openid offline_access", refresh_token=OPAQUE_REFRESH_TOKEN, id_token=ID_TOKEN),
    "okta-refresh": token("openid offline_access", refresh_token=OPAQUE_REFRESH_TOKEN),
    "salesforce-assertion-flow": token(id=f"{AS}/id/{SALESFORCE_SSO_CLIENT}/1", instance_url=AS),
    "salesforce-bearer": Expected(
        401,
        {
            **ERROR_HEADERS,
            "WWW-Authenticate": 'Basic error="invalid_client", '
            'error_description="<Authlib\'s description>"',
        },
        {"error": "invalid_client", "error_description": "<Authlib's description>"},
    ),
    "salesforce-bearer-with-credentials": token(),
    "pingfederate": token("edit"),
    "pingfederate-browser-sso": REFUSED,
    "ubisecure": token(f"openid {RESOURCE_ID}", id_token=ID_TOKEN),
    "ubisecure-other-client": REFUSED,
    "entra-id": token(ENTRA_SCOPE),
    "wso2": token("PRODUCTION", refresh_token=OPAQUE_REFRESH_TOKEN),
    "wso2-unencoded": REFUSED,
}

TWO_RECIPIENTS = [TOKEN_ENDPOINT, ACS_URL]

#: Every settings block of the page: ``common``, then each product's additions.
SETTINGS: dict[str, dict[str, Any]] = {
    "common": {
        "EXAMPLE_APP_BASE_URL": AS,
        "EXAMPLE_APP_DEMO_IDP": False,
        "SAML2_BEARER_AUDIENCES": [AS],
    },
    "okta": {
        "SAML2_BEARER_RECIPIENTS": TWO_RECIPIENTS,
        "SAML2_BEARER_IDENTITY_PROVIDERS": [
            {"entity_id": OKTA_IDP, "certificates": ["okta-signing.pem"]},
        ],
        "SAML2_BEARER_CLAIMS": {
            "email": "email",
            "given_name": "firstName",
            "family_name": "lastName",
        },
        "SAML2_BEARER_ISSUE_REFRESH_TOKEN": "offline_access",
        "OAUTH2_SCOPES_SUPPORTED": ["openid", "offline_access", "profile", "email"],
    },
    "salesforce-assertion-flow": {
        "SAML2_BEARER_IDENTITY_PROVIDERS": [
            {"entity_id": SALESFORCE_SSO_IDP, "certificates": ["sso-signing.pem"]},
        ],
        "SAML2_BEARER_LEGACY_CLIENT_ID": SALESFORCE_SSO_CLIENT,
    },
    "salesforce": {
        "SAML2_BEARER_IDENTITY_PROVIDERS": [
            {
                "entity_id": SALESFORCE_APP,
                "certificates": ["salesforce-connected-app.pem"],
                "client_ids": [SALESFORCE_APP],
            },
        ],
        "SAML2_BEARER_ISSUE_REFRESH_TOKEN": False,
        "OAUTH2_SCOPES_SUPPORTED": ["api"],
    },
    "pingfederate": {
        "SAML2_BEARER_IDENTITY_PROVIDERS": [
            {"entity_id": PINGFEDERATE_IDP, "certificates": ["pingfederate-signing.pem"]},
        ],
        "SAML2_BEARER_CLAIMS": {
            "email": "mail",
            "name": ["displayName", "cn"],
            "groups": "memberOf",
        },
        "SAML2_BEARER_ISSUE_REFRESH_TOKEN": False,
        "OAUTH2_SCOPES_SUPPORTED": ["edit"],
    },
    "ubisecure": {
        "SAML2_BEARER_RECIPIENTS": TWO_RECIPIENTS,
        "SAML2_BEARER_IDENTITY_PROVIDERS": [
            {
                "entity_id": UBISECURE_IDP,
                "certificates": ["ubisecure-client-idp.pem"],
                "client_ids": ["ubi-native-app"],
            },
        ],
        "SAML2_BEARER_ISSUE_REFRESH_TOKEN": "offline_access",
        "OAUTH2_SCOPES_SUPPORTED": ["openid", "offline_access", RESOURCE_ID],
    },
    "entra-id": {
        "SAML2_BEARER_RECIPIENTS": TWO_RECIPIENTS,
        "SAML2_BEARER_IDENTITY_PROVIDERS": [
            {"entity_id": ENTRA_IDP, "certificates": ["entra-signing.pem"]},
        ],
        "SAML2_BEARER_CLAIMS": {"email": ENTRA_EMAIL, "name": ENTRA_NAME, "oid": ENTRA_OID},
        "SAML2_BEARER_ISSUE_REFRESH_TOKEN": "offline_access",
        "OAUTH2_SCOPES_SUPPORTED": [ENTRA_SCOPE],
    },
    "wso2": {
        "SAML2_BEARER_AUDIENCES": [AS, TOKEN_ENDPOINT],
        "SAML2_BEARER_IDENTITY_PROVIDERS": [
            {"entity_id": WSO2_IDP, "certificates": ["idp-signing.pem"]},
        ],
        "SAML2_BEARER_ISSUE_REFRESH_TOKEN": True,
        "OAUTH2_SCOPES_SUPPORTED": ["PRODUCTION"],
    },
}


def registration(client_id: str, secret: str, method: str, scope: str, *grants: str) -> dict:
    """A client's RFC 7591 metadata, with its credentials."""
    return {
        "client_id": client_id,
        "client_secret": secret,
        "token_endpoint_auth_method": method,
        "grant_types": [SAML2_BEARER_GRANT_TYPE, *grants],
        "scope": scope,
    }


BASIC = "client_secret_basic"
POST = "client_secret_post"

#: Every client registration of the page, per product.
CLIENTS: dict[str, list[dict]] = {
    "okta": [
        registration(
            "okta-client",
            "okta-secret",
            BASIC,
            "openid offline_access profile email",
            "refresh_token",
        )
    ],
    "salesforce-assertion-flow": [
        {
            "client_id": SALESFORCE_SSO_CLIENT,
            "client_secret": "",
            "token_endpoint_auth_method": "none",
            "grant_types": ["assertion"],
            "scope": "profile",
        }
    ],
    "salesforce": [registration(SALESFORCE_APP, "sf-secret", POST, "api")],
    "pingfederate": [
        registration("pf-client", "pf-secret", BASIC, "edit"),
        registration("pf-post-client", "pf-post-secret", POST, "edit"),
    ],
    "ubisecure": [
        registration("ubi-native-app", "ubi-secret", BASIC, f"openid {RESOURCE_ID}"),
        registration("ubi-other-app", "ubi-other-secret", BASIC, f"openid {RESOURCE_ID}"),
    ],
    "entra-id": [registration("entra-api", "entra-secret", POST, ENTRA_SCOPE)],
    "wso2": [registration("wso2-client", "wso2-secret", BASIC, "PRODUCTION", "refresh_token")],
}

# -- the page and this module agree ------------------------------------------------------

_BLOCK = re.compile(
    r"<!-- (request|response|settings|clients): ([\w-]+) -->\n```(\w+)\n(.*?)\n```", re.DOTALL
)
_LANGUAGES = {"request": "http", "response": "http", "settings": "python", "clients": "json"}


def page_blocks() -> dict[str, dict[str, str]]:
    """The marked blocks of the page: kind -> name -> text."""
    text = PAGE.read_text(encoding="utf-8")
    blocks: dict[str, dict[str, str]] = {kind: {} for kind in _LANGUAGES}
    for kind, name, language, content in _BLOCK.findall(text):
        assert language == _LANGUAGES[kind], f"{kind} {name} is a {language} block"
        assert name not in blocks[kind], f"two {kind} blocks named {name}"
        blocks[kind][name] = content
    http = len(blocks["request"]) + len(blocks["response"])
    assert text.count("```http") == http, "an http block of the page has no marker"
    return blocks


def parse_response(text: str) -> Expected:
    """A response block: status line, headers, a blank line, JSON."""
    head, _, body = text.partition("\n\n")
    status_line, *header_lines = head.split("\n")
    headers = dict(line.split(": ", 1) for line in header_lines)
    return Expected(int(status_line.split(" ")[1]), headers, json.loads(body))


def test_page_and_module_hold_the_same_blocks():
    """docs/compatibility.md cannot drift: its requests are this module's
    ``REQUESTS`` character for character (the bytes the tests send), and its
    responses, settings and client registrations (RFC 7591 metadata) are
    ``RESPONSES``, ``SETTINGS`` and ``CLIENTS``."""
    blocks = page_blocks()
    assert blocks["request"] == REQUESTS
    assert {name: parse_response(text) for name, text in blocks["response"].items()} == RESPONSES
    settings = {name: ast.literal_eval(text) for name, text in blocks["settings"].items()}
    assert settings == SETTINGS
    assert {name: json.loads(text) for name, text in blocks["clients"].items()} == CLIENTS


def test_every_block_is_exercised():
    """Every request of the page is sent by a test, every response checked by
    one, every product's settings and clients built into an app by one."""
    source = inspect.getsource(sys.modules[__name__])
    assert set(re.findall(r'send\(\s*\w+,\s*"([\w-]+)"', source)) == set(REQUESTS)
    assert set(re.findall(r'expect\(\s*\w+,\s*"([\w-]+)"', source)) == set(RESPONSES)
    built = set(re.findall(r'product_app\(\s*"([\w-]+)"', source))
    assert built == set(CLIENTS) == set(SETTINGS) - {"common"}


# -- the example app, per product ----------------------------------------------------------


pytestmark = pytest.mark.usefixtures("no_example_env")


@pytest.fixture(scope="module")
def idps() -> dict[str, TestIdentityProvider]:
    """One throwaway IdP per entity ID of the page (the RSA keys are the slow part)."""
    entity_ids = (
        OKTA_IDP,
        SALESFORCE_APP,
        SALESFORCE_SSO_IDP,
        PINGFEDERATE_IDP,
        UBISECURE_IDP,
        ENTRA_IDP,
        WSO2_IDP,
    )
    return {entity_id: TestIdentityProvider(entity_id) for entity_id in entity_ids}


@pytest.fixture
def product_app(tmp_path, idps) -> Callable:
    """``product_app(name)``: the example app configured as the page says for
    ``name``, initialised by ``flask init``, with the product's clients."""

    def build(product: str):
        config = copy.deepcopy({**SETTINGS["common"], **SETTINGS[product], "TESTING": True})
        config["SAML2_BEARER_IDENTITY_PROVIDERS"] = [
            {**entry, "certificates": [idps[entry["entity_id"]].certificate_pem]}
            for entry in config["SAML2_BEARER_IDENTITY_PROVIDERS"]
        ]
        app = create_app(config, instance_path=str(tmp_path / "instance"))
        result = app.test_cli_runner().invoke(args=["init"])
        assert result.exit_code == 0, result.output
        with app.app_context():
            for metadata in CLIENTS[product]:
                metadata = dict(metadata)
                client = Client(
                    client_id=metadata.pop("client_id"),
                    client_secret=metadata.pop("client_secret"),
                )
                client.set_client_metadata(metadata)
                db.session.add(client)
            db.session.commit()
        return app

    return build


# -- assertions as each product's IdP writes them -----------------------------------------


def signed(idp: TestIdentityProvider, tweak: Callable | None = None, **fields: Any) -> bytes:
    """An assertion of ``idp`` about the user, for this server; ``tweak`` edits
    the tree before it is signed; ``fields`` go to ``build_assertion``."""
    fields = {
        "issuer": idp.entity_id,
        "subject": USER,
        "audience": AS,
        "recipient": TOKEN_ENDPOINT,
        **fields,
    }
    tree = build_assertion(**fields)
    if tweak is not None:
        tweak(tree)
    return idp.sign(tree)


def saml(name: str) -> str:
    return f"{{{SAML_NS}}}{name}"


def okta_assertion(idp: TestIdentityProvider) -> bytes:
    """Okta as SAML IdP: Recipient the app's Single sign-on URL, attribute statements."""
    attributes = {"email": USER, "firstName": "Alice", "lastName": "Example"}
    return signed(idp, recipient=ACS_URL, attributes=attributes)


def pingfederate_assertion(idp: TestIdentityProvider, **fields: Any) -> bytes:
    """PingFederate: the attribute contract, ``mail`` as an OID with a FriendlyName."""
    attributes = {MAIL_OID: USER, "cn": "Alice Example", "memberOf": ["staff", "admins"]}

    def friendly_name(tree: etree._Element) -> None:
        for attribute in tree.iter(saml("Attribute")):
            if attribute.get("Name") == MAIL_OID:
                attribute.set("FriendlyName", "mail")

    return signed(idp, tweak=friendly_name, attributes=attributes, **fields)


def ubisecure_assertion(idp: TestIdentityProvider) -> bytes:
    """Ubisecure: an Issuer of the entity format, Recipient an ACS URL."""

    def entity_format(tree: etree._Element) -> None:
        tree.find(saml("Issuer")).set("Format", ENTITY_FORMAT)

    return signed(idp, tweak=entity_format, recipient=ACS_URL)


def entra_assertion(idp: TestIdentityProvider) -> bytes:
    """Entra ID: default namespace, Recipient the Reply URL, claim-type URIs."""
    attributes = {
        ENTRA_EMAIL: USER,
        ENTRA_NAME: "Alice Example",
        ENTRA_OID: "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a",
    }
    return signed(idp, nsmap={None: SAML_NS}, recipient=ACS_URL, attributes=attributes)


def wso2_assertion(idp: TestIdentityProvider) -> bytes:
    """WSO2: an XML declaration; Audience and Recipient the token endpoint."""
    return XML_DECLARATION + signed(idp, audience=TOKEN_ENDPOINT)


def saml_response(assertion: bytes, issuer: str) -> bytes:
    """A whole ``samlp:Response`` around a signed assertion (Salesforce's
    ``grant_type=assertion`` flow posts one)."""
    root = etree.Element(f"{{{SAMLP_NS}}}Response", nsmap={"samlp": SAMLP_NS, "saml": SAML_NS})
    root.set("ID", "_response-1")
    root.set("Version", "2.0")
    root.set("IssueInstant", "2026-01-01T00:00:00Z")
    etree.SubElement(root, saml("Issuer")).text = issuer
    status = etree.SubElement(root, f"{{{SAMLP_NS}}}Status")
    code = etree.SubElement(status, f"{{{SAMLP_NS}}}StatusCode")
    code.set("Value", "urn:oasis:names:tc:SAML:2.0:status:Success")
    root.append(etree.fromstring(assertion))
    return etree.tostring(root)


# -- sending a request of the page, checking a response of the page ------------------------


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


#: How each placeholder of ``REQUESTS`` is filled, from the test's values.
PLACEHOLDERS: dict[str, Callable[[dict[str, Any]], str]] = {
    BASE64URL: lambda values: encode_assertion(values["assertion"]),
    BASE64_ENCODED: lambda values: quote(b64(values["assertion"]), safe=""),
    BASE64_RAW: lambda values: b64(values["assertion"]),
    RESPONSE_ENCODED: lambda values: quote(b64(values["response"]), safe=""),
    REFRESH_TOKEN: lambda values: quote(values["refresh_token"], safe=""),
}


def send(app, name: str, **values: Any):
    """Send the request ``name`` of the page, placeholders filled from ``values``."""
    text = REQUESTS[name]
    for placeholder, fill in PLACEHOLDERS.items():
        if placeholder in text:
            text = text.replace(placeholder, fill(values))
    assert "<" not in text, text
    head, _, body = text.partition("\n\n")
    request_line, *header_lines = head.split("\n")
    method, target, _ = request_line.split(" ")
    headers = dict(line.split(": ", 1) for line in header_lines)
    host = headers.pop("Host")
    return app.test_client().open(
        target,
        method=method,
        base_url=f"https://{host}",
        headers=headers,
        data=body.encode("ascii"),
    )


_PLACEHOLDER = re.compile(r"<[^<>]+>")
_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


def matches(expected: Any, actual: Any) -> bool:
    """Whether ``actual`` is what the page shows (see :class:`Expected`)."""
    if not (isinstance(expected, str) and _PLACEHOLDER.search(expected)):
        return expected == actual
    if not isinstance(actual, str):
        return False
    pattern = ".+".join(re.escape(part) for part in _PLACEHOLDER.split(expected))
    if not re.fullmatch(pattern, actual, re.DOTALL):
        return False
    return not expected.startswith("<JWT") or bool(_JWS.fullmatch(actual))


def expect(response, name: str) -> dict[str, Any]:
    """Check ``response`` against the response ``name`` of the page; its JSON."""
    expected = RESPONSES[name]
    body = response.get_json()
    assert response.status_code == expected.status, body
    for header, value in expected.headers.items():
        actual = response.headers.get(header)
        assert matches(value, actual), f"{header}: {actual!r}, the page shows {value!r}"
    assert isinstance(body, dict), response.get_data(as_text=True)
    members, shown = sorted(body), sorted(expected.body)
    assert members == shown, f"members {members}, the page shows {shown}"
    for member, value in expected.body.items():
        assert matches(value, body[member]), f"{member}: {body[member]!r}, not {value!r}"
    return body


def verify(app, token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The header and claims of a JWT of the app, verified with the keys at the
    ``jwks_uri`` of its RFC 8414 metadata, as a client or resource server would."""
    client = app.test_client()
    metadata = client.get("/.well-known/oauth-authorization-server", base_url=AS).get_json()
    jwks_uri = urlsplit(metadata["jwks_uri"])
    assert f"{jwks_uri.scheme}://{jwks_uri.netloc}" == AS, metadata
    keys = KeySet.import_key_set(client.get(jwks_uri.path, base_url=AS).get_json())
    decoded = jwt.decode(token, keys, algorithms=["RS256"])
    return decoded.header, decoded.claims


def check_access_token(app, token: str, client_id: str, scope: str | None) -> dict[str, Any]:
    """RFC 9068 sections 2.1 and 2.2: type ``at+jwt``, issued by this server, for
    ``client_id``, with the granted ``scope``; returns the claims."""
    header, claims = verify(app, token)
    assert header["typ"] == "at+jwt", header
    assert claims["iss"] == AS
    assert claims["client_id"] == client_id
    assert claims.get("scope") == scope if scope else not claims.get("scope"), claims
    assert {"sub", "aud", "exp", "iat", "jti"} <= set(claims), claims
    return claims


def check_id_token(app, token: str, client_id: str) -> dict[str, Any]:
    """OpenID Connect Core 1.0 section 2: issued by this server, for the client."""
    _, claims = verify(app, token)
    assert claims["iss"] == AS
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    assert client_id in audiences
    assert {"sub", "exp", "iat"} <= set(claims), claims
    return claims


# -- Okta ----------------------------------------------------------------------------------


def test_okta_client_gets_access_id_and_refresh_tokens(product_app, idps):
    """Okta's SAML 2.0 Assertion flow: standard Base64 (RFC 4648 section 4), padded,
    percent-encoded by curl --data-urlencode, HTTP Basic client authentication
    (RFC 6749 section 2.3.1), ``scope=openid offline_access``. RFC 7522 section
    2.1 asks for base64url; the padded standard spelling is accepted. The
    response has what Okta's has: a JWT access token (RFC 9068), an ID token
    because ``openid`` was granted, a refresh token because ``offline_access``
    was; the access token carries the mapped attribute statements and works at
    the protected API (RFC 6750)."""
    app = product_app("okta")
    response = send(app, "okta", assertion=okta_assertion(idps[OKTA_IDP]))
    body = expect(response, "okta")
    claims = check_access_token(app, body["access_token"], "okta-client", "openid offline_access")
    assert (claims["email"], claims["given_name"], claims["family_name"]) == (
        USER,
        "Alice",
        "Example",
    )
    check_id_token(app, body["id_token"], "okta-client")
    api = app.test_client().get(
        "/api/me", base_url=AS, headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert api.status_code == 200, api.get_json()
    assert api.get_json()["user"]["email"] == USER


def test_okta_client_refreshes_and_the_refresh_token_rotates(product_app, idps):
    """RFC 6749 section 6: the Okta client refreshes with HTTP Basic. The new
    response has a new refresh token, the same scope and no ID token; the old
    refresh token no longer works (RFC 6749 section 10.4: rotation)."""
    app = product_app("okta")
    response = send(app, "okta", assertion=okta_assertion(idps[OKTA_IDP]))
    first = expect(response, "okta")
    response = send(app, "okta-refresh", refresh_token=first["refresh_token"])
    refreshed = expect(response, "okta-refresh")
    assert refreshed["refresh_token"] != first["refresh_token"]
    claims = check_access_token(
        app, refreshed["access_token"], "okta-client", "openid offline_access"
    )
    assert claims["email"] == USER
    again = send(app, "okta-refresh", refresh_token=first["refresh_token"])
    assert (again.status_code, again.get_json()["error"]) == (400, "invalid_grant")


# -- Salesforce ----------------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["response", "assertion"])
def test_salesforce_assertion_flow_gets_id_and_instance_url(product_app, idps, shape):
    """Salesforce's SAML assertion flow posts a whole Web SSO Response with
    ``grant_type=assertion`` and no client credentials: the example app's legacy
    grant issues the token to SAML2_BEARER_LEGACY_CLIENT_ID, with Salesforce's
    ``id`` (which answers with the user) and ``instance_url``, and no refresh
    token. The Response signed (Okta, Entra ID) with Destination and Recipient
    the login URL, or the Assertion signed (Shibboleth, AD FS) with Recipient
    the token endpoint; the same Response again is refused."""
    app = product_app("salesforce-assertion-flow")
    idp = idps[SALESFORCE_SSO_IDP]
    if shape == "response":
        fields = {"subject": USER, "audience": AS, "recipient": AS}
        response = idp.mint_response_xml(sign="response", response={"destination": AS}, **fields)
    else:
        response = saml_response(signed(idp), SALESFORCE_SSO_IDP)
    with record_signals(app) as signals:
        first = send(app, "salesforce-assertion-flow", response=response)
        body = expect(first, "salesforce-assertion-flow")
        again = send(app, "salesforce-assertion-flow", response=response)
    assert (again.status_code, again.get_json()["error"]) == (400, "invalid_grant")
    assert signals.reasons == ["replayed"]
    check_access_token(app, body["access_token"], SALESFORCE_SSO_CLIENT, None)
    identity = app.test_client().get(
        urlsplit(body["id"]).path,
        base_url=AS,
        headers={"Authorization": f"Bearer {body['access_token']}"},
    )
    assert identity.status_code == 200
    assert identity.get_json()["user"]["email"] == USER


def test_salesforce_bearer_request_needs_client_credentials(product_app, idps):
    """Salesforce's SAML bearer flow as documented: RFC 7522 grant, base64url,
    no client authentication (the connected app's signature on the assertion
    stands for it). This server requires client authentication (RFC 7522
    section 3.1 allows it to): 401 ``invalid_client`` with a Basic challenge
    (RFC 6749 section 5.2), and the assertion is not looked at, so not spent.
    The same assertion with the client's credentials in the body then gets a
    token, without scope (none requested) and without refresh token (as with
    Salesforce)."""
    app = product_app("salesforce")
    assertion = signed(idps[SALESFORCE_APP])
    with record_signals(app) as signals:
        response = send(app, "salesforce-bearer", assertion=assertion)
        expect(response, "salesforce-bearer")
        assert (signals.reasons, signals.accepted) == ([], [])
        response = send(app, "salesforce-bearer-with-credentials", assertion=assertion)
        body = expect(response, "salesforce-bearer-with-credentials")
    assert [accepted.issuer for accepted in signals.accepted] == [SALESFORCE_APP]
    check_access_token(app, body["access_token"], SALESFORCE_APP, None)


# -- PingFederate --------------------------------------------------------------------------


def test_pingfederate_client_gets_the_attribute_contract_as_claims(product_app, idps):
    """PingFederate's SAML 2.0 bearer grant: base64url (RFC 7522 section 2.1),
    HTTP Basic, ``scope=edit``; no refresh token. The attribute contract
    becomes claims of the access token through ``SAML2_BEARER_CLAIMS``:
    ``email`` from an OID-named attribute by its FriendlyName, ``name`` from the
    second candidate (``cn``), ``groups`` with both values."""
    app = product_app("pingfederate")
    response = send(app, "pingfederate", assertion=pingfederate_assertion(idps[PINGFEDERATE_IDP]))
    body = expect(response, "pingfederate")
    claims = check_access_token(app, body["access_token"], "pf-client", "edit")
    assert claims["email"] == USER
    assert claims["name"] == "Alice Example"
    assert claims["groups"] == ["staff", "admins"]


def test_pingfederate_client_with_credentials_in_the_body(product_app, idps):
    """PingFederate also takes ``client_id`` and ``client_secret`` in the body:
    ``client_secret_post`` (RFC 6749 section 2.3.1), for a client registered so."""
    app = product_app("pingfederate")
    assertion = pingfederate_assertion(idps[PINGFEDERATE_IDP])
    response = send(app, "pingfederate-credentials-in-body", assertion=assertion)
    body = expect(response, "pingfederate")
    check_access_token(app, body["access_token"], "pf-post-client", "edit")


def test_pingfederate_browser_sso_assertion_is_refused(product_app, idps):
    """PingFederate's guide: do not use assertions acquired through browser SSO.
    A bearer SubjectConfirmationData with ``InResponseTo`` answers an
    AuthnRequest, so it is not an RFC 7522 bearer assertion for this token
    endpoint: ``invalid_grant`` (RFC 7522 section 3.1), reason
    ``in_response_to_present``."""
    app = product_app("pingfederate")
    assertion = pingfederate_assertion(idps[PINGFEDERATE_IDP], in_response_to="_authn-request-7")
    with record_signals(app) as signals:
        response = send(app, "pingfederate", assertion=assertion)
        expect(response, "pingfederate-browser-sso")
    assert signals.reasons == ["in_response_to_present"]


# -- Ubisecure SSO -------------------------------------------------------------------------


def test_ubisecure_client_gets_an_id_token(product_app, idps):
    """Ubisecure SSO's SAML 2.0 bearer grant: HTTP Basic, ``scope=openid
    <resource id>`` (space as ``+``, HTML form encoding), base64url. The Issuer
    carries ``Format`` entity with a ``urn:uuid:`` entity ID (SAML core 8.3.6),
    the Recipient is an ACS URL listed in ``SAML2_BEARER_RECIPIENTS``. ``openid``
    granted: an ID token for the client; no ``offline_access``: no refresh token.
    The resource ID is granted as a scope value; the access token's ``aud``
    stays the example app's API (RFC 9068 section 3)."""
    app = product_app("ubisecure")
    response = send(app, "ubisecure", assertion=ubisecure_assertion(idps[UBISECURE_IDP]))
    body = expect(response, "ubisecure")
    claims = check_access_token(
        app, body["access_token"], "ubi-native-app", f"openid {RESOURCE_ID}"
    )
    assert claims["aud"] == f"{AS}/api"  # the resource ID is a scope value, not the audience
    check_id_token(app, body["id_token"], "ubi-native-app")


def test_ubisecure_idp_bound_to_one_client_refuses_another(product_app, idps):
    """Ubisecure registers the IdP metadata for one client; ``client_ids`` binds
    the IdP entry the same way. Another authenticated client presenting its
    assertion gets ``invalid_grant`` (reason ``client_not_allowed``), and the
    refusal does not spend the assertion: the bound client redeems it next."""
    app = product_app("ubisecure")
    assertion = ubisecure_assertion(idps[UBISECURE_IDP])
    with record_signals(app) as signals:
        response = send(app, "ubisecure-other-client", assertion=assertion)
        expect(response, "ubisecure-other-client")
        assert signals.reasons == ["client_not_allowed"]
        response = send(app, "ubisecure", assertion=assertion)
        expect(response, "ubisecure")


# -- Microsoft Entra ID --------------------------------------------------------------------


def test_entra_id_on_behalf_of_assertion_forwarded_as_received(product_app, idps):
    """Entra ID's on-behalf-of flow returns a SAML 2.0 assertion, base64url, for
    the SAML application standing for this server; the client forwards it with
    ``client_secret_post`` (RFC 6749 section 2.3.1) and a ``<resource>/.default``
    scope. Default-namespace XML, Recipient the Reply URL (an alias), claim-type
    URI attributes mapped to ``email``, ``name`` and ``oid``."""
    app = product_app("entra-id")
    response = send(app, "entra-id", assertion=entra_assertion(idps[ENTRA_IDP]))
    body = expect(response, "entra-id")
    claims = check_access_token(app, body["access_token"], "entra-api", ENTRA_SCOPE)
    assert claims["email"] == USER
    assert claims["name"] == "Alice Example"
    assert claims["oid"] == "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a"


def test_entra_id_assertion_in_standard_base64(product_app, idps):
    """Microsoft's SAML bearer guide sends the Assertion element in standard
    Base64: padded, percent-encoded once, it is accepted as well (RFC 7522
    section 2.1 names base64url; this spelling is taken deliberately)."""
    app = product_app("entra-id")
    response = send(app, "entra-id-base64", assertion=entra_assertion(idps[ENTRA_IDP]))
    body = expect(response, "entra-id")
    check_access_token(app, body["access_token"], "entra-api", ENTRA_SCOPE)


# -- WSO2 Identity Server ------------------------------------------------------------------


def test_wso2_client_gets_a_refresh_token_without_offline_access(product_app, idps):
    """WSO2 Identity Server's guide: HTTP Basic, ``scope=PRODUCTION``, standard
    Base64 percent-encoded, an XML declaration before the Assertion, Audience
    and Recipient the token endpoint URL (listed among the audiences). With
    ``SAML2_BEARER_ISSUE_REFRESH_TOKEN = True`` the response has a refresh token
    as WSO2's does, though ``offline_access`` was not asked for."""
    app = product_app("wso2")
    response = send(app, "wso2", assertion=wso2_assertion(idps[WSO2_IDP]))
    body = expect(response, "wso2")
    check_access_token(app, body["access_token"], "wso2-client", "PRODUCTION")


def test_wso2_unencoded_base64_is_refused(product_app, idps):
    """Standard Base64 pasted unencoded into a form body (``curl -d``): HTML
    form decoding turns each ``+`` into a space, and whitespace inside the data
    is no Base64 spelling, so ``invalid_grant`` (reason ``encoding_invalid``)."""
    app = product_app("wso2")
    assertion = wso2_assertion(idps[WSO2_IDP])
    while "+" not in b64(assertion):  # almost always at once; a `+` is what breaks
        assertion = wso2_assertion(idps[WSO2_IDP])
    with record_signals(app) as signals:
        response = send(app, "wso2-unencoded", assertion=assertion)
        expect(response, "wso2-unencoded")
    assert signals.reasons == ["encoding_invalid"]
