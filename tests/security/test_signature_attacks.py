"""Signature stripping, reference shapes, transforms, algorithms and key confusion.

SECURITY.md pipeline steps 4 and 5: the key is chosen by Issuer from pinned
certificates only; signxml verifies with ``location="./"``,
``expect_references=1`` and algorithm allow-lists; only enveloped-signature and
exclusive c14n transforms are acceptable. Forged signatures here are
cryptographically valid (``hand_sign``) whenever the attack needs to get past
the digest to reach the structural check it targets.
"""

from __future__ import annotations

import copy

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree

from authlib_saml2_grant.testing import generate_key_pair

from ..conftest import record_signals
from ..conftest import unsigned_tree
from ..helpers import BASE64_TRANSFORM
from ..helpers import ENVELOPED
from ..helpers import EXC_C14N
from ..helpers import EXC_C14N_COMMENTS
from ..helpers import HMAC_SHA1
from ..helpers import HMAC_SHA256
from ..helpers import XPATH
from ..helpers import XPATH_FILTER2
from ..helpers import XSLT
from ..helpers import assert_accepted
from ..helpers import assert_rejected
from ..helpers import ds
from ..helpers import duplicate
from ..helpers import mint_tree
from ..helpers import one
from ..helpers import send
from .forge import hand_sign
from .forge import rsa_key_value
from .forge import sign_tree
from .forge import x509_key_info

# -- stripped, empty, misplaced -------------------------------------------------


def test_hand_signed_control_is_accepted(client, idp, accepted):
    """Control: the hand signer yields assertions the server accepts, so every
    rejection below is caused by the attack, not by the forging tool."""
    tree = sign_tree(idp, unsigned_tree(idp))
    assert_accepted(*send(client, tree), accepted)


def test_signature_stripped(client, idp, reasons):
    """An assertion without ds:Signature is refused (RFC 7522 section 3, item 9)."""
    tree = mint_tree(idp)
    tree.remove(tree.find(ds("Signature")))
    assert_rejected(*send(client, tree), reasons, "signature_missing")


def test_signature_empty_element(client, idp, reasons):
    """An empty ``<ds:Signature/>`` names no allowed method."""
    tree = mint_tree(idp)
    signature = tree.find(ds("Signature"))
    for child in list(signature):
        signature.remove(child)
    assert_rejected(*send(client, tree), reasons, "signature_algorithm_forbidden")


@pytest.mark.parametrize("value", ["", "AAAA", "not base64!"])
def test_signature_value_emptied_or_garbage(client, idp, reasons, value):
    """An empty or garbage SignatureValue fails verification, never crashes."""
    tree = mint_tree(idp)
    one(tree, "ds:Signature/ds:SignatureValue").text = value
    assert_rejected(*send(client, tree), reasons, "signature_invalid")


def test_signature_moved_below_root(client, idp, reasons):
    """The signature must be a direct child of the root (signxml ``location="./"``)."""
    tree = mint_tree(idp)
    signature = tree.find(ds("Signature"))
    tree.remove(signature)
    one(tree, "saml:Subject").append(signature)
    assert_rejected(*send(client, tree), reasons, "signature_missing")


def test_two_signatures_on_root(client, idp, reasons):
    """Two enveloped signatures: which one counts would be ambiguous."""
    tree = mint_tree(idp)
    duplicate(tree, "ds:Signature")
    assert_rejected(*send(client, tree), reasons, "signature_invalid")


# -- references ----------------------------------------------------------------


def test_zero_references(client, idp, reasons, rejections):
    """A SignedInfo with no Reference signs nothing (expect_references=1)."""
    tree = sign_tree(idp, unsigned_tree(idp), references=[])
    assert_rejected(*send(client, tree), reasons, "signature_invalid")
    assert "Reference" in " ".join(rejections[0][1]["errors"])


