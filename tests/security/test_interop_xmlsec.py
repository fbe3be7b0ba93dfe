"""Interoperability: assertions signed by libxmlsec1 (python-xmlsec), not signxml.

SECURITY.md: "assertions signed by independent implementations (libxmlsec1
through python-xmlsec, not only signxml), default-namespace assertions (Entra
style), pretty-printed ones, RSA-SHA256/384/512 and ECDSA must all verify."
The shapes follow what real IdPs emit: Entra ID (default namespace, compact,
default-namespace Signature), Okta (``saml2:`` prefix), Shibboleth
(``saml2:``/``ds:``, pretty-printed), AD FS (default namespace, pretty-printed);
the Signature always right after Issuer (SAML core 5.4.1 schema order).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from datetime import timedelta
from datetime import timezone

import pytest
from cryptography.hazmat.primitives import serialization
from lxml import etree

from authlib_saml2_grant.testing import TestIdentityProvider
from authlib_saml2_grant.testing import encode_assertion
from authlib_saml2_grant.testing import generate_key_pair
from authlib_saml2_grant.xml import SAML_NS

from ..conftest import AS_ENTITY_ID
from ..conftest import TOKEN_ENDPOINT
from ..conftest import create_app
from ..conftest import in_context
from ..conftest import record_signals
from ..conftest import request_token
from ..helpers import assert_accepted
from ..helpers import assert_rejected

xmlsec = pytest.importorskip("xmlsec")

ENTITY = {
    "entra": "https://sts.windows.net/72f988bf-86f1-41af-91ab-2d7cd011db47/",
    "okta": "http://www.okta.com/exk1a2b3c4d5e6f7g8h9",
    "shibboleth": "https://idp.university.example/idp/shibboleth",
    "adfs": "http://adfs.corp.example/adfs/services/trust",
}
#: (assertion prefix or None for default namespace, Signature prefix or None, pretty)
SHAPES = {
    "entra": (None, None, False),
    "okta": ("saml2", "ds", False),
    "shibboleth": ("saml2", "ds", True),
    "adfs": (None, "ds", True),
}
C = xmlsec.constants
ALGORITHMS = {
    "rsa-sha256": ("rsa", C.TransformRsaSha256, C.TransformSha256),
    "rsa-sha384": ("rsa", C.TransformRsaSha384, C.TransformSha384),
    "rsa-sha512": ("rsa", C.TransformRsaSha512, C.TransformSha512),
    "ecdsa-p256": ("ec", C.TransformEcdsaSha256, C.TransformSha256),
}
GROUPS = ("Engineering", "Admins", "VPN users")


@pytest.fixture(scope="module")
def keys():
    return {"rsa": generate_key_pair("rsa"), "ec": generate_key_pair("ec")}


def _instant(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def build_xml(shape: str, authn: bool, subject: str = "alice@example.com") -> bytes:
    prefix, _sig_prefix, pretty = SHAPES[shape]
    p = f"{prefix}:" if prefix else ""
    xmlns = f'xmlns:{prefix}="{SAML_NS}"' if prefix else f'xmlns="{SAML_NS}"'
    now = datetime.now(timezone.utc)
    nb, noa = _instant(now - timedelta(minutes=5)), _instant(now + timedelta(minutes=10))
    authn_xml = (
        f'<{p}AuthnStatement AuthnInstant="{_instant(now)}" SessionIndex="_s{uuid.uuid4().hex}">'
        f"<{p}AuthnContext><{p}AuthnContextClassRef>"
        "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
        f"</{p}AuthnContextClassRef></{p}AuthnContext></{p}AuthnStatement>"
        if authn
        else ""
    )
    values = "".join(f"<{p}AttributeValue>{g}</{p}AttributeValue>" for g in GROUPS)
    xml = (
        f'<{p}Assertion {xmlns} ID="_{uuid.uuid4()}" IssueInstant="{_instant(now)}" '
        f'Version="2.0">'
        f"<{p}Issuer>{ENTITY[shape]}</{p}Issuer>"
        f"<{p}Subject>"
        f'<{p}NameID Format="urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress">'
        f"{subject}</{p}NameID>"
        f'<{p}SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer">'
        f'<{p}SubjectConfirmationData NotOnOrAfter="{noa}" Recipient="{TOKEN_ENDPOINT}"/>'
        f"</{p}SubjectConfirmation></{p}Subject>"
        f'<{p}Conditions NotBefore="{nb}" NotOnOrAfter="{noa}">'
        f"<{p}AudienceRestriction><{p}Audience>{AS_ENTITY_ID}</{p}Audience>"
        f"</{p}AudienceRestriction></{p}Conditions>"
        f"<{p}AttributeStatement>"
        f'<{p}Attribute Name="groups">{values}</{p}Attribute>'
        f'<{p}Attribute Name="http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name">'
        f"<{p}AttributeValue>alice@example.com</{p}AttributeValue></{p}Attribute>"
        f"</{p}AttributeStatement>"
        f"{authn_xml}"
        f"</{p}Assertion>"
    )
    root = etree.fromstring(xml.encode())
    if pretty:
        etree.indent(root, space="  ")
    return etree.tostring(root)


def xmlsec_sign(xml: bytes, shape: str, key, certificate, sign_method, digest_method) -> bytes:
    """Sign like an IdP does with libxmlsec1: enveloped, exc-c14n, after Issuer."""
    _prefix, sig_prefix, pretty = SHAPES[shape]
    root = etree.fromstring(xml)
    signature = xmlsec.template.create(root, C.TransformExclC14N, sign_method, ns=sig_prefix)
    issuer = root[0]
    issuer.addnext(signature)
    if pretty:
        signature.tail = issuer.tail
    reference = xmlsec.template.add_reference(signature, digest_method, uri=f"#{root.get('ID')}")
    xmlsec.template.add_transform(reference, C.TransformEnveloped)
    xmlsec.template.add_transform(reference, C.TransformExclC14N)
    key_info = xmlsec.template.ensure_key_info(signature)
    xmlsec.template.add_x509_data(key_info)
    xmlsec.tree.add_ids(root, ["ID"])
    context = xmlsec.SignatureContext()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    context.key = xmlsec.Key.from_memory(pem, C.KeyDataFormatPem)
    context.key.load_cert_from_memory(
        certificate.public_bytes(serialization.Encoding.PEM), C.KeyDataFormatCertPem
    )
    context.sign(signature)
    return etree.tostring(root)


@pytest.fixture
def interop(tmp_path, keys):
    """An app trusting the four IdP entity IDs, each with both interop keys."""
    idps = []
    for entity_id in ENTITY.values():
        for key_type in ("rsa", "ec"):
            key, certificate = keys[key_type]
            idps.append(TestIdentityProvider(entity_id, key=key, certificate=certificate))
    merged = {}
    for entry in (i.settings_entry() for i in idps):
        merged.setdefault(entry["entity_id"], []).extend(entry["certificates"])
    app = create_app(
        tmp_path,
        [],
        SAML2_BEARER_IDENTITY_PROVIDERS=[
            {"entity_id": e, "certificates": c} for e, c in merged.items()
        ],
    )
    with record_signals(app) as signals, in_context(app):
        yield app.test_client(), signals


@pytest.mark.parametrize("authn", [True, False], ids=["authn", "no-authn"])
@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_xmlsec_signed_assertion_accepted(interop, keys, shape, algorithm, authn):
    """An assertion signed by libxmlsec1 in a real IdP shape gets a token, with the
    right subject and multi-valued attributes (RFC 7522 section 3; item 7 makes
    AuthnStatement optional)."""
    client, signals = interop
    key_type, sign_method, digest_method = ALGORITHMS[algorithm]
    key, certificate = keys[key_type]
    xml = xmlsec_sign(build_xml(shape, authn), shape, key, certificate, sign_method, digest_method)
    assert b"Signature" in xml and (b"\n  " in xml) == SHAPES[shape][2]
    status, body = request_token(client, encode_assertion(xml))
    assert status == 200, (body, signals.rejections)
    verified = assert_accepted(status, body, signals.accepted)
    assert verified.issuer == ENTITY[shape]
    assert verified.attributes["groups"] == GROUPS
    assert verified.attributes["http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name"] == (
        "alice@example.com",
    )
    assert (verified.authn_instant is not None) == authn


def test_xmlsec_signed_then_tampered_is_refused(interop, keys):
    """Control: the interop path is not a pass-through; a changed NameID fails."""
    client, signals = interop
    key, certificate = keys["rsa"]
    xml = xmlsec_sign(
        build_xml("entra", True), "entra", key, certificate, C.TransformRsaSha256, C.TransformSha256
    )
    tampered = xml.replace(b">alice@example.com</NameID>", b">admin@example.com</NameID>")
    assert tampered != xml
    status, body = request_token(client, encode_assertion(tampered))
    assert_rejected(status, body, signals.reasons, "signature_invalid")


def test_xmlsec_sha1_refused(interop, keys):
    """libxmlsec1 with RSA-SHA1 (still the default of some old IdPs) is refused."""
    client, signals = interop
    key, certificate = keys["rsa"]
    xml = xmlsec_sign(
        build_xml("okta", True), "okta", key, certificate, C.TransformRsaSha1, C.TransformSha1
    )
    status, body = request_token(client, encode_assertion(xml))
    assert_rejected(status, body, signals.reasons, "signature_algorithm_forbidden")
