"""Property-based fuzzing of the token endpoint with mutated signed assertions.

Properties (SECURITY.md, whole pipeline):

* the endpoint never answers 500 and the verifier never raises unexpectedly
  (no ``verification_error``);
* a rejection is always the generic ``invalid_grant``;
* it accepts nothing but the unmodified signed assertion: whenever a mutant is
  accepted, its signed content (the root without ds:Signature, in exclusive
  canonical form without comments) equals the original's, and the verified
  subject and ID are the original's. Semantic no-ops (a comment, a Base64
  alphabet or padding change, an edit of the unsigned KeyInfo hint or of unused
  trailing bits in SignatureValue) may therefore be accepted; nothing else may.
"""

from __future__ import annotations

import base64
import copy
import os
from datetime import datetime
from datetime import timedelta
from datetime import timezone
from urllib.parse import quote

from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from lxml import etree

from authlib_saml2_grant.testing import encode_assertion
from authlib_saml2_grant.xml import DS_NS
from authlib_saml2_grant.xml import SAML_NS

from ..conftest import AS_ENTITY_ID
from ..conftest import TOKEN_ENDPOINT
from ..conftest import request_token
from ..conftest import unsigned_tree
from ..helpers import ENVELOPED
from ..helpers import HMAC_SHA256
from ..helpers import INVALID_GRANT
from ..helpers import SAMLP_NS
from ..helpers import mint_tree
from .forge import c14n
from .forge import strip_signature