def test_two_references(client, idp, reasons, rejections):
    """A second Reference (to the Subject) next to the root one is refused."""
    tree = unsigned_tree(idp)
    subject = one(tree, "saml:Subject")
    subject.set("ID", "_subject")
    refs = [
        (f"#{tree.get('ID')}", tree, (ENVELOPED, EXC_C14N)),
        ("#_subject", subject, (EXC_C14N,)),
    ]
    # The root digest must cover the Subject's ID: compute after setting it.
    sign_tree(idp, tree, references=refs)
    assert_rejected(*send(client, tree), reasons, "signature_invalid")
    assert "Expected to find 1 references" in " ".join(rejections[0][1]["errors"])


def test_reference_to_child_not_root(client, idp, reasons, rejections):
    """A valid signature over the Subject only does not sign the assertion."""
    tree = unsigned_tree(idp)
    subject = one(tree, "saml:Subject")
    subject.set("ID", "_subject")
    sign_tree(idp, tree, references=[("#_subject", subject, (ENVELOPED, EXC_C14N))])
    assert_rejected(*send(client, tree), reasons, "signature_reference_invalid")
    assert rejections[0][1]["actual"] == "#_subject"


def test_reference_uri_empty_whole_document(client, idp, reasons, rejections):
    """``URI=""`` (the whole document) is not ``#`` + the root ID (SECURITY.md step 6)."""
    tree = unsigned_tree(idp)
    sign_tree(idp, tree, references=[("", tree, (ENVELOPED, EXC_C14N))])
    assert_rejected(*send(client, tree), reasons, "signature_reference_invalid")
    assert rejections[0][1]["actual"] == ""


def test_reference_without_uri(client, idp, reasons, rejections):
    """A Reference without URI is not resolvable and never means the root."""
    tree = unsigned_tree(idp)
    sign_tree(idp, tree, references=[(None, tree, (ENVELOPED, EXC_C14N))])
    assert_rejected(*send(client, tree), reasons, "signature_invalid")
    assert "without URIs" in " ".join(rejections[0][1]["errors"])


@pytest.mark.parametrize(
    "transforms",
    [
        (ENVELOPED, EXC_C14N, XSLT),
        (ENVELOPED, XPATH, EXC_C14N),
        (ENVELOPED, XPATH_FILTER2, EXC_C14N),
        (ENVELOPED, EXC_C14N, "urn:example:unknown-transform"),
        (ENVELOPED, "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"),
    ],
    ids=["xslt", "xpath", "xpath-filter2", "unknown", "inclusive-c14n"],
)
def test_foreign_transforms_refused(client, idp, reasons, rejections, transforms):
    """Only enveloped-signature and exc-c14n transforms (SECURITY.md step 5).

    signxml silently skips transforms it does not know, so the forged digest
    matches; the refusal must come from our transform allow-list."""
    tree = unsigned_tree(idp)
    sign_tree(idp, tree, references=[(f"#{tree.get('ID')}", tree, transforms)])
    assert_rejected(*send(client, tree), reasons, "signature_reference_invalid")
    assert "transforms" in rejections[0][1]


def test_reference_without_enveloped_transform(client, idp, reasons):
    """Without the enveloped-signature transform the digest would cover the signature
    itself; our transform check requires it whatever signxml does."""
    tree = unsigned_tree(idp)
    sign_tree(idp, tree, references=[(f"#{tree.get('ID')}", tree, (EXC_C14N,))])
    assert_rejected(*send(client, tree), reasons, "signature_invalid")


def test_base64_transform_refused(client, idp, reasons):
    """The base64 transform turns the signed octets into something else entirely."""
    tree = unsigned_tree(idp)
    sign_tree(idp, tree, references=[(f"#{tree.get('ID')}", tree, (ENVELOPED, BASE64_TRANSFORM))])
    status, body = send(client, tree)
    assert_rejected(status, body, reasons, "signature_invalid")


