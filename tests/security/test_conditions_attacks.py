"""Time, audience and recipient edge cases on validly signed assertions.

:rfc:`7522#section-3` items 2-5 and SECURITY.md step 7: exact audience and
recipient matching (no trailing-slash or case folding), every
AudienceRestriction ANDed, a bearer confirmation for our endpoint that is valid
now, UTC ``xs:dateTime`` only, NotBefore < NotOnOrAfter, 60 s skew, a maximum
lifetime, no ``InResponseTo``, unknown conditions refused.
"""

from __future__ import annotations

import copy
from datetime import datetime
from datetime import timedelta
from datetime import timezone

import pytest
from lxml import etree

from authlib_saml2_grant.testing import OMIT

from ..conftest import AS_ENTITY_ID
from ..conftest import TOKEN_ENDPOINT
from .forge import assert_accepted
from .forge import assert_rejected
from .forge import one
from .forge import saml
from .forge import send_xml
from .forge import unsigned_tree

HOK = "urn:oasis:names:tc:SAML:2.0:cm:holder-of-key"
SENDER_VOUCHES = "urn:oasis:names:tc:SAML:2.0:cm:sender-vouches"


def ago(seconds: float) -> datetime:
    return datetime.now(timezone.utc) - timedelta(seconds=seconds)


def ahead(seconds: float) -> datetime:
    return datetime.now(timezone.utc) + timedelta(seconds=seconds)


def mint(idp, **fields) -> bytes:
    return idp.sign(unsigned_tree(idp, **fields))


# -- audience ------------------------------------------------------------------


@pytest.mark.parametrize(
    "audience",
    [
        AS_ENTITY_ID + "/",
        AS_ENTITY_ID.upper(),
        "https://AS.example.com",
        "http://as.example.com",
        AS_ENTITY_ID + " ",
        " " + AS_ENTITY_ID,
        AS_ENTITY_ID + "#",
        AS_ENTITY_ID + ".evil.example",
        "https://as.example.com:443",
        "",
    ],
)
def test_audience_must_match_exactly(client, idp, reasons, audience):
    """RFC 7522 section 3 item 2 / RFC 3986 6.2.1: simple string comparison."""
    assert_rejected(*send_xml(client, mint(idp, audience=audience)), reasons, "audience_mismatch")


def test_audience_restrictions_are_anded(client, idp, reasons):
    """Several AudienceRestrictions: every one must name us (SAML core 2.5.1.4)."""
    xml = mint(idp, audience=[[AS_ENTITY_ID], ["https://other.example.com"]])
    assert_rejected(*send_xml(client, xml), reasons, "audience_mismatch")


def test_audience_restrictions_anded_order_irrelevant(client, idp, reasons):
    xml = mint(idp, audience=[["https://other.example.com"], [AS_ENTITY_ID]])
    assert_rejected(*send_xml(client, xml), reasons, "audience_mismatch")


def test_audiences_within_one_restriction_are_ored(client, idp, accepted):
    xml = mint(idp, audience=["https://other.example.com", AS_ENTITY_ID])
    assert_accepted(*send_xml(client, xml), accepted)


def test_every_restriction_naming_us_is_accepted(client, idp, accepted):
    xml = mint(idp, audience=[[AS_ENTITY_ID], ["https://x.example", TOKEN_ENDPOINT]])
    assert_accepted(*send_xml(client, xml), accepted)


def test_no_audience_restriction(client, idp, reasons):
    """Item 2: the assertion MUST contain an Audience identifying us."""
    assert_rejected(*send_xml(client, mint(idp, audience=OMIT)), reasons, "audience_missing")


def test_empty_audience_restriction(client, idp, reasons):
    """An AudienceRestriction with no Audience does not name us."""
    assert_rejected(*send_xml(client, mint(idp, audience=[])), reasons, "audience_mismatch")


