"""``saml2-bearer inspect`` and ``mint``: the RFC 7522 section 3 checks explained;
``--version``, the help of every option, and the wheel that installs the command.

Keys are generated at test time; every file lives in ``tmp_path``.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import urllib.parse
import zipfile
from datetime import datetime
from datetime import timedelta
from datetime import timezone
from email import message_from_bytes
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from authlib_saml2_grant import AssertionVerifier
from authlib_saml2_grant import __version__
from authlib_saml2_grant.cli import build_parser
from authlib_saml2_grant.cli import main
from authlib_saml2_grant.testing import TestIdentityProvider
from authlib_saml2_grant.trust import fingerprint

ISSUER = "https://idp.example.com"
AUDIENCE = "https://as.example.com"
RECIPIENT = "https://as.example.com/oauth/token"


@pytest.fixture(scope="module")
def idp():
    return TestIdentityProvider(ISSUER)


@pytest.fixture(scope="module")
def impostor():
    """Same entity ID, another key: what a wrong or rolled-over key looks like."""
    return TestIdentityProvider(ISSUER)


@pytest.fixture
def trust(tmp_path, idp):
    path = tmp_path / "idp.pem"
    path.write_text(idp.certificate_pem)
    return ["--certificate", str(path), "--issuer", ISSUER, "--audience", AUDIENCE]


def write(tmp_path, content, name="assertion.txt"):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return str(path)


def mint(idp, **fields):
    fields.setdefault("audience", AUDIENCE)
    fields.setdefault("recipient", RECIPIENT)
    return idp.mint(**fields)


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def status_lines(out):
    """``{check: status}`` from the text report."""
    lines = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] in ("PASS", "FAIL", "skipped"):
            lines[parts[1]] = parts[0]
        elif parts[:2] == ["not", "run"]:
            lines[parts[2]] = "not run"
    return lines


def details(out, check):
    """The indented lines under one check of the text report."""
    lines = out.splitlines()
    start = next(
        i
        for i, line in enumerate(lines)
        if line.split()[:2] in (["PASS", check], ["FAIL", check], ["skipped", check])
    )
    block = []
    for line in lines[start + 1 :]:
        if not line.startswith("           "):
            break
        block.append(line.strip())
    return block


# -- inspect: valid assertions ----------------------------------------------


def test_inspect_valid_prints_every_check_and_fields(tmp_path, capsys, idp, trust):
    """RFC 7522 section 3: a valid assertion passes every check in order; the
    verified fields are printed; replay (item 6) is never run."""
    path = write(tmp_path, mint(idp, attributes={"role": ["admin", "dev"]}))
    code, out, _ = run(capsys, "inspect", path, *trust, "--recipient", RECIPIENT)
    assert code == 0, out
    statuses = status_lines(out)
    assert list(statuses)[:12] == [
        "size",
        "decoding",
        "parsing",
        "envelope",
        "structure",
        "issuer",
        "signature",
        "conditions",
        "time",
        "audience",
        "subject",
        "subject_confirmation",
    ]
    assert statuses.pop("envelope") == "skipped"  # a bare Assertion, not a Response
    assert set(list(statuses.values())[:11]) == {"PASS"}
    assert statuses["replay"] == "not run"
    assert "Result: VALID" in out
    assert "  subject: alice@example.com" in out
    assert "  attributes: role=admin, dev" in out
    assert f"  recipient: {RECIPIENT}" in out


@pytest.mark.parametrize("encoding", ["base64url", "base64", "xml"])
def test_inspect_detects_the_encoding(tmp_path, capsys, idp, trust, encoding):
    """RFC 7522 section 2.1 sends base64url; Base64 and raw XML are detected too
    (raw XML skips the decoding check)."""
    xml = idp.mint_xml(audience=AUDIENCE, recipient=RECIPIENT)
    content = {
        "base64url": base64.urlsafe_b64encode(xml).rstrip(b"="),
        "base64": base64.b64encode(xml),
        "xml": xml + b"\n",
    }[encoding]
    code, out, _ = run(
        capsys, "inspect", write(tmp_path, content), *trust, "--recipient", RECIPIENT
    )
    assert code == 0, out
    assert f"({encoding}, {len(content)} bytes)" in out
    if encoding == "xml":
        assert status_lines(out)["decoding"] == "skipped"


def test_inspect_reads_stdin(capsys, monkeypatch, idp, trust):
    """``-`` reads the assertion from standard input."""
    data = mint(idp).encode()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    code, out, _ = run(capsys, "inspect", "-", *trust, "--recipient", RECIPIENT)
    assert code == 0, out
    assert out.startswith("Assertion: stdin (base64url")


def test_inspect_trusts_metadata(tmp_path, capsys, idp):
    """RFC 7522 section 3, item 9: the signing key may come from SAML metadata."""
    metadata = write(tmp_path, idp.metadata(), "metadata.xml")
    path = write(tmp_path, mint(idp))
    code, out, _ = run(
        capsys, "inspect", path, "--metadata", metadata, "--audience", AUDIENCE,
        "--recipient", RECIPIENT,
    )  # fmt: skip
    assert code == 0, out


def test_inspect_json(tmp_path, capsys, idp, trust):
    """``--json`` gives machines the same checks, statuses and verified fields."""
    path = write(tmp_path, mint(idp))
    code, out, _ = run(capsys, "inspect", path, *trust, "--recipient", RECIPIENT, "--json")
    assert code == 0
    report = json.loads(out)
    assert report["valid"] is True
    assert report["failure"] is None
    statuses = [c["status"] for c in report["checks"]]
    assert statuses == ["pass"] * 3 + ["skipped"] + ["pass"] * 8 + ["not_run"]
    assert report["checks"][-1]["check"] == "client"
    assert report["assertion"]["issuer"] == ISSUER
    assert report["assertion"]["audiences"] == [AUDIENCE]


# -- inspect: each failure class names the check and the values --------------


def test_wrong_audience(tmp_path, capsys, idp, trust):
    """RFC 7522 section 3, item 2: the Audience must identify this server; the
    report shows the audiences found and the ones accepted."""
    path = write(tmp_path, mint(idp, audience="https://someone-else.example"))
    code, out, _ = run(capsys, "inspect", path, *trust, "--recipient", RECIPIENT)
    assert code == 1
    statuses = status_lines(out)
    assert statuses["audience"] == "FAIL"
    assert statuses["signature"] == "PASS"
    assert statuses["subject"] == "not run"
    block = details(out, "audience")
    assert block[0].startswith("reason: audience_mismatch:")
    assert "found: https://someone-else.example" in block
    assert f"accepted: {AUDIENCE}" in block
    assert "Result: INVALID at check 'audience' (reason audience_mismatch)" in out


def test_wrong_recipient(tmp_path, capsys, idp, trust):
    """RFC 7522 section 3, item 5: the bearer confirmation's Recipient must be
    the token endpoint URL; the report shows the actual and accepted values."""
    path = write(tmp_path, mint(idp, recipient="https://as.example.com/other"))
    code, out, _ = run(capsys, "inspect", path, *trust, "--recipient", RECIPIENT)
    assert code == 1
    assert status_lines(out)["subject_confirmation"] == "FAIL"
    block = details(out, "subject_confirmation")
    assert block[0].startswith("reason: recipient_mismatch:")
    assert "actual: https://as.example.com/other" in block
    assert f"accepted: {RECIPIENT}" in block


def test_expired_window(tmp_path, capsys, idp, trust):
    """RFC 7522 section 3, item 6: an assertion whose Conditions NotOnOrAfter has
    passed (beyond clock skew) is refused; expiry, now and skew are shown."""
    issued = datetime(2030, 1, 1, 12, 0, tzinfo=timezone.utc)
    path = write(tmp_path, mint(idp, issue_instant=issued, lifetime=timedelta(minutes=5)))
    now = "2030-01-01T12:10:00Z"
    code, out, _ = run(
        capsys, "inspect", path, *trust, "--recipient", RECIPIENT, "--now", now,
        "--clock-skew", "120",
    )  # fmt: skip
    assert code == 1
    statuses = status_lines(out)
    assert statuses["conditions"] == "PASS"
    assert statuses["time"] == "FAIL"
    assert statuses["audience"] == "not run"
    block = details(out, "time")
    assert block[0].startswith("reason: expired:")
    assert "not on or after: 2030-01-01T12:05:00+00:00" in block
    assert "now: 2030-01-01T12:10:00+00:00" in block
    assert "clock skew: 120.0" in block


def test_not_yet_valid_with_now(tmp_path, capsys, idp, trust):
    """RFC 7522 section 3, item 11 (SAML core NotBefore): ``--now`` before the
    window reports not_yet_valid with NotBefore, now and skew."""
    issued = datetime(2030, 1, 1, 12, 0, tzinfo=timezone.utc)
    path = write(tmp_path, mint(idp, issue_instant=issued))
    code, out, _ = run(
        capsys, "inspect", path, *trust, "--recipient", RECIPIENT, "--now", "2030-01-01T11:50:00"
    )
    assert code == 1
    block = details(out, "time")
    assert block[0].startswith("reason: issued_in_future:")
    assert "now: 2030-01-01T11:50:00+00:00" in block


def test_wrong_key(tmp_path, capsys, impostor, idp, trust):
    """RFC 7522 section 3, item 9: the signature must verify with a key pinned for
    the Issuer; the report lists the fingerprints tried and the KeyInfo one."""
    path = write(tmp_path, mint(impostor))
    code, out, _ = run(capsys, "inspect", path, *trust, "--recipient", RECIPIENT)
    assert code == 1
    statuses = status_lines(out)
    assert statuses["issuer"] == "PASS"
    assert statuses["signature"] == "FAIL"
    block = details(out, "signature")
    assert block[0].startswith("reason: signature_invalid:")
    pinned = fingerprint(idp.certificate.public_bytes(serialization.Encoding.DER))
    presented = fingerprint(impostor.certificate.public_bytes(serialization.Encoding.DER))
    assert f"fingerprints tried: {pinned}" in block
    assert f"key info fingerprint: {presented}" in block


def test_bad_encoding(tmp_path, capsys, trust):
    """RFC 7522 section 2.1: the assertion is base64url-encoded; anything else is
    refused at the decoding check, which names the problem."""
    code, out, _ = run(capsys, "inspect", write(tmp_path, "PHNhbWw6!!"), *trust)
    assert code == 1
    statuses = status_lines(out)
    assert statuses["size"] == "PASS"
    assert statuses["decoding"] == "FAIL"
    assert statuses["parsing"] == "not run"
    block = details(out, "decoding")
    assert block[0] == (
        "reason: encoding_invalid: The assertion parameter is not valid Base64: "
        "characters outside one Base64 alphabet"
    )
    assert "input format: unknown" in block


def test_bad_encoding_line_wrapped(tmp_path, capsys, idp, trust):
    """RFC 7522 section 2.1: line-wrapped Base64 (``base64`` without ``-w0``) is
    refused by the grant, and the report says how to fix it."""
    encoded = base64.encodebytes(idp.mint_xml(audience=AUDIENCE, recipient=RECIPIENT))
    code, out, _ = run(capsys, "inspect", write(tmp_path, encoded), *trust)
    assert code == 1
    block = details(out, "decoding")
    assert block[0].startswith("reason: encoding_invalid:")
    assert any("base64 -w0" in line for line in block)


def test_unknown_issuer_lists_trusted(tmp_path, capsys, trust):
    """RFC 7522 section 3, item 1: the Issuer must be a trusted IdP; the report
    shows the Issuer found and the trusted entity IDs."""
    other = TestIdentityProvider("https://unknown-idp.example")
    code, out, _ = run(capsys, "inspect", write(tmp_path, mint(other)), *trust)
    assert code == 1
    block = details(out, "issuer")
    assert block[0].startswith("reason: issuer_unknown:")
    assert "issuer: https://unknown-idp.example" in block
    assert f"trusted: {ISSUER}" in block


def test_json_failure(tmp_path, capsys, idp, trust):
    """``--json`` carries the failing check, reason and expected-vs-actual values."""
    path = write(tmp_path, mint(idp, audience="https://someone-else.example"))
    code, out, _ = run(capsys, "inspect", path, *trust, "--json")
    assert code == 1
    report = json.loads(out)
    assert report["valid"] is False
    assert report["failure"]["check"] == "audience"
    assert report["failure"]["reason"] == "audience_mismatch"
    assert report["failure"]["details"] == {
        "found": ["https://someone-else.example"],
        "accepted": [AUDIENCE],
    }
    statuses = {c["check"]: c["status"] for c in report["checks"]}
    assert statuses["audience"] == "fail"
    assert statuses["subject_confirmation"] == "not_run"


# -- inspect: same verifier, no replay ---------------------------------------


def test_inspect_runs_the_grants_verifier_class(tmp_path, capsys, monkeypatch, idp, trust):
    """The inspector calls AssertionVerifier.verify, the grant's own pipeline."""
    calls = []
    original = AssertionVerifier.verify

    def spy(self, *args, **kwargs):
        calls.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(AssertionVerifier, "verify", spy)
    code, _, _ = run(capsys, "inspect", write(tmp_path, mint(idp)), *trust)
    assert code == 1  # the recipient defaults to the audiences
    assert len(calls) == 1 and isinstance(calls[0], AssertionVerifier)