def test_comments_c14n_variant_is_allowed(client, idp, accepted):
    """Exclusive c14n *with comments* is an allowed SAML transform (SAML core 5.4.4)."""
    tree = unsigned_tree(idp)
    sign_tree(
        idp,
        tree,
        references=[(f"#{tree.get('ID')}", tree, (ENVELOPED, EXC_C14N_COMMENTS))],
    )
    assert_accepted(*send(client, tree), accepted)


@pytest.mark.parametrize(
    "method",
    [
        "http://www.w3.org/2006/12/xml-c14n11#WithComments",
        "http://www.w3.org/TR/2001/REC-xml-c14n-20010315#WithComments",
    ],
)
def test_signed_info_c14n_not_allowed(client, idp, reasons, method):
    """SignedInfo canonicalization outside the allow-list is refused."""
    tree = unsigned_tree(idp)
    sign_tree(idp, tree, signed_info_c14n=method)
    status, body = send(client, tree)
    assert_rejected(status, body, reasons, "signature_reference_invalid")


# -- algorithms ----------------------------------------------------------------


@pytest.mark.parametrize("form", ["pem", "der"])
@pytest.mark.parametrize("method", [HMAC_SHA256, HMAC_SHA1])
def test_hmac_keyed_with_public_certificate(client, idp, reasons, rejections, method, form):
    """HMAC algorithm confusion: the "secret" is the IdP's public certificate.

    HMAC is never accepted (SECURITY.md step 5); refused before any key use."""
    encoding = serialization.Encoding.PEM if form == "pem" else serialization.Encoding.DER
    tree = unsigned_tree(idp)
    sign_tree(
        idp,
        tree,
        signature_method=method,
        hmac_key=idp.certificate.public_bytes(encoding),
    )
    assert_rejected(*send(client, tree), reasons, "signature_algorithm_forbidden")
    assert rejections[0][1]["algorithm"] == method


def test_hmac_signed_by_signxml(client, idp, reasons):
    """The same confusion produced by signxml's own signer."""
    from signxml import XMLSigner
    from signxml.algorithms import SignatureMethod

    tree = unsigned_tree(idp)
    tree.remove(tree.find(ds("Signature")))
    tree.insert(1, etree.Element(ds("Signature"), Id="placeholder"))
    signer = XMLSigner(signature_algorithm=SignatureMethod.HMAC_SHA256)
    key = idp.certificate.public_bytes(serialization.Encoding.PEM)
    signed = signer.sign(tree, key=key, reference_uri=tree.get("ID"), id_attribute="ID")
    assert_rejected(*send(client, signed), reasons, "signature_algorithm_forbidden")


@pytest.mark.parametrize(
    "method",
    [
        "http://www.w3.org/2001/04/xmldsig-more#rsa-md5",
        "http://www.w3.org/2000/09/xmldsig#dsa-sha1",
        "http://www.w3.org/2009/xmldsig11#dsa-sha256",
        "urn:example:none",
    ],
)
def test_weak_or_unknown_signature_method_refused(client, idp, reasons, method):
    """MD5, DSA and unknown methods are never in the allow-list."""
    tree = mint_tree(idp)
    one(tree, "ds:Signature/ds:SignedInfo/ds:SignatureMethod").set("Algorithm", method)
    assert_rejected(*send(client, tree), reasons, "signature_algorithm_forbidden")


# -- key confusion -------------------------------------------------------------


