"""Interoperability: whole Web SSO Responses signed by libxmlsec1 (python-xmlsec).

Issue 12 item 6 and SECURITY.md ("assertions signed by independent
implementations ... not only signxml"): Salesforce's flow
(``grant_type=assertion``) must accept the Responses real IdPs post to an ACS,
signed by another XML-DSig implementation than the one that verifies them:

- Okta: ``saml2p:``/``saml2:`` prefixes, Issuer with the entity Format, the
  Response signed (``sign="response"``) or both, exc-c14n with
  ``InclusiveNamespaces PrefixList="xs"`` for ``xsi:type="xs:string"`` values;
- Entra ID: ``samlp:`` Response, default-namespace ``Issuer`` and
  ``Assertion``, default-namespace ``Signature``; the Response signed, the
  Assertion ("sign SAML assertion") or both;
- Shibboleth IdP: ``saml2p:``/``saml2:``/``ds:``, pretty-printed, no
  Extensions, only the Assertion signed (``PrefixList="xsd"``);
- AD FS: ``samlp:`` Response with ``Consent``, default-namespace Assertion, a
  ``ds:`` signature on the Assertion, the Response signed optionally.

Each yields ``200`` with ``access_token`` and ``token_type`` and never a
``refresh_token`` (Salesforce: "a refresh_token is never issued in this flow")
even with ``SAML2_BEARER_ISSUE_REFRESH_TOKEN = True``, in each answer format,
chosen by ``format`` or by ``Accept`` (SAML profiles 4.1.4.3, RFC 7522 section 3).
"""

from __future__ import annotations

import base64
import json
import urllib.parse
import uuid
from datetime import datetime
from datetime import timedelta
from datetime import timezone

import pytest
from cryptography.hazmat.primitives import serialization
from lxml import etree

from authlib_saml2_grant import SAML2_BEARER_GRANT_TYPE
from authlib_saml2_grant import SAML2_BROWSER_SSO_ASSERTION_TYPE
from authlib_saml2_grant.testing import TestIdentityProvider
from authlib_saml2_grant.testing import encode_assertion

from ..conftest import AS_ENTITY_ID
from ..conftest import LEGACY_CLIENT_ID
from ..conftest import TOKEN_ENDPOINT
from ..conftest import basic_auth
from ..conftest import create_app
from ..conftest import in_context
from ..conftest import record_signals
from ..helpers import AppHarness
from ..helpers import assert_rejected

xmlsec = pytest.importorskip("xmlsec")
C = xmlsec.constants

ENTITY = {
    "okta": "http://www.okta.com/exk1a2b3c4d5e6f7g8h9",
    "entra": "https://sts.windows.net/72f988bf-86f1-41af-91ab-2d7cd011db47/",
    "shibboleth": "https://idp.university.example/idp/shibboleth",
    "adfs": "http://adfs.corp.example/adfs/services/trust",
}
#: (IdP, what it signs): the defaults and the usual options of each IdP.
SIGNED = [
    ("okta", "response"),
    ("okta", "both"),
    ("entra", "response"),
    ("entra", "assertion"),
    ("entra", "both"),
    ("shibboleth", "assertion"),
    ("adfs", "assertion"),
    ("adfs", "both"),
]
SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success"
BEARER = "urn:oasis:names:tc:SAML:2.0:cm:bearer"
EMAIL = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"
PPT = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
SAMLP = 'xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol"'
SAML2P = 'xmlns:saml2p="urn:oasis:names:tc:SAML:2.0:protocol"'
SAML2 = 'xmlns:saml2="urn:oasis:names:tc:SAML:2.0:assertion"'
DEFAULT_SAML = 'xmlns="urn:oasis:names:tc:SAML:2.0:assertion"'
XS = 'xmlns:xs="http://www.w3.org/2001/XMLSchema"'
XSD = 'xmlns:xsd="http://www.w3.org/2001/XMLSchema"'
XSI = 'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'
#: The answer formats: (``format`` parameter, ``Accept`` header, expected media type).
FORMATS = {
    "default": (None, None, "application/json"),
    "format-json": ("json", None, "application/json"),
    "format-urlencoded": ("urlencoded", None, "application/x-www-form-urlencoded"),
    "format-xml": ("xml", None, "application/xml"),
    "accept-json": (None, "application/json", "application/json"),
    "accept-urlencoded": (
        None,
        "application/x-www-form-urlencoded",
        "application/x-www-form-urlencoded",
    ),
    "accept-xml": (None, "application/xml", "application/xml"),
    "accept-text-xml": (None, "text/xml, */*;q=0.1", "application/xml"),
}