def test_no_conditions(client, idp, reasons):
    assert_rejected(*send_xml(client, mint(idp, conditions=False)), reasons, "conditions_missing")


def test_two_conditions_elements(client, idp, reasons):
    tree = unsigned_tree(idp)
    conditions = one(tree, "saml:Conditions")
    conditions.addnext(copy.deepcopy(conditions))
    assert_rejected(*send_xml(client, idp.sign(tree)), reasons, "conditions_missing")


@pytest.mark.parametrize(
    "condition",
    [saml("Condition"), "{urn:example:ext}Delegation", saml("SomethingNew")],
)
def test_unknown_condition_refused(client, idp, reasons, condition):
    """SAML core 2.5.1.5: a condition we do not understand makes it Indeterminate."""
    tree = unsigned_tree(idp)
    etree.SubElement(one(tree, "saml:Conditions"), condition)
    assert_rejected(*send_xml(client, idp.sign(tree)), reasons, "condition_unsupported")


def test_one_time_use_is_honoured(client, idp, accepted, reasons):
    """OneTimeUse is understood and enforced by the replay cache."""
    xml = mint(idp, one_time_use=True)
    assert_accepted(*send_xml(client, xml), accepted)
    assert_rejected(*send_xml(client, xml), reasons, "replayed")


# -- recipient and confirmation -------------------------------------------------------


@pytest.mark.parametrize(
    "recipient",
    [
        TOKEN_ENDPOINT + "/",
        TOKEN_ENDPOINT.upper(),
        "https://AS.example.com/oauth/token",
        "http://as.example.com/oauth/token",
        TOKEN_ENDPOINT + "?x=1",
        TOKEN_ENDPOINT + " ",
        "https://as.example.com/oauth/token/../token",
        AS_ENTITY_ID,
        OMIT,
    ],
)
def test_recipient_must_match_exactly(client, idp, reasons, recipient):
    """RFC 7522 section 3 item 3: Recipient is the token endpoint URL, exactly."""
    assert_rejected(
        *send_xml(client, mint(idp, recipient=recipient)), reasons, "recipient_mismatch"
    )


@pytest.mark.parametrize("method", [HOK, SENDER_VOUCHES, "urn:example:other", ""])
def test_non_bearer_confirmation_only(client, idp, reasons, method):
    """Holder-of-key (or any non-bearer) only: no bearer confirmation (item 3)."""
    xml = mint(idp, confirmation_method=method)
    assert_rejected(*send_xml(client, xml), reasons, "subject_confirmation_missing")


def _add_confirmation(tree, **attributes):
    subject = one(tree, "saml:Subject")
    confirmation = etree.SubElement(
        subject,
        saml("SubjectConfirmation"),
        Method=attributes.pop("method", "urn:oasis:names:tc:SAML:2.0:cm:bearer"),
    )
    etree.SubElement(confirmation, saml("SubjectConfirmationData"), **attributes)
    return confirmation


def test_expired_confirmation_beside_valid_one(client, idp, accepted):
    """One expired bearer confirmation next to a valid one is fine (SECURITY.md)."""
    tree = unsigned_tree(idp)
    one(tree, "saml:Subject/saml:SubjectConfirmation").addprevious(
        _detached_confirmation(Recipient=TOKEN_ENDPOINT, NotOnOrAfter="2000-01-01T00:00:00Z")
    )
    assert_accepted(*send_xml(client, idp.sign(tree)), accepted)


def _detached_confirmation(**attributes):
    confirmation = etree.Element(
        saml("SubjectConfirmation"), Method="urn:oasis:names:tc:SAML:2.0:cm:bearer"
    )
    etree.SubElement(confirmation, saml("SubjectConfirmationData"), **attributes)
    return confirmation


def test_holder_of_key_beside_bearer_is_fine(client, idp, accepted):
    tree = unsigned_tree(idp)
    _add_confirmation(tree, method=HOK)
    assert_accepted(*send_xml(client, idp.sign(tree)), accepted)


