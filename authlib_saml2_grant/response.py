"""The Web SSO ``samlp:Response`` envelope around an assertion.

Salesforce's SAML assertion flow (``grant_type=assertion``, see
:mod:`~.legacy`) posts the whole Response an IdP sends to an ACS in browser
SSO, not the bare Assertion of :rfc:`7522#section-2.1`. This module is the
envelope step of the one verification pipeline (:mod:`~.verifier`), following
the SAML 2.0 Web SSO profile (profiles 4.1.4.2 and 4.1.4.3):

1. :func:`check_response`: the root is a ``Response`` of version 2.0 with an
   ``ID``, not answering a request of ours (no ``InResponseTo``), whose
   top-level status is ``Success`` and whose ``Destination``, when present,
   is one of our recipients; no ``ID`` value repeats; the document holds
   exactly one ``Assertion``,
   a direct child of the root, and no ``EncryptedAssertion``. Counting every
   ``Assertion`` of the document refuses the wrapping shapes (XSW) that hide
   a second one in ``Extensions``, ``Advice`` or ``ds:Object``.
2. :func:`check_response_issuer`: a Response ``Issuer``, when present, is the
   assertion's issuer (whose keys verify both signatures).
3. :func:`verify_response_signatures`: the Response is signed over its root,
   or the Assertion is signed, or both (then both verify with the keys of the
   same IdP, over the same Assertion). The values read afterwards come only
   from what was proven signed: the ``Assertion`` child of the signed
   Response, or the signed Assertion itself.

Everything the Response carries outside the signed element can only refuse.
"""

from __future__ import annotations

from collections.abc import Collection

from lxml import etree

from .errors import AssertionRejected
from .rules import check_root
from .signature import SignaturePolicy
from .signature import has_signature
from .trust import IdentityProvider
from .xml import ASSERTION_TAG
from .xml import RESPONSE_TAG
from .xml import SAML_NS
from .xml import SAMLP_NS
from .xml import element_text
from .xml import qname
from .xml import string_xpath

__all__ = [
    "SUCCESS",
    "check_response",
    "check_response_issuer",
    "verify_response_signatures",
]

#: The top-level ``StatusCode`` of a response that carries an assertion.
SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success"

_ENCRYPTED_ASSERTION = qname(SAML_NS, "EncryptedAssertion")
_ISSUER = qname(SAML_NS, "Issuer")
_STATUS = qname(SAMLP_NS, "Status")
_STATUS_CODE = qname(SAMLP_NS, "StatusCode")
#: Every ``ID`` attribute value of the document, as plain strings.
_IDS = string_xpath("//@*[local-name() = 'ID']")


def check_response(root: etree._Element, recipients: Collection[str]) -> etree._Element:
    """Check the (not yet verified) envelope; return its one ``Assertion`` child.

    :param root: the parsed document root.
    :param recipients: accepted ``Destination`` values (our recipients).
    :raise AssertionRejected: ``not_a_response``, ``version_unsupported``,
        ``id_missing``, ``in_response_to_present``, ``response_status_failed``,
        ``destination_mismatch``, ``id_duplicated``,
        ``encrypted_assertion_unsupported`` or
        ``assertion_count_invalid``.
    """
    check_root(root, RESPONSE_TAG, "not_a_response")
    if root.get("InResponseTo") is not None:
        # An SP-initiated SSO answer to an AuthnRequest of another party;
        # the same rule as InResponseTo on the bearer confirmation.
        raise AssertionRejected(
            "in_response_to_present",
            "The Response answers a browser SSO request (InResponseTo)",
            in_response_to=root.get("InResponseTo", "")[:200],
        )
    _check_status(root)
    destination = root.get("Destination")
    if destination is not None and destination not in recipients:
        raise AssertionRejected(
            "destination_mismatch",
            "The Response Destination is not one of our recipients",
            expected=sorted(recipients),
            actual=destination[:200],
        )
    assertion = _single_assertion(root)
    _check_unique_ids(root)
    return assertion


