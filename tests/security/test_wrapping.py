"""XML signature wrapping (XSW1-8) against a bare Assertion root and Response roots.

SECURITY.md pipeline step 6: "Use only what was signed ... Require: signed
element is the root ... and the single Reference URI is ``#`` + the root's
``ID``. signxml alone accepts several wrapping shapes (original hidden in
``Advice``, ``ds:Object``, ...) and signed non-assertions". Every attack starts
from a validly signed assertion for ``mallory`` (an attacker's own) and tries
to make the server act on an unsigned evil assertion for ``alice``.
"""

from __future__ import annotations

import copy

import pytest
from lxml import etree

from authlib_saml2_grant.xml import SAML_NS

from ..conftest import TOKEN_ENDPOINT
from ..conftest import unsigned_tree
from ..helpers import SAMLP_NS
from ..helpers import assert_accepted
from ..helpers import assert_rejected
from ..helpers import ds
from ..helpers import mint_tree
from ..helpers import one
from ..helpers import saml
from ..helpers import send
from .forge import hand_sign
from .forge import strip_signature

HOSTS = ("advice", "object", "keyinfo", "confirmation_data", "attribute_value", "child")


def _evil_from(original: etree._Element) -> etree._Element:
    """An unsigned copy of the original with a new ID and alice as subject."""
    evil = strip_signature(original)
    evil.set("ID", "_evil")
    one(evil, "saml:Subject/saml:NameID").text = "alice@example.com"
    return evil


def _host(evil: etree._Element, signature: etree._Element | None, where: str) -> etree._Element:
    """The element of ``evil`` that will hide the signed original."""
    if where == "advice":
        advice = etree.Element(saml("Advice"))
        one(evil, "saml:Conditions").addnext(advice)
        return advice
    if where == "object":
        return etree.SubElement(signature, ds("Object"))
    if where == "keyinfo":
        key_info = signature.find(ds("KeyInfo"))
        return key_info if key_info is not None else etree.SubElement(signature, ds("KeyInfo"))
    if where == "confirmation_data":
        return one(evil, "saml:Subject/saml:SubjectConfirmation/saml:SubjectConfirmationData")
    if where == "attribute_value":
        statement = etree.SubElement(evil, saml("AttributeStatement"))
        attribute = etree.SubElement(statement, saml("Attribute"), Name="x")
        return etree.SubElement(attribute, saml("AttributeValue"))
    if where == "child":
        return evil
    raise AssertionError(where)


@pytest.mark.parametrize("where", HOSTS)
def test_xsw_signature_moved_to_evil_root(client, idp, reasons, rejections, where):
    """The original's signature is moved onto an evil root and the signed original
    hidden inside it: signxml verifies the reference, but it does not name the root
    (SECURITY.md step 6: Reference URI must be ``#`` + root ID)."""
    original = mint_tree(idp, subject="mallory@example.com")
    assert original.get("ID") != "_evil"
    signature = original.find(ds("Signature"))
    original.remove(signature)
    evil = _evil_from(original)
    one(evil, "saml:Issuer").addnext(signature)
    _host(evil, signature, where).append(original)
    status, body = send(client, evil)
    assert_rejected(status, body, reasons, "signature_reference_invalid")
    assert rejections[0][1]["actual"] == f"#{original.get('ID')}"


@pytest.mark.parametrize("where", ["advice", "confirmation_data", "attribute_value", "child"])
def test_xsw_evil_root_without_signature(client, idp, reasons, where):
    """The signed original, its signature intact, is nested in an unsigned evil root:
    only an enveloped signature of the root counts (SECURITY.md step 5, location ``./``)."""
    original = mint_tree(idp, subject="mallory@example.com")
    evil = _evil_from(original)
    _host(evil, None, where).append(original)
    status, body = send(client, evil)
    assert_rejected(status, body, reasons, "signature_missing")


@pytest.mark.parametrize("where", HOSTS)
def test_xsw_evil_root_with_copied_signature(client, idp, reasons, rejections, where):
    """An evil root carries a copy of the signature while the original keeps its own:
    the enveloped transform removes the root's copy only, so the digest breaks."""
    original = mint_tree(idp, subject="mallory@example.com")
    evil = _evil_from(original)
    signature = copy.deepcopy(original.find(ds("Signature")))
    one(evil, "saml:Issuer").addnext(signature)
    _host(evil, signature, where).append(original)
    status, body = send(client, evil)
    assert_rejected(status, body, reasons, "signature_invalid")
    assert "Digest mismatch" in " ".join(rejections[0][1]["errors"])


@pytest.mark.parametrize("where", ["advice", "object", "confirmation_data", "attribute_value"])
def test_xsw_evil_root_reuses_signed_id(client, idp, reasons, rejections, where):
    """The evil root takes the original's ID so the reference seems to name it:
    two elements carry the ID and signxml refuses the ambiguous reference."""
    original = mint_tree(idp, subject="mallory@example.com")
    signature = original.find(ds("Signature"))
    original.remove(signature)
    evil = _evil_from(original)
    evil.set("ID", original.get("ID"))
    one(evil, "saml:Issuer").addnext(signature)
    _host(evil, signature, where).append(original)
    status, body = send(client, evil)
    assert_rejected(status, body, reasons, "signature_invalid")
    assert "Ambiguous reference" in " ".join(rejections[0][1]["errors"])


def test_xsw_evil_root_signed_by_attacker_around_original(client, idp, reasons):
    """The evil root is signed, but by a key the attacker holds (here: none of the IdP's).

    A signature from any other key never verifies (SECURITY.md step 4)."""
    from authlib_saml2_grant.testing import generate_key_pair

    key, certificate = generate_key_pair(common_name=idp.entity_id)
    original = mint_tree(idp, subject="mallory@example.com")
    evil = _evil_from(original)
    _host(evil, None, "advice").append(original)
    hand_sign(evil, key, certificate=certificate)
    status, body = send(client, evil)
    assert_rejected(status, body, reasons, "signature_invalid")


