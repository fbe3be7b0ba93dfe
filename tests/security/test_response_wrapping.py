"""Signature wrapping and envelope attacks on whole Web SSO Responses (issue 12).

Every message is posted through Salesforce's flow (``grant_type=assertion``,
:class:`~authlib_saml2_grant.SAML2LegacyAssertionGrant`) to a real Flask app
trusting two IdPs, and must be refused with ``400 invalid_grant``, never a
500, with the exact reason code of the ``assertion_rejected`` signal.

The rules: SAML profiles 4.1.4.2 and 4.1.4.3 (the Response and its
assertion), SECURITY.md "Whole Responses" (the envelope in front of the one
pipeline; values read by position from the signed tree only; both signatures
from the same IdP), RFC 7522 section 3 on the assertion. The attacker
(``mallory``) holds validly signed messages about herself and tries to make
the server act on an unsigned ``alice``. The shapes are the XSW1-8 family of
"On Breaking SAML" (Somorovsky et al., USENIX Security 2012; SAML Raider's
catalogue) adapted to Responses, and the public vectors of other SAML
libraries, written here by hand.
"""

from __future__ import annotations

import base64
import copy
import hashlib

import pytest
from lxml import etree

from authlib_saml2_grant import SAML2_BROWSER_SSO_ASSERTION_TYPE
from authlib_saml2_grant.testing import generate_key_pair
from authlib_saml2_grant.xml import DS_NS
from authlib_saml2_grant.xml import SAML_NS

from ..conftest import LEGACY_CLIENT_ID
from ..conftest import TOKEN_ENDPOINT
from ..conftest import create_app
from ..conftest import in_context
from ..conftest import record_signals
from ..conftest import unsigned_tree
from ..helpers import ENVELOPED
from ..helpers import EXC_C14N
from ..helpers import INVALID_GRANT
from ..helpers import SAMLP_NS
from ..helpers import AppHarness
from ..helpers import assert_rejected
from ..helpers import ds
from ..helpers import mint_tree
from ..helpers import one
from ..helpers import saml
from ..helpers import send
from .forge import c14n
from .forge import hand_sign
from .forge import strip_signature

MALLORY = "mallory@example.com"
ALICE = "alice@example.com"
SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success"
REQUESTER = "urn:oasis:names:tc:SAML:2.0:status:Requester"
RESPONDER = "urn:oasis:names:tc:SAML:2.0:status:Responder"
AUTHN_FAILED = "urn:oasis:names:tc:SAML:2.0:status:AuthnFailed"
#: Another service provider's assertion consumer service (a cross-SP replay).
OTHER_ACS = "https://sp.other.example/saml/acs"


def samlp(name: str) -> str:
    return f"{{{SAMLP_NS}}}{name}"


# -- the app and how the attacker talks to it ----------------------------------------


class LegacyHarness(AppHarness):
    """The app with the legacy grant; :meth:`post` sends Salesforce's request."""

    def post(self, xml) -> tuple[int, dict]:
        """POST a Response (XML bytes or tree) as Salesforce's flow, without client
        credentials (the legacy client receives the token)."""
        data = xml if isinstance(xml, bytes) else etree.tostring(xml)
        response = self.client.post(
            "/oauth/token",
            data={
                "grant_type": "assertion",
                "assertion_type": SAML2_BROWSER_SSO_ASSERTION_TYPE,
                "assertion": base64.b64encode(data).decode("ascii"),
            },
        )
        return response.status_code, response.get_json()

    def refuses(self, xml, reason: str) -> None:
        """The message is refused: the generic ``invalid_grant``, ``reason`` for operators."""
        status, body = self.post(xml)
        assert_rejected(status, body, self.reasons, reason)
        assert not self.accepted


@pytest.fixture(scope="module")
def legacy_app(tmp_path_factory, idp, other_idp):
    """Salesforce's flow on an app trusting two IdPs (``idp`` and ``other_idp``);
    one app for the module: every test sends assertions of its own (new IDs)."""
    return create_app(
        tmp_path_factory.mktemp("response_wrapping"),
        [idp, other_idp],
        legacy=True,
        SAML2_BEARER_LEGACY_CLIENT_ID=LEGACY_CLIENT_ID,
        SQLALCHEMY_DATABASE_URI="sqlite://",  # in memory: one app per module, fast
    )


@pytest.fixture
def legacy(legacy_app):
    """The app, in context, with this test's signals."""
    with record_signals(legacy_app) as signals, in_context(legacy_app):
        yield LegacyHarness(legacy_app, signals)


@pytest.fixture(scope="module")
def attacker():
    """The attacker's own key, with a certificate cloning the IdP's subject name."""
    return generate_key_pair(common_name="https://idp.example.com")


# -- messages, honest and forged ----------------------------------------------------


def assertion_tree(idp, subject: str = MALLORY, **fields) -> etree._Element:
    """An unsigned assertion of ``idp`` for this server, without signature placeholder."""
    return strip_signature(unsigned_tree(idp, subject=subject, **fields))


def signed_assertion(idp, subject: str = MALLORY, **fields) -> etree._Element:
    """An assertion validly signed by ``idp`` (enveloped, after Issuer)."""
    return mint_tree(idp, subject=subject, **fields)


