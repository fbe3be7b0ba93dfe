"""Each processing rule of :rfc:`7522#section-3`, through the token endpoint.

Every refusal is an ``invalid_grant`` with the one generic description; the
precise reason code reaches operators through the ``assertion_rejected``
signal, and is asserted here.
"""

from __future__ import annotations

from datetime import datetime
from datetime import timedelta
from datetime import timezone

import pytest
import signxml
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from lxml import etree

from authlib_saml2_grant.testing import OMIT
from authlib_saml2_grant.testing import TestIdentityProvider
from authlib_saml2_grant.testing import encode_assertion
from authlib_saml2_grant.testing import format_instant
from authlib_saml2_grant.testing import generate_key_pair
from authlib_saml2_grant.verifier import BEARER

from .conftest import AS_ENTITY_ID
from .conftest import TOKEN_ENDPOINT
from .conftest import Grant
from .conftest import mint_for
from .conftest import request_token
from .conftest import unsigned_tree
from .helpers import ECDSA_SHA256
from .helpers import HOLDER_OF_KEY
from .helpers import RSA_SHA1
from .helpers import RSA_SHA256
from .helpers import SENDER_VOUCHES
from .helpers import SHA1
from .helpers import SHA256
from .helpers import ago
from .helpers import app_for
from .helpers import assert_accepted
from .helpers import assert_rejected
from .helpers import assert_unavailable
from .helpers import duplicate
from .helpers import entities_descriptor
from .helpers import from_now
from .helpers import metadata_with_key_of
from .helpers import one
from .helpers import saml
from .helpers import send

# -- item 1: Issuer -----------------------------------------------------------


def test_issuer_exact_match_accepted(client, mint, accepted):
    """:rfc:`7522#section-3` item 1: the Issuer names a trusted IdP exactly."""
    status, body = request_token(client, mint())
    assert status == 200, body
    assert accepted[0].issuer == "https://idp.example.com"


@pytest.mark.parametrize(
    "issuer",
    [
        "https://idp.example.com/",
        "HTTPS://IDP.EXAMPLE.COM",
        "https://IDP.example.com",
        "https://idp.example.com:443",
        "https://idp.example.com#",
    ],
)
def test_issuer_not_normalised(client, mint, reasons, issuer):
    """:rfc:`7522#section-3` item 1: simple string comparison, no URI normalisation."""
    status, body = request_token(client, mint(issuer=issuer))
    assert_rejected(status, body, reasons, "issuer_unknown")


def test_unknown_issuer(client, other_idp, reasons):
    """:rfc:`7522#section-3` item 1: an assertion from an untrusted IdP is refused."""
    status, body = request_token(client, mint_for(other_idp))
    assert_rejected(status, body, reasons, "issuer_unknown")


@pytest.mark.parametrize(
    "issuer", [OMIT, "", " https://idp.example.com ", "https://idp.example.com "]
)
def test_issuer_missing_or_padded(client, mint, reasons, issuer):
    """:rfc:`7522#section-3` item 1: the Issuer MUST identify the issuing entity."""
    status, body = request_token(client, mint(issuer=issuer))
    assert_rejected(status, body, reasons, "issuer_missing")


# -- item 2: Audience ---------------------------------------------------------


@pytest.mark.parametrize("audience", [AS_ENTITY_ID, TOKEN_ENDPOINT])
def test_audience_exact_match(client, mint, accepted, audience):
    """:rfc:`7522#section-3` item 2: any configured audience is accepted as is."""
    status, body = request_token(client, mint(audience=audience))
    assert status == 200, body
    assert accepted[0].audiences == (audience,)


@pytest.mark.parametrize(
    "audience",
    [
        "https://as.example.com/",
        "HTTPS://AS.EXAMPLE.COM",
        "https://AS.example.com",
        "http://as.example.com",
        "https://as.example.com:443",
        "https://as.example.com#",
        "https://as.example.com/oauth/token/",
        "https://as.example.com/OAUTH/TOKEN",
        " https://as.example.com",
        "https://as.example.com ",
        "https://as.example.com.evil.example",
        "",
    ],
)
def test_audience_not_normalised(client, mint, reasons, audience):
    """:rfc:`7522#section-3` item 2 (RFC 3986 6.2.1): simple string comparison, no
    scheme, case, port, fragment, trailing-slash or whitespace folding."""
    status, body = request_token(client, mint(audience=audience))
    assert_rejected(status, body, reasons, "audience_mismatch")


def test_audiences_in_one_restriction_are_ored(client, mint, accepted):
    """:rfc:`7522#section-3` item 2: one of several Audiences in a restriction suffices."""
    audiences = ["https://rp.example.net", AS_ENTITY_ID, "https://other.example.org"]
    verified = assert_accepted(*request_token(client, mint(audience=audiences)), accepted)
    assert verified.audiences == tuple(audiences)


@pytest.mark.parametrize(
    "audience",
    [[[AS_ENTITY_ID], ["https://rp.example.net"]], [["https://rp.example.net"], [AS_ENTITY_ID]]],
    ids=["ours-first", "ours-last"],
)
def test_audience_restrictions_are_anded(client, mint, reasons, audience):
    """:rfc:`7522#section-3` item 2 (SAML core 2.5.1.4): every AudienceRestriction must
    name us, whichever comes first."""
    status, body = request_token(client, mint(audience=audience))
    assert_rejected(status, body, reasons, "audience_mismatch")


def test_several_restrictions_all_naming_us(client, mint, accepted):
    """:rfc:`7522#section-3` item 2: several restrictions that each name us are accepted."""
    audience = [[AS_ENTITY_ID, "https://rp.example.net"], [TOKEN_ENDPOINT]]
    verified = assert_accepted(*request_token(client, mint(audience=audience)), accepted)
    assert set(verified.audiences) == {AS_ENTITY_ID, "https://rp.example.net", TOKEN_ENDPOINT}


def test_missing_audience_restriction(client, mint, reasons):
    """:rfc:`7522#section-3` item 2: Conditions MUST contain an AudienceRestriction."""
    status, body = request_token(client, mint(audience=OMIT))
    assert_rejected(status, body, reasons, "audience_missing")


