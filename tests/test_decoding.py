"""Decoding the ``assertion`` parameter, :rfc:`7522#section-2.1`, and SAML times.

RFC 7522 sends base64url without padding; clients in the wild send standard
Base64, padded or not, and sometimes URL-encoded twice. Those spellings are
accepted deliberately and nothing else is.
"""

from __future__ import annotations

import base64
import time
from datetime import datetime
from datetime import timezone
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from authlib_saml2_grant import SAML2_BEARER_GRANT_TYPE
from authlib_saml2_grant import AssertionRejected
from authlib_saml2_grant.xml import decode_assertion
from authlib_saml2_grant.xml import parse_instant

from .conftest import basic_auth
from .conftest import mint_for
from .conftest import request_token
from .helpers import INVALID_GRANT
from .helpers import INVALID_SCOPE
from .helpers import MISSING_ASSERTION
from .helpers import app_for
from .helpers import assert_rejected

LIMIT = 131_072


@pytest.fixture
def xml(idp):
    """Signed assertion XML whose Base64 needs padding and holds a ``+`` (``-`` in
    base64url), so every spelling differs."""
    for size in range(64):
        data = mint_for(idp, attributes={"pad": "x" * size})
        data = base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
        std = base64.b64encode(data).decode()
        if len(data) % 3 and "+" in std:
            return data
    raise AssertionError("no assertion with padded Base64 holding a +")  # pragma: no cover


def spellings(data: bytes) -> dict[str, str]:
    url = base64.urlsafe_b64encode(data).decode()
    std = base64.b64encode(data).decode()
    return {
        "base64url-unpadded": url.rstrip("="),
        "base64url-padded": url,
        "base64-padded": std,
        "base64-unpadded": std.rstrip("="),
        "base64-url-encoded-twice": quote(std, safe=""),
        "base64url-url-encoded-twice": quote(url, safe=""),
    }


def post_form(client, raw_body: bytes):
    """POST ``raw_body`` as it is, as a form-encoded token request."""
    return client.post(
        "/oauth/token",
        data=raw_body,
        headers={**basic_auth(), "Content-Type": "application/x-www-form-urlencoded"},
    )


# -- through the token endpoint ----------------------------------------------------


@pytest.mark.parametrize("spelling", list(spellings(b"x")))
def test_spellings_accepted(client, xml, spelling):
    """:rfc:`7522#section-2.1`: base64url (and the Base64 spellings clients send) accepted."""
    status, body = request_token(client, spellings(xml)[spelling])
    assert status == 200, body


def test_surrounding_whitespace_accepted(client, xml):
    """:rfc:`7522#section-2.1`: a trailing newline (copy and paste) is tolerated."""
    status, body = request_token(client, spellings(xml)["base64url-unpadded"] + "\r\n")
    assert status == 200, body