def test_inspect_with_app_does_not_burn_the_assertion(tmp_path, capsys, monkeypatch):
    """RFC 7522 section 3, item 6: inspecting with ``--app`` uses the app's very
    verifier yet records nothing: the assertion is still redeemable afterwards."""
    from authlib_saml2_grant import SAML2_BEARER_GRANT_TYPE
    from example_app import create_app
    from example_app.bootstrap import initialize
    from example_app.idp import mint_assertion
    from example_app.models import db

    monkeypatch.setenv("EXAMPLE_APP_INSTANCE_PATH", str(tmp_path))
    monkeypatch.delenv("EXAMPLE_APP_DATABASE_URL", raising=False)
    app = create_app()
    with app.app_context():
        credentials = initialize()
        assertion = mint_assertion(app, "alice@example.com")
        path = write(tmp_path, assertion)
        for _ in range(2):
            code, out, _ = run(capsys, "inspect", "--app", "example_app", path)
            assert code == 0, out
        auth = base64.b64encode(f"{credentials.client_id}:{credentials.client_secret}".encode())
        response = app.test_client().post(
            "/oauth/token",
            data={"grant_type": SAML2_BEARER_GRANT_TYPE, "assertion": assertion},
            headers={"Authorization": "Basic " + auth.decode()},
        )
        db.session.remove()
    assert response.status_code == 200, response.get_json()