def _cloned_certificate(genuine: x509.Certificate):
    """An attacker certificate copying subject, issuer, serial and validity."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(genuine.subject)
        .issuer_name(genuine.issuer)
        .public_key(key.public_key())
        .serial_number(genuine.serial_number)
        .not_valid_before(genuine.not_valid_before_utc)
        .not_valid_after(genuine.not_valid_after_utc)
        .sign(key, hashes.SHA256())
    )
    return key, certificate


@pytest.fixture(scope="module")
def attacker():
    return generate_key_pair(common_name="Attacker")


@pytest.fixture(scope="module")
def cloned(idp):
    return _cloned_certificate(idp.certificate)


@pytest.mark.parametrize(
    "key_info", ["attacker_cert", "genuine_cert", "key_value_only", "none", "two_certs"]
)
def test_attacker_key_with_any_key_info(client, idp, reasons, attacker, key_info):
    """KeyInfo is never trusted (SECURITY.md step 4): an assertion signed by the
    attacker's key fails whatever KeyInfo says (its cert, the IdP's, a bare
    KeyValue, nothing, or both certificates)."""
    key, certificate = attacker
    infos = {
        "attacker_cert": lambda: x509_key_info(certificate),
        "genuine_cert": lambda: x509_key_info(idp.certificate),
        "key_value_only": lambda: rsa_key_value(key.public_key()),
        "none": lambda: None,
        "two_certs": lambda: _two_certs(certificate, idp.certificate),
    }
    tree = unsigned_tree(idp, subject="alice@example.com")
    tree.remove(tree.find(ds("Signature")))
    hand_sign(tree, key, key_info=infos[key_info]())
    assert_rejected(*send(client, tree), reasons, "signature_invalid")


def _two_certs(first, second):
    key_info = x509_key_info(first)
    key_info[0].append(copy.deepcopy(x509_key_info(second)[0][0]))
    return key_info


def test_cloned_subject_certificate(client, idp, reasons, rejections, cloned):
    """A certificate cloning the pinned one's subject, issuer and serial is still
    another key: pinning compares keys, not names."""
    key, certificate = cloned
    assert certificate.subject == idp.certificate.subject
    tree = unsigned_tree(idp)
    tree.remove(tree.find(ds("Signature")))
    hand_sign(tree, key, certificate=certificate)
    assert_rejected(*send(client, tree), reasons, "signature_invalid")
    assert rejections[0][1]["key_info_fingerprint"] not in rejections[0][1]["fingerprints_tried"]


def test_genuine_key_with_attacker_cert_in_key_info(client, idp, accepted, attacker):
    """Conversely, a genuine signature is judged by the pinned key, not by the
    KeyInfo certificate next to it: KeyInfo is only a hint."""
    _key, certificate = attacker
    tree = unsigned_tree(idp)
    tree.remove(tree.find(ds("Signature")))
    hand_sign(tree, idp.key, certificate=certificate)
    assert_accepted(*send(client, tree), accepted)


def test_trusted_ec_idp_key_cannot_sign_for_rsa_idp(client, idp, ec_idp, reasons):
    """Cross-IdP issuer spoof between two trusted IdPs (SECURITY.md step 4)."""
    xml = mint_tree(ec_idp, issuer=idp.entity_id)
    assert_rejected(*send(client, xml), reasons, "signature_invalid")


def test_cross_idp_issuer_spoof(trio_app, idp, other_idp):
    """other_idp is trusted for its own Issuer only: its key signing an assertion
    that claims idp's Issuer never verifies ("A key of IdP A must never validate an
    assertion whose Issuer is IdP B")."""
    client = trio_app.test_client()
    with record_signals(trio_app) as signals:
        spoof = mint_tree(other_idp, issuer=idp.entity_id)
        status, body = send(client, spoof)
        assert_rejected(status, body, signals.reasons, "signature_invalid")
        # Control: the same IdP is accepted under its own name in this app.
        verified = assert_accepted(*send(client, mint_tree(other_idp)), signals.accepted)
    assert verified.issuer == other_idp.entity_id


def test_issuer_swapped_after_signing(client, idp, ec_idp, reasons):
    """Changing the (unsigned-at-selection) Issuer after signing breaks the digest
    or the key: the signed Issuer must equal the selecting one."""
    tree = mint_tree(idp)
    one(tree, "saml:Issuer").text = ec_idp.entity_id
    assert_rejected(*send(client, tree), reasons, "signature_invalid")