def _corrupt(xml: bytes, how: str) -> str:
    url = spellings(xml)["base64url-unpadded"]
    std = spellings(xml)["base64-padded"]
    middle = len(url) // 2
    return {
        "space-inside": url[:middle] + " " + url[middle:],
        "newline-inside": url[:middle] + "\n" + url[middle:],
        "tab-inside": url[:middle] + "\t" + url[middle:],
        "junk-star": url[:middle] + "*" + url[middle:],
        "junk-dot": url[:middle] + "." + url[middle:],
        "junk-nul": url[:middle] + "\x00" + url[middle:],
        "junk-bang": url + "!",
        "non-ascii": url[:middle] + "\u00e9" + url[middle:],
        "mixed-alphabets": std.rstrip("=")[:middle] + "-_" + std.rstrip("=")[middle + 2 :],
        "padding-inside": url[:middle] + "=" + url[middle:],
        "too-much-padding": std + "==",
        "data-after-padding": std + "==A",
        "trailing-data": std + "QUFB",
        "trailing-char": url + "A" if len(url) % 4 == 0 else url[: len(url) // 4 * 4] + "A",
        "bad-percent": url[:middle] + "%zz" + url[middle:],
        "percent-non-ascii": url[:middle] + "%C3%A9" + url[middle:],
    }[how]


@pytest.mark.parametrize(
    "how",
    [
        "space-inside",
        "newline-inside",
        "tab-inside",
        "junk-star",
        "junk-dot",
        "junk-nul",
        "junk-bang",
        "non-ascii",
        "mixed-alphabets",
        "padding-inside",
        "too-much-padding",
        "data-after-padding",
        "trailing-data",
        "trailing-char",
        "bad-percent",
        "percent-non-ascii",
    ],
)
def test_malformed_encodings_refused(client, reasons, xml, how):
    """:rfc:`7522#section-2.1`: anything but a clean Base64 spelling is refused;
    decoding is strict, where ``b64decode`` would silently skip junk."""
    status, body = request_token(client, _corrupt(xml, how))
    assert_rejected(status, body, reasons, "encoding_invalid")


def test_non_canonical_trailing_bits_refused(client, reasons, xml):
    """:rfc:`7522#section-2.1`: unused bits of the last character must be zero."""
    url = spellings(xml)["base64url-unpadded"]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(url[-1])
    tampered = url[:-1] + alphabet[last | 1]
    assert tampered != url
    status, body = request_token(client, tampered)
    assert_rejected(status, body, reasons, "encoding_invalid")


@pytest.mark.parametrize("value", ["   ", "=", "===="])
def test_empty_value_refused(client, reasons, value):
    """:rfc:`7522#section-2.1`: the parameter must carry an assertion."""
    status, body = request_token(client, value)
    assert_rejected(status, body, reasons, "encoding_invalid")


def test_empty_parameter_is_invalid_request(client, reasons):
    """:rfc:`7522#section-2.1`: an empty ``assertion`` is a missing parameter."""
    status, body = request_token(client, "")
    assert (status, body) == (400, MISSING_ASSERTION)
    assert reasons == []


def test_unencoded_plus_in_form_refused(client, reasons, xml):
    """:rfc:`7522#section-2.1`: a raw ``+`` in the form body arrives as a space and is refused."""
    std = spellings(xml)["base64-padded"]
    body = f"grant_type={quote(SAML2_BEARER_GRANT_TYPE, safe='')}&assertion={std}"
    response = post_form(client, body.encode())
    assert_rejected(response.status_code, response.get_json(), reasons, "encoding_invalid")


def test_oversized_refused(tmp_path, idp):
    """SAML2_BEARER_MAX_ASSERTION_SIZE bounds the parameter (:rfc:`7522#section-2.1`)."""
    with app_for(
        tmp_path,
        [idp],
        SAML2_BEARER_MAX_ASSERTION_SIZE=1024,
        SAML2_BEARER_MAX_REQUEST_SIZE=1_000_000,  # the assertion's own limit decides
    ) as h:
        assertion = mint_for(idp)
        assert len(assertion) > 1024
        status, body = h.token(assertion)
        assert_rejected(status, body, h.reasons, "assertion_too_large")


def test_size_checked_before_decoding(tmp_path, idp):
    """The size limit applies before any decoding: junk over the limit is 'too large'."""
    with app_for(tmp_path, [idp], SAML2_BEARER_MAX_ASSERTION_SIZE=1024) as h:
        status, body = h.token("!" * 1025)
        assert_rejected(status, body, h.reasons, "assertion_too_large")
        h.reasons.clear()
        status, body = h.token("!" * 1024)
        assert_rejected(status, body, h.reasons, "encoding_invalid")


@pytest.mark.parametrize("size", [LIMIT + 1, 2 * LIMIT])
def test_default_size_limit(client, reasons, size):
    """SAML2_BEARER_MAX_ASSERTION_SIZE defaults to 128 KiB; the size is checked
    first (SECURITY.md step 1), so even a large parameter is refused at once."""
    started = time.monotonic()
    status, body = request_token(client, "A" * size)
    assert_rejected(status, body, reasons, "assertion_too_large")
    assert time.monotonic() - started < 2


def test_default_request_size_limit(client, reasons):
    """A 2 MB parameter is over SAML2_BEARER_MAX_REQUEST_SIZE (4 x 128 KiB): the
    token endpoint refuses the body (413) before reading it."""
    status, body = request_token(client, "A" * 2_000_000)
    assert (status, body) == (
        413,
        {
            "error": "invalid_request",
            "error_description": "The request body is larger than 524288 bytes.",
        },
    )
    assert reasons == []


# -- decode_assertion ---------------------------------------------------------------


@pytest.mark.parametrize("spelling", list(spellings(b"x")))
@pytest.mark.parametrize("data", [b"<a/>", b"<ab/>", b"<abc/>", bytes(range(256))])
def test_decode_assertion_spellings(spelling, data):
    """Every accepted spelling decodes to the same bytes."""
    assert decode_assertion(spellings(data)[spelling], LIMIT) == data


@pytest.mark.parametrize(
    "value",
    [
        "PGEvPg",  # <a/> base64url, unpadded
        "PGEvPg==",
        "PGEvPg%3D%3D",
        " PGEvPg==\n",
    ],
)
def test_decode_assertion_examples(value):
    """Known spellings of ``<a/>``."""
    assert decode_assertion(value, LIMIT) == b"<a/>"


@pytest.mark.parametrize(
    "value",
    [
        "",
        "=",
        "==",
        "A",  # one character: no Base64 encoding has length 4n+1
        "PGEvPg=",  # one pad where two are due
        "PGEvPg===",
        "PGEv=Pg==",
        "PGEvPg==PGEvPg==",
        "PGEvPh==",  # non-canonical trailing bits
        "PGEvPh",
        "PG Ev Pg",
        "PGEv\nPg",
        "PGEvPg\x00",
        "PGE+Pg_-",  # mixed alphabets
        "PGEvP\u0433",  # Cyrillic look-alike
        "\uff30GEvPg",  # full-width letter
        "PGEvPg%",
        "PGEvPg%3",
        "PGEvPg%%33D",
        "%C3%A9%C3%A9",
        "PGEvPg%253D%253D",  # URL-encoded three times
    ],
)
def test_decode_assertion_refuses(value):
    """Nothing but a clean Base64 spelling decodes."""
    with pytest.raises(AssertionRejected) as info:
        decode_assertion(value, LIMIT)
    assert info.value.reason == "encoding_invalid"
    assert info.value.check == "decoding"


@pytest.mark.parametrize("value", ["%FF", "PGEv%FFPg", "%C3", "%ED%A0%80"])
def test_decode_assertion_refuses_non_utf8_percent_escapes(value):
    """A percent-escape that is not UTF-8 is an encoding error like any other."""
    with pytest.raises(AssertionRejected) as info:
        decode_assertion(value, LIMIT)
    assert info.value.reason == "encoding_invalid"


def test_non_utf8_percent_escape_through_endpoint(client, reasons):
    """:rfc:`7522#section-2.1`: ``%FF`` inside the parameter is ``encoding_invalid``."""
    status, body = request_token(client, "PGEv%FFPg")
    assert_rejected(status, body, reasons, "encoding_invalid")


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=300))
def test_decode_assertion_round_trip(data):
    """Every accepted spelling of any bytes decodes back to them."""
    if not data:
        return
    for value in spellings(data).values():
        assert decode_assertion(value, 10_000) == data