def _check_unique_ids(root: etree._Element) -> None:
    """xs:ID values are unique in a document (XML Schema, SAML core 1.3.4).

    signxml resolves a reference within the element it verifies, so an
    Assertion-only signature would not notice its ID repeated on the
    Response or in ``Extensions``; such a document is refused outright,
    whichever element is signed. Any attribute named ``ID``, in any
    namespace, counts: that is how signxml looks references up.
    """
    seen: set[str] = set()
    for value in _IDS(root):
        if value in seen:
            raise AssertionRejected(
                "id_duplicated",
                "An ID value appears more than once in the Response",
                id=str(value)[:200],
            )
        seen.add(value)


def _check_status(root: etree._Element) -> None:
    statuses = [child for child in root if child.tag == _STATUS]
    codes = [child for child in statuses[0] if child.tag == _STATUS_CODE] if statuses else []
    value = codes[0].get("Value") if len(statuses) == 1 and len(codes) == 1 else None
    if value != SUCCESS:
        raise AssertionRejected(
            "response_status_failed",
            "The Response status is not Success",
            actual=None if value is None else value[:200],
            statuses=len(statuses),
        )


def _single_assertion(root: etree._Element) -> etree._Element:
    """The one ``Assertion`` of the whole document, a direct child of the root."""
    if next(root.iter(_ENCRYPTED_ASSERTION), None) is not None:
        raise AssertionRejected(
            "encrypted_assertion_unsupported", "Encrypted assertions are not supported"
        )
    found = list(root.iter(ASSERTION_TAG))
    if len(found) != 1 or found[0].getparent() is not root:
        raise AssertionRejected(
            "assertion_count_invalid",
            "The Response must hold exactly one Assertion, as a direct child",
            count=len(found),
            parents=[str(element.getparent().tag)[:100] for element in found[:5]],  # type: ignore[union-attr]
        )
    return found[0]


def check_response_issuer(root: etree._Element, issuer: str) -> None:
    """A Response ``Issuer``, when present, must name the assertion's issuer.

    :raise AssertionRejected: ``response_issuer_mismatch``.
    """
    issuers = [child for child in root if child.tag == _ISSUER]
    if not issuers:
        return  # optional in the Web SSO profile (4.1.4.2)
    value = element_text(issuers[0]) if len(issuers) == 1 else None
    if value != issuer:
        raise AssertionRejected(
            "response_issuer_mismatch",
            "The Response Issuer is not the Issuer of its Assertion",
            expected=issuer,
            actual=None if value is None else value[:200],
            count=len(issuers),
        )


def verify_response_signatures(
    policy: SignaturePolicy,
    root: etree._Element,
    assertion: etree._Element,
    provider: IdentityProvider,
) -> tuple[etree._Element, tuple[str, ...]]:
    """Verify the Response and/or Assertion signature with the IdP's pinned keys.

    :param root: the ``Response``, checked by :func:`check_response`.
    :param assertion: its ``Assertion`` child.
    :param provider: the IdP named by the assertion's ``Issuer``.
    :return: the signed ``Assertion`` the values are read from, and what was
        signed (``"Response"``, ``"Assertion"`` or both).
    :raise AssertionRejected: ``signature_missing`` when neither is signed,
        or the reason of the signature that failed.
    """
    response_signed = has_signature(root)
    assertion_signed = has_signature(assertion)
    if not response_signed and not assertion_signed:
        raise AssertionRejected(
            "signature_missing", "Neither the Response nor its Assertion is signed"
        )
    signed: etree._Element | None = None
    if response_signed:
        signed_response = policy.verify(root, provider, RESPONSE_TAG)
        children = [child for child in signed_response if child.tag == ASSERTION_TAG]
        if len(children) != 1:  # pragma: no cover - check_response counted the input
            raise AssertionRejected(
                "assertion_count_invalid",
                "The signed Response does not hold exactly one Assertion",
                count=len(children),
            )
        signed = children[0]
    if assertion_signed:
        signed_assertion = policy.verify(assertion, provider)
        if signed is not None and signed.get("ID") != signed_assertion.get("ID"):
            raise AssertionRejected(  # pragma: no cover - both are the one Assertion
                "signature_reference_invalid",
                "The Response and Assertion signatures cover different assertions",
            )
        signed = signed if signed is not None else signed_assertion
    assert signed is not None  # one of the two was signed and verified
    what = ("Response",) * response_signed + ("Assertion",) * assertion_signed
    return signed, what