def test_empty_audience_restriction(client, mint, reasons):
    """:rfc:`7522#section-3` item 2: an AudienceRestriction without Audience names nobody."""
    status, body = request_token(client, mint(audience=[[]]))
    assert_rejected(status, body, reasons, "audience_mismatch")


def test_no_conditions(client, mint, reasons):
    """:rfc:`7522#section-3` item 2: the Assertion MUST contain a Conditions element."""
    status, body = request_token(client, mint(conditions=False))
    assert_rejected(status, body, reasons, "conditions_missing")


def test_two_conditions_elements(client, idp, reasons):
    """:rfc:`7522#section-3` item 11: SAML core allows at most one Conditions element."""
    tree = unsigned_tree(idp)
    duplicate(tree, "saml:Conditions")
    status, body = send(client, idp.sign(tree))
    assert_rejected(status, body, reasons, "conditions_missing")


def test_get_audiences_hook(tmp_path, idp):
    """:rfc:`7522#section-3` item 2: ``get_audiences`` overrides the configured audiences."""

    class TenantGrant(Grant):
        def get_audiences(self):
            return frozenset(["https://tenant.example.com"])

    with app_for(tmp_path, [idp], grant=TenantGrant) as h:
        status, body = h.token(mint_for(idp))
        assert_rejected(status, body, h.reasons, "audience_mismatch")
        status, body = h.token(mint_for(idp, audience="https://tenant.example.com"))
        assert status == 200, body
        assert h.accepted[0].audiences == ("https://tenant.example.com",)


# -- item 3: Subject ----------------------------------------------------------


def test_subject_name_id(client, mint, accepted):
    """:rfc:`7522#section-3` item 3: the NameID identifies the resource owner."""
    assert request_token(client, mint())[0] == 200
    assertion = accepted[0]
    assert assertion.subject == "alice@example.com"
    assert assertion.name_id_format == "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"
    assert assertion.name_qualifier is None
    assert assertion.sp_name_qualifier is None


def test_subject_format_and_qualifiers_exposed(client, idp, accepted):
    """:rfc:`7522#section-3` item 3: NameID Format and qualifiers reach the application."""
    tree = unsigned_tree(idp, name_id_format="urn:oasis:names:tc:SAML:2.0:nameid-format:persistent")
    name_id = one(tree, "saml:Subject/saml:NameID")
    name_id.set("NameQualifier", "https://idp.example.com")
    name_id.set("SPNameQualifier", AS_ENTITY_ID)
    status, body = send(client, idp.sign(tree))
    assert status == 200, body
    assertion = accepted[0]
    assert assertion.name_id_format == "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
    assert assertion.name_qualifier == "https://idp.example.com"
    assert assertion.sp_name_qualifier == AS_ENTITY_ID


def test_subject_without_format(client, mint, accepted):
    """:rfc:`7522#section-3` item 3: Format is optional (unspecified)."""
    assert request_token(client, mint(name_id_format=OMIT))[0] == 200
    assert accepted[0].name_id_format is None


@pytest.mark.parametrize("subject", ["", "   ", "\n"])
def test_subject_empty(client, mint, reasons, subject):
    """:rfc:`7522#section-3` item 3: an empty NameID identifies nobody."""
    status, body = request_token(client, mint(subject=subject))
    assert_rejected(status, body, reasons, "subject_missing")


def test_subject_name_id_missing(client, mint, reasons):
    """:rfc:`7522#section-3` item 3: the Subject MUST carry a NameID."""
    status, body = request_token(client, mint(subject=OMIT))
    assert_rejected(status, body, reasons, "subject_missing")


def test_subject_element_missing(client, idp, reasons):
    """:rfc:`7522#section-3` item 3: the Assertion MUST contain a Subject."""
    tree = unsigned_tree(idp)
    tree.remove(one(tree, "saml:Subject"))
    status, body = send(client, idp.sign(tree))
    assert_rejected(status, body, reasons, "subject_missing")


def test_two_name_ids(client, idp, reasons):
    """:rfc:`7522#section-3` item 3: one principal, so exactly one NameID."""
    tree = unsigned_tree(idp)
    duplicate(tree, "saml:Subject/saml:NameID")
    status, body = send(client, idp.sign(tree))
    assert_rejected(status, body, reasons, "subject_missing")


# -- items 4 and 5: bearer SubjectConfirmation -----------------------------------


def test_recipient_is_a_configured_recipient(tmp_path, idp):
    """:rfc:`7522#section-3` item 5: Recipient equals the token endpoint or an alias."""
    alias = "https://as.example.com/alias/token"
    with app_for(tmp_path, [idp], SAML2_BEARER_RECIPIENTS=[TOKEN_ENDPOINT, alias]) as h:
        status, body = h.token(mint_for(idp, recipient=alias))
        assert status == 200, body
        assert h.accepted[0].recipient == alias
        status, body = h.token(mint_for(idp, recipient=TOKEN_ENDPOINT))
        assert status == 200, body
        status, body = h.token(mint_for(idp, recipient=AS_ENTITY_ID))
        assert_rejected(status, body, h.reasons, "recipient_mismatch")


@pytest.mark.parametrize(
    "recipient",
    [
        OMIT,
        "",
        AS_ENTITY_ID,
        "https://as.example.com/oauth/token/",
        "HTTPS://AS.EXAMPLE.COM/OAUTH/TOKEN",
        "https://AS.example.com/oauth/token",
        "http://as.example.com/oauth/token",
        "https://as.example.com/oauth/token?x=1",
        "https://as.example.com/oauth/token ",
        "https://as.example.com/oauth/token/../token",
    ],
)
def test_recipient_mismatch(client, mint, reasons, recipient):
    """:rfc:`7522#section-3` item 5: the Recipient MUST match, exactly: no case,
    scheme, trailing-slash, query, whitespace or dot-segment folding."""
    status, body = request_token(client, mint(recipient=recipient))
    assert_rejected(status, body, reasons, "recipient_mismatch")


