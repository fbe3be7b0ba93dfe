"""Salesforce's SAML assertion flow: ``grant_type=assertion`` with a whole Web SSO
Response (:class:`SAML2LegacyAssertionGrant`).

The request shape (``assertion_type``, repeated parameters, clients without
credentials), the answer (``format``, never a refresh token) and the inspector's
envelope report. Wrapping attacks and independently signed Responses live in
``tests/security/test_response_wrapping.py`` and ``test_response_interop.py``.
"""

from __future__ import annotations

import urllib.parse

import pytest
from lxml import etree

from authlib_saml2_grant import SAML2_BROWSER_SSO_ASSERTION_TYPE
from authlib_saml2_grant import AssertionVerifier
from authlib_saml2_grant import ConfigurationError
from authlib_saml2_grant.cli import main
from authlib_saml2_grant.inspection import inspect_assertion
from authlib_saml2_grant.settings import load_settings
from tests.conftest import AS_ENTITY_ID
from tests.conftest import LEGACY_CLIENT_ID
from tests.conftest import TOKEN_ENDPOINT
from tests.conftest import Token
from tests.conftest import basic_auth
from tests.conftest import create_app
from tests.conftest import db
from tests.conftest import in_context
from tests.conftest import record_signals
from tests.conftest import request_token
from tests.helpers import assert_rejected

ENVELOPE = {"destination": TOKEN_ENDPOINT}


@pytest.fixture
def legacy_app(tmp_path, idp):
    app = create_app(tmp_path, [idp], legacy=True, SAML2_BEARER_LEGACY_CLIENT_ID=LEGACY_CLIENT_ID)
    with in_context(app):
        yield app


@pytest.fixture
def signals(legacy_app):
    with record_signals(legacy_app) as signals:
        yield signals


def response_for(idp, sign="response", envelope=None, **fields):
    """A signed Web SSO Response from ``idp`` for this server, Base64 as Salesforce sends it."""
    fields = {"audience": AS_ENTITY_ID, "recipient": TOKEN_ENDPOINT, **fields}
    return idp.mint_response(sign=sign, response={**ENVELOPE, **(envelope or {})}, **fields)


def post(app, assertion, headers=None, **extra):
    """POST the legacy flow request; no client credentials unless ``headers`` say so."""
    data = {
        "grant_type": "assertion",
        "assertion_type": SAML2_BROWSER_SSO_ASSERTION_TYPE,
        **extra,
    }
    if assertion is not None:
        data["assertion"] = assertion
    return app.test_client().post("/oauth/token", data=data, headers=headers or {})


def issued_to(app, access_token):
    with app.app_context():
        token = db.session.execute(
            db.select(Token).filter_by(access_token=access_token)
        ).scalar_one()
        return token.client_id


# -- the exchange -------------------------------------------------------------


@pytest.mark.parametrize("sign", ["response", "assertion", "both"])
def test_signed_response_yields_access_token(legacy_app, signals, idp, sign):
    """SAML profiles 4.1.4.3: a Response signed over its root, an unsigned
    Response with a signed Assertion, or both, each yield a token."""
    response = post(legacy_app, response_for(idp, sign=sign))
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["token_type"] == "Bearer"
    assert body["access_token"]
    assert "refresh_token" not in body
    assert [a.subject for a in signals.accepted] == ["alice@example.com"]
    assert issued_to(legacy_app, body["access_token"]) == LEGACY_CLIENT_ID


def test_url_encoded_twice_and_unpadded_base64_accepted(legacy_app, idp):
    """Salesforce: "Base64-encoded, then URL-encoded"; a client that URL-encodes
    the value itself sends it encoded twice, unpadded Base64 is accepted too."""
    twice = urllib.parse.quote(response_for(idp), safe="")
    assert post(legacy_app, twice).status_code == 200
    assert post(legacy_app, response_for(idp).rstrip("=")).status_code == 200


def mime_lines(value, newline="\r\n"):
    """Base64 as RFC 2045 writes it: 76-character lines."""
    return newline.join(value[i : i + 76] for i in range(0, len(value), 76))