# -- inspect: usage errors ---------------------------------------------------


@pytest.mark.parametrize(
    "argv, message",
    [
        (["inspect", "{path}", "--audience", AUDIENCE], "give trust"),
        (["inspect", "{path}", "--certificate", "{cert}", "--issuer", ISSUER], "--audience"),
        (
            ["inspect", "{path}", "--certificate", "{cert}", "--certificate", "{cert}",
             "--issuer", "a", "--issuer", "b", "--issuer", "c", "--audience", AUDIENCE],
            "pair each --certificate",
        ),
        (["inspect", "{missing}", "--audience", AUDIENCE], "cannot read"),
        (["inspect", "{path}", "--metadata", "{path}", "--audience", AUDIENCE], "metadata"),
        (["inspect", "{path}", "--now", "yesterday"], "not an ISO 8601 time"),
        (["frobnicate"], "invalid choice"),
    ],
)  # fmt: skip
def test_usage_errors_exit_2(tmp_path, capsys, idp, argv, message):
    """Bad arguments are usage errors (exit 2), never a verdict on the assertion."""
    cert = write(tmp_path, idp.certificate_pem, "idp.pem")
    path = write(tmp_path, "not-xml")
    names = {"path": path, "cert": cert, "missing": str(tmp_path / "missing")}
    code, out, err = run(capsys, *(a.format(**names) for a in argv))
    assert code == 2
    assert message in err