def test_recipients_default_to_audiences(tmp_path, idp):
    """:rfc:`7522#section-3` item 5: without SAML2_BEARER_RECIPIENTS, the audiences."""
    with app_for(tmp_path, [idp], SAML2_BEARER_RECIPIENTS=None) as h:
        status, body = h.token(mint_for(idp, recipient=AS_ENTITY_ID))
        assert status == 200, body
        status, body = h.token(mint_for(idp, recipient=TOKEN_ENDPOINT))
        assert status == 200, body
        status, body = h.token(mint_for(idp, recipient="https://rp.example.net/acs"))
        assert_rejected(status, body, h.reasons, "recipient_mismatch")


def test_confirmation_expired(client, mint, reasons):
    """:rfc:`7522#section-3` item 6: an expired SubjectConfirmationData is refused."""
    assertion = mint(issue_instant=ago(600), not_on_or_after=from_now(300))
    assert request_token(client, assertion)[0] == 200
    status, body = request_token(
        client,
        mint(
            issue_instant=ago(600),
            not_on_or_after=from_now(300),
            confirmation_not_on_or_after=ago(120),
        ),
    )
    assert_rejected(status, body, reasons, "confirmation_expired")


def test_confirmation_without_not_on_or_after(client, mint, reasons):
    """:rfc:`7522#section-3` item 5: SubjectConfirmationData MUST have NotOnOrAfter."""
    status, body = request_token(client, mint(confirmation_not_on_or_after=OMIT))
    assert_rejected(status, body, reasons, "confirmation_expired")


def test_confirmation_not_before_in_future(client, idp, reasons):
    """:rfc:`7522#section-3` item 11: SubjectConfirmationData NotBefore is respected."""
    tree = unsigned_tree(idp)
    data = one(tree, "saml:Subject/saml:SubjectConfirmation/saml:SubjectConfirmationData")
    data.set("NotBefore", format_instant(from_now(120)))
    status, body = send(client, idp.sign(tree))
    assert_rejected(status, body, reasons, "confirmation_not_yet_valid")


def test_confirmation_not_before_in_past(client, idp):
    """:rfc:`7522#section-3` item 11: a past SubjectConfirmationData NotBefore is fine."""
    tree = unsigned_tree(idp)
    data = one(tree, "saml:Subject/saml:SubjectConfirmation/saml:SubjectConfirmationData")
    data.set("NotBefore", format_instant(ago(10)))
    status, body = send(client, idp.sign(tree))
    assert status == 200, body


@pytest.mark.parametrize("in_response_to", ["_authn-request-1", ""])
def test_in_response_to_refused(client, mint, reasons, in_response_to):
    """:rfc:`7522#section-3` item 5: a browser-SSO confirmation (InResponseTo, even
    empty) replayed at the token endpoint is refused."""
    status, body = request_token(client, mint(in_response_to=in_response_to))
    assert_rejected(status, body, reasons, "in_response_to_present")


@pytest.mark.parametrize("method", [HOLDER_OF_KEY, SENDER_VOUCHES, "urn:example:other", ""])
def test_non_bearer_confirmation_only_refused(client, mint, reasons, method):
    """:rfc:`7522#section-3` item 5: a bearer SubjectConfirmation is REQUIRED."""
    status, body = request_token(client, mint(confirmation_method=method))
    assert_rejected(status, body, reasons, "subject_confirmation_missing")


def test_confirmation_without_data_bounded_by_conditions(client, idp, accepted):
    """:rfc:`7522#section-3` item 5: with ``Conditions/@NotOnOrAfter``, a bearer
    SubjectConfirmation may omit SubjectConfirmationData (no Recipient to check)."""
    tree = unsigned_tree(idp)
    confirmation = one(tree, "saml:Subject/saml:SubjectConfirmation")
    confirmation.remove(one(confirmation, "saml:SubjectConfirmationData"))
    status, body = send(client, idp.sign(tree))
    assert_accepted(status, body, accepted)
    conditions_expiry = one(tree, "saml:Conditions").get("NotOnOrAfter")
    assert accepted[0].recipient is None
    assert accepted[0].expires_at.strftime("%Y-%m-%dT%H:%M:%S") == conditions_expiry[:19]


def test_confirmation_without_data_or_conditions_expiry(client, idp, reasons):
    """:rfc:`7522#section-3` item 5: without ``Conditions/@NotOnOrAfter`` the bearer
    confirmation MUST carry SubjectConfirmationData (its Recipient and expiry)."""
    tree = unsigned_tree(idp)
    confirmation = one(tree, "saml:Subject/saml:SubjectConfirmation")
    confirmation.remove(one(confirmation, "saml:SubjectConfirmationData"))
    del one(tree, "saml:Conditions").attrib["NotOnOrAfter"]
    status, body = send(client, idp.sign(tree))
    assert_rejected(status, body, reasons, "subject_confirmation_missing")


def test_confirmation_data_present_still_checked(client, idp, reasons):
    """:rfc:`7522#section-3` item 5: SubjectConfirmationData that is present still
    needs our Recipient, although ``Conditions/@NotOnOrAfter`` bounds the assertion."""
    tree = unsigned_tree(idp)
    data = one(tree, "saml:Subject/saml:SubjectConfirmation/saml:SubjectConfirmationData")
    data.set("Recipient", "https://elsewhere.example.com/token")
    status, body = send(client, idp.sign(tree))
    assert_rejected(status, body, reasons, "recipient_mismatch")


def test_two_confirmation_data(client, idp, reasons):
    """:rfc:`7522#section-3` item 5: one bearer confirmation carries one SubjectConfirmationData."""
    tree = unsigned_tree(idp)
    duplicate(tree, "saml:Subject/saml:SubjectConfirmation/saml:SubjectConfirmationData")
    status, body = send(client, idp.sign(tree))
    assert_rejected(status, body, reasons, "subject_confirmation_missing")


