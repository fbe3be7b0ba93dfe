"""An attacker's toolbox: sign assertions by hand, in any shape.

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

from authlib_saml2_grant.xml import DS_NS

from ..helpers import ENVELOPED
from ..helpers import EXC_C14N
from ..helpers import RSA_SHA256
from ..helpers import SHA1
from ..helpers import SHA256
from ..helpers import ds

_DIGESTS = {SHA1: hashlib.sha1, SHA256: hashlib.sha256}


def c14n(element: etree._Element, with_comments: bool = False) -> bytes:
    """Exclusive canonical form, as the signature covers it."""
    return etree.tostring(element, method="c14n", exclusive=True, with_comments=with_comments)


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
