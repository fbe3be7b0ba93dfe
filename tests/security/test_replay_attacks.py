"""Replays of one signed assertion under other byte spellings.

SECURITY.md step 8: "The key is never the raw parameter: the same signed
assertion has many byte encodings (attribute order, quotes, Base64
spellings)." Each variant below is first shown to be accepted on its own (so
the replay test cannot pass vacuously), then redeemed after the original.
"""

from __future__ import annotations

import base64
import re
from urllib.parse import quote

import pytest
from lxml import etree

from authlib_saml2_grant.testing import encode_assertion

from ..conftest import request_token
from ..helpers import assert_rejected
from ..helpers import mint_tree
from .forge import c14n


def _reorder_attributes(xml: bytes) -> bytes:
    tree = etree.fromstring(xml)
    for element in tree.iter(etree.Element):
        items = list(element.attrib.items())
        element.attrib.clear()
        for name, value in reversed(items):
            element.set(name, value)
    return etree.tostring(tree)


def _single_quotes(xml: bytes) -> bytes:
    return re.sub(rb'(\s[\w:]+)="([^"\']*)"', rb"\1='\2'", xml)


def _padded_tags(xml: bytes) -> bytes:
    xml = re.sub(rb'(\s[\w:]+)="', rb'\n\1 =  "', xml)
    return re.sub(rb"<([\w:]+)>", rb"<\1  >", xml)


def _expanded_empty(xml: bytes) -> bytes:
    return re.sub(rb"<([\w:]+)([^<>]*?)/>", rb"<\1\2></\1>", xml)


def _char_refs(xml: bytes) -> bytes:
    return xml.replace(b">alice@example.com<", b">&#97;lice&#x40;example.com<")


def _redundant_namespaces(xml: bytes) -> bytes:
    xml = xml.replace(
        b"<saml:Subject>", b'<saml:Subject xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion">'
    )
    return xml.replace(
        b"<saml:Assertion ", b'<saml:Assertion xmlns:unused="urn:example:unused" ', 1
    )


XML_VARIANTS = {
    "xml-declaration": lambda x: b'<?xml version="1.0" encoding="UTF-8"?>\n' + x,
    "bom": lambda x: b"\xef\xbb\xbf" + x,
    "attribute-order": _reorder_attributes,
    "single-quotes": _single_quotes,
    "padded-tags": _padded_tags,
    "expanded-empty-elements": _expanded_empty,
    "character-references": _char_refs,
    "redundant-namespaces": _redundant_namespaces,
    "crlf": lambda x: x.replace(b"\n", b"\r\n"),
    "comment-in-nameid": lambda x: x.replace(b"alice@example.com<", b"alice@<!---->example.com<"),
    "comment-after-root": lambda x: x + b"<!-- again -->",
}


def _std(xml: bytes) -> str:
    return base64.b64encode(xml).decode()


ENCODINGS = {
    "base64url-padded": lambda x: encode_assertion(x, urlsafe=True, padding=True),
    "base64-padded": lambda x: _std(x),
    "base64-unpadded": lambda x: _std(x).rstrip("="),
    "double-url-encoded": lambda x: quote(_std(x), safe=""),
    "surrounding-whitespace": lambda x: "\n" + encode_assertion(x) + "\r\n",
}


def _variants():
    for name, change in XML_VARIANTS.items():
        yield pytest.param(lambda x, change=change: encode_assertion(change(x)), id=name)
    for name, encode in ENCODINGS.items():
        yield pytest.param(encode, id=name)


@pytest.mark.parametrize("variant", list(_variants()))
@pytest.mark.parametrize("variant_first", [False, True], ids=["original-first", "variant-first"])
def test_reserialised_copy_is_a_replay(client, idp, reasons, accepted, variant, variant_first):
    """Two spellings of one signed assertion yield one token: the second is ``replayed``."""
    xml = etree.tostring(mint_tree(idp))
    original = encode_assertion(xml)
    copy = variant(xml)
    assert copy != original
    first, second = (copy, original) if variant_first else (original, copy)
    status, body = request_token(client, first)
    assert status == 200, (body, reasons)
    assert_rejected(*request_token(client, second), reasons, "replayed")
    assert len(accepted) == 1


def test_xml_variants_really_differ_but_share_canonical_form(idp):
    """The variants are different bytes with the same signed (canonical) content."""
    xml = etree.tostring(mint_tree(idp))
    for name, change in XML_VARIANTS.items():
        changed = change(xml)
        assert changed != xml, name
        assert c14n(etree.fromstring(changed.lstrip(b"\xef\xbb\xbf"))) == c14n(
            etree.fromstring(xml)
        ), name


def test_same_id_reissued_by_idp_is_a_replay(client, idp, reasons):
    """The key is (Issuer, ID): a second, differently signed assertion reusing an ID
    is a replay even though its bytes and signature differ."""
    first = mint_tree(idp, assertion_id="_fixed-id")
    second = mint_tree(idp, assertion_id="_fixed-id", attributes={"x": "y"})
    assert request_token(client, encode_assertion(etree.tostring(first)))[0] == 200
    status, body = request_token(client, encode_assertion(etree.tostring(second)))
    assert_rejected(status, body, reasons, "replayed")