def _add_confirmation(tree, method=BEARER, **attrs):
    subject = one(tree, "saml:Subject")
    confirmation = etree.SubElement(subject, saml("SubjectConfirmation"), Method=method)
    data = etree.SubElement(confirmation, saml("SubjectConfirmationData"))
    for name, value in attrs.items():
        data.set(name, value)
    return confirmation


def test_holder_of_key_beside_bearer(client, idp, accepted):
    """:rfc:`7522#section-3` item 5: "at least one" bearer confirmation; others are ignored."""
    tree = unsigned_tree(idp)
    confirmation = one(tree, "saml:Subject/saml:SubjectConfirmation")
    hok = _add_confirmation(tree, HOLDER_OF_KEY, Recipient=TOKEN_ENDPOINT)
    confirmation.addprevious(hok)
    assert_accepted(*send(client, idp.sign(tree)), accepted)


def test_expired_confirmation_beside_valid_one(client, idp, accepted):
    """:rfc:`7522#section-3` item 6: an expired confirmation is skipped, a valid one used."""
    tree = unsigned_tree(idp, issue_instant=ago(300), not_on_or_after=from_now(300))
    confirmation = one(tree, "saml:Subject/saml:SubjectConfirmation")
    stale = _add_confirmation(tree, Recipient=TOKEN_ENDPOINT, NotOnOrAfter=format_instant(ago(200)))
    confirmation.addprevious(stale)
    verified = assert_accepted(*send(client, idp.sign(tree)), accepted)
    assert verified.recipient == TOKEN_ENDPOINT


def test_wrong_recipient_beside_valid_one(client, idp, accepted):
    """:rfc:`7522#section-3` item 5: a confirmation for another recipient does not spoil ours."""
    tree = unsigned_tree(idp)
    confirmation = one(tree, "saml:Subject/saml:SubjectConfirmation")
    other = _add_confirmation(
        tree, Recipient="https://rp.example.net/acs", NotOnOrAfter=format_instant(from_now(60))
    )
    confirmation.addprevious(other)
    verified = assert_accepted(*send(client, idp.sign(tree)), accepted)
    assert verified.recipient == TOKEN_ENDPOINT


def test_only_failing_confirmations_report_first_failure(client, idp, reasons):
    """:rfc:`7522#section-3` item 5: with no usable confirmation, the first reason is reported."""
    tree = unsigned_tree(idp, recipient="https://rp.example.net/acs")
    _add_confirmation(tree, Recipient=TOKEN_ENDPOINT, NotOnOrAfter=format_instant(ago(200)))
    status, body = send(client, idp.sign(tree))
    assert_rejected(status, body, reasons, "recipient_mismatch")


# -- items 4 and 6: expiry and time windows --------------------------------------


def test_expiry_on_confirmation_only(client, mint, accepted):
    """:rfc:`7522#section-3` item 4: NotOnOrAfter on the bearer confirmation suffices."""
    expiry = from_now(120)
    status, body = request_token(
        client, mint(not_on_or_after=OMIT, confirmation_not_on_or_after=expiry)
    )
    assert status == 200, body
    assert abs((accepted[0].expires_at - expiry).total_seconds()) < 0.01


def test_expires_at_is_earliest_not_on_or_after(client, mint, accepted):
    """:rfc:`7522#section-3` item 6: the assertion is used until the earliest NotOnOrAfter."""
    conditions_end, confirmation_end = from_now(240), from_now(90)
    status, body = request_token(
        client,
        mint(not_on_or_after=conditions_end, confirmation_not_on_or_after=confirmation_end),
    )
    assert status == 200, body
    assert abs((accepted[0].expires_at - confirmation_end).total_seconds()) < 0.01


def test_no_not_on_or_after_anywhere(client, mint, reasons):
    """:rfc:`7522#section-3` item 4: an assertion MUST have an expiry."""
    status, body = request_token(
        client, mint(not_on_or_after=OMIT, confirmation_not_on_or_after=OMIT)
    )
    assert_rejected(status, body, reasons, "confirmation_expired")


def test_expired(client, mint, reasons):
    """:rfc:`7522#section-3` item 6: an assertion past Conditions NotOnOrAfter is refused."""
    status, body = request_token(client, mint(issue_instant=ago(900), not_on_or_after=ago(600)))
    assert_rejected(status, body, reasons, "expired")


@pytest.mark.parametrize(
    ("expired_seconds_ago", "skew", "reason"),
    [
        (30, 60, None),
        (62, 60, "expired"),
        (90, 60, "expired"),
        (30, 0, "expired"),
        (90, 120, None),
    ],
)
def test_clock_skew_on_expiry(tmp_path, idp, expired_seconds_ago, skew, reason):
    """:rfc:`7522#section-3` item 6: NotOnOrAfter has passed "subject to allowable clock skew"."""
    with app_for(tmp_path, [idp], SAML2_BEARER_CLOCK_SKEW=skew) as h:
        assertion = mint_for(idp, issue_instant=ago(300), not_on_or_after=ago(expired_seconds_ago))
        status, body = h.token(assertion)
        if reason is None:
            assert status == 200, body
        else:
            assert_rejected(status, body, h.reasons, reason)


@pytest.mark.parametrize(
    ("seconds_ahead", "skew", "reason"),
    [
        (30, 60, None),
        (90, 60, "issued_in_future"),
        (365 * 86400, 60, "issued_in_future"),
        (30, 0, "issued_in_future"),
    ],
)
def test_clock_skew_on_issue_instant(tmp_path, idp, seconds_ahead, skew, reason):
    """:rfc:`7522#section-3` item 11: an IssueInstant ahead of our clock beyond the skew."""
    with app_for(tmp_path, [idp], SAML2_BEARER_CLOCK_SKEW=skew) as h:
        instant = from_now(seconds_ahead)
        assertion = mint_for(idp, issue_instant=instant, not_before=instant)
        status, body = h.token(assertion)
        if reason is None:
            assert status == 200, body
        else:
            assert_rejected(status, body, h.reasons, reason)