def test_only_expired_confirmations(client, idp, reasons):
    xml = mint(idp, confirmation_not_on_or_after=ago(600), not_on_or_after=ahead(300))
    assert_rejected(*send_xml(client, xml), reasons, "confirmation_expired")


def test_confirmation_without_not_on_or_after(client, idp, reasons):
    """A bearer confirmation MUST carry NotOnOrAfter (SAML profiles 4.1.4.2)."""
    tree = unsigned_tree(idp)
    data = one(tree, "saml:Subject/saml:SubjectConfirmation/saml:SubjectConfirmationData")
    del data.attrib["NotOnOrAfter"]
    assert_rejected(*send_xml(client, idp.sign(tree)), reasons, "confirmation_expired")


def test_confirmation_not_yet_valid(client, idp, reasons):
    tree = unsigned_tree(idp)
    data = one(tree, "saml:Subject/saml:SubjectConfirmation/saml:SubjectConfirmationData")
    data.set("NotBefore", (ahead(200)).strftime("%Y-%m-%dT%H:%M:%SZ"))
    assert_rejected(*send_xml(client, idp.sign(tree)), reasons, "confirmation_not_yet_valid")


def test_two_confirmation_data(client, idp, reasons):
    tree = unsigned_tree(idp)
    data = one(tree, "saml:Subject/saml:SubjectConfirmation/saml:SubjectConfirmationData")
    data.addnext(copy.deepcopy(data))
    assert_rejected(*send_xml(client, idp.sign(tree)), reasons, "subject_confirmation_missing")


@pytest.mark.parametrize("value", ["_request-1", ""])
def test_in_response_to_present(client, idp, reasons, value):
    """A browser-SSO assertion (InResponseTo) replayed at the token endpoint."""
    xml = mint(idp, in_response_to=value)
    assert_rejected(*send_xml(client, xml), reasons, "in_response_to_present")


# -- times ---------------------------------------------------------------------


def test_expired(client, idp, reasons):
    xml = mint(idp, issue_instant=ago(900), lifetime=timedelta(minutes=5))
    assert_rejected(*send_xml(client, xml), reasons, "expired")


def test_expired_within_skew_is_accepted(client, idp, accepted):
    """60 s default skew: expired 30 s ago is still accepted."""
    xml = mint(idp, issue_instant=ago(330), lifetime=timedelta(minutes=5))
    assert_accepted(*send_xml(client, xml), accepted)


def test_expired_just_beyond_skew(client, idp, reasons):
    xml = mint(idp, issue_instant=ago(300 + 62), lifetime=timedelta(minutes=5))
    assert_rejected(*send_xml(client, xml), reasons, "expired")


def test_not_yet_valid(client, idp, reasons):
    xml = mint(idp, not_before=ahead(180), not_on_or_after=ahead(300))
    assert_rejected(*send_xml(client, xml), reasons, "not_yet_valid")


@pytest.mark.parametrize("gap", [0, -1, -3600])
def test_not_before_not_before_not_on_or_after(client, idp, reasons, gap):
    """NotBefore >= NotOnOrAfter is an empty window (SAML core 2.5.1.2)."""
    end = ahead(200)
    xml = mint(idp, not_before=end - timedelta(seconds=gap), not_on_or_after=end)
    assert_rejected(*send_xml(client, xml), reasons, "time_window_invalid")


@pytest.mark.parametrize(
    "lifetime", [timedelta(days=30), timedelta(days=365 * 10), timedelta(hours=2, seconds=2)]
)
def test_lifetime_too_long(client, idp, reasons, lifetime):
    """An assertion valid for 30 days is refused (default maximum 2 h)."""
    xml = mint(idp, lifetime=lifetime)
    assert_rejected(*send_xml(client, xml), reasons, "lifetime_too_long")