#: 40 examples per property in CI; set SAML2_FUZZ_EXAMPLES for a deeper local run.
FUZZ = settings(
    max_examples=int(os.environ.get("SAML2_FUZZ_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
NAMESPACES = [SAML_NS, DS_NS, SAMLP_NS, "urn:evil", ""]
ATTRIBUTES = [
    "ID",
    "Version",
    "IssueInstant",
    "NotBefore",
    "NotOnOrAfter",
    "Recipient",
    "Method",
    "URI",
    "Algorithm",
    "InResponseTo",
    "Format",
    "{urn:evil}ID",
    "{http://www.w3.org/XML/1998/namespace}id",
]
VALUES = st.sampled_from(
    [
        "",
        "2.0",
        "_evil",
        AS_ENTITY_ID,
        TOKEN_ENDPOINT,
        "2999-01-01T00:00:00Z",
        "2000-01-01T00:00:00Z",
        "urn:oasis:names:tc:SAML:2.0:cm:bearer",
        ENVELOPED,
        HMAC_SHA256,
        "#",
    ]
) | st.text(max_size=12)


def _signed(idp) -> tuple[bytes, etree._Element]:
    tree = mint_tree(idp, attributes={"groups": ["a", "b"]})
    return etree.tostring(tree), tree


def _check(client, accepted, reasons, original: etree._Element, parameter: str, xml=None):
    """Send ``parameter``; assert the properties of the module docstring."""
    before, rejected = len(accepted), len(reasons)
    status, body = request_token(client, parameter)
    assert status in (200, 400), (status, body)
    assert "verification_error" not in reasons, reasons
    if status == 400:
        assert body["error"] in ("invalid_grant", "invalid_request"), body
        if body["error"] == "invalid_grant":
            assert body == INVALID_GRANT
            assert len(reasons) == rejected + 1, reasons
        assert len(accepted) == before
        return False
    assert len(accepted) == before + 1
    verified = accepted[-1]
    assert verified.assertion_id == original.get("ID")
    assert verified.subject == "alice@example.com"
    if xml is not None:  # the accepted bytes are a semantic no-op of the original
        mutant = etree.fromstring(xml.lstrip(b"\xef\xbb\xbf"))
        assert signed_content(mutant) == signed_content(original), xml
    return True


def signed_content(tree: etree._Element) -> bytes:
    """What the enveloped signature covers: the root without its ds:Signature, in
    exclusive c14n without comments. KeyInfo and the spelling of SignatureValue
    (e.g. unused trailing Base64 bits) are outside it: KeyInfo is only a hint."""
    return c14n(strip_signature(tree))


@FUZZ
@given(data=st.data())
def test_byte_mutations_of_signed_xml(client, idp, accepted, reasons, data):
    """Byte flips, deletions and insertions in the decoded XML."""
    xml, tree = _signed(idp)
    mutated = bytearray(xml)
    for _ in range(data.draw(st.integers(1, 3))):
        position = data.draw(st.integers(0, len(mutated) - 1))
        kind = data.draw(st.sampled_from(["flip", "set", "delete", "insert"]))
        if kind == "flip":
            mutated[position] ^= 1 << data.draw(st.integers(0, 7))
        elif kind == "set":
            mutated[position] = data.draw(st.sampled_from(b"<>&\"'= /!?-x0\x00\xff\n"))
        elif kind == "delete":
            del mutated[position : position + data.draw(st.integers(1, 8))]
        else:
            snippet = data.draw(
                st.sampled_from([b"<!---->", b"<x/>", b" ", b"&amp;", b"<?p?>", b"]]>", b"\xc3"])
            )
            mutated[position:position] = snippet
    mutated = bytes(mutated)
    _check(client, accepted, reasons, tree, encode_assertion(mutated), mutated)


@FUZZ
@given(data=st.data())
def test_encoding_mutations(client, idp, accepted, reasons, data):
    """Character edits in the Base64 parameter, and Base64 spellings that are no-ops."""
    xml, tree = _signed(idp)
    spelling = data.draw(st.sampled_from(["url", "url-pad", "std", "std-pad", "percent"]))
    std = base64.b64encode(xml).decode()
    parameter = {
        "url": encode_assertion(xml),
        "url-pad": encode_assertion(xml, padding=True),
        "std": std.rstrip("="),
        "std-pad": std,
        "percent": quote(std, safe=""),
    }[spelling]
    edits = data.draw(st.integers(0, 2))
    chars = list(parameter)
    for _ in range(edits):
        position = data.draw(st.integers(0, len(chars) - 1))
        chars[position] = data.draw(st.sampled_from("AZaz09+/-_=%. \n\u00e9"))
    mutated = "".join(chars)
    ok = _check(client, accepted, reasons, tree, mutated)
    if mutated == parameter:
        assert ok, f"an unmodified assertion spelled {spelling} was refused: {reasons}"
    elif ok:  # an edit that decodes to the same bytes (e.g. swapped alphabet) only
        from authlib_saml2_grant.xml import decode_assertion

        assert signed_content(etree.fromstring(decode_assertion(mutated, 10**6))) == (
            signed_content(tree)
        )


def _elements(tree):
    return [e for e in tree.iter() if isinstance(e.tag, str)]


@FUZZ
@given(data=st.data())
def test_tree_mutations(client, idp, accepted, reasons, data):
    """Element moves and duplications, attribute edits, namespace and text edits."""
    _xml, original = _signed(idp)
    tree = copy.deepcopy(original)
    for _ in range(data.draw(st.integers(1, 3))):
        elements = _elements(tree)
        element = data.draw(st.sampled_from(elements))
        kind = data.draw(
            st.sampled_from(["move", "duplicate", "attribute", "namespace", "text", "remove"])
        )
        if kind in ("move", "duplicate") and element is not tree:
            moving = element if kind == "move" else copy.deepcopy(element)
            targets = [t for t in elements if t not in set(element.iter())]
            if not targets:
                continue
            target = data.draw(st.sampled_from(targets))
            target.insert(data.draw(st.integers(0, len(target))), moving)
        elif kind == "remove" and element is not tree:
            element.getparent().remove(element)
        elif kind == "attribute":
            name = data.draw(st.sampled_from(ATTRIBUTES))
            if data.draw(st.booleans()) and name in element.attrib:
                del element.attrib[name]
            else:
                try:
                    element.set(name, data.draw(VALUES))
                except ValueError:  # lxml refuses control characters
                    continue
        elif kind == "namespace":
            local = etree.QName(element).localname
            element.tag = f"{{{data.draw(st.sampled_from(NAMESPACES))}}}{local}".replace("{}", "")
        elif kind == "text":
            try:
                element.text = data.draw(VALUES)
            except ValueError:
                continue
    xml = etree.tostring(tree)
    _check(client, accepted, reasons, original, encode_assertion(xml), xml)


@FUZZ
@given(data=st.data())
def test_noop_mutations_accepted_and_still_single_use(client, idp, accepted, reasons, data):
    """Mutations outside the signed content (comments, XML declaration, redundant
    namespace declarations, attribute quoting) are accepted exactly once."""
    xml, tree = _signed(idp)
    changes = data.draw(
        st.lists(
            st.sampled_from(["comment-root", "comment-nameid", "decl", "ns", "quotes", "bom"]),
            min_size=1,
            max_size=4,
            unique=True,
        )
    )
    mutated = xml
    if "comment-nameid" in changes:
        mutated = mutated.replace(b">alice@", b"><!-- c -->alice@")
    if "comment-root" in changes:
        mutated = mutated + b"<!-- trailing -->"
    if "ns" in changes:
        mutated = mutated.replace(b"<saml:Subject>", b'<saml:Subject xmlns:z="urn:z">')
    if "quotes" in changes:
        mutated = mutated.replace(b'Version="2.0"', b"Version='2.0'")
    if "decl" in changes:
        mutated = b'<?xml version="1.0" encoding="UTF-8"?>' + mutated
    if "bom" in changes:
        mutated = b"\xef\xbb\xbf" + mutated
    assert mutated != xml
    assert _check(client, accepted, reasons, tree, encode_assertion(mutated), mutated)
    status, _ = request_token(client, encode_assertion(xml))
    assert status == 400 and reasons[-1] == "replayed"


def _instant(value) -> str:
    return (
        f"{value.year:04d}-{value.month:02d}-{value.day:02d}T{value.hour:02d}:"
        f"{value.minute:02d}:{value.second:02d}Z"
    )


_TIMES = st.one_of(
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)).map(
        _instant
    ),
    st.integers(-(10**6), 10**6).map(
        lambda s: _instant(datetime.now(timezone.utc) + timedelta(seconds=s))
    ),
    st.text(max_size=25),
)


@FUZZ
@given(
    issue_instant=_TIMES,
    not_before=_TIMES,
    not_on_or_after=_TIMES,
    confirmation_not_on_or_after=_TIMES,
    audience=st.sampled_from([AS_ENTITY_ID, AS_ENTITY_ID + "/", ""]) | st.text(max_size=10),
    recipient=st.sampled_from([TOKEN_ENDPOINT, "x"]),
)
def test_signed_field_values(client, idp, accepted, reasons, **fields):
    """The IdP itself signs arbitrary time, audience and recipient values (found the
    year-9999 overflow): never an unexpected error, and acceptance implies every
    value is one this server allows (RFC 7522 section 3 items 2-4)."""
    try:
        tree = unsigned_tree(idp, **fields)
        xml = idp.sign(tree)
    except ValueError:  # lxml refuses control characters in the drawn text
        return
    before = len(accepted)
    status, body = request_token(client, encode_assertion(xml))
    assert status in (200, 400), body
    assert "verification_error" not in reasons, reasons
    if status == 200:
        verified = accepted[before]
        assert fields["audience"] == AS_ENTITY_ID
        assert fields["recipient"] == TOKEN_ENDPOINT
        now = datetime.now(timezone.utc)
        assert verified.issue_instant <= now + timedelta(seconds=61)
        assert verified.expires_at > now - timedelta(seconds=61)
        assert verified.expires_at - verified.issue_instant <= timedelta(hours=2)
