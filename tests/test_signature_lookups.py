"""Our signxml subclass finds exactly what signxml itself finds.

``xmldsig.ParsedTreeVerifier`` replaces signxml's ElementPath lookups of
``ds:*`` children and of ``ec:InclusiveNamespaces`` with direct child walks
(they cost about 40 us per verification), and evaluates signxml's Reference
``URI`` XPath compiled once instead of on every call (about 17 us). Signature verification
(:rfc:`7522#section-3`, item 9) must not change by a single element, so each
lookup signxml makes is compared, element for element, with signxml's own.
"""

from __future__ import annotations

import pytest
from lxml import etree
from signxml import SignatureConfiguration
from signxml import XMLVerifier
from signxml.exceptions import InvalidInput

from authlib_saml2_grant.xml import DS_NS
from authlib_saml2_grant.xml import parse_xml
from authlib_saml2_grant.xmldsig import ParsedTreeVerifier

from .helpers import ENVELOPED
from .helpers import EXC_C14N

DSIG11_NS = "http://www.w3.org/2009/xmldsig11#"

#: Every (query, xpath) signxml 5 passes to ``_find``/``_findall`` when
#: verifying, plus misses and queries the fast path must hand back.
QUERIES = [
    ("Signature", "./"),
    ("SignedInfo", ""),
    ("CanonicalizationMethod", ""),
    ("SignatureMethod", ""),
    ("SignatureValue", ""),
    ("Reference", ""),
    ("Transforms", ""),
    ("Transform", ""),
    ("DigestMethod", ""),
    ("DigestValue", ""),
    ("KeyInfo", ""),
    ("X509Data", ""),
    ("X509Certificate", ""),
    ("RSAKeyValue", ""),
    ("Modulus", ""),
    ("Exponent", ""),
    ("DSAKeyValue", ""),
    ("dsig11:ECKeyValue", ""),
    ("dsig11:NamedCurve", ""),
    ("dsig11:PublicKey", ""),
    ("Object", ""),
    ("ds:SignedInfo", ""),
    ("Signature", ".//"),
    ("Signature[@Id='placeholder']", ".//"),
    ("ds:KeyInfo/ds:X509Data", ""),
    ("xenc:EncryptedData", ""),
]

#: A signature shaped to trip a naive lookup: comments, processing
#: instructions, look-alike names in other namespaces, repeated children and
#: nested elements of the same name.
TRICKY = f"""<root xmlns:ds="{DS_NS}" xmlns:dsig11="{DSIG11_NS}" xmlns:ec="{EXC_C14N}"
    xmlns:x="urn:other"><!-- c --><?pi x?><x:Signature/>
  <ds:Signature Id="placeholder"><!-- c --><x:SignedInfo/><?pi?>
    <ds:SignedInfo><ds:Reference URI="#a"/><ds:Reference URI="#b"/>
      <ds:Transforms><ds:Transform Algorithm="t1"><ec:InclusiveNamespaces/>
        <ec:InclusiveNamespaces PrefixList="ds  saml"/></ds:Transform>
        <ds:Transform Algorithm="t2"><x:InclusiveNamespaces PrefixList="x"/></ds:Transform>
        <ds:Transform Algorithm="t3"><ec:InclusiveNamespaces PrefixList=""/></ds:Transform>
      </ds:Transforms></ds:SignedInfo>
    <ds:KeyInfo><ds:X509Data><ds:X509Certificate>A</ds:X509Certificate>
      <ds:X509Certificate>B</ds:X509Certificate></ds:X509Data>
      <ds:KeyValue><dsig11:ECKeyValue><dsig11:NamedCurve URI="u"/>
        <dsig11:PublicKey>K</dsig11:PublicKey></dsig11:ECKeyValue></ds:KeyValue>
    </ds:KeyInfo></ds:Signature>
    <xenc:EncryptedData xmlns:xenc="http://www.w3.org/2001/04/xmlenc#"/>
  <ds:Signature/></root>""".encode()


def _elements(idp) -> list[etree._Element]:
    roots = [parse_xml(idp.mint_xml()), parse_xml(TRICKY)]
    return [element for root in roots for element in root.iter(etree.Element)]


@pytest.fixture(scope="module")
def elements(idp):
    return _elements(idp)