@pytest.mark.parametrize(
    ("seconds_ahead", "reason"), [(30, None), (59, None), (90, "not_yet_valid")]
)
def test_clock_skew_on_not_before(client, mint, reasons, seconds_ahead, reason):
    """:rfc:`7522#section-3` item 11: Conditions NotBefore, with the default 60 s skew."""
    status, body = request_token(client, mint(not_before=from_now(seconds_ahead)))
    if reason is None:
        assert status == 200, body
    else:
        assert_rejected(status, body, reasons, reason)


@pytest.mark.parametrize(
    ("lifetime", "reason"),
    [
        (3600, None),
        (7200, None),
        (7202, "lifetime_too_long"),
        (30 * 86400, "lifetime_too_long"),
        (10 * 365 * 86400, "lifetime_too_long"),
    ],
)
def test_max_lifetime_default(client, mint, reasons, lifetime, reason):
    """:rfc:`7522#section-3` item 6: a NotOnOrAfter unreasonably far in the future is refused."""
    status, body = request_token(client, mint(lifetime=timedelta(seconds=lifetime)))
    if reason is None:
        assert status == 200, body
    else:
        assert_rejected(status, body, reasons, reason)


def test_max_lifetime_on_confirmation(client, mint, reasons):
    """:rfc:`7522#section-3` item 6: the maximum lifetime bounds the confirmation too."""
    status, body = request_token(client, mint(confirmation_not_on_or_after=from_now(30 * 86400)))
    assert_rejected(status, body, reasons, "lifetime_too_long")


def test_max_lifetime_from_backdated_issue_instant(client, mint, reasons):
    """:rfc:`7522#section-3` item 6: the lifetime runs from IssueInstant, so backdating
    it cannot pass a three-hour assertion off as one with five minutes left."""
    status, body = request_token(
        client, mint(issue_instant=ago(3 * 3600), not_on_or_after=from_now(300))
    )
    assert_rejected(status, body, reasons, "lifetime_too_long")


def test_max_lifetime_configurable(tmp_path, idp):
    """:rfc:`7522#section-3` item 6: SAML2_BEARER_MAX_ASSERTION_LIFETIME sets the bound."""
    with app_for(tmp_path, [idp], SAML2_BEARER_MAX_ASSERTION_LIFETIME=600) as h:
        status, body = h.token(mint_for(idp, lifetime=timedelta(minutes=9)))
        assert status == 200, body
        status, body = h.token(mint_for(idp, lifetime=timedelta(hours=1)))
        assert_rejected(status, body, h.reasons, "lifetime_too_long")


@pytest.mark.parametrize("gap", [0, 1, 60, 3600])
def test_not_before_at_or_after_not_on_or_after(client, mint, reasons, gap):
    """:rfc:`7522#section-3` item 11 (SAML core 2.5.1.2): NotBefore MUST be before
    NotOnOrAfter; an equal or later NotBefore leaves an empty window."""
    end = from_now(200)
    status, body = request_token(
        client, mint(not_before=end + timedelta(seconds=gap), not_on_or_after=end)
    )
    assert_rejected(status, body, reasons, "time_window_invalid")