# -- mint ----------------------------------------------------------------------


def test_mint_with_generated_pair_written_out(tmp_path, capsys):
    """``mint`` signs with a throwaway pair and can save it, the key private."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    code, assertion, _ = run(
        capsys, "mint", "--write-key", str(key), "--write-certificate", str(cert),
        "--audience", AUDIENCE, "--recipient", RECIPIENT,
    )  # fmt: skip
    assert code == 0
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    path = write(tmp_path, assertion)
    code, out, _ = run(
        capsys, "inspect", path, "--certificate", str(cert), "--issuer", ISSUER,
        "--audience", AUDIENCE, "--recipient", RECIPIENT,
    )  # fmt: skip
    assert code == 0, out


def test_mint_every_field(tmp_path, capsys, idp):
    """Every RFC 7522 section 3 field of the minted assertion is settable."""
    key = tmp_path / "key.pem"
    key.write_bytes(
        idp.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert = write(tmp_path, idp.certificate_pem, "cert.pem")
    code, assertion, _ = run(
        capsys, "mint", "--key", str(key), "--certificate", cert,
        "--issuer", ISSUER, "--subject", "bob", "--name-id-format",
        "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
        "--audience", AUDIENCE, "--audience", "urn:other", "--recipient", RECIPIENT,
        "--lifetime", "60", "--id", "_fixed-id", "--attribute", "role=admin",
        "--attribute", "role=dev", "--attribute", "dept=it", "--one-time-use",
    )  # fmt: skip
    assert code == 0
    path = write(tmp_path, assertion)
    code, out, _ = run(
        capsys, "inspect", path, "--certificate", cert, "--issuer", ISSUER,
        "--audience", AUDIENCE, "--recipient", RECIPIENT, "--json",
    )  # fmt: skip
    assert code == 0, out
    fields = json.loads(out)["assertion"]
    assert fields["subject"] == "bob"
    assert fields["name_id_format"].endswith(":persistent")
    assert fields["assertion_id"] == "_fixed-id"
    assert fields["audiences"] == [AUDIENCE, "urn:other"]
    assert fields["attributes"] == {"role": ["admin", "dev"], "dept": ["it"]}
    assert fields["one_time_use"] is True
    issued = datetime.fromisoformat(fields["issue_instant"])
    assert datetime.fromisoformat(fields["expires_at"]) - issued == timedelta(seconds=60)


def test_mint_xml_ec_and_in_response_to(tmp_path, capsys):
    """``--xml`` prints the signed XML; an InResponseTo (browser SSO) confirmation
    is refused by RFC 7522 section 3, item 5 processing."""
    cert = tmp_path / "cert.pem"
    code, xml, _ = run(
        capsys, "mint", "--key-type", "ec", "--xml", "--write-certificate", str(cert),
        "--audience", AUDIENCE, "--recipient", RECIPIENT, "--in-response-to", "_req-1",
    )  # fmt: skip
    assert code == 0
    assert xml.startswith("<saml:Assertion")
    assert "ecdsa-sha256" in xml
    code, out, _ = run(
        capsys, "inspect", write(tmp_path, xml, "a.xml"), "--certificate", str(cert),
        "--issuer", ISSUER, "--audience", AUDIENCE, "--recipient", RECIPIENT,
    )  # fmt: skip
    assert code == 1
    assert details(out, "subject_confirmation")[0].startswith("reason: in_response_to_present:")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["mint", "--key", "{cert}"], "both --key and --certificate"),
        (["mint", "--attribute", "novalue"], "NAME=VALUE"),
        (["mint", "--lifetime", "0"], "--lifetime"),
        (["mint", "--key", "{cert}", "--certificate", "{cert}"], "cannot load the signing key"),
    ],
)
def test_mint_usage_errors(tmp_path, capsys, idp, argv, message):
    """Unusable mint options exit 2."""
    cert = write(tmp_path, idp.certificate_pem, "cert.pem")
    code, _, err = run(capsys, *(a.format(cert=cert) for a in argv))
    assert code == 2
    assert message in err


def test_python_dash_m(tmp_path, idp):
    """``python -m authlib_saml2_grant`` is the same command line."""
    cert = write(tmp_path, idp.certificate_pem, "cert.pem")
    path = write(tmp_path, mint(idp))
    done = subprocess.run(
        [sys.executable, "-m", "authlib_saml2_grant", "inspect", path, "--certificate", cert,
         "--issuer", ISSUER, "--audience", AUDIENCE, "--recipient", RECIPIENT],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Result: VALID" in done.stdout


def test_unexpected_error_is_reported_not_raised(tmp_path, capsys, monkeypatch, idp, trust):
    """As the grant does, an unexpected exception is a verification_error verdict
    (exit 1) that names the error, and no check is claimed as passed after it."""

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr("authlib_saml2_grant.verifier.parse_xml", broken)
    code, out, _ = run(capsys, "inspect", write(tmp_path, mint(idp)), *trust)
    assert code == 1
    statuses = status_lines(out)
    assert statuses["decoding"] == "PASS"
    assert statuses["internal"] == "FAIL"
    assert statuses["parsing"] == "not run"
    assert "error: RuntimeError: boom" in details(out, "internal")


# -- version and help ----------------------------------------------------------


def test_version(capsys):
    """``--version`` prints the package's single ``__version__`` and exits 0."""
    code, out, err = run(capsys, "--version")
    assert code == 0
    assert out == f"saml2-bearer {__version__}\n"
    assert err == ""