def envelope(
    *children,
    issuer: str | None = "https://idp.example.com",
    response_id: str = "_response",
    destination: str | None = TOKEN_ENDPOINT,
    status: str | None = SUCCESS,
    version: str | None = "2.0",
    extensions: list | None = None,
) -> etree._Element:
    """An unsigned ``samlp:Response`` in schema order: Issuer, Extensions, Status,
    then ``children`` (assertions, or anything else)."""
    root = etree.Element(samlp("Response"), nsmap={"samlp": SAMLP_NS, "saml": SAML_NS})
    if response_id is not None:
        root.set("ID", response_id)
    if version is not None:
        root.set("Version", version)
    root.set("IssueInstant", "2026-01-01T00:00:00Z")
    if destination is not None:
        root.set("Destination", destination)
    if issuer is not None:
        etree.SubElement(root, saml("Issuer")).text = issuer
    if extensions is not None:
        host = etree.SubElement(root, samlp("Extensions"))
        for element in extensions:
            host.append(element)
    if status is not None:
        status_el = etree.SubElement(root, samlp("Status"))
        etree.SubElement(status_el, samlp("StatusCode")).set("Value", status)
    for child in children:
        root.append(child)
    return root


def sign_root(signer, root: etree._Element, **kwargs) -> etree._Element:
    """Sign ``root`` (enveloped, over its ID) right after its Issuer, as IdPs do.

    :param signer: an IdP (its key and certificate) or a ``(key, certificate)`` pair.
    """
    key, certificate = (signer.key, signer.certificate) if hasattr(signer, "key") else signer
    kwargs.setdefault("certificate", certificate)
    has_issuer = len(root) and root[0].tag == saml("Issuer")
    hand_sign(root, key, index=1 if has_issuer else 0, **kwargs)
    return root


def response_signed(idp, subject: str = MALLORY, **fields) -> etree._Element:
    """Okta and Entra ID by default: the Response signed, its Assertion not."""
    return sign_root(idp, envelope(assertion_tree(idp, subject, **fields), issuer=idp.entity_id))


def assertion_signed(idp, subject: str = MALLORY, **fields) -> etree._Element:
    """Shibboleth and AD FS by default: the Assertion signed, the Response not."""
    return envelope(signed_assertion(idp, subject, **fields), issuer=idp.entity_id)


def both_signed(idp, subject: str = MALLORY, **fields) -> etree._Element:
    """The Assertion signed, then the Response around it."""
    return sign_root(idp, envelope(signed_assertion(idp, subject, **fields), issuer=idp.entity_id))


SIGNED_SHAPES = {"response": response_signed, "assertion": assertion_signed, "both": both_signed}


def the_assertion(response: etree._Element) -> etree._Element:
    return one(response, "saml:Assertion")


def evil_copy(signed: etree._Element, new_id: str | None = "_evil") -> etree._Element:
    """An unsigned copy of a signed Assertion (or Response) about alice."""
    evil = strip_signature(signed)
    if new_id is not None:
        evil.set("ID", new_id)
    for name_id in evil.iter(saml("NameID")):
        name_id.text = ALICE
    for assertion in evil.iter(saml("Assertion")):
        if assertion is not evil:
            assertion.set("ID", "_evil_inner")
        for signature in assertion.findall(ds("Signature")):
            assertion.remove(signature)
    return evil


def move_signature(source: etree._Element, target: etree._Element) -> etree._Element:
    """Move ``source``'s enveloped signature to ``target``, right after its Issuer."""
    signature = source.find(ds("Signature"))
    source.remove(signature)
    issuer = target.find(saml("Issuer"))
    if issuer is not None:
        issuer.addnext(signature)
    else:
        target.insert(0, signature)
    return signature


def advice_of(assertion: etree._Element) -> etree._Element:
    """The assertion's ``Advice`` (created after ``Conditions``, its schema place)."""
    advice = assertion.find(saml("Advice"))
    if advice is None:
        advice = etree.Element(saml("Advice"))
        one(assertion, "saml:Conditions").addnext(advice)
    return advice


def object_of(signature: etree._Element) -> etree._Element:
    return etree.SubElement(signature, ds("Object"))


# -- controls: the honest messages pass every check these attacks aim at -------------------


@pytest.mark.parametrize("sign", sorted(SIGNED_SHAPES))
def test_control_honest_response_accepted(legacy, idp, sign):
    """Control for every test below: the messages they start from are valid
    (SAML profiles 4.1.4.3: the Response, the Assertion or both signed)."""
    status, body = legacy.post(SIGNED_SHAPES[sign](idp, ALICE))
    assert status == 200, (body, legacy.rejections)
    assert body["token_type"] == "Bearer" and body["access_token"]
    assert [a.subject for a in legacy.accepted] == [ALICE]


@pytest.mark.parametrize("sign", sorted(SIGNED_SHAPES))
def test_control_attackers_own_response_is_only_hers(legacy, idp, sign):
    """Control: mallory's own signed messages pass the signature checks and name
    her, a user the server does not know; every attack must do better than this."""
    legacy.refuses(SIGNED_SHAPES[sign](idp, MALLORY), "user_unknown")
    assert legacy.rejections[0][1]["subject"] == MALLORY


# -- XSW1-8 ("On Breaking SAML", SAML Raider), adapted to Responses ------------------


def _xsw1(idp):
    """XSW1: a cloned evil Response carries the original Response signature; the
    original Response (unsigned copy) hides inside that signature."""
    original = response_signed(idp)
    evil = evil_copy(original)
    signature = move_signature(original, evil)
    signature.append(original)
    return evil