def _plain(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S")


#: Spellings of an instant 100 s ahead that are not UTC ``xs:dateTime`` with ``Z``.
NOT_UTC_Z = {
    "offset": lambda t: _plain(t) + "+00:00",
    "naive": _plain,
    "lower-z": lambda t: _plain(t) + "z",
    "minus-5": lambda t: _plain(t) + "-05:00",
    "leading-space": lambda t: " " + _plain(t) + "Z",
    "space-separator": lambda t: _plain(t).replace("T", " ") + "Z",
    "ten-fraction-digits": lambda t: _plain(t) + ".1234567890Z",
    "plus-year": lambda t: "+" + _plain(t) + "Z",
    "slashes": lambda t: _plain(t).replace("-", "/") + "Z",
    "arabic-digit": lambda t: "\u0661" + _plain(t)[1:] + "Z",
    "leap-second": lambda t: _plain(t)[:-2] + "60Z",
    "month-13": lambda t: _plain(t)[:5] + "13" + _plain(t)[7:] + "Z",
    "word": lambda t: "tomorrow",
    "empty": lambda t: "",
}


@pytest.mark.parametrize("spelling", list(NOT_UTC_Z))
@pytest.mark.parametrize(
    "field", ["issue_instant", "not_before", "not_on_or_after", "confirmation_not_on_or_after"]
)
def test_time_not_utc_z_refused(client, mint, reasons, field, spelling):
    """:rfc:`7522#section-3` item 11 (SAML core 1.3.3): every time is a UTC
    ``xs:dateTime`` ending in ``Z``; anything else is ``time_malformed``."""
    value = NOT_UTC_Z[spelling](from_now(100))
    status, body = request_token(client, mint(**{field: value}))
    assert_rejected(status, body, reasons, "time_malformed")


def test_issue_instant_missing(client, mint, reasons):
    """:rfc:`7522#section-3` item 11 (SAML core 2.3.3): IssueInstant is REQUIRED."""
    status, body = request_token(client, mint(issue_instant=OMIT))
    assert_rejected(status, body, reasons, "issue_instant_invalid")


# -- item 11: other Conditions ------------------------------------------------------


def test_one_time_use_accepted_once(client, mint, accepted, reasons):
    """:rfc:`7522#section-3` item 11 (SAML core 2.5.1.5): OneTimeUse is honoured by replay."""
    assertion = mint(one_time_use=True)
    status, body = request_token(client, assertion)
    assert status == 200, body
    assert accepted[0].one_time_use is True
    status, body = request_token(client, assertion)
    assert_rejected(status, body, reasons, "replayed")


def test_proxy_restriction_understood(client, idp):
    """:rfc:`7522#section-3` item 11: ProxyRestriction is a SAML core condition we accept."""
    tree = unsigned_tree(idp)
    conditions = one(tree, "saml:Conditions")
    etree.SubElement(conditions, saml("ProxyRestriction"), Count="0")
    status, body = send(client, idp.sign(tree))
    assert status == 200, body


@pytest.mark.parametrize(
    "condition",
    [
        "<x:Custom xmlns:x='urn:example:conditions'/>",
        "<saml:Condition xmlns:saml='urn:oasis:names:tc:SAML:2.0:assertion'/>",
        "<saml:Condition xmlns:saml='urn:oasis:names:tc:SAML:2.0:assertion'"
        " xmlns:xsi='http://www.w3.org/2001/XMLSchema-instance'"
        " xmlns:x='urn:example:conditions' xsi:type='x:Custom'/>",
        "<saml:SomethingNew xmlns:saml='urn:oasis:names:tc:SAML:2.0:assertion'/>",
    ],
    ids=["foreign-element", "bare-condition", "typed-condition", "unknown-saml-element"],
)
def test_unknown_condition_refused(client, idp, reasons, condition):
    """:rfc:`7522#section-3` item 11: "unknown condition types" MUST be refused."""
    tree = unsigned_tree(idp)
    one(tree, "saml:Conditions").append(etree.fromstring(condition))
    status, body = send(client, idp.sign(tree))
    assert_rejected(status, body, reasons, "condition_unsupported")


# -- items 7 and 8: statements -----------------------------------------------------


def test_authn_statement_exposed(client, mint, accepted):
    """:rfc:`7522#section-3` item 7: an AuthnStatement's values reach the application."""
    assert request_token(client, mint())[0] == 200
    assertion = accepted[0]
    assert assertion.authn_instant is not None
    assert assertion.session_index == "_session-1"
    assert assertion.authn_context_class_ref.endswith(":PasswordProtectedTransport")


def test_authn_statement_optional(client, mint, accepted):
    """:rfc:`7522#section-3` item 7: the AuthnStatement is optional."""
    status, body = request_token(client, mint(authn_statement=False))
    assert status == 200, body
    assertion = accepted[0]
    assert assertion.authn_instant is None
    assert assertion.session_index is None
    assert assertion.authn_context_class_ref is None


def test_attributes_multi_valued(client, mint, accepted):
    """:rfc:`7522#section-3` item 8: an AttributeStatement's values, all of them, in order."""
    attributes = {"groups": ["admins", "staff", "admins"], "mail": "alice@example.com"}
    status, body = request_token(client, mint(attributes=attributes))
    assert status == 200, body
    assertion = accepted[0]
    assert assertion.attributes["groups"] == ("admins", "staff", "admins")
    assert assertion.attributes["mail"] == ("alice@example.com",)
    assert assertion.get_attribute("groups") == "admins"
    assert assertion.get_attribute("missing", "x") == "x"
    with pytest.raises(TypeError):
        assertion.attributes["mail"] = ("mallory@example.com",)


def test_no_attributes(client, mint, accepted):
    """:rfc:`7522#section-3` item 8: the AttributeStatement is optional."""
    assert request_token(client, mint())[0] == 200
    assert dict(accepted[0].attributes) == {}


# -- structure: Version, ID -------------------------------------------------------------


@pytest.mark.parametrize("version", ["1.1", "2.1", "2.00", "2", "", OMIT])
def test_version_not_2_0(client, mint, reasons, version):
    """:rfc:`7522#section-3` item 11 (SAML core 2.3.3): Version MUST be "2.0"."""
    status, body = request_token(client, mint(version=version))
    assert_rejected(status, body, reasons, "version_unsupported")


def test_missing_id(client, idp, reasons):
    """:rfc:`7522#section-3` item 11 (SAML core 2.3.3): the assertion ID is REQUIRED."""
    tree = unsigned_tree(idp)
    del tree.attrib["ID"]
    status, body = send(client, idp.sign(tree))
    assert_rejected(status, body, reasons, "id_missing")


def test_assertion_id_exposed(client, mint, accepted):
    """:rfc:`7522#section-3` item 6: the ID (with the Issuer) keys the replay cache."""
    assert request_token(client, mint(assertion_id="_fixed-id-1"))[0] == 200
    assert accepted[0].assertion_id == "_fixed-id-1"


# -- item 9: signature algorithms and keys --------------------------------------------------


@pytest.fixture
def sha1_signing(monkeypatch):
    """Let signxml *sign* with SHA-1 so the verifier's policy can be tested."""
    monkeypatch.setattr(signxml.XMLSigner, "check_deprecated_methods", lambda self: None)


@pytest.mark.parametrize(
    ("signature_algorithm", "digest_algorithm", "refused"),
    [(RSA_SHA1, SHA1, RSA_SHA1), (RSA_SHA1, SHA256, RSA_SHA1), (RSA_SHA256, SHA1, SHA1)],
)
def test_sha1_refused_by_default(
    client, idp, reasons, rejections, sha1_signing, signature_algorithm, digest_algorithm, refused
):
    """:rfc:`7522#section-3` item 9: SHA-1 signatures and digests are off by default
    (no downgrade); the operator is told which algorithm was refused."""
    signed = idp.sign(
        unsigned_tree(idp),
        signature_algorithm=signature_algorithm,
        digest_algorithm=digest_algorithm,
    )
    status, body = send(client, signed)
    assert_rejected(status, body, reasons, "signature_algorithm_forbidden")
    assert rejections[0][1]["algorithm"] == refused


def test_sha1_accepted_when_configured(tmp_path, idp, sha1_signing):
    """:rfc:`7522#section-3` item 9: SHA-1 can be enabled for legacy IdPs, explicitly."""
    with app_for(
        tmp_path,
        [idp],
        SAML2_BEARER_SIGNATURE_ALGORITHMS=[RSA_SHA256, RSA_SHA1],
        SAML2_BEARER_DIGEST_ALGORITHMS=[SHA256, SHA1],
    ) as h:
        signed = idp.sign(unsigned_tree(idp), signature_algorithm=RSA_SHA1, digest_algorithm=SHA1)
        status, body = h.token(encode_assertion(signed))
        assert status == 200, body
        status, body = h.token(mint_for(idp))
        assert status == 200, body


def test_sha1_signature_needs_sha1_digest_allowed(tmp_path, idp, sha1_signing):
    """:rfc:`7522#section-3` item 9: the signature and digest allow-lists are separate."""
    with app_for(tmp_path, [idp], SAML2_BEARER_SIGNATURE_ALGORITHMS=[RSA_SHA256, RSA_SHA1]) as h:
        signed = idp.sign(unsigned_tree(idp), signature_algorithm=RSA_SHA1, digest_algorithm=SHA1)
        status, body = h.token(encode_assertion(signed))
        assert_rejected(status, body, h.reasons, "signature_algorithm_forbidden")
        signed = idp.sign(unsigned_tree(idp), signature_algorithm=RSA_SHA1, digest_algorithm=SHA256)
        assert h.token(encode_assertion(signed))[0] == 200


def test_rsa_sha256_refused_when_not_allowed(tmp_path, idp, ec_idp):
    """:rfc:`7522#section-3` item 9: the allow-list is exactly what is configured."""
    with app_for(tmp_path, [idp, ec_idp], SAML2_BEARER_SIGNATURE_ALGORITHMS=[ECDSA_SHA256]) as h:
        status, body = h.token(mint_for(ec_idp))
        assert status == 200, body
        status, body = h.token(mint_for(idp))
        assert_rejected(status, body, h.reasons, "signature_algorithm_forbidden")


@pytest.mark.parametrize(
    "algorithm",
    [
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384",
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512",
    ],
)
def test_stronger_rsa_accepted(client, idp, algorithm):
    """:rfc:`7522#section-3` item 9: RSA with SHA-384 and SHA-512 are accepted by default."""
    digest = "http://www.w3.org/2001/04/xmlenc#sha512"
    status, body = send(client, idp.sign(unsigned_tree(idp), algorithm, digest))
    assert status == 200, body


@pytest.fixture(scope="module")
def rollover_key():
    return generate_key_pair("ec", common_name="https://idp.example.com (next)")


def test_key_rollover(tmp_path, idp, rollover_key):
    """:rfc:`7522#section-3` item 9: during a key rollover, either pinned key verifies."""
    key, certificate = rollover_key
    next_idp = TestIdentityProvider(idp.entity_id, "ec", key=key, certificate=certificate)
    entry = {
        "entity_id": idp.entity_id,
        "certificates": [idp.certificate_pem, next_idp.certificate_pem],
    }
    with app_for(tmp_path, [], SAML2_BEARER_IDENTITY_PROVIDERS=[entry]) as h:
        status, body = h.token(mint_for(idp))
        assert status == 200, body
        status, body = h.token(mint_for(next_idp))
        assert status == 200, body
        assert len(h.accepted) == 2


def test_key_rollover_old_key_removed(tmp_path, idp, rollover_key):
    """:rfc:`7522#section-3` item 9: once the old key is unpinned, it no longer verifies."""
    key, certificate = rollover_key
    next_idp = TestIdentityProvider(idp.entity_id, "ec", key=key, certificate=certificate)
    with app_for(tmp_path, [next_idp]) as h:
        assert h.token(mint_for(next_idp))[0] == 200
        status, body = h.token(mint_for(idp))
        assert_rejected(status, body, h.reasons, "signature_invalid")


def _write_metadata(tmp_path, idp):
    path = tmp_path / "idp-metadata.xml"
    path.write_bytes(idp.metadata())
    return str(path)


@pytest.mark.parametrize("source", ["path", "text", "bytes"])
def test_metadata_configured_idp(tmp_path, idp, source):
    """:rfc:`7522#section-3` items 1 and 9: an IdP trusted through its SAML metadata."""
    metadata = {
        "path": lambda: _write_metadata(tmp_path, idp),
        "text": lambda: idp.metadata().decode("utf-8"),
        "bytes": idp.metadata,
    }[source]()
    with app_for(tmp_path, [], SAML2_BEARER_IDENTITY_PROVIDERS=[{"metadata": metadata}]) as h:
        status, body = h.token(mint_for(idp))
        assert status == 200, body
        assert h.accepted[0].issuer == idp.entity_id


def test_metadata_entities_descriptor_with_rollover(tmp_path, idp, ec_idp, rollover_key):
    """:rfc:`7522#section-3` item 9: metadata listing several IdPs and two keys for one."""
    key, certificate = rollover_key
    next_idp = TestIdentityProvider(idp.entity_id, "ec", key=key, certificate=certificate)
    metadata = entities_descriptor(metadata_with_key_of(idp, next_idp), ec_idp.metadata())
    with app_for(tmp_path, [], SAML2_BEARER_IDENTITY_PROVIDERS=[{"metadata": metadata}]) as h:
        for signer in (idp, next_idp, ec_idp):
            status, body = h.token(mint_for(signer))
            assert status == 200, body


def _expired_certificate(key):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "expired")])
    now = datetime.now(timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=30))
        .not_valid_after(now - timedelta(days=1))
        .sign(key, hashes.SHA256())
    )