def test_lifetime_too_long_on_confirmation_only(client, idp, reasons):
    xml = mint(idp, confirmation_not_on_or_after=ahead(30 * 86400))
    assert_rejected(*send_xml(client, xml), reasons, "lifetime_too_long")


def test_lifetime_measured_from_backdated_issue_instant(client, idp, reasons):
    """Backdating IssueInstant cannot stretch a short remaining window into a long one."""
    xml = mint(idp, issue_instant=ago(3 * 3600), not_on_or_after=ahead(300))
    assert_rejected(*send_xml(client, xml), reasons, "lifetime_too_long")


@pytest.mark.parametrize("seconds", [120, 86400 * 365])
def test_issued_in_future(client, idp, reasons, seconds):
    xml = mint(idp, issue_instant=ahead(seconds))
    assert_rejected(*send_xml(client, xml), reasons, "issued_in_future")


def test_issued_in_future_within_skew(client, idp, accepted):
    assert_accepted(*send_xml(client, mint(idp, issue_instant=ahead(30))), accepted)


def test_missing_issue_instant(client, idp, reasons):
    xml = mint(idp, issue_instant=OMIT)
    assert_rejected(*send_xml(client, xml), reasons, "issue_instant_invalid")


def _zulu(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S")


NON_Z = [
    lambda t: _zulu(t) + "+00:00",
    lambda t: _zulu(t),
    lambda t: _zulu(t) + "z",
    lambda t: _zulu(t) + "-05:00",
    lambda t: " " + _zulu(t) + "Z",
    lambda t: _zulu(t).replace("T", " ") + "Z",
    lambda t: _zulu(t) + ".1234567890Z",
    lambda t: "+" + _zulu(t) + "Z",
    lambda t: _zulu(t).replace("-", "/") + "Z",
    lambda t: "١" + _zulu(t)[1:] + "Z",
    lambda t: _zulu(t)[:-2] + "60Z",
    lambda t: "",
]
NON_Z_IDS = [
    "offset",
    "naive",
    "lower-z",
    "minus-5",
    "leading-space",
    "space-separator",
    "ten-fraction-digits",
    "plus-year",
    "slashes",
    "arabic-digit",
    "leap-second",
    "empty",
]


@pytest.mark.parametrize("spell", NON_Z, ids=NON_Z_IDS)
@pytest.mark.parametrize(
    "field", ["issue_instant", "not_before", "not_on_or_after", "confirmation_not_on_or_after"]
)
def test_non_utc_z_time_refused(client, idp, reasons, spell, field):
    """SAML core 1.3.3: UTC with ``Z``; anything else is time_malformed."""
    tree = unsigned_tree(idp)
    value = spell(datetime.now(timezone.utc) + timedelta(seconds=100))
    if field == "issue_instant":
        tree.set("IssueInstant", value)
    elif field == "not_before":
        one(tree, "saml:Conditions").set("NotBefore", value)
    elif field == "not_on_or_after":
        one(tree, "saml:Conditions").set("NotOnOrAfter", value)
    else:
        one(tree, "saml:Subject/saml:SubjectConfirmation/saml:SubjectConfirmationData").set(
            "NotOnOrAfter", value
        )
    assert_rejected(*send_xml(client, idp.sign(tree)), reasons, "time_malformed")


def test_no_conditions_expiry_uses_confirmation(client, idp, accepted):
    """Expiry may come from the bearer confirmation alone (item 4)."""
    tree = unsigned_tree(idp)
    del one(tree, "saml:Conditions").attrib["NotOnOrAfter"]
    verified = assert_accepted(*send_xml(client, idp.sign(tree)), accepted)
    assert verified.expires_at is not None


def test_version_not_2_0(client, idp, reasons):
    for version in ("1.1", "2.00", "2"):
        reasons.clear()
        xml = mint(idp, version=version)
        assert_rejected(*send_xml(client, xml), reasons, "version_unsupported")