@settings(max_examples=500, deadline=None)
@given(value=st.text(alphabet=st.sampled_from("AQgw+/-_=Zz09 \t\n.*\u00e9"), max_size=40))
def test_decode_assertion_only_rejects(value):
    """Any input either decodes to bytes whose canonical Base64 it spells, or is rejected."""
    try:
        data = decode_assertion(value, 10_000)
    except AssertionRejected as exc:
        assert exc.reason == "encoding_invalid"
        return
    canonical = base64.b64encode(data).decode()
    spelled = value.strip(" \t\r\n").translate(str.maketrans("-_", "+/"))
    assert spelled.rstrip("=") == canonical.rstrip("=")


def test_decode_assertion_size_first():
    """The size is checked before the alphabet."""
    with pytest.raises(AssertionRejected) as info:
        decode_assertion("!" * 600, 512)
    assert info.value.reason == "assertion_too_large"
    assert info.value.details["limit"] == 512
    assert decode_assertion("PGEvPg", 6) == b"<a/>"
    with pytest.raises(AssertionRejected):
        decode_assertion("PGEvPg", 5)


def test_decode_assertion_message_does_not_echo_input():
    """Operator messages describe the problem without quoting attacker bytes."""
    with pytest.raises(AssertionRejected) as info:
        decode_assertion("PGEv<script>", LIMIT)
    assert "<script>" not in info.value.message