def test_two_signed_assertions_second_one_is_ignored(client, idp, accepted):
    """A validly signed root with a second signed assertion (for someone else) in
    Advice: the root is verified and only its own direct children decide identity."""
    inner = mint_tree(idp, subject="admin@example.com")
    outer = unsigned_tree(idp, subject="alice@example.com")
    advice = etree.Element(saml("Advice"))
    outer.find(saml("Conditions")).addnext(advice)
    advice.append(inner)
    signed = etree.fromstring(idp.sign(outer))
    status, body = send(client, signed)
    assert_accepted(status, body, accepted, "alice@example.com")


def test_two_assertions_as_two_roots(client, idp, reasons):
    """Two assertions concatenated: a document has one root (SECURITY.md step 3)."""
    first = etree.tostring(mint_tree(idp))
    second = etree.tostring(mint_tree(idp, subject="mallory@example.com"))
    status, body = send(client, first + second)
    assert_rejected(status, body, reasons, "xml_malformed")


# -- Response roots ------------------------------------------------------------


def _response(*children, response_id="_resp") -> etree._Element:
    response = etree.Element(f"{{{SAMLP_NS}}}Response", nsmap={"samlp": SAMLP_NS, "saml": SAML_NS})
    response.set("ID", response_id)
    response.set("Version", "2.0")
    response.set("IssueInstant", "2026-01-01T00:00:00Z")
    etree.SubElement(response, saml("Issuer")).text = "https://idp.example.com"
    for child in children:
        response.append(child)
    return response


def _xsw_response(idp, shape: str) -> etree._Element:
    original = mint_tree(idp, subject="mallory@example.com")
    evil = _evil_from(original)
    if shape == "signed_assertion_in_response":  # the plain SSO shape
        return _response(original)
    if shape == "unsigned_assertion_in_signed_response":
        response = _response(evil)
        hand_sign(response, idp.key, certificate=idp.certificate)
        return response
    if shape == "evil_before_signed":  # XSW3
        return _response(evil, original)
    if shape == "evil_after_signed":  # XSW4-like order
        return _response(original, evil)
    if shape == "signed_in_extensions":  # XSW1/2: signed content in Extensions
        extensions = etree.Element(f"{{{SAMLP_NS}}}Extensions")
        extensions.append(original)
        return _response(extensions, evil)
    if shape == "signed_inside_evil_advice":  # XSW5-8
        _host(evil, None, "advice").append(original)
        return _response(evil)
    if shape == "signed_response_wrapping_signed_assertion":
        response = _response(original)
        hand_sign(response, idp.key, certificate=idp.certificate)
        return response
    raise AssertionError(shape)


@pytest.mark.parametrize(
    "shape",
    [
        "signed_assertion_in_response",
        "unsigned_assertion_in_signed_response",
        "evil_before_signed",
        "evil_after_signed",
        "signed_in_extensions",
        "signed_inside_evil_advice",
        "signed_response_wrapping_signed_assertion",
    ],
)
def test_response_root_is_not_an_assertion(client, idp, reasons, shape):
    """RFC 7522 section 2.1: the parameter holds a single Assertion, not a Response.

    Every XSW shape that needs a Response container dies at the root check,
    before any key is chosen (SECURITY.md step 6)."""
    status, body = send(client, _xsw_response(idp, shape))
    assert_rejected(status, body, reasons, "not_an_assertion")


# -- signed documents that are not assertions ----------------------------------------


def _signed_metadata(idp) -> etree._Element:
    root = etree.fromstring(idp.metadata())
    root.set("ID", "_metadata")
    hand_sign(root, idp.key, certificate=idp.certificate, index=0)
    return root


def _signed_logout_response(idp) -> etree._Element:
    response = etree.Element(
        f"{{{SAMLP_NS}}}LogoutResponse", nsmap={"samlp": SAMLP_NS, "saml": SAML_NS}
    )
    response.set("ID", "_logout")
    response.set("Version", "2.0")
    response.set("IssueInstant", "2026-01-01T00:00:00Z")
    response.set("Destination", TOKEN_ENDPOINT)
    etree.SubElement(response, saml("Issuer")).text = idp.entity_id
    status = etree.SubElement(response, f"{{{SAMLP_NS}}}Status")
    etree.SubElement(status, f"{{{SAMLP_NS}}}StatusCode").set(
        "Value", "urn:oasis:names:tc:SAML:2.0:status:Success"
    )
    hand_sign(response, idp.key, certificate=idp.certificate)
    return response


@pytest.mark.parametrize("document", ["metadata", "logout_response"])
def test_signed_non_assertion_refused(client, idp, reasons, document):
    """A document the IdP really signed (its metadata, a LogoutResponse) is not an
    assertion: signxml would verify it, the root check refuses it (SECURITY.md step 6)."""
    root = _signed_metadata(idp) if document == "metadata" else _signed_logout_response(idp)
    status, body = send(client, root)
    assert_rejected(status, body, reasons, "not_an_assertion")


def test_signed_non_assertion_renamed_to_assertion(client, idp, reasons):
    """The signed LogoutResponse's root renamed to saml:Assertion: the name is not
    signed-over content for the attacker to keep, the digest breaks."""
    root = _signed_logout_response(idp)
    text = etree.tostring(root).replace(b"samlp:LogoutResponse", b"saml:Assertion")
    assert_rejected(*send(client, text), reasons, "signature_invalid")
