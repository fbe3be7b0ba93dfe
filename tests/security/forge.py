"""An attacker's toolbox: build, re-sign and re-shape signed assertions.

``hand_sign`` writes an XML-DSig signature by hand (exclusive c14n, RSA or
HMAC) so a test can produce a *cryptographically valid* signature of any shape
(extra references, foreign transforms, a signature elsewhere in the tree): the
attack then reaches the structural check it is aimed at, not merely signxml's
digest comparison.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from lxml import etree

from authlib_saml2_grant.testing import build_assertion
from authlib_saml2_grant.testing import encode_assertion
from authlib_saml2_grant.xml import DS_NS
from authlib_saml2_grant.xml import SAML_NS

from ..conftest import AS_ENTITY_ID
from ..conftest import TOKEN_ENDPOINT
from ..conftest import request_token

SAMLP_NS = "urn:oasis:names:tc:SAML:2.0:protocol"
MD_NS = "urn:oasis:names:tc:SAML:2.0:metadata"
NS = {"saml": SAML_NS, "samlp": SAMLP_NS, "ds": DS_NS, "md": MD_NS}
GENERIC = "The SAML assertion is invalid, expired or already used."

ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
EXC_C14N_COMMENTS = "http://www.w3.org/2001/10/xml-exc-c14n#WithComments"
XSLT = "http://www.w3.org/TR/1999/REC-xslt-19991116"
XPATH = "http://www.w3.org/TR/1999/REC-xpath-19991116"
XPATH_FILTER2 = "http://www.w3.org/2002/06/xmldsig-filter2"
BASE64_TRANSFORM = "http://www.w3.org/2000/09/xmldsig#base64"
RSA_SHA1 = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
HMAC_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#hmac-sha256"
HMAC_SHA1 = "http://www.w3.org/2000/09/xmldsig#hmac-sha1"
SHA1 = "http://www.w3.org/2000/09/xmldsig#sha1"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
_DIGESTS = {SHA1: hashlib.sha1, SHA256: hashlib.sha256}

__all__ = [
    "NS",
    "GENERIC",
    "ds",
    "saml",
    "c14n",
    "hand_sign",
    "mint_tree",
    "send_xml",
    "assert_rejected",
]


def saml(name: str) -> str:
    return f"{{{SAML_NS}}}{name}"


def ds(name: str) -> str:
    return f"{{{DS_NS}}}{name}"


def c14n(element: etree._Element, with_comments: bool = False) -> bytes:
    """Exclusive canonical form, as the signature covers it."""
    return etree.tostring(element, method="c14n", exclusive=True, with_comments=with_comments)


def one(tree: etree._Element, path: str) -> etree._Element:
    found = tree.xpath(path, namespaces=NS)
    assert len(found) == 1, (path, len(found))
    return found[0]


def mint_tree(idp, **fields) -> etree._Element:
    """A validly signed assertion for this server, parsed into a tree."""
    fields.setdefault("audience", AS_ENTITY_ID)
    fields.setdefault("recipient", TOKEN_ENDPOINT)
    return etree.fromstring(idp.mint_xml(**fields))


def unsigned_tree(idp, **fields) -> etree._Element:
    """An unsigned assertion (with its signature placeholder) to tamper with, then sign."""
    fields.setdefault("audience", AS_ENTITY_ID)
    fields.setdefault("recipient", TOKEN_ENDPOINT)
    fields.setdefault("issuer", idp.entity_id)
    return build_assertion(**fields)


def to_bytes(tree: etree._Element) -> bytes:
    return etree.tostring(tree)


def send_xml(client, xml, **extra):
    """POST an assertion given as bytes or a tree, base64url-encoded."""
    data = xml if isinstance(xml, bytes) else etree.tostring(xml)
    return request_token(client, encode_assertion(data), **extra)


def assert_rejected(status, body, reasons, reason, error="invalid_grant"):
    """The client sees the generic error; the operator signal names ``reason``."""
    assert status == 400, body
    assert body == {"error": error, "error_description": GENERIC}, body
    assert reasons == [reason], reasons


def assert_accepted(status, body, accepted, subject="alice@example.com"):
    assert status == 200, body
    assert body["token_type"] == "Bearer"
    assert len(accepted) == 1
    assert accepted[0].subject == subject
    return accepted[0]


def hand_sign(
    parent: etree._Element,
    key,
    *,
    references=None,
    index: int = 1,
    certificate=None,
    signature_method: str = RSA_SHA256,
    signed_info_c14n: str = EXC_C14N,
    digest_method: str = SHA256,
    key_info=None,
    hmac_key: bytes | None = None,
) -> etree._Element:
    """Insert a hand-made ds:Signature as child ``index`` of ``parent``.

    :param references: list of ``(uri, target_element, transforms)``; the
        digest of ``target_element`` is its exclusive c14n *before* the
        signature is inserted (what an enveloped-signature transform yields).
        Default: one enveloped exc-c14n reference to ``parent``'s ID.
    :param key_info: an element to use as ds:KeyInfo; default X509Data of
        ``certificate`` if given, else none.
    """
    if references is None:
        references = [(f"#{parent.get('ID')}", parent, (ENVELOPED, EXC_C14N))]
    signature = etree.Element(ds("Signature"), nsmap={"ds": DS_NS})
    signed_info = etree.SubElement(signature, ds("SignedInfo"))
    etree.SubElement(signed_info, ds("CanonicalizationMethod")).set("Algorithm", signed_info_c14n)
    etree.SubElement(signed_info, ds("SignatureMethod")).set("Algorithm", signature_method)
    for uri, target, transforms in references:
        reference = etree.SubElement(signed_info, ds("Reference"))
        if uri is not None:
            reference.set("URI", uri)
        if transforms:
            transforms_el = etree.SubElement(reference, ds("Transforms"))
            for algorithm in transforms:
                etree.SubElement(transforms_el, ds("Transform")).set("Algorithm", algorithm)
        etree.SubElement(reference, ds("DigestMethod")).set("Algorithm", digest_method)
        inclusive = any("REC-xml-c14n" in t or "xml-c14n11" in t for t in transforms or ())
        canonical = etree.tostring(target, method="c14n", exclusive=not inclusive)
        digest = _DIGESTS[digest_method](canonical).digest()
        etree.SubElement(reference, ds("DigestValue")).text = base64.b64encode(digest).decode()
    value = etree.SubElement(signature, ds("SignatureValue"))
    if key_info is not None:
        signature.append(key_info)
    elif certificate is not None:
        signature.append(x509_key_info(certificate))
    parent.insert(index, signature)
    # Canonicalize SignedInfo in context, as a verifier sees it.
    detached = etree.fromstring(etree.tostring(signature))
    canonical = etree.tostring(
        detached.find(ds("SignedInfo")),
        method="c14n",
        exclusive=signed_info_c14n.startswith(EXC_C14N),
        with_comments=signed_info_c14n.endswith("WithComments"),
    )
    value.text = base64.b64encode(_sign(key, canonical, signature_method, hmac_key)).decode()
    return signature


def _sign(key, data: bytes, method: str, hmac_key: bytes | None) -> bytes:
    if "hmac" in method:
        algorithm = hashlib.sha1 if method.endswith("sha1") else hashlib.sha256
        return hmac.new(hmac_key, data, algorithm).digest()
    hash_algorithm = hashes.SHA1() if method.endswith("sha1") else hashes.SHA256()
    if isinstance(key, ec.EllipticCurvePrivateKey):
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hash_algorithm)))
        size = (key.curve.key_size + 7) // 8
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")
    return key.sign(data, padding.PKCS1v15(), hash_algorithm)


def x509_key_info(certificate) -> etree._Element:
    key_info = etree.Element(ds("KeyInfo"), nsmap={"ds": DS_NS})
    data = etree.SubElement(key_info, ds("X509Data"))
    der = certificate.public_bytes(serialization.Encoding.DER)
    etree.SubElement(data, ds("X509Certificate")).text = base64.b64encode(der).decode()
    return key_info


def rsa_key_value(public_key) -> etree._Element:
    numbers = public_key.public_numbers()

    def b64int(value: int) -> str:
        return base64.b64encode(value.to_bytes((value.bit_length() + 7) // 8, "big")).decode()

    key_info = etree.Element(ds("KeyInfo"), nsmap={"ds": DS_NS})
    rsa_value = etree.SubElement(etree.SubElement(key_info, ds("KeyValue")), ds("RSAKeyValue"))
    etree.SubElement(rsa_value, ds("Modulus")).text = b64int(numbers.n)
    etree.SubElement(rsa_value, ds("Exponent")).text = b64int(numbers.e)
    return key_info


def sign_tree(idp, tree: etree._Element, **kwargs) -> etree._Element:
    """Sign an unsigned tree (placeholder removed) by hand with ``idp``'s key."""
    for placeholder in tree.findall(ds("Signature")):
        tree.remove(placeholder)
    kwargs.setdefault("certificate", idp.certificate)
    hand_sign(tree, idp.key, **kwargs)
    return tree


def strip_signature(tree: etree._Element) -> etree._Element:
    """A copy of ``tree`` without its enveloped signature."""
    clone = copy.deepcopy(tree)
    for signature in clone.findall(ds("Signature")):
        clone.remove(signature)
    return clone
