"""Comments, PIs and CDATA in NameID; duplicate and namespaced IDs; prefix
rebinding and foreign-namespace look-alikes.

SECURITY.md step 6 (use only what was signed) and step 7 ("direct-child paths,
never ``.//``, never ``local-name()``"; "a comment or processing instruction
inside NameID (CVE-2017-11427 family) must not truncate the value").
"""

from __future__ import annotations

import copy

import pytest
from lxml import etree

from authlib_saml2_grant.xml import SAML_NS

from ..conftest import AS_ENTITY_ID
from ..conftest import TOKEN_ENDPOINT
from ..conftest import User
from ..conftest import db
from ..conftest import unsigned_tree
from ..helpers import ENVELOPED
from ..helpers import EXC_C14N_COMMENTS
from ..helpers import assert_accepted
from ..helpers import assert_rejected
from ..helpers import ds
from ..helpers import mint_tree
from ..helpers import one
from ..helpers import saml
from ..helpers import send
from .forge import sign_tree

EVIL_NS = "urn:example:evil"
SAML1_NS = "urn:oasis:names:tc:SAML:1.0:assertion"

# -- NameID text ---------------------------------------------------------------


@pytest.mark.parametrize(
    "spelling",
    [
        b"alice@<!---->example.com",
        b"alice<!-- x -->@example.com<!---->",
        b"<!---->alice@example.com",
        b"alice@<![CDATA[example]]>.com",
        b"<![CDATA[alice@example.com]]>",
        b"alice&#64;example&#x2e;com",
    ],
    ids=["comment-mid", "comments", "comment-first", "cdata-part", "cdata-all", "char-refs"],
)
def test_nameid_markup_that_c14n_removes_yields_full_signed_value(client, idp, accepted, spelling):
    """Comments (exc-c14n without comments), CDATA and character references are
    not part of the signed form: the subject is the full signed value, never the
    text before the first comment (CVE-2017-11427)."""
    xml = etree.tostring(mint_tree(idp)).replace(
        b">alice@example.com</saml:NameID>", b">" + spelling + b"</saml:NameID>"
    )
    assert spelling in xml
    assert_accepted(*send(client, xml), accepted, "alice@example.com")


def test_cve_2017_11427_comment_truncation(client, idp, accepted):
    """The attacker owns ``alice@example.com.evil.example`` at the IdP and inserts a
    comment after ``alice@example.com``: the subject stays the attacker's own."""
    attacker = "alice@example.com.evil.example"
    db.session.add(User(email=attacker))
    db.session.commit()
    xml = etree.tostring(mint_tree(idp, subject=attacker)).replace(
        b">alice@example.com.evil.example<", b">alice@example.com<!---->.evil.example<"
    )
    assert_accepted(*send(client, xml), accepted, attacker)


def test_cve_2017_11427_cdata_truncation(client, idp, reasons):
    """Same with CDATA splitting: the full value is looked up (no such user)."""
    xml = etree.tostring(mint_tree(idp, subject="alice@example.com.evil.example")).replace(
        b">alice@example.com.evil.example<", b">alice@example.com<![CDATA[.evil.example]]><"
    )
    assert_rejected(*send(client, xml), reasons, "user_unknown")


def test_processing_instruction_inserted_breaks_signature(client, idp, reasons):
    """A PI is part of the canonical form: inserted after signing, the digest fails."""
    xml = etree.tostring(mint_tree(idp)).replace(
        b">alice@example.com<", b">alice@example.com<?evil x?><"
    )
    assert_rejected(*send(client, xml), reasons, "signature_invalid")


@pytest.mark.parametrize("markup", ["pi", "element", "comment-signed-with-comments"])
def test_signed_markup_inside_nameid_refused(client, idp, reasons, markup):
    """Markup the signature does cover (a PI, a child element, or a comment under
    exc-c14n#WithComments) makes the NameID ambiguous: refused as subject_malformed."""
    tree = unsigned_tree(idp)
    name_id = one(tree, "saml:Subject/saml:NameID")
    name_id.text = "alice@example.com"
    if markup == "pi":
        child = etree.ProcessingInstruction("evil", "x")
    elif markup == "element":
        child = etree.Element(saml("B"))
    else:
        child = etree.Comment("x")
    child.tail = ".evil.example"
    name_id.append(child)
    if markup == "comment-signed-with-comments":
        sign_tree(
            idp, tree, references=[(f"#{tree.get('ID')}", tree, (ENVELOPED, EXC_C14N_COMMENTS))]
        )
        xml = etree.tostring(tree)
        assert b"<!--x-->" in xml
    else:
        xml = idp.sign(tree)
    assert_rejected(*send(client, xml), reasons, "subject_malformed")