def parsers(parser, prog="saml2-bearer"):
    """``(prog, parser)`` for the parser and, recursively, every subcommand's."""
    yield prog, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, subparser in action.choices.items():
                yield from parsers(subparser, f"{prog} {name}")


def test_every_option_has_help():
    """Every argument of every subcommand says what it means, and every option
    with a default value says that default; the help renders."""
    seen = set()
    for prog, parser in parsers(build_parser()):
        parser.format_help()  # a stray % in a help text would raise here
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            name = f"{prog} {'/'.join(action.option_strings) or action.dest}"
            seen.add(name)
            assert action.help and action.help.strip(), f"{name} has no help"
            assert action.help is not argparse.SUPPRESS, f"{name} is hidden"
            if action.default not in (None, False, [], argparse.SUPPRESS):
                assert "default" in action.help, f"{name} does not say its default"
    # The walk reached both subcommands and their options.
    assert "saml2-bearer --version" in seen
    assert "saml2-bearer inspect --max-size" in seen
    assert "saml2-bearer mint --one-time-use" in seen


# -- packaging -------------------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent
DIST_INFO = f"authlib_saml2_grant-{__version__}.dist-info"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """The wheel built from a copy of the source tree (the repository, with
    example_app, tests, benchmarks and fuzz), without build isolation: offline,
    with the running environment's setuptools (>= 77 for PEP 639)."""
    source = tmp_path_factory.mktemp("source") / "project"
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", ".tox", "build", "dist", "*.egg-info", "__pycache__", ".*cache",
            ".hypothesis", ".coverage*", "htmlcov",
        ),
    )  # fmt: skip
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--no-index", "--quiet", "--wheel-dir", str(out), str(source)],
        cwd=source, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    (path,) = out.glob("*.whl")
    with zipfile.ZipFile(path) as archive:
        yield {name: archive.read(name) for name in archive.namelist()}