def _xsw2(idp):
    """XSW2: as XSW1, the original Response placed before the signature (detached)."""
    original = response_signed(idp)
    evil = evil_copy(original)
    signature = move_signature(original, evil)
    signature.addprevious(original)
    return evil


def _xsw1_object(idp):
    """XSW1 variant: the original Response in the moved signature's ``ds:Object``."""
    original = response_signed(idp)
    evil = evil_copy(original)
    object_of(move_signature(original, evil)).append(original)
    return evil


def _xsw1_extensions(idp):
    """XSW1 variant: the signed original Response kept whole in the evil one's Extensions."""
    original = response_signed(idp)
    evil = evil_copy(original)
    extensions = etree.Element(samlp("Extensions"))
    one(evil, "saml:Issuer").addnext(extensions)
    extensions.append(original)
    return evil


def _xsw3(idp):
    """XSW3: an evil assertion before the signed one."""
    response = assertion_signed(idp)
    the_assertion(response).addprevious(evil_copy(the_assertion(response)))
    return response


def _xsw4(idp):
    """XSW4: the evil assertion wraps the signed one (its child)."""
    response = assertion_signed(idp)
    signed = the_assertion(response)
    evil = evil_copy(signed)
    signed.addprevious(evil)
    evil.append(signed)
    return response


def _xsw5(idp):
    """XSW5: the signed assertion's values changed in place (signature kept), an
    unsigned copy of the original appended at the end of the Response."""
    response = assertion_signed(idp)
    signed = the_assertion(response)
    response.append(strip_signature(signed))
    one(signed, "saml:Subject/saml:NameID").text = ALICE
    return response


def _xsw6(idp):
    """XSW6: values changed in place, the unsigned original inside its signature."""
    response = assertion_signed(idp)
    signed = the_assertion(response)
    original = strip_signature(signed)
    one(signed, "saml:Subject/saml:NameID").text = ALICE
    signed.find(ds("Signature")).append(original)
    return response


def _xsw7(idp):
    """XSW7: Extensions hold the signed assertion; the evil one is the child."""
    response = assertion_signed(idp)
    signed = the_assertion(response)
    evil = evil_copy(signed)
    extensions = etree.Element(samlp("Extensions"))
    one(response, "saml:Issuer").addnext(extensions)
    extensions.append(signed)
    response.append(evil)
    return response


def _xsw8(idp):
    """XSW8: values changed in place, the unsigned original in the signature's ds:Object."""
    response = assertion_signed(idp)
    signed = the_assertion(response)
    original = strip_signature(signed)
    one(signed, "saml:Subject/saml:NameID").text = ALICE
    object_of(signed.find(ds("Signature"))).append(original)
    return response


XSW = {
    "xsw1": _xsw1,
    "xsw2": _xsw2,
    "xsw1-object": _xsw1_object,
    "xsw1-extensions": _xsw1_extensions,
    "xsw3": _xsw3,
    "xsw4": _xsw4,
    "xsw5": _xsw5,
    "xsw6": _xsw6,
    "xsw7": _xsw7,
    "xsw8": _xsw8,
}


@pytest.mark.parametrize("shape", sorted(XSW))
def test_xsw_shapes_refused(legacy, idp, shape):
    """XSW1-8 adapted to Responses: the document holds a second Assertion, so the
    envelope refuses it before any signature is looked at (profiles 4.1.4.2 as
    SECURITY.md reads it: exactly one Assertion, a direct child)."""
    legacy.refuses(XSW[shape](idp), "assertion_count_invalid")


# -- an injected second Assertion, wherever it hides ------------------------------------


def _injected(idp, where: str, sign: str) -> etree._Element:
    response = SIGNED_SHAPES[sign](idp)
    signed = the_assertion(response)
    evil = evil_copy(signed)
    if where == "before":
        signed.addprevious(evil)
    elif where == "after":
        signed.addnext(evil)
    elif where == "extensions":
        extensions = etree.Element(samlp("Extensions"))
        one(response, "saml:Issuer").addnext(extensions)
        extensions.append(evil)
    elif where == "advice":  # inside the legit assertion's Advice
        advice_of(signed).append(evil)
    elif where == "response_object":  # in ds:Object of the Response signature
        signature = response.find(ds("Signature"))
        if signature is None:
            signature = sign_root(idp, response).find(ds("Signature"))
        object_of(signature).append(evil)
    elif where == "status_detail":
        detail = etree.SubElement(one(response, "samlp:Status"), samlp("StatusDetail"))
        detail.append(evil)
    else:
        raise AssertionError(where)
    return response


@pytest.mark.parametrize("sign", sorted(SIGNED_SHAPES))
@pytest.mark.parametrize(
    "where", ["before", "after", "extensions", "advice", "response_object", "status_detail"]
)
def test_injected_second_assertion_refused(legacy, idp, where, sign):
    """An unsigned evil Assertion injected beside, before, after or inside the signed
    message (Extensions, Advice, ds:Object, StatusDetail): SECURITY.md "exactly one
    Assertion child"; the count covers the whole document."""
    legacy.refuses(_injected(idp, where, sign), "assertion_count_invalid")