@pytest.fixture(scope="session")
def interop_key():
    """One IdP signing key for the session (RSA 2048; the slow part is generating it)."""
    return TestIdentityProvider("https://interop.example")


@pytest.fixture(scope="module")
def interop_app(tmp_path_factory, interop_key):
    """An app with both grants trusting the four IdPs, refresh tokens switched on."""
    idps = [
        TestIdentityProvider(entity, key=interop_key.key, certificate=interop_key.certificate)
        for entity in ENTITY.values()
    ]
    return create_app(
        tmp_path_factory.mktemp("response_interop"),
        idps,
        legacy=True,
        SAML2_BEARER_LEGACY_CLIENT_ID=LEGACY_CLIENT_ID,
        SAML2_BEARER_ISSUE_REFRESH_TOKEN=True,
        OAUTH2_REFRESH_TOKEN_GENERATOR=True,
        SQLALCHEMY_DATABASE_URI="sqlite://",  # in memory: one app per module, fast
    )


@pytest.fixture
def interop(interop_app):
    with record_signals(interop_app) as signals, in_context(interop_app):
        yield AppHarness(interop_app, signals)


# -- what each IdP emits ------------------------------------------------------------


def _instant(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def _times() -> dict[str, str]:
    now = datetime.now(timezone.utc)
    return {
        "now": _instant(now),
        "nb": _instant(now - timedelta(minutes=5)),
        "noa": _instant(now + timedelta(minutes=5)),
        "rid": f"_{uuid.uuid4()}",
        "aid": f"_{uuid.uuid4()}",
        "sid": f"_{uuid.uuid4().hex}",
    }


def okta_xml(subject: str) -> str:
    t, issuer = _times(), ENTITY["okta"]
    entity = 'Format="urn:oasis:names:tc:SAML:2.0:nameid-format:entity"'
    return (
        f'<saml2p:Response {SAML2P} Destination="{TOKEN_ENDPOINT}" ID="id{t["rid"][1:]}" '
        f'IssueInstant="{t["now"]}" Version="2.0" {XS}>'
        f"<saml2:Issuer {SAML2} {entity}>{issuer}</saml2:Issuer>"
        f'<saml2p:Status {SAML2P}><saml2p:StatusCode Value="{SUCCESS}"/></saml2p:Status>'
        f'<saml2:Assertion {SAML2} ID="id{t["aid"][1:]}" IssueInstant="{t["now"]}" '
        f'Version="2.0" {XS}>'
        f"<saml2:Issuer {SAML2} {entity}>{issuer}</saml2:Issuer>"
        f'<saml2:Subject {SAML2}><saml2:NameID Format="{EMAIL}">{subject}</saml2:NameID>'
        f'<saml2:SubjectConfirmation Method="{BEARER}">'
        f'<saml2:SubjectConfirmationData NotOnOrAfter="{t["noa"]}" Recipient="{TOKEN_ENDPOINT}"/>'
        f"</saml2:SubjectConfirmation></saml2:Subject>"
        f'<saml2:Conditions {SAML2} NotBefore="{t["nb"]}" NotOnOrAfter="{t["noa"]}">'
        f"<saml2:AudienceRestriction><saml2:Audience>{AS_ENTITY_ID}</saml2:Audience>"
        f"</saml2:AudienceRestriction></saml2:Conditions>"
        f'<saml2:AuthnStatement {SAML2} AuthnInstant="{t["now"]}" SessionIndex="{t["sid"]}">'
        f"<saml2:AuthnContext><saml2:AuthnContextClassRef>{PPT}</saml2:AuthnContextClassRef>"
        f"</saml2:AuthnContext></saml2:AuthnStatement>"
        f"<saml2:AttributeStatement {SAML2}>"
        f'<saml2:Attribute Name="email" '
        f'NameFormat="urn:oasis:names:tc:SAML:2.0:attrname-format:unspecified">'
        f'<saml2:AttributeValue {XSI} xsi:type="xs:string">{subject}</saml2:AttributeValue>'
        f"</saml2:Attribute></saml2:AttributeStatement>"
        f"</saml2:Assertion></saml2p:Response>"
    )


def entra_xml(subject: str) -> str:
    t, issuer = _times(), ENTITY["entra"]
    claims = "http://schemas.microsoft.com/identity/claims"
    return (
        f'<samlp:Response ID="{t["rid"]}" Version="2.0" IssueInstant="{t["now"]}" '
        f'Destination="{TOKEN_ENDPOINT}" {SAMLP}>'
        f"<Issuer {DEFAULT_SAML}>{issuer}</Issuer>"
        f'<samlp:Status><samlp:StatusCode Value="{SUCCESS}"/></samlp:Status>'
        f'<Assertion ID="{t["aid"]}" IssueInstant="{t["now"]}" Version="2.0" {DEFAULT_SAML}>'
        f"<Issuer>{issuer}</Issuer>"
        f'<Subject><NameID Format="{EMAIL}">{subject}</NameID>'
        f'<SubjectConfirmation Method="{BEARER}">'
        f'<SubjectConfirmationData NotOnOrAfter="{t["noa"]}" Recipient="{TOKEN_ENDPOINT}"/>'
        f"</SubjectConfirmation></Subject>"
        f'<Conditions NotBefore="{t["nb"]}" NotOnOrAfter="{t["noa"]}">'
        f"<AudienceRestriction><Audience>{AS_ENTITY_ID}</Audience></AudienceRestriction>"
        f"</Conditions>"
        f'<AttributeStatement><Attribute Name="{claims}/tenantid">'
        f"<AttributeValue>72f988bf-86f1-41af-91ab-2d7cd011db47</AttributeValue></Attribute>"
        f'<Attribute Name="http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name">'
        f"<AttributeValue>{subject}</AttributeValue></Attribute></AttributeStatement>"
        f'<AuthnStatement AuthnInstant="{t["now"]}" SessionIndex="{t["sid"]}">'
        f"<AuthnContext><AuthnContextClassRef>"
        f"urn:oasis:names:tc:SAML:2.0:ac:classes:Password"
        f"</AuthnContextClassRef></AuthnContext></AuthnStatement>"
        f"</Assertion></samlp:Response>"
    )


def shibboleth_xml(subject: str) -> str:
    t, issuer = _times(), ENTITY["shibboleth"]
    return (
        f'<saml2p:Response {SAML2P} Destination="{TOKEN_ENDPOINT}" ID="{t["rid"]}" '
        f'IssueInstant="{t["now"]}" Version="2.0">'
        f"<saml2:Issuer {SAML2}>{issuer}</saml2:Issuer>"
        f'<saml2p:Status><saml2p:StatusCode Value="{SUCCESS}"/></saml2p:Status>'
        f'<saml2:Assertion {SAML2} {XSD} ID="{t["aid"]}" IssueInstant="{t["now"]}" '
        f'Version="2.0">'
        f"<saml2:Issuer>{issuer}</saml2:Issuer>"
        f"<saml2:Subject>"
        f'<saml2:NameID Format="{EMAIL}" NameQualifier="{issuer}" '
        f'SPNameQualifier="{AS_ENTITY_ID}">{subject}</saml2:NameID>'
        f'<saml2:SubjectConfirmation Method="{BEARER}">'
        f'<saml2:SubjectConfirmationData Address="192.0.2.10" NotOnOrAfter="{t["noa"]}" '
        f'Recipient="{TOKEN_ENDPOINT}"/>'
        f"</saml2:SubjectConfirmation></saml2:Subject>"
        f'<saml2:Conditions NotBefore="{t["nb"]}" NotOnOrAfter="{t["noa"]}">'
        f"<saml2:AudienceRestriction><saml2:Audience>{AS_ENTITY_ID}</saml2:Audience>"
        f"</saml2:AudienceRestriction></saml2:Conditions>"
        f'<saml2:AuthnStatement AuthnInstant="{t["now"]}" SessionIndex="{t["sid"]}">'
        f'<saml2:SubjectLocality Address="192.0.2.10"/>'
        f"<saml2:AuthnContext><saml2:AuthnContextClassRef>{PPT}</saml2:AuthnContextClassRef>"
        f"</saml2:AuthnContext></saml2:AuthnStatement>"
        f"<saml2:AttributeStatement>"
        f'<saml2:Attribute FriendlyName="mail" Name="urn:oid:0.9.2342.19200300.100.1.3" '
        f'NameFormat="urn:oasis:names:tc:SAML:2.0:attrname-format:uri">'
        f'<saml2:AttributeValue {XSI} xsi:type="xsd:string">{subject}</saml2:AttributeValue>'
        f"</saml2:Attribute></saml2:AttributeStatement>"
        f"</saml2:Assertion></saml2p:Response>"
    )


def adfs_xml(subject: str) -> str:
    t, issuer = _times(), ENTITY["adfs"]
    claims = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims"
    return (
        f'<samlp:Response ID="{t["rid"]}" Version="2.0" IssueInstant="{t["now"]}" '
        f'Destination="{TOKEN_ENDPOINT}" '
        f'Consent="urn:oasis:names:tc:SAML:2.0:consent:unspecified" {SAMLP}>'
        f"<Issuer {DEFAULT_SAML}>{issuer}</Issuer>"
        f'<samlp:Status><samlp:StatusCode Value="{SUCCESS}"/></samlp:Status>'
        f'<Assertion ID="{t["aid"]}" IssueInstant="{t["now"]}" Version="2.0" {DEFAULT_SAML}>'
        f"<Issuer>{issuer}</Issuer>"
        f'<Subject><NameID Format="{EMAIL}">{subject}</NameID>'
        f'<SubjectConfirmation Method="{BEARER}">'
        f'<SubjectConfirmationData NotOnOrAfter="{t["noa"]}" Recipient="{TOKEN_ENDPOINT}"/>'
        f"</SubjectConfirmation></Subject>"
        f'<Conditions NotBefore="{t["nb"]}" NotOnOrAfter="{t["noa"]}">'
        f"<AudienceRestriction><Audience>{AS_ENTITY_ID}</Audience></AudienceRestriction>"
        f"</Conditions>"
        f'<AttributeStatement><Attribute Name="{claims}/emailaddress">'
        f"<AttributeValue>{subject}</AttributeValue></Attribute></AttributeStatement>"
        f'<AuthnStatement AuthnInstant="{t["now"]}" SessionIndex="{t["aid"]}">'
        f"<AuthnContext><AuthnContextClassRef>{PPT}</AuthnContextClassRef></AuthnContext>"
        f"</AuthnStatement></Assertion></samlp:Response>"
    )


#: IdP -> (XML builder, Signature prefix (None: default namespace), InclusiveNamespaces, pretty)
IDPS = {
    "okta": (okta_xml, "ds", ["xs"], False),
    "entra": (entra_xml, None, None, False),
    "shibboleth": (shibboleth_xml, "ds", ["xsd"], True),
    "adfs": (adfs_xml, "ds", None, False),
}


def xmlsec_sign(root: etree._Element, element: etree._Element, idp: str, signer) -> None:
    """Sign ``element`` of ``root``'s document in place with libxmlsec1, as the IdP
    does: enveloped, exc-c14n, RSA-SHA256, right after the element's Issuer."""
    _build, prefix, inclusive, pretty = IDPS[idp]
    signature = xmlsec.template.create(
        element, C.TransformExclC14N, C.TransformRsaSha256, ns=prefix
    )
    issuer = element[0]
    issuer.addnext(signature)
    if pretty:
        signature.tail = issuer.tail
    reference = xmlsec.template.add_reference(
        signature, C.TransformSha256, uri=f"#{element.get('ID')}"
    )
    xmlsec.template.add_transform(reference, C.TransformEnveloped)
    c14n = xmlsec.template.add_transform(reference, C.TransformExclC14N)
    if inclusive:
        xmlsec.template.transform_add_c14n_inclusive_namespaces(c14n, inclusive)
    xmlsec.template.add_x509_data(xmlsec.template.ensure_key_info(signature))
    xmlsec.tree.add_ids(root, ["ID"])
    context = xmlsec.SignatureContext()
    pem = signer.key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    context.key = xmlsec.Key.from_memory(pem, C.KeyDataFormatPem)
    context.key.load_cert_from_memory(
        signer.certificate.public_bytes(serialization.Encoding.PEM), C.KeyDataFormatCertPem
    )
    context.sign(signature)


def idp_response(idp: str, sign: str, signer, subject: str = "alice@example.com") -> bytes:
    """The Response ``idp`` posts, signed by libxmlsec1 as ``sign`` says."""
    build, _prefix, _inclusive, pretty = IDPS[idp]
    root = etree.fromstring(build(subject).encode())
    if pretty:
        etree.indent(root, space="  ")
    assertion = root[-1]
    assert etree.QName(assertion).localname == "Assertion"
    if sign in ("assertion", "both"):
        xmlsec_sign(root, assertion, idp, signer)
    if sign in ("response", "both"):
        xmlsec_sign(root, root, idp, signer)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def post(harness, xml: bytes, form: str | None = None, accept: str | None = None, headers=None):
    """Salesforce's request: Base64, then URL-encoded by the form encoding; no client
    credentials unless ``headers`` carry them."""
    data = {
        "grant_type": "assertion",
        "assertion_type": SAML2_BROWSER_SSO_ASSERTION_TYPE,
        "assertion": base64.b64encode(xml).decode("ascii"),
    }
    if form is not None:
        data["format"] = form
    headers = dict(headers or {})
    if accept is not None:
        headers["Accept"] = accept
    return harness.client.post("/oauth/token", data=data, headers=headers)


def token_fields(response, media: str) -> dict[str, str]:
    """The answer's fields, parsed as its media type says."""
    assert response.mimetype == media, response.headers
    text = response.get_data(as_text=True)
    if media == "application/json":
        return {k: str(v) for k, v in json.loads(text).items()}
    if media == "application/x-www-form-urlencoded":
        return dict(urllib.parse.parse_qsl(text, strict_parsing=True))
    root = etree.fromstring(text.encode())
    assert root.tag == "OAuth"
    return {child.tag: child.text for child in root}


def assert_token(response, media: str, signals) -> dict[str, str]:
    """200, an access token of type Bearer, never a refresh token."""
    assert response.status_code == 200, (response.get_data(as_text=True), signals.rejections)
    fields = token_fields(response, media)
    assert fields["access_token"]
    assert fields["token_type"] == "Bearer"
    assert "refresh_token" not in fields
    assert [a.subject for a in signals.accepted] == ["alice@example.com"]
    return fields


# -- the tests ------------------------------------------------------------------


@pytest.mark.parametrize("answer", sorted(FORMATS))
@pytest.mark.parametrize(("idp", "sign"), SIGNED, ids=[f"{i}-{s}" for i, s in SIGNED])
def test_idp_response_signed_by_xmlsec_yields_token(interop, interop_key, idp, sign, answer):
    """A Response as each IdP emits it, signed by libxmlsec1 (Response, Assertion or
    both: SAML profiles 4.1.4.3), gets an access token of type Bearer without a
    refresh token, in the format asked by ``format`` or by ``Accept``."""
    form, accept, media = FORMATS[answer]
    xml = idp_response(idp, sign, interop_key)
    assert xml.count(b"SignatureValue>") == 2 * (1 + (sign == "both"))
    response = post(interop, xml, form=form, accept=accept)
    assert_token(response, media, interop)
    verified = interop.accepted[0]
    assert verified.issuer == ENTITY[idp]


@pytest.mark.parametrize(("idp", "sign"), SIGNED, ids=[f"{i}-{s}" for i, s in SIGNED])
def test_idp_response_with_client_credentials(interop, interop_key, idp, sign):
    """A client that authenticates gets the token for itself, still no refresh token."""
    xml = idp_response(idp, sign, interop_key)
    response = post(interop, xml, headers=basic_auth())
    assert_token(response, "application/json", interop)


def test_refresh_tokens_are_enabled_for_the_rfc7522_grant(interop, interop_key):
    """Control: in this app the saml2-bearer grant does issue refresh tokens, so their
    absence above is the legacy flow's rule, not the configuration."""
    xml = idp_response("entra", "assertion", interop_key)
    assertion = etree.tostring(etree.fromstring(xml)[-1])
    response = interop.client.post(
        "/oauth/token",
        data={"grant_type": SAML2_BEARER_GRANT_TYPE, "assertion": encode_assertion(assertion)},
        headers=basic_auth(),
    )
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["refresh_token"]


@pytest.mark.parametrize(("idp", "sign"), SIGNED, ids=[f"{i}-{s}" for i, s in SIGNED])
def test_idp_response_tampered_after_xmlsec_signed(interop, interop_key, idp, sign):
    """Control: the interop path is not a pass-through; the NameID changed after
    libxmlsec1 signed is refused."""
    xml = idp_response(idp, sign, interop_key, subject="mallory@example.com")
    tampered = xml.replace(b">mallory@example.com</", b">alice@example.com</")
    assert tampered.count(b">alice@example.com</") == 2
    response = post(interop, tampered)
    assert_rejected(response.status_code, response.get_json(), interop.reasons, "signature_invalid")