@pytest.mark.parametrize("newline", ["\r\n", "\n"], ids=["crlf", "lf"])
def test_rfc2045_line_breaks_accepted(legacy_app, idp, newline):
    """SAML bindings 3.5.4: the HTTP-POST binding sends the Response in RFC 2045
    Base64, with line breaks; a client passing the ``SAMLResponse`` value on is
    accepted, URL-encoded once (by the form) or twice."""
    value = mime_lines(response_for(idp), newline)
    assert "\n" in value
    assert post(legacy_app, value).status_code == 200
    twice = urllib.parse.quote(mime_lines(response_for(idp), newline), safe="")
    assert post(legacy_app, twice).status_code == 200


@pytest.mark.parametrize("junk", [" ", "\t", "\r\n "], ids=["space", "tab", "indent"])
def test_other_whitespace_inside_refused(legacy_app, signals, idp, junk):
    """Only line breaks are part of RFC 2045 Base64: other blanks inside are
    ``encoding_invalid`` (SECURITY.md: no embedded junk)."""
    value = response_for(idp)
    response = post(legacy_app, value[:100] + junk + value[100:])
    assert_rejected(response.status_code, response.get_json(), signals.reasons, "encoding_invalid")


def test_line_breaks_still_refused_for_a_bare_assertion(legacy_app, signals, idp):
    """:rfc:`7522#section-2.1`: the saml2-bearer grant's assertion is base64url
    without line breaks; only the Response flow takes RFC 2045 lines."""
    bare = idp.mint(audience=AS_ENTITY_ID, recipient=TOKEN_ENDPOINT, urlsafe=False, padding=True)
    status, body = request_token(legacy_app.test_client(), mime_lines(bare))
    assert_rejected(status, body, signals.reasons, "encoding_invalid")


def test_replayed_response_refused(legacy_app, signals, idp):
    """RFC 7522 section 3 item 6 applies to the assertion inside a Response."""
    assertion = response_for(idp)
    assert post(legacy_app, assertion).status_code == 200
    response = post(legacy_app, assertion)
    assert_rejected(response.status_code, response.get_json(), signals.reasons, "replayed")


def test_client_with_credentials_authenticates_as_usual(legacy_app, signals, idp):
    """A request with client credentials is issued to that client, not the legacy one."""
    response = post(legacy_app, response_for(idp), headers=basic_auth())
    assert response.status_code == 200, response.get_json()
    assert issued_to(legacy_app, response.get_json()["access_token"]) == "client-1"


def test_wrong_client_credentials_refused(legacy_app, idp):
    """Credentials that fail are invalid_client; the legacy client is no fallback."""
    response = post(legacy_app, response_for(idp), headers=basic_auth(secret="wrong"))
    assert response.status_code == 401
    assert response.get_json()["error"] == "invalid_client"


def test_no_credentials_without_legacy_client_is_invalid_client(tmp_path, idp):
    """Unset ``SAML2_BEARER_LEGACY_CLIENT_ID``: a request without client
    authentication is refused before the assertion is looked at."""
    app = create_app(tmp_path, [idp], legacy=True)
    with in_context(app), record_signals(app) as signals:
        response = post(app, response_for(idp))
    # RFC 6749 section 5.2: 401 is for a client that used the Authorization header.
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_client"
    assert signals.reasons == []


def test_unregistered_legacy_client_is_invalid_client(tmp_path, idp, caplog):
    """A configured legacy client that is not registered is the operator's
    error: the client gets invalid_client, the log says which setting."""
    app = create_app(tmp_path, [idp], legacy=True, SAML2_BEARER_LEGACY_CLIENT_ID="nobody")
    with in_context(app):
        response = post(app, response_for(idp))
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_client"
    assert "SAML2_BEARER_LEGACY_CLIENT_ID 'nobody' is not a registered client" in caplog.text