def test_evil_assertion_with_signed_one_in_its_advice(legacy, idp):
    """The signed assertion moved into the evil one's Advice (XSW adapted to Advice):
    two Assertions in the document."""
    response = assertion_signed(idp)
    signed = the_assertion(response)
    evil = evil_copy(signed)
    signed.addprevious(evil)
    advice_of(evil).append(signed)
    legacy.refuses(response, "assertion_count_invalid")


def test_evil_assertion_with_signed_one_in_its_signature_object(legacy, idp):
    """The signed assertion moved into the evil one's (moved) signature ds:Object."""
    response = assertion_signed(idp)
    signed = the_assertion(response)
    evil = evil_copy(signed)
    signed.addprevious(evil)
    object_of(move_signature(signed, evil)).append(signed)
    legacy.refuses(response, "assertion_count_invalid")


# -- one assertion, signatures moved, pointed elsewhere or missing ----------------------


def test_assertion_signature_moved_to_evil_assertion(legacy, idp):
    """The signed original removed, its signature moved onto the evil assertion
    (another ID): the reference resolves to nothing inside the evil assertion."""
    response = assertion_signed(idp)
    signed = the_assertion(response)
    evil = evil_copy(signed)
    move_signature(signed, evil)
    signed.addprevious(evil)
    response.remove(signed)
    legacy.refuses(response, "signature_invalid")


def test_evil_assertion_reusing_signed_id_and_signature(legacy, idp):
    """The evil assertion takes the original's ID and signature: the digest breaks."""
    response = assertion_signed(idp)
    one(the_assertion(response), "saml:Subject/saml:NameID").text = ALICE
    legacy.refuses(response, "signature_invalid")
    assert "Digest mismatch" in " ".join(legacy.rejections[0][1]["errors"])


def test_assertion_signature_placed_on_response(legacy, idp):
    """Signature moved from the Assertion to the Response: it verifies (same digest),
    but it covers the Assertion's ID, not the Response root (SECURITY.md: the
    Response signature must reference ``#`` + its ID)."""
    response = assertion_signed(idp)
    signed = the_assertion(response)
    move_signature(signed, response)
    legacy.refuses(response, "signature_reference_invalid")
    details = legacy.rejections[0][1]
    assert details == {"expected": "#_response", "actual": f"#{signed.get('ID')}"}


def test_response_signature_placed_in_assertion(legacy, idp):
    """Signature moved from the Response into its Assertion: the Assertion's
    signature must cover the Assertion itself; its reference names the Response."""
    response = response_signed(idp)
    move_signature(response, the_assertion(response))
    legacy.refuses(response, "signature_invalid")


def test_response_signature_over_the_assertion_id(legacy, idp):
    """The IdP's key signs a Response-level signature whose Reference is the
    Assertion (a detached signature): it does not cover the Response root."""
    response = envelope(assertion_tree(idp, ALICE), issuer=idp.entity_id)
    signed = the_assertion(response)
    hand_sign(
        response,
        idp.key,
        index=1,
        certificate=idp.certificate,
        references=[(f"#{signed.get('ID')}", signed, (ENVELOPED, EXC_C14N))],
    )
    legacy.refuses(response, "signature_reference_invalid")


def test_response_signature_over_an_extensions_element(legacy, idp):
    """A Response signature covering an ``Extensions`` element with an ID of its own."""
    extension = etree.Element(samlp("Extensions"))
    extension.set("ID", "_ext")
    response = envelope(assertion_tree(idp, ALICE), issuer=idp.entity_id)
    one(response, "saml:Issuer").addnext(extension)
    hand_sign(
        response,
        idp.key,
        index=1,
        certificate=idp.certificate,
        references=[("#_ext", extension, (ENVELOPED, EXC_C14N))],
    )
    legacy.refuses(response, "signature_reference_invalid")


def test_response_signature_with_empty_uri(legacy, idp):
    """``URI=""`` (the whole document) is not ``#`` + the Response ID."""
    response = envelope(assertion_tree(idp, ALICE), issuer=idp.entity_id)
    hand_sign(
        response,
        idp.key,
        index=1,
        certificate=idp.certificate,
        references=[("", response, (ENVELOPED, EXC_C14N))],
    )
    legacy.refuses(response, "signature_reference_invalid")


def test_unsigned_response_unsigned_assertion(legacy, idp):
    """Neither the Response nor its Assertion signed (SAML profiles 4.1.4.3)."""
    legacy.refuses(envelope(assertion_tree(idp, ALICE)), "signature_missing")


def test_arbitrary_idp_signed_element_beside_unsigned_assertion(legacy, idp):
    """node-saml CVE-2022-39299 / samlify issue 634: any element the IdP signed (its
    metadata) placed in Extensions beside an unsigned evil assertion. Only a
    signature of the Response root or of its Assertion counts."""
    metadata = etree.fromstring(idp.metadata())
    metadata.set("ID", "_metadata")
    hand_sign(metadata, idp.key, index=0, certificate=idp.certificate)
    response = envelope(assertion_tree(idp, ALICE), extensions=[metadata])
    legacy.refuses(response, "signature_missing")


@pytest.mark.parametrize("sign", ["response", "both"])
def test_assertion_modified_after_response_signed(legacy, idp, sign):
    """The Response signature covers its Assertion: changing it breaks the digest."""
    response = SIGNED_SHAPES[sign](idp)
    one(the_assertion(response), "saml:Subject/saml:NameID").text = ALICE
    legacy.refuses(response, "signature_invalid")
    assert "Digest mismatch" in " ".join(legacy.rejections[0][1]["errors"])