def test_wheel_holds_only_the_library(wheel):
    """The wheel installs the ``authlib_saml2_grant`` package (with ``py.typed``)
    and its ``.dist-info``: no example_app, tests, benchmarks or fuzz."""
    assert {name.split("/")[0] for name in wheel} == {"authlib_saml2_grant", DIST_INFO}
    assert "authlib_saml2_grant/py.typed" in wheel
    assert "authlib_saml2_grant/cli.py" in wheel
    entry_points = wheel[f"{DIST_INFO}/entry_points.txt"].decode()
    assert "saml2-bearer = authlib_saml2_grant.cli:main" in entry_points


def test_wheel_metadata_license_and_version(wheel):
    """PEP 639: an SPDX ``License-Expression`` and the LICENSE file itself, no
    legacy license field or classifier; the version is ``__version__``."""
    metadata = message_from_bytes(wheel[f"{DIST_INFO}/METADATA"])
    version = tuple(int(part) for part in metadata["Metadata-Version"].split("."))
    assert version >= (2, 4)
    assert metadata["Name"] == "authlib-saml2-grant"
    assert metadata["Version"] == __version__
    assert metadata["License-Expression"] == "BSD-3-Clause"
    assert metadata["License"] is None
    assert metadata.get_all("License-File") == ["LICENSE"]
    assert not [c for c in metadata.get_all("Classifier") if c.startswith("License ::")]
    assert "Typing :: Typed" in metadata.get_all("Classifier")
    license_text = wheel[f"{DIST_INFO}/licenses/LICENSE"].decode()
    assert license_text == (ROOT / "LICENSE").read_text()
    assert license_text.startswith("BSD 3-Clause License")
    assert "Copyright (c) 2026, authlib-saml2-grant developers" in license_text