# -- parse_instant ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-01-02T03:04:05Z", datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)),
        ("2026-01-02T03:04:05.1Z", datetime(2026, 1, 2, 3, 4, 5, 100000, tzinfo=timezone.utc)),
        ("2026-01-02T03:04:05.123Z", datetime(2026, 1, 2, 3, 4, 5, 123000, tzinfo=timezone.utc)),
        (
            "2026-01-02T03:04:05.123456789Z",
            datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=timezone.utc),
        ),
        ("2024-02-29T23:59:59Z", datetime(2024, 2, 29, 23, 59, 59, tzinfo=timezone.utc)),
    ],
)
def test_parse_instant(value, expected):
    """SAML core 1.3.3: xs:dateTime in UTC with a ``Z``; fractions to the microsecond."""
    parsed = parse_instant(value, "IssueInstant")
    assert parsed == expected
    assert parsed.tzinfo == timezone.utc


def test_parse_instant_none():
    """An absent attribute is ``None``, for the caller to decide."""
    assert parse_instant(None, "NotBefore") is None


@pytest.mark.parametrize(
    "value",
    [
        "",
        "2026-01-02T03:04:05",  # no zone
        "2026-01-02T03:04:05z",
        "2026-01-02T03:04:05+00:00",
        "2026-01-02T03:04:05-05:00",
        "2026-01-02 03:04:05Z",
        " 2026-01-02T03:04:05Z",
        "2026-01-02T03:04:05Z ",
        "2026-01-02T03:04:05.Z",
        "2026-01-02T03:04:05.1234567890Z",
        "2026-1-2T3:4:5Z",
        "2026-13-02T03:04:05Z",
        "2026-02-30T03:04:05Z",
        "2025-02-29T03:04:05Z",
        "2026-01-02T24:00:00Z",
        "2026-01-02T23:59:60Z",
        "-2026-01-02T03:04:05Z",
        "12026-01-02T03:04:05Z",
        "\uff12\uff10\uff12\uff16-01-02T03:04:05Z",  # full-width digits
        "\u0662\u0660\u0662\u0666-01-02T03:04:05Z",  # Arabic-Indic digits
        "1767323045",
    ],
)
def test_parse_instant_refuses(value):
    """SAML core 1.3.3: anything but a UTC xs:dateTime is ``time_malformed``."""
    with pytest.raises(AssertionRejected) as info:
        parse_instant(value, "NotOnOrAfter")
    assert info.value.reason == "time_malformed"
    assert info.value.details["attribute"] == "NotOnOrAfter"


def test_parse_instant_truncates_echoed_value():
    """The operator-facing details quote at most 64 characters of the value."""
    with pytest.raises(AssertionRejected) as info:
        parse_instant("x" * 10_000, "IssueInstant")
    assert len(info.value.details["value"]) <= 64


# -- odd requests never become a 500 --------------------------------------------------