def test_comment_in_issuer(client, idp, reasons):
    """The Issuer that selects the key is read from the input tree: a comment in it
    is refused rather than read around."""
    xml = etree.tostring(mint_tree(idp)).replace(
        b">https://idp.example.com</saml:Issuer>", b">https://idp.example.com<!----></saml:Issuer>"
    )
    assert_rejected(*send(client, xml), reasons, "issuer_missing")


# -- IDs -----------------------------------------------------------------------


def test_duplicate_id_inserted_after_signing(client, idp, reasons, rejections):
    """A second element carrying the root's ID makes the reference ambiguous."""
    tree = mint_tree(idp)
    one(tree, "saml:Subject").set("ID", tree.get("ID"))
    assert_rejected(*send(client, tree), reasons, "signature_invalid")
    assert "Ambiguous reference" in " ".join(rejections[0][1]["errors"])


def test_duplicate_id_signed_by_idp(client, idp, reasons):
    """Even IdP-signed, two elements with the root's ID are ambiguous."""
    tree = unsigned_tree(idp)
    one(tree, "saml:Conditions").set("ID", tree.get("ID"))
    sign_tree(idp, tree)
    assert_rejected(*send(client, tree), reasons, "signature_invalid")


def test_namespaced_id_only(client, idp, reasons):
    """``x:ID`` is not ``ID``: a root with only a namespaced ID has no ID."""
    tree = unsigned_tree(idp)
    value = tree.get("ID")
    del tree.attrib["ID"]
    tree.set(f"{{{EVIL_NS}}}ID", value)
    assert_rejected(*send(client, etree.tostring(tree)), reasons, "id_missing")


def test_namespaced_id_duplicates_signed_id(client, idp, reasons, rejections):
    """signxml resolves IDs by local-name(): a namespaced ``x:ID`` equal to the
    signed ID on another element makes the reference ambiguous, not rebound."""
    original = mint_tree(idp, subject="mallory@example.com")
    evil = copy.deepcopy(original)
    evil.find(ds("Signature")).addnext(etree.Element(saml("Advice")))
    evil.set(f"{{{EVIL_NS}}}ID", original.get("ID"))
    assert_rejected(*send(client, evil), reasons, "signature_invalid")
    errors = " ".join(rejections[0][1]["errors"])
    assert "Ambiguous reference" in errors or "Digest mismatch" in errors


def test_namespaced_id_on_evil_root_with_moved_signature(client, idp, reasons, rejections):
    """An evil root whose ``x:ID`` names the signed original (hidden in Advice)."""
    original = mint_tree(idp, subject="mallory@example.com")
    signature = original.find(ds("Signature"))
    original.remove(signature)
    evil = copy.deepcopy(original)
    evil.set("ID", "_evil")
    evil.set(f"{{{EVIL_NS}}}ID", original.get("ID"))
    one(evil, "saml:Subject/saml:NameID").text = "alice@example.com"
    one(evil, "saml:Issuer").addnext(signature)
    advice = etree.SubElement(evil, saml("Advice"))
    advice.append(original)
    assert_rejected(*send(client, evil), reasons, "signature_invalid")
    assert "Ambiguous reference" in " ".join(rejections[0][1]["errors"])


# -- prefixes and namespaces --------------------------------------------------------


@pytest.mark.parametrize("nsmap", [{"s2": SAML_NS}, {None: SAML_NS}], ids=["reprefixed", "default"])
def test_reprefixed_copy_of_signed_assertion(client, idp, reasons, nsmap):
    """Exclusive c14n keeps prefixes: re-prefixing a signed assertion breaks it."""
    signed = mint_tree(idp)
    text = etree.tostring(signed).decode()
    new = "s2:" if None not in nsmap else ""
    decl = 'xmlns:s2="' if None not in nsmap else 'xmlns="'
    text = text.replace("saml:", new).replace('xmlns:saml="', decl)
    assert "saml:" not in text
    assert_rejected(*send(client, text.encode()), reasons, "signature_invalid")


def _rebind(element: etree._Element, namespace: str) -> etree._Element:
    """Replace ``element`` by a copy whose ``saml`` prefix is bound to ``namespace``."""
    local = etree.QName(element).localname
    clone = etree.Element(f"{{{namespace}}}{local}", nsmap={"saml": namespace})
    for name, value in element.attrib.items():
        clone.set(name, value)
    clone.text = element.text
    clone.tail = element.tail
    for child in element:
        clone.append(child)
    element.getparent().replace(element, clone)
    return clone