def test_expired_pinned_certificate(tmp_path, rollover_key):
    """:rfc:`7522#section-3` item 9: a pinned certificate past its validity verifies nothing."""
    key, _ = rollover_key
    old = TestIdentityProvider(
        "https://idp.example.com", "ec", key=key, certificate=_expired_certificate(key)
    )
    with app_for(tmp_path, [old]) as h:
        status, body = h.token(mint_for(old))
        assert_rejected(status, body, h.reasons, "certificate_invalid")


def test_rollover_with_expired_old_certificate(tmp_path, idp, rollover_key):
    """:rfc:`7522#section-3` item 9: an expired old certificate beside the new one is harmless."""
    key, _ = rollover_key
    expired = _expired_certificate(key)
    entry = {
        "entity_id": idp.entity_id,
        "certificates": [expired.public_bytes(Encoding.PEM).decode(), idp.certificate_pem],
    }
    with app_for(tmp_path, [], SAML2_BEARER_IDENTITY_PROVIDERS=[entry]) as h:
        status, body = h.token(mint_for(idp))
        assert status == 200, body


# -- the subject is a NameID ----------------------------------------------------------------


@pytest.mark.parametrize("element", ["BaseID", "EncryptedID"])
def test_subject_other_identifiers_refused(client, idp, reasons, element):
    """:rfc:`7522#section-3` item 3: the principal is named by a NameID, nothing else."""
    tree = unsigned_tree(idp)
    name_id = one(tree, "saml:Subject/saml:NameID")
    name_id.addprevious(etree.Element(saml(element)))
    status, body = send(client, idp.sign(tree))
    assert_rejected(status, body, reasons, "subject_malformed")