def test_both_signed_response_signature_broken(legacy, idp):
    """Both signed: a valid Assertion signature does not excuse a broken Response
    signature (SECURITY.md: "both must verify")."""
    response = both_signed(idp, ALICE)
    response.set("IssueInstant", "2026-01-01T00:00:01Z")
    legacy.refuses(response, "signature_invalid")


def test_both_signed_assertion_signature_broken(legacy, idp):
    """Both signed: a Response signed over a broken Assertion signature is refused."""
    response = envelope(signed_assertion(idp, ALICE), issuer=idp.entity_id)
    value = one(the_assertion(response), "ds:Signature/ds:SignatureValue")
    value.text = base64.b64encode(b"\0" * 256).decode()
    sign_root(idp, response)
    legacy.refuses(response, "signature_invalid")


# -- Response-level fields: only what was signed may grant; the rest may only refuse --------


@pytest.mark.parametrize("status", [REQUESTER, RESPONDER, "", "Success"])
def test_assertion_signed_response_status_tampered(legacy, idp, status):
    """Status is outside the signed Assertion: any value other than Success refuses
    (profiles 4.1.4.2: the top-level StatusCode of a response with an assertion)."""
    response = assertion_signed(idp, ALICE)
    one(response, "samlp:Status/samlp:StatusCode").set("Value", status)
    legacy.refuses(response, "response_status_failed")


def test_assertion_signed_response_destination_tampered(legacy, idp):
    """Destination is outside the signed Assertion: a value not ours refuses."""
    response = assertion_signed(idp, ALICE)
    response.set("Destination", OTHER_ACS)
    legacy.refuses(response, "destination_mismatch")


@pytest.mark.parametrize("sign", sorted(SIGNED_SHAPES))
def test_destination_is_another_service_provider(legacy, idp, sign):
    """A Response the IdP really sent to another SP's ACS, replayed here (profiles
    4.1.4.3: Destination must be our location)."""
    response = SIGNED_SHAPES[sign](idp, ALICE)
    if sign == "assertion":
        response.set("Destination", OTHER_ACS)
    else:  # signed by the IdP with that Destination
        response = envelope(
            assertion_tree(idp, ALICE) if sign == "response" else signed_assertion(idp, ALICE),
            issuer=idp.entity_id,
            destination=OTHER_ACS,
        )
        sign_root(idp, response)
    legacy.refuses(response, "destination_mismatch")
    assert legacy.rejections[0][1]["actual"] == OTHER_ACS


@pytest.mark.parametrize(
    "shape",
    ["requester", "responder_with_nested_success", "authn_failed", "two_status", "no_status"],
)
def test_response_status_not_success(legacy, idp, shape):
    """A validly signed Response whose top-level StatusCode is not Success: nested
    codes never count (profiles 4.1.4.2; OneUptime issue 2981: a signed error
    Response must not carry an identity)."""
    status = None if shape == "no_status" else SUCCESS
    response = envelope(assertion_tree(idp, ALICE), issuer=idp.entity_id, status=status)
    if shape != "no_status":
        code = one(response, "samlp:Status/samlp:StatusCode")
        if shape == "requester":
            code.set("Value", REQUESTER)
        elif shape == "responder_with_nested_success":
            code.set("Value", RESPONDER)
            etree.SubElement(code, samlp("StatusCode")).set("Value", SUCCESS)
        elif shape == "authn_failed":
            code.set("Value", RESPONDER)
            etree.SubElement(code, samlp("StatusCode")).set("Value", AUTHN_FAILED)
        elif shape == "two_status":
            one(response, "samlp:Status").addnext(copy.deepcopy(one(response, "samlp:Status")))
    sign_root(idp, response)
    legacy.refuses(response, "response_status_failed")


def test_signed_error_response_with_decoy_signature_and_forged_assertion(legacy, idp):
    """OneUptime issue 2981: a genuinely signed error Response (no assertion), a decoy
    signature repeating its SignatureValue, a forged assertion in the decoy's ds:Object."""
    response = sign_root(idp, envelope(issuer=idp.entity_id, status=REQUESTER))
    decoy = copy.deepcopy(response.find(ds("Signature")))
    object_of(decoy).append(assertion_tree(idp, ALICE))
    response.append(decoy)
    legacy.refuses(response, "response_status_failed")


def test_signed_error_response_wrapped_in_evil_success(legacy, idp):
    """The signature of a genuinely signed error Response moved onto an evil Success
    Response, the error Response hidden in its ds:Object: the signature verifies,
    but over the wrong element (SECURITY.md: ``#`` + the root's ID)."""
    error = sign_root(idp, envelope(issuer=idp.entity_id, status=REQUESTER, response_id="_err"))
    evil = envelope(assertion_tree(idp, ALICE), issuer=idp.entity_id, response_id="_evil")
    object_of(move_signature(error, evil)).append(error)
    legacy.refuses(evil, "signature_reference_invalid")
    assert legacy.rejections[0][1]["actual"] == "#_err"


def test_in_response_to_on_response(legacy, idp):
    """An SP-initiated answer to another party's AuthnRequest (InResponseTo on the
    Response), even validly signed, is not for this endpoint (SECURITY.md step 7)."""
    response = envelope(assertion_tree(idp, ALICE), issuer=idp.entity_id)
    response.set("InResponseTo", "_authn_request_of_someone_else")
    legacy.refuses(sign_root(idp, response), "in_response_to_present")