@pytest.mark.parametrize(
    ("encode", "check", "reason", "hint"),
    [
        (
            lambda xml: base64.urlsafe_b64encode(base64.urlsafe_b64encode(xml)),
            "parsing",
            "xml_malformed",
            "encoded twice",
        ),
        (
            lambda xml: urllib.parse.quote(urllib.parse.quote(base64.b64encode(xml))).encode(),
            "decoding",
            "encoding_invalid",
            "URL-encoded twice",
        ),
    ],
    ids=["base64-twice", "url-encoded-twice"],
)
def test_inspect_says_when_input_looks_double_encoded(
    tmp_path, capsys, idp, trust, encode, check, reason, hint
):
    """RFC 7522 section 2.1: one base64url encoding. An assertion encoded twice is
    refused, and the report names the likely mistake."""
    encoded = encode(idp.mint_xml(audience=AUDIENCE, recipient=RECIPIENT))
    code, out, _ = run(capsys, "inspect", write(tmp_path, encoded), *trust)
    assert code == 1
    block = details(out, check)
    assert block[0].startswith(f"reason: {reason}:")
    assert any(hint in line for line in block), block


def test_inspect_client_binding_and_claims(idp):
    """The inspector runs the grant's client binding when told the client (an IdP
    entry's ``client_ids``) and shows the mapped claims of a valid assertion."""
    from authlib_saml2_grant import AssertionVerifier
    from authlib_saml2_grant import IdentityProvider
    from authlib_saml2_grant.inspection import inspect_assertion

    bound = IdentityProvider(ISSUER, (idp.certificate,), client_ids=frozenset({"client-a"}))
    verifier = AssertionVerifier(
        [bound], audiences=[AUDIENCE], recipients=[RECIPIENT], claims={"groups": "memberOf"}
    )
    data = mint(idp, attributes={"memberOf": ["admins", "staff"]}).encode()
    passed = inspect_assertion(verifier, data, client_id="client-a")
    assert passed.valid
    assert passed.get("client").status == "pass"
    assert passed.assertion_fields()["claims"] == {"groups": ["admins", "staff"]}
    refused = inspect_assertion(verifier, data, client_id="client-b")
    assert not refused.valid
    assert refused.failure.reason == "client_not_allowed"
    assert refused.get("client").status == "fail"
    assert refused.get("client").details["allowed_client_ids"] == ["client-a"]
    unchecked = inspect_assertion(verifier, data)
    assert unchecked.valid and unchecked.get("client").status == "not_run"


def test_inspect_client_id_option(tmp_path, capsys, idp, trust):
    """``--client-id``: an IdP entry without client_ids serves every client."""
    path = write(tmp_path, mint(idp))
    code, out, _ = run(
        capsys, "inspect", path, *trust, "--recipient", RECIPIENT, "--client-id", "client-a"
    )
    assert code == 0
    assert details(out, "client")[:1] == ["client id: client-a"]