# -- the grant's own hooks -----------------------------------------------------------------


def _grant(**hooks):
    """A subclass of the test grant with ``hooks`` overriding its methods."""
    return type("HookedGrant", (Grant,), hooks)


def _raise(exc):
    def hook(self, *args):
        raise exc

    return hook


@pytest.mark.parametrize(
    ("hooks", "reason"),
    [
        ({"authenticate_user": _raise(ConnectionError("user db down"))}, "user_lookup_error"),
        ({"has_granted_permission": lambda self, client, user: False}, "permission_denied"),
        ({"has_granted_permission": _raise(RuntimeError("policy down"))}, "user_lookup_error"),
        ({"resolve_identity_provider": _raise(TimeoutError("tenant db"))}, "verification_error"),
    ],
    ids=["user-lookup-fails", "permission-denied", "permission-check-fails", "idp-lookup-fails"],
)
def test_grant_hook_refusals_fail_closed(tmp_path, idp, hooks, reason):
    """:rfc:`7522#section-3` items 1 and 3: a hook that refuses or raises (a database
    down) is refused naming the reason, never a 500: ``invalid_grant``, or a 503 when
    the user store raised (the assertion is not to blame)."""
    with app_for(tmp_path, [idp], grant=_grant(**hooks)) as h:
        status, body = h.token(mint_for(idp))
        if reason == "user_lookup_error":
            assert_unavailable(status, body, h.reasons, reason)
        else:
            assert_rejected(status, body, h.reasons, reason)


def test_resolve_identity_provider_hook(tmp_path, idp, other_idp):
    """:rfc:`7522#section-3` item 1: IdPs may come from a subclass, e.g. per tenant."""

    def resolve_identity_provider(self, issuer):
        return other_idp.identity_provider if issuer == other_idp.entity_id else None

    grant = _grant(resolve_identity_provider=resolve_identity_provider)
    with app_for(tmp_path, [idp], grant=grant) as h:
        status, body = h.token(mint_for(other_idp))
        assert status == 200, body
        assert h.accepted[0].issuer == other_idp.entity_id
        status, body = h.token(mint_for(idp))
        assert_rejected(status, body, h.reasons, "issuer_unknown")


def test_resolve_identity_provider_wrong_entity(tmp_path, idp, other_idp):
    """:rfc:`7522#section-3` item 1: a resolved IdP must carry the assertion's Issuer."""
    grant = _grant(resolve_identity_provider=lambda self, issuer: other_idp.identity_provider)
    with app_for(tmp_path, [idp], grant=grant) as h:
        status, body = h.token(mint_for(idp))
        assert_rejected(status, body, h.reasons, "issuer_unknown")


@pytest.mark.parametrize(
    ("issuer_format", "reason"),
    [
        ("urn:oasis:names:tc:SAML:2.0:nameid-format:entity", None),
        ("urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress", "issuer_unknown"),
        ("", "issuer_unknown"),
    ],
)
def test_issuer_format(client, idp, reasons, issuer_format, reason):
    """:rfc:`7522#section-3` item 1 (SAML core 2.2.5): an Issuer Format, if any, is entity."""
    tree = unsigned_tree(idp)
    one(tree, "saml:Issuer").set("Format", issuer_format)
    status, body = send(client, idp.sign(tree))
    if reason is None:
        assert status == 200, body
    else:
        assert_rejected(status, body, reasons, reason)


def test_two_subjects(client, idp, reasons):
    """:rfc:`7522#section-3` item 3: one Subject names the one principal."""
    tree = unsigned_tree(idp)
    other = duplicate(tree, "saml:Subject")
    one(other, "saml:NameID").text = "mallory@example.com"
    status, body = send(client, idp.sign(tree))
    assert_rejected(status, body, reasons, "subject_missing")


def test_confirmation_window_inverted(client, idp, reasons):
    """:rfc:`7522#section-3` item 11: SubjectConfirmationData NotBefore < NotOnOrAfter."""
    tree = unsigned_tree(idp)
    data = one(tree, "saml:Subject/saml:SubjectConfirmation/saml:SubjectConfirmationData")
    data.set("NotBefore", data.get("NotOnOrAfter"))
    status, body = send(client, idp.sign(tree))
    assert_rejected(status, body, reasons, "time_window_invalid")


def test_get_recipients_hook(tmp_path, idp):
    """:rfc:`7522#section-3` item 5: ``get_recipients`` overrides the configured recipients."""
    alias = "https://tenant.example.com/token"

    class TenantGrant(Grant):
        def get_recipients(self):
            return frozenset([alias])

    with app_for(tmp_path, [idp], grant=TenantGrant) as h:
        status, body = h.token(mint_for(idp))
        assert_rejected(status, body, h.reasons, "recipient_mismatch")
        status, body = h.token(mint_for(idp, recipient=alias))
        assert status == 200, body
        assert h.accepted[0].recipient == alias


def test_operators_see_expected_and_actual(client, mint, reasons, rejections):
    """:rfc:`7522#section-3` item 2: the signal carries expected-vs-actual; the client
    gets the generic description, which echoes nothing."""
    status, body = request_token(client, mint(audience="https://evil.example/<b>\u00e9"))
    assert_rejected(status, body, reasons, "audience_mismatch")
    details = rejections[0][1]
    assert details["found"] == ["https://evil.example/<b>\u00e9"]
    assert details["accepted"] == sorted([AS_ENTITY_ID, TOKEN_ENDPOINT])