@pytest.mark.parametrize(("query", "xpath"), QUERIES)
def test_find_selects_what_signxml_selects(elements, query, xpath):
    """Item 9: each lookup returns signxml's element, or nothing when signxml finds nothing."""
    ours, theirs = ParsedTreeVerifier(), XMLVerifier()
    found = 0
    for element in elements:
        expected = theirs._find(element, query, require=False, xpath=xpath)
        assert ours._find(element, query, require=False, xpath=xpath) is expected
        assert ours._findall(element, query, xpath=xpath) == theirs._findall(
            element, query, xpath=xpath
        )
        found += expected is not None
    if query not in ("Object", "DSAKeyValue", "RSAKeyValue", "Modulus", "Exponent"):
        assert found, "the corpus must exercise this lookup"


def test_required_lookup_that_misses_raises_signxmls_error(idp):
    """A required element that is missing fails exactly as in signxml."""
    signed_info = parse_xml(idp.mint_xml()).find(f"{{{DS_NS}}}Signature/{{{DS_NS}}}SignedInfo")
    with pytest.raises(InvalidInput) as theirs:
        XMLVerifier()._find(signed_info, "Object")
    with pytest.raises(InvalidInput) as ours:
        ParsedTreeVerifier()._find(signed_info, "Object")
    assert str(ours.value) == str(theirs.value)


def test_inclusive_prefixes_match_signxml(elements):
    """The exc-c14n InclusiveNamespaces PrefixList is read as signxml reads it."""
    ours, theirs = ParsedTreeVerifier(), XMLVerifier()
    seen = set()
    for element in elements:
        expected = theirs._get_inclusive_ns_prefixes(element)
        assert ours._get_inclusive_ns_prefixes(element) == expected
        seen.add(tuple(expected) if expected else None)
    assert {("ds", "", "saml"), ("",), None} <= seen


def test_certificate_description_matches_signxml(idp, ec_idp):
    """The certificate text in signxml's errors is unchanged (and computed once)."""
    ours, theirs = ParsedTreeVerifier(), XMLVerifier()
    for certificate in (idp.certificate, ec_idp.certificate):
        expected = theirs._get_cert_description(certificate, "provided x509_cert")
        assert ours._get_cert_description(certificate, "provided x509_cert") == expected
        assert "serial=" in expected


#: A document whose IDs trip a naive lookup: a duplicate, a namespaced ID
#: attribute (alone and beside a plain one of the same value), a look-alike
#: ``Id``, an empty ID and IDs on nested elements.
REFERENCED = b"""<root ID="r" xmlns:x="urn:other"><a ID="a"/><b ID="dup"/><c><d ID="dup"/></c>
  <e x:ID="ns"/><f Id="f"/><g ID=""/><h><i ID="deep"/></h><j ID="#hash"/>
  <k ID="twin"/><l x:ID="twin"/></root>"""

URIS = [
    "#r",
    "#a",
    "#deep",
    "#ns",
    "#dup",
    "#twin",
    "#f",
    "#missing",
    "#",
    "##a",
    "##hash",
    "#xpointer(id('a'))",
    "#xpointer(/)",
    "",
]


@pytest.mark.parametrize("uri", URIS)
def test_reference_resolves_as_in_signxml(uri):
    """Item 9: a same-document Reference URI selects signxml's element, or fails as signxml does."""
    reference = etree.Element(f"{{{DS_NS}}}Reference", URI=uri)
    results = []
    for verifier in (ParsedTreeVerifier(), XMLVerifier()):
        verifier.id_attributes = ("ID",)  # what verify(id_attribute="ID") sets
        root = parse_xml(REFERENCED)
        try:
            found = verifier._resolve_reference(root, reference)
        except InvalidInput as exc:
            results.append(("error", str(exc)))
        else:
            results.append(("found", root.getroottree().getpath(found)))
    assert results[0] == results[1]


def test_reference_lookup_finds_and_refuses():
    """The corpus above holds hits, a duplicate and a miss (else the test is vacuous)."""
    verifier = ParsedTreeVerifier()
    verifier.id_attributes = ("ID",)
    root = parse_xml(REFERENCED)

    def resolve(uri):
        return verifier._resolve_reference(root, etree.Element("Reference", URI=uri))

    assert resolve("#ns").get("{urn:other}ID") == "ns"
    assert resolve("#deep").tag == "i"
    with pytest.raises(InvalidInput, match="Ambiguous"):
        resolve("#dup")
    with pytest.raises(InvalidInput, match="Unable to resolve"):
        resolve("#missing")