def test_legacy_client_id_setting_validated():
    """The setting is a non-empty string or unset."""
    base = {"SAML2_BEARER_AUDIENCES": [AS_ENTITY_ID]}
    assert load_settings(base).legacy_client_id is None
    assert load_settings({**base, "SAML2_BEARER_LEGACY_CLIENT_ID": "x"}).legacy_client_id == "x"
    with pytest.raises(ConfigurationError, match="SAML2_BEARER_LEGACY_CLIENT_ID"):
        load_settings({**base, "SAML2_BEARER_LEGACY_CLIENT_ID": ""})


def test_client_not_allowed_the_grant_type_refused(legacy_app, idp):
    """RFC 6749 section 5.2: a client not registered for grant_type=assertion
    is unauthorized_client."""
    response = post(legacy_app, response_for(idp), headers=basic_auth("client-2", "secret-2"))
    assert response.status_code == 400
    assert response.get_json()["error"] == "unauthorized_client"


# -- request shape --------------------------------------------------------------


@pytest.mark.parametrize(
    ("assertion_type", "description"),
    [
        (None, "Missing 'assertion_type' in request."),
        ("", "Missing 'assertion_type' in request."),
        (
            "urn:oasis:names:tc:SAML:2.0:profiles:SSO:Browser",
            f"The 'assertion_type' must be {SAML2_BROWSER_SSO_ASSERTION_TYPE}.",
        ),
        (
            "urn:ietf:params:oauth:grant-type:saml2-bearer",
            f"The 'assertion_type' must be {SAML2_BROWSER_SSO_ASSERTION_TYPE}.",
        ),
    ],
)
def test_assertion_type_must_be_exact(legacy_app, signals, idp, assertion_type, description):
    """The flow's assertion_type is exactly the Web SSO browser profile URN."""
    data = {"grant_type": "assertion", "assertion": response_for(idp)}
    if assertion_type is not None:
        data["assertion_type"] = assertion_type
    response = legacy_app.test_client().post("/oauth/token", data=data)
    assert response.status_code == 400
    assert response.get_json() == {"error": "invalid_request", "error_description": description}
    assert signals.reasons == []