def test_in_response_to_on_bearer_confirmation(legacy, idp):
    """RFC 7522 section 3 on the assertion: InResponseTo on its bearer confirmation."""
    legacy.refuses(
        response_signed(idp, ALICE, in_response_to="_authn_request"), "in_response_to_present"
    )


# -- two trusted IdPs: the Response and its Assertion from different ones ------------------


def test_response_signed_by_a_assertion_signed_by_b(legacy, idp, other_idp):
    """Response signed by IdP A, carrying an Assertion signed by IdP B (both trusted):
    the Response Issuer is not the Assertion's (SECURITY.md "Whole Responses")."""
    response = envelope(signed_assertion(other_idp, ALICE), issuer=idp.entity_id)
    legacy.refuses(sign_root(idp, response), "response_issuer_mismatch")


def test_response_without_issuer_signed_by_a_assertion_by_b(legacy, idp, other_idp):
    """Without a Response Issuer, the Response signature is checked with the keys of
    the Assertion's IdP (B), and IdP A's signature does not verify with them."""
    response = envelope(signed_assertion(other_idp, ALICE), issuer=None)
    legacy.refuses(sign_root(idp, response), "signature_invalid")


def test_response_issuer_b_signed_by_a(legacy, idp, other_idp):
    """Response and Assertion both claiming IdP B, the Response signed with IdP A's key."""
    response = envelope(signed_assertion(other_idp, ALICE), issuer=other_idp.entity_id)
    legacy.refuses(sign_root(idp, response), "signature_invalid")


def test_assertion_of_a_signed_with_key_of_b_inside_response_of_a(legacy, idp, other_idp):
    """An Assertion naming IdP A but signed with IdP B's key, in a Response A signed:
    both signatures must verify with A's keys (a key of B never speaks for A)."""
    inner = unsigned_tree(idp, subject=ALICE)
    inner = etree.fromstring(other_idp.sign(inner))
    response = envelope(inner, issuer=idp.entity_id)
    legacy.refuses(sign_root(idp, response), "signature_invalid")


def test_unsigned_response_of_a_around_assertion_of_b(legacy, idp, other_idp):
    """An unsigned Response claiming IdP A around a validly signed Assertion of B."""
    response = envelope(signed_assertion(other_idp, ALICE), issuer=idp.entity_id)
    legacy.refuses(response, "response_issuer_mismatch")


@pytest.mark.parametrize(
    "issuers", [["https://evil.example.com"], ["", None], ["https://idp.example.com"] * 2]
)
def test_response_issuer_differs_from_assertion_issuer(legacy, idp, issuers):
    """Profiles 4.1.4.2: a Response Issuer, when present, is the assertion's issuer
    (another value, an empty one, or two Issuers)."""
    response = envelope(signed_assertion(idp, ALICE), issuer=None)
    for index, value in enumerate(issuers):
        if value is not None:
            issuer = etree.Element(saml("Issuer"))
            issuer.text = value
            response.insert(index, issuer)
    legacy.refuses(response, "response_issuer_mismatch")


# -- envelope shape --------------------------------------------------------------


def test_encrypted_assertion_refused(legacy, idp):
    """EncryptedAssertion keeps its reason code (SECURITY.md: reject until
    decryption is built)."""
    encrypted = etree.Element(saml("EncryptedAssertion"))
    etree.SubElement(encrypted, "{http://www.w3.org/2001/04/xmlenc#}EncryptedData")
    legacy.refuses(sign_root(idp, envelope(encrypted)), "encrypted_assertion_unsupported")


def test_encrypted_assertion_beside_signed_assertion(legacy, idp):
    """An EncryptedAssertion beside a valid signed Assertion is still refused."""
    response = assertion_signed(idp, ALICE)
    response.append(etree.Element(saml("EncryptedAssertion")))
    legacy.refuses(response, "encrypted_assertion_unsupported")


def test_response_without_assertion(legacy, idp):
    """A signed Success Response with no Assertion carries no identity."""
    legacy.refuses(sign_root(idp, envelope(issuer=idp.entity_id)), "assertion_count_invalid")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"version": None}, "version_unsupported"),
        ({"version": "1.1"}, "version_unsupported"),
        ({"version": "2.0 "}, "version_unsupported"),
        ({"response_id": None}, "id_missing"),
        ({"response_id": ""}, "id_missing"),
    ],
    ids=["no-version", "version-1.1", "version-padded", "no-id", "empty-id"],
)
def test_response_version_and_id(legacy, idp, change, reason):
    """Profiles 4.1.4.2 / core 3.2.2: a SAML 2.0 Response with an ID."""
    response = envelope(signed_assertion(idp, ALICE), issuer=idp.entity_id, **change)
    legacy.refuses(response, reason)


def test_response_id_duplicated_by_assertion_response_signed(legacy, idp):
    """Response and Assertion share one ID (XML Schema: xs:ID values are unique)."""
    inner = assertion_tree(idp, ALICE)
    inner.set("ID", "_response")
    legacy.refuses(sign_root(idp, envelope(inner, issuer=idp.entity_id)), "id_duplicated")