@pytest.mark.parametrize(
    ("path", "namespace", "reason"),
    [
        ("saml:Subject/saml:NameID", EVIL_NS, "subject_missing"),
        ("saml:Subject/saml:NameID", SAML1_NS, "subject_missing"),
        ("saml:Subject", EVIL_NS, "subject_missing"),
        ("saml:Conditions", EVIL_NS, "conditions_missing"),
        ("saml:Conditions/saml:AudienceRestriction", EVIL_NS, "condition_unsupported"),
        ("saml:Conditions/saml:AudienceRestriction/saml:Audience", EVIL_NS, "audience_mismatch"),
        ("saml:Subject/saml:SubjectConfirmation", EVIL_NS, "subject_confirmation_missing"),
        (
            "saml:Subject/saml:SubjectConfirmation/saml:SubjectConfirmationData",
            EVIL_NS,
            "subject_confirmation_missing",
        ),
        ("saml:Issuer", EVIL_NS, "issuer_missing"),
    ],
)
def test_foreign_namespace_lookalike_signed_by_idp(client, idp, reasons, path, namespace, reason):
    """``<saml:X xmlns:saml="urn:evil">`` looks right and is signed, but is not a SAML
    element: direct-child paths with the real namespace never see it."""
    tree = unsigned_tree(idp)
    _rebind(one(tree, path), namespace)
    xml = idp.sign(tree) if reason != "issuer_missing" else etree.tostring(sign_tree(idp, tree))
    assert_rejected(*send(client, xml), reasons, reason)


def test_foreign_namespace_root_signed(client, idp, reasons):
    """A signed ``Assertion`` in SAML 1.0's (or any other) namespace is not ours."""
    tree = unsigned_tree(idp)
    tree = _rebind_root(tree, SAML1_NS)
    sign_tree(idp, tree)
    assert_rejected(*send(client, tree), reasons, "not_an_assertion")


def _rebind_root(tree, namespace):
    root = etree.Element(f"{{{namespace}}}Assertion", nsmap={"saml": namespace})
    for name, value in tree.attrib.items():
        root.set(name, value)
    for child in list(tree):
        root.append(child)
    return root


@pytest.mark.parametrize("decoy_host", ["advice", "attribute_value", "confirmation_data"])
def test_nested_decoys_never_decide(client, idp, accepted, decoy_host):
    """IdP-signed decoys deeper in the tree (a Subject for admin, an Audience and a
    bearer confirmation) are ignored: only direct children of the root count."""
    tree = unsigned_tree(idp, attributes={"note": "x"})
    decoy = etree.Element(saml("Subject"))
    etree.SubElement(decoy, saml("NameID")).text = "admin@example.com"
    hosts = {
        "advice": lambda: _after(tree, "saml:Conditions", etree.Element(saml("Advice"))),
        "attribute_value": lambda: one(
            tree, "saml:AttributeStatement/saml:Attribute/saml:AttributeValue"
        ),
        "confirmation_data": lambda: one(
            tree, "saml:Subject/saml:SubjectConfirmation/saml:SubjectConfirmationData"
        ),
    }
    hosts[decoy_host]().append(decoy)
    assert_accepted(*send(client, idp.sign(tree)), accepted, "alice@example.com")


def _after(tree, path, element):
    one(tree, path).addnext(element)
    return element


def test_nested_audience_decoy_does_not_satisfy_audience(client, idp, reasons):
    """Our audience only inside Advice does not count (direct-child paths)."""
    tree = unsigned_tree(idp, audience="https://other.example.com")
    advice = _after(tree, "saml:Conditions", etree.Element(saml("Advice")))
    conditions = etree.SubElement(advice, saml("Conditions"))
    restriction = etree.SubElement(conditions, saml("AudienceRestriction"))
    etree.SubElement(restriction, saml("Audience")).text = AS_ENTITY_ID
    assert_rejected(*send(client, idp.sign(tree)), reasons, "audience_mismatch")


def test_nested_confirmation_decoy_does_not_satisfy_recipient(client, idp, reasons):
    """A bearer confirmation for us nested in an AttributeValue does not count."""
    tree = unsigned_tree(idp, recipient="https://other.example.com/token", attributes={"n": "x"})
    value = one(tree, "saml:AttributeStatement/saml:Attribute/saml:AttributeValue")
    confirmation = etree.SubElement(
        value, saml("SubjectConfirmation"), Method="urn:oasis:names:tc:SAML:2.0:cm:bearer"
    )
    data = etree.SubElement(confirmation, saml("SubjectConfirmationData"))
    data.set("Recipient", TOKEN_ENDPOINT)
    data.set("NotOnOrAfter", "2999-01-01T00:00:00Z")
    assert_rejected(*send(client, idp.sign(tree)), reasons, "recipient_mismatch")