@pytest.mark.parametrize("name", ["assertion_type", "assertion", "grant_type", "format"])
def test_repeated_parameter_is_invalid_request(legacy_app, signals, idp, name):
    """RFC 6749 section 3.2: parameters MUST NOT be included more than once;
    nothing is verified nor spent."""
    assertion = response_for(idp)
    values = {
        "grant_type": "assertion",
        "assertion_type": SAML2_BROWSER_SSO_ASSERTION_TYPE,
        "assertion": assertion,
        "format": "json",
    }
    data = [(key, value) for key, value in values.items()] + [(name, values[name])]
    body = urllib.parse.urlencode(data)
    response = legacy_app.test_client().post(
        "/oauth/token", data=body, content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 400
    assert response.get_json() == {
        "error": "invalid_request",
        "error_description": f"Multiple '{name}' parameters in request.",
    }
    assert post(legacy_app, assertion).status_code == 200  # not spent


def test_missing_assertion_is_invalid_request(legacy_app):
    response = post(legacy_app, None)
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_request"


def test_bare_assertion_refused(legacy_app, signals, idp):
    """The flow carries a whole Response; a bare Assertion is refused with
    ``not_a_response`` (it belongs to the RFC 7522 grant)."""
    response = post(legacy_app, idp.mint(audience=AS_ENTITY_ID, recipient=TOKEN_ENDPOINT))
    assert_rejected(response.status_code, response.get_json(), signals.reasons, "not_a_response")


def test_response_refused_by_rfc7522_grant(legacy_app, signals, idp):
    """:rfc:`7522#section-2.1`: the saml2-bearer assertion is a single
    Assertion; a Response sent there is ``not_an_assertion``."""
    status, body = request_token(legacy_app.test_client(), response_for(idp))
    assert_rejected(status, body, signals.reasons, "not_an_assertion")


# -- the answer -----------------------------------------------------------------


def test_never_a_refresh_token(tmp_path, idp):
    """Salesforce: "a refresh_token is never issued in this flow", whatever
    ``SAML2_BEARER_ISSUE_REFRESH_TOKEN`` says; the RFC 7522 grant still
    follows it."""
    app = create_app(
        tmp_path,
        [idp],
        legacy=True,
        SAML2_BEARER_LEGACY_CLIENT_ID=LEGACY_CLIENT_ID,
        SAML2_BEARER_ISSUE_REFRESH_TOKEN=True,
        OAUTH2_REFRESH_TOKEN_GENERATOR=True,
    )
    with in_context(app):
        legacy = post(app, response_for(idp), headers=basic_auth())
        bearer = request_token(
            app.test_client(), idp.mint(audience=AS_ENTITY_ID, recipient=TOKEN_ENDPOINT)
        )
    assert legacy.status_code == 200
    assert "refresh_token" not in legacy.get_json()
    assert bearer[0] == 200 and "refresh_token" in bearer[1]


def test_format_json_is_the_default(legacy_app, idp):
    response = post(legacy_app, response_for(idp))
    assert response.mimetype == "application/json"
    assert response.headers["Cache-Control"] == "no-store"


def test_format_urlencoded(legacy_app, idp):
    """``format=urlencoded``: the token as a form-encoded body."""
    response = post(legacy_app, response_for(idp), format="urlencoded")
    assert response.status_code == 200
    assert response.mimetype == "application/x-www-form-urlencoded"
    fields = dict(urllib.parse.parse_qsl(response.get_data(as_text=True)))
    assert fields["token_type"] == "Bearer"
    assert fields["access_token"]
    assert "refresh_token" not in fields
    assert response.headers["Cache-Control"] == "no-store"


def test_format_xml(legacy_app, idp):
    """``format=xml``: Salesforce's ``<OAuth>`` document."""
    response = post(legacy_app, response_for(idp), format="xml")
    assert response.status_code == 200
    assert response.mimetype == "application/xml"
    root = etree.fromstring(response.get_data())
    assert root.tag == "OAuth"
    fields = {child.tag: child.text for child in root}
    assert fields["token_type"] == "Bearer"
    assert fields["access_token"]
    assert "refresh_token" not in fields


@pytest.mark.parametrize(
    ("accept", "mimetype"),
    [
        ("application/xml", "application/xml"),
        ("text/xml", "application/xml"),
        ("application/x-www-form-urlencoded", "application/x-www-form-urlencoded"),
        ("application/json", "application/json"),
        ("text/html, */*;q=0.1", "application/json"),
        ("application/xml;q=0.5, application/json", "application/json"),
    ],
)
def test_format_from_accept_header(legacy_app, idp, accept, mimetype):
    """Salesforce: the format can also be chosen by the Accept header."""
    response = post(legacy_app, response_for(idp), headers={"Accept": accept})
    assert response.status_code == 200
    assert response.mimetype == mimetype


def test_format_parameter_wins_over_accept(legacy_app, idp):
    response = post(
        legacy_app, response_for(idp), headers={"Accept": "application/xml"}, format="json"
    )
    assert response.mimetype == "application/json"


def test_unknown_format_is_invalid_request(legacy_app, signals, idp):
    """An unknown ``format`` is refused before the assertion is verified or spent."""
    assertion = response_for(idp)
    response = post(legacy_app, assertion, format="yaml")
    assert response.status_code == 400
    assert response.get_json() == {
        "error": "invalid_request",
        "error_description": "The 'format' must be one of json, urlencoded, xml.",
    }
    assert signals.reasons == []
    assert post(legacy_app, assertion).status_code == 200


def test_extra_fields_from_the_authlib_hook(tmp_path, idp):
    """Fields added by an ``after_create_token_response`` hook reach every format."""

    def add_fields(grant):
        def hook(grant, result):
            result[1]["instance_url"] = "https://api.example.com"

        grant.register_hook("after_create_token_response", hook)

    app = create_app(tmp_path, [idp], SAML2_BEARER_LEGACY_CLIENT_ID=LEGACY_CLIENT_ID)
    from tests.conftest import LegacyGrant

    app.extensions["test_server"].register_grant(LegacyGrant, [add_fields])
    with in_context(app):
        as_json = post(app, response_for(idp)).get_json()
        as_xml = etree.fromstring(post(app, response_for(idp), format="xml").get_data())
    assert as_json["instance_url"] == "https://api.example.com"
    assert as_xml.findtext("instance_url") == "https://api.example.com"


# -- inspection ----------------------------------------------------------------------


def test_inspector_reports_the_envelope(idp):
    """The inspector verifies a Response as the legacy grant does and reports
    the envelope (status, destination, assertion chosen) and what was signed."""
    verifier = AssertionVerifier([idp.identity_provider], [AS_ENTITY_ID], [TOKEN_ENDPOINT])
    inspection = inspect_assertion(verifier, response_for(idp, sign="both").encode())
    assert inspection.valid, inspection.failure
    names = [check.name for check in inspection.checks]
    assert names.index("envelope") < names.index("structure")
    envelope = inspection.get("envelope")
    assert envelope.details["destination"] == TOKEN_ENDPOINT
    assert envelope.details["assertion_id"] == inspection.assertion.assertion_id
    assert inspection.get("signature").details["signed"] == ["Response", "Assertion"]


def test_inspector_names_the_envelope_failure(idp):
    verifier = AssertionVerifier([idp.identity_provider], [AS_ENTITY_ID], [TOKEN_ENDPOINT])
    bad = response_for(idp, envelope={"destination": "https://elsewhere.example.com/acs"})
    inspection = inspect_assertion(verifier, bad.encode())
    envelope = inspection.get("envelope")
    assert (envelope.status, envelope.reason) == ("fail", "destination_mismatch")
    assert inspection.get("structure").status == "not_run"


def test_inspector_skips_the_envelope_of_a_bare_assertion(idp):
    verifier = AssertionVerifier([idp.identity_provider], [AS_ENTITY_ID], [TOKEN_ENDPOINT])
    inspection = inspect_assertion(
        verifier, idp.mint(audience=AS_ENTITY_ID, recipient=TOKEN_ENDPOINT).encode()
    )
    assert inspection.valid
    assert inspection.get("envelope").status == "skipped"


def test_cli_mints_a_response_the_inspector_accepts(tmp_path, capsys):
    """``saml2-bearer mint --response both`` prints a Base64 Response the
    inspector verifies with the same key."""
    key, cert = tmp_path / "idp.key", tmp_path / "idp.pem"
    assert main(["mint", "--write-key", str(key), "--write-certificate", str(cert)]) == 0
    capsys.readouterr()
    code = main(
        [
            "mint",
            "--key",
            str(key),
            "--certificate",
            str(cert),
            "--recipient",
            TOKEN_ENDPOINT,
            "--response",
            "both",
        ]
    )
    minted = capsys.readouterr().out.strip()
    assert code == 0
    assert minted.endswith("=") or "+" in minted or "/" in minted or len(minted) % 4 == 0
    path = tmp_path / "response.b64"
    path.write_text(minted)
    code = main(
        [
            "inspect",
            str(path),
            "--certificate",
            str(cert),
            "--issuer",
            "https://idp.example.com",
            "--audience",
            "https://as.example.com",
            "--recipient",
            TOKEN_ENDPOINT,
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "PASS     envelope" in out
    assert "signed: Response, Assertion" in out


def test_inspector_takes_line_breaks_in_a_response_only(idp):
    """The inspector decodes as the grants do: RFC 2045 lines in a Response
    (the legacy flow) pass, in a bare assertion they fail at decoding."""
    verifier = AssertionVerifier([idp.identity_provider], [AS_ENTITY_ID], [TOKEN_ENDPOINT])
    response = inspect_assertion(verifier, mime_lines(response_for(idp)).encode())
    assert response.valid, response.failure
    bare = idp.mint(audience=AS_ENTITY_ID, recipient=TOKEN_ENDPOINT, urlsafe=False, padding=True)
    inspection = inspect_assertion(verifier, mime_lines(bare).encode())
    assert inspection.failure.reason == "encoding_invalid"
    assert inspection.get("decoding").status == "fail"