def test_assertion_id_duplicated_inside_the_assertion(legacy, idp):
    """A second element inside the signed Assertion carrying its ID (here a namespaced
    ``foo:ID`` in Advice, which signxml's reference lookup would also match)."""
    response = assertion_signed(idp, ALICE)
    signed = the_assertion(response)
    twin = etree.SubElement(advice_of(signed), saml("AssertionIDRef"))
    twin.set("{urn:example:foo}ID", signed.get("ID"))
    legacy.refuses(response, "id_duplicated")


def test_assertion_id_duplicated_on_response_assertion_signed(legacy, idp):
    """The unsigned Response takes its signed Assertion's ID (python3-saml refuses
    "Duplicated ID"). signxml resolves the reference inside the Assertion it
    verifies, so only the envelope's document-wide check notices (found by this
    suite; SECURITY.md: duplicate IDs)."""
    response = assertion_signed(idp, ALICE)
    response.set("ID", the_assertion(response).get("ID"))
    legacy.refuses(response, "id_duplicated")


def test_assertion_id_duplicated_in_extensions_assertion_signed(legacy, idp):
    """An Extensions element carrying the signed Assertion's ID beside it."""
    response = assertion_signed(idp, ALICE)
    twin = etree.Element(samlp("Extensions"))
    twin.set("ID", the_assertion(response).get("ID"))
    one(response, "saml:Issuer").addnext(twin)
    legacy.refuses(response, "id_duplicated")


@pytest.mark.parametrize(
    "root",
    [
        "{urn:oasis:names:tc:SAML:2.0:protocol}LogoutResponse",
        "{urn:oasis:names:tc:SAML:2.0:protocol}ArtifactResponse",
        "{urn:oasis:names:tc:SAML:1.0:protocol}Response",
        "{urn:oasis:names:tc:SAML:2.0:assertion}Response",
        "Response",
    ],
    ids=["logout-response", "artifact-response", "saml11-response", "assertion-ns", "no-ns"],
)
def test_not_a_response_root(legacy, idp, root):
    """Only a SAML 2.0 protocol ``Response`` is a Web SSO Response (profiles 4.1.4.2)."""
    response = envelope(signed_assertion(idp, ALICE), issuer=idp.entity_id)
    response.tag = root
    legacy.refuses(response, "not_a_response")


def test_bare_assertion_posted_to_legacy_grant(legacy, idp):
    """Salesforce's flow takes the whole Response, never a bare Assertion."""
    legacy.refuses(signed_assertion(idp, ALICE), "not_a_response")


def test_response_posted_to_rfc7522_grant(legacy, idp):
    """RFC 7522 section 2.1: the saml2-bearer ``assertion`` is one Assertion, so a
    Web SSO Response there is refused, even a valid one."""
    status, body = send(legacy.client, SIGNED_SHAPES["both"](idp, ALICE))
    assert_rejected(status, body, legacy.reasons, "not_an_assertion")


def test_assertion_spent_at_rfc7522_grant_then_wrapped(legacy, idp):
    """RFC 7522 section 3 item 6 across both grants: a signed assertion redeemed at
    the saml2-bearer grant cannot be redeemed again inside a Response."""
    signed = signed_assertion(idp, ALICE)
    status, body = send(legacy.client, signed)
    assert status == 200, body
    legacy.accepted.clear()
    legacy.refuses(envelope(signed, issuer=idp.entity_id), "replayed")


# -- comments, keys and other libraries' public vectors -------------------------------------


@pytest.mark.parametrize("sign", sorted(SIGNED_SHAPES))
def test_comment_inside_name_id_does_not_truncate(legacy, idp, sign):
    """CVE-2017-11427 family (python3-saml, ruby-saml, OmniAuth-SAML...): the IdP
    signed ``alice@example.com.evil.example``; a comment inserted after
    ``alice@example.com`` leaves the exc-c14n digest intact, and the value read
    from the signed tree is still the whole one (SECURITY.md step 7)."""
    subject = "alice@example.com.evil.example"
    response = SIGNED_SHAPES[sign](idp, subject)
    name_id = one(the_assertion(response), "saml:Subject/saml:NameID")
    name_id.text = ALICE
    comment = etree.Comment("x")
    comment.tail = ".evil.example"
    name_id.append(comment)
    legacy.refuses(response, "user_unknown")
    assert legacy.rejections[0][1]["subject"] == subject


@pytest.mark.parametrize("sign", sorted(SIGNED_SHAPES))
def test_attacker_key_with_certificate_in_key_info(legacy, attacker, idp, sign):
    """The attacker signs with her own key and ships its certificate (subject cloned
    from the IdP) in KeyInfo: keys come from the pinned certificates of the
    Issuer only (SECURITY.md step 4)."""
    if sign == "response":
        response = sign_root(attacker, envelope(assertion_tree(idp, ALICE)))
    else:
        inner = sign_root(attacker, assertion_tree(idp, ALICE))
        response = envelope(inner, issuer=idp.entity_id)
        if sign == "both":
            sign_root(attacker, response)
    legacy.refuses(response, "signature_invalid")


@pytest.mark.parametrize("forged", ["response", "assertion"])
def test_one_signature_by_the_idp_one_by_the_attacker(legacy, attacker, idp, forged):
    """Both signed, one of the two by the attacker's key: SECURITY.md "If both are
    signed, both must verify with the same IdP's keys"."""
    inner = assertion_tree(idp, ALICE)
    sign_root(attacker if forged == "assertion" else idp, inner)
    response = envelope(inner, issuer=idp.entity_id)
    sign_root(attacker if forged == "response" else idp, response)
    legacy.refuses(response, "signature_invalid")