@pytest.mark.parametrize(
    ("assertion", "reason"),
    [
        ("\u00e9\u00e8\u00ea", "encoding_invalid"),
        ("PGEvPg\u2028", "encoding_invalid"),
        ("\U0001f600" * 100, "encoding_invalid"),
        ("<saml:Assertion/>", "encoding_invalid"),
        (base64.urlsafe_b64encode(b"not xml").decode(), "xml_malformed"),
        (base64.urlsafe_b64encode(b"<a/>").decode(), "not_an_assertion"),
        (base64.urlsafe_b64encode(b"<a>\xff</a>").decode(), "xml_malformed"),
        (base64.urlsafe_b64encode("<a>\u00e9</a>".encode("utf-16")).decode(), "xml_malformed"),
        (base64.urlsafe_b64encode(b"\x00" * 64).decode(), "xml_malformed"),
    ],
    ids=[
        "latin-letters",
        "line-separator",
        "emoji",
        "raw-xml",
        "not-xml",
        "not-an-assertion",
        "invalid-utf8",
        "utf16",
        "nul-bytes",
    ],
)
def test_odd_assertions_are_invalid_grant(client, reasons, assertion, reason):
    """Every malformed assertion is an ``invalid_grant`` with the fixed ASCII
    description, and the operator learns which step refused it."""
    status, body = request_token(client, assertion)
    assert_rejected(status, body, reasons, reason)


GRANT = b"grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Asaml2-bearer"
UNSUPPORTED = {"error": "unsupported_grant_type"}
NOT_UTF8 = {
    "error": "invalid_request",
    "error_description": "The request body is not application/x-www-form-urlencoded in UTF-8.",
}


@pytest.mark.parametrize(
    ("raw_body", "expected", "reason"),
    [
        (GRANT + b"&assertion=%%%", INVALID_GRANT, "encoding_invalid"),
        (GRANT + b"&assertion=%FF%FE", INVALID_GRANT, "encoding_invalid"),
        (GRANT + b"&assertion=\xff\xfe", NOT_UTF8, None),
        (GRANT + b"&assertion", MISSING_ASSERTION, None),
        (GRANT + b"&&&assertion==", INVALID_GRANT, "encoding_invalid"),
        (GRANT + b"&assertion=%00", INVALID_GRANT, "encoding_invalid"),
        (GRANT + b";assertion=abc", UNSUPPORTED, None),
        (b"\x00\x01\x02", UNSUPPORTED, None),
        (b"=" * 1000, UNSUPPORTED, None),
    ],
    ids=[
        "bad-percent",
        "non-utf8-percent",
        "non-utf8-body",
        "no-value",
        "empty-pairs",
        "percent-nul",
        "semicolon",
        "binary",
        "equals-signs",
    ],
)
def test_form_garbage_is_an_oauth_error(client, reasons, raw_body, expected, reason):
    """Garbled form bodies get a 400 OAuth error, never a 500: a body that is not
    UTF-8 is ``invalid_request``, one without a grant_type ``unsupported_grant_type``;
    a garbled ``assertion`` is refused by the grant like any malformed assertion."""
    response = post_form(client, raw_body)
    assert response.status_code == 400, response.data
    assert response.get_json() == expected
    assert reasons == ([reason] if reason else [])


def test_non_ascii_scope_is_invalid_scope(client, mint, reasons):
    """Non-ASCII scope values next to a valid assertion are ``invalid_scope`` with
    Authlib's ASCII description, and the assertion is not spent."""
    assertion = mint()
    status, body = request_token(client, assertion, scope="profil\u00e9 \u2603")
    assert (status, body) == (400, INVALID_SCOPE)
    assert reasons == []
    assert request_token(client, assertion)[0] == 200


@pytest.mark.parametrize("copy_in_body", [False, True], ids=["query-only", "query-and-body"])
def test_assertion_in_query_string_refused(client, mint, reasons, copy_in_body):
    """:rfc:`7522#section-2.1`: the assertion travels in the form-encoded body, not the
    URL (where access logs would keep it), even beside a copy in the body; the
    assertion is not consumed."""
    assertion = mint()
    in_body = assertion if copy_in_body else None
    status, body = request_token(client, in_body, query={"assertion": assertion})
    assert status == 400
    assert body == {
        "error": "invalid_request",
        "error_description": "The 'assertion' must be sent in the request body.",
    }
    assert reasons == []
    status, body = request_token(client, assertion)
    assert status == 200, body