# -- canonicalization of the signed root --------------------------------------------

TRANSFORM_LISTS = {
    "enveloped+exc": [(ENVELOPED, None), (EXC_C14N, None)],
    "exc+enveloped": [(EXC_C14N, None), (ENVELOPED, None)],
    "enveloped+exc-comments": [(ENVELOPED, None), (EXC_C14N + "WithComments", None)],
    "enveloped+exc-prefixes": [(ENVELOPED, None), (EXC_C14N, "xs saml #default")],
    "enveloped+c14n11": [(ENVELOPED, None), ("http://www.w3.org/2006/12/xml-c14n11", None)],
    "enveloped only": [(ENVELOPED, None)],
    "no transforms": None,
    "exc twice": [(EXC_C14N, None), (EXC_C14N, None)],
}
COMMENTED = f"""<saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion"
    xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns="urn:default" ID="_a"><!-- c -->
  <saml:Issuer>https://idp.example.com</saml:Issuer><ds:Signature xmlns:ds="{DS_NS}">
  <ds:SignedInfo/></ds:Signature>  tail <?pi x?>
  <saml:Subject><saml:NameID>alice<!-- x -->@example.com</saml:NameID></saml:Subject>
  <inner xml:lang="en"><saml:Attribute Name="a" xmlns:unused="urn:u"/></inner>
</saml:Assertion>""".encode()


def _transforms(spec):
    if spec is None:
        return None
    node = etree.Element(f"{{{DS_NS}}}Transforms")
    for algorithm, prefixes in spec:
        transform = etree.SubElement(node, f"{{{DS_NS}}}Transform", Algorithm=algorithm)
        if prefixes is not None:
            etree.SubElement(transform, f"{{{EXC_C14N}}}InclusiveNamespaces", PrefixList=prefixes)
    return node


class _CountingVerifier(ParsedTreeVerifier):
    parses = 0

    def _fromstring(self, xml_string, **kwargs):
        type(self).parses += 1
        return super()._fromstring(xml_string, **kwargs)


def _apply(verifier, document, spec, inner):
    """signxml's _verify_reference: a fresh copy of the document, its signature
    in the copy, the payload the Reference selects (the root, or an inner element)."""
    verifier.config = SignatureConfiguration()  # what verify() sets
    copied = verifier._fromstring(verifier._tostring(parse_xml(document)))
    signature = copied.find(f"{{{DS_NS}}}Signature")
    payload = copied.find("{urn:default}inner") if inner else copied
    try:
        result = verifier._apply_transforms(
            payload, transforms_node=_transforms(spec), signature=signature
        )
    except Exception as exc:  # both must fail the same way
        return ("error", type(exc).__name__, str(exc))
    return ("c14n", result, etree.tostring(copied))


@pytest.mark.parametrize("spec", sorted(TRANSFORM_LISTS))
@pytest.mark.parametrize(
    ("source", "inner"),
    [("minted", False), ("commented", False), ("commented", True)],
    ids=["minted-root", "commented-root", "commented-inner"],
)
def test_transforms_canonicalize_as_in_signxml(idp, spec, source, inner):
    """Item 9: the Reference's transforms give signxml's bytes, and leave the
    copy as signxml leaves it (enveloped signature removed), for the signed
    root (no second copy) and for anything else (signxml's own code)."""
    document = idp.mint_xml() if source == "minted" else COMMENTED
    ours = _apply(ParsedTreeVerifier(), document, TRANSFORM_LISTS[spec], inner)
    theirs = _apply(XMLVerifier(), document, TRANSFORM_LISTS[spec], inner)
    assert ours == theirs


def test_signed_root_is_canonicalized_without_a_second_parse(idp):
    """The fast path is taken for the usual Reference (enveloped + exc-c14n on
    the root): one parse fewer than signxml, the same digest input."""
    document = idp.mint_xml()
    _CountingVerifier.parses = 0
    root_result = _apply(_CountingVerifier(), document, TRANSFORM_LISTS["enveloped+exc"], False)
    assert _CountingVerifier.parses == 1  # the copy of the document only
    _CountingVerifier.parses = 0
    _apply(_CountingVerifier(), COMMENTED, TRANSFORM_LISTS["enveloped+exc"], True)
    assert _CountingVerifier.parses == 2  # an inner payload: signxml copies it again
    assert root_result[0] == "c14n"