def test_assertion_signature_stripped_from_both_signed(legacy, idp):
    """The Assertion's signature removed from a both-signed message: it was part of
    what the Response signature covers."""
    response = both_signed(idp, ALICE)
    signed = the_assertion(response)
    signed.remove(signed.find(ds("Signature")))
    legacy.refuses(response, "signature_invalid")


def test_ruby_saml_cve_2024_45409_digest_value_in_extensions(legacy, idp):
    """ruby-saml CVE-2024-45409: the assertion changed, the digest of the changed
    assertion planted as a ``ds:DigestValue`` in Extensions (read there by an
    absolute XPath); SignedInfo left intact so SignatureValue still verifies."""
    response = assertion_signed(idp)
    signed = the_assertion(response)
    one(signed, "saml:Subject/saml:NameID").text = ALICE
    digest = hashlib.sha256(c14n(strip_signature(signed))).digest()
    planted = etree.Element(ds("DigestValue"), nsmap={"ds": DS_NS})
    planted.text = base64.b64encode(digest).decode()
    extensions = etree.Element(samlp("Extensions"))
    extensions.append(planted)
    one(response, "saml:Issuer").addnext(extensions)
    legacy.refuses(response, "signature_invalid")


@pytest.mark.parametrize("sign", ["response", "assertion"])
def test_xml_crypto_cve_2025_29775_comment_in_digest_value(legacy, idp, sign):
    """xml-crypto CVE-2025-29775: the content changed, the new digest hidden in a
    comment at the start of DigestValue (SignedInfo's c14n drops comments, so the
    SignatureValue still verifies)."""
    response = SIGNED_SHAPES[sign](idp)
    target = response if sign == "response" else the_assertion(response)
    one(the_assertion(response), "saml:Subject/saml:NameID").text = ALICE
    digest = hashlib.sha256(c14n(strip_signature(target))).digest()
    value = one(target, "ds:Signature/ds:SignedInfo/ds:Reference/ds:DigestValue")
    comment = etree.Comment(base64.b64encode(digest).decode())
    comment.tail = value.text
    value.text = None
    value.insert(0, comment)
    legacy.refuses(response, "signature_invalid")


@pytest.mark.parametrize("order", ["evil_first", "evil_second"])
def test_xml_crypto_cve_2025_29774_two_signed_infos(legacy, idp, order):
    """xml-crypto CVE-2025-29774: a second SignedInfo whose Reference digests the
    changed content, beside the genuine one whose SignatureValue verifies."""
    response = assertion_signed(idp)
    signed = the_assertion(response)
    one(signed, "saml:Subject/saml:NameID").text = ALICE
    signature = signed.find(ds("Signature"))
    genuine = signature.find(ds("SignedInfo"))
    forged = copy.deepcopy(genuine)
    digest = hashlib.sha256(c14n(strip_signature(signed))).digest()
    one(forged, "ds:Reference/ds:DigestValue").text = base64.b64encode(digest).decode()
    if order == "evil_first":
        genuine.addprevious(forged)
    else:
        genuine.addnext(forged)
    legacy.refuses(response, "signature_invalid")


def test_ruby_saml_cve_2025_25291_doctype_attlist(legacy, idp):
    """ruby-saml CVE-2025-25291 (REXML/Nokogiri differential through a DOCTYPE that
    one parser honours and the other does not): any DOCTYPE is refused (SECURITY.md
    step 3), before a second reading of the document could differ."""
    body = etree.tostring(assertion_signed(idp, ALICE))
    doctype = (
        b"<!DOCTYPE samlp:Response [<!ATTLIST saml:Assertion ID ID #IMPLIED>"
        b"<!-- <samlp:Response> -->]>"
    )
    legacy.refuses(doctype + body, "doctype_forbidden")


def test_ruby_saml_cve_2025_25292_namespace_look_alike(legacy, idp):
    """ruby-saml CVE-2025-25292 (namespace differential): the direct child looks like
    ``saml:Assertion`` but its prefix is bound to another namespace, while the
    signed assertion hides in Extensions. By namespace URI, the only Assertion is
    not a direct child."""
    response = assertion_signed(idp)
    signed = the_assertion(response)
    look_alike = etree.fromstring(
        etree.tostring(evil_copy(signed)).replace(
            SAML_NS.encode(), b"urn:oasis:names:tc:SAML:2.0:assertion:x"
        )
    )
    extensions = etree.Element(samlp("Extensions"))
    one(response, "saml:Issuer").addnext(extensions)
    extensions.append(signed)
    response.append(look_alike)
    legacy.refuses(response, "assertion_count_invalid")


def test_dex_reordered_assertions(legacy, idp):
    """dex (connector/saml, 2017): the signed assertion first, an unsigned one after,
    relying on a reorder after verification. Two Assertions: refused outright."""
    response = assertion_signed(idp)
    response.append(strip_signature(evil_copy(the_assertion(response))))
    legacy.refuses(response, "assertion_count_invalid")


def test_refused_answers_never_echo_the_message(legacy, idp):
    """SECURITY.md step 9: the client sees the generic description only."""
    response = assertion_signed(idp, ALICE)
    response.set("Destination", "https://<script>.example/")
    status, body = legacy.post(response)
    assert (status, body) == (400, INVALID_GRANT)
