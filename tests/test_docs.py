"""The documentation stays true: every reason code has a troubleshooting row, and
the snippets of docs/testing.md and docs/idp-setup.md run as written."""

from __future__ import annotations

import base64
import inspect
import os
import re
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from lxml import etree

from authlib_saml2_grant import AssertionRejected
from authlib_saml2_grant import AssertionVerifier
from authlib_saml2_grant.errors import REASONS
from authlib_saml2_grant.testing import OMIT
from authlib_saml2_grant.testing import TestIdentityProvider
from authlib_saml2_grant.testing import build_assertion
from authlib_saml2_grant.testing import encode_assertion

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_troubleshooting_lists_every_reason_code():
    """RFC 7522 section 3.1 refusals are all ``invalid_grant`` for the client, so
    each reason code in REASONS needs a row with its check, cause and fix."""
    text = (DOCS / "troubleshooting.md").read_text(encoding="utf-8")
    rows = {}
    for line in text.splitlines():
        match = re.match(r"\| `([a-z_]+)` \| ([a-z_]+) \| (.+?) \| (.+?) \|$", line)
        if match:
            rows[match.group(1)] = match.group(2)
    missing = sorted(set(REASONS) - set(rows))
    assert not missing, f"docs/troubleshooting.md lacks {missing}"
    assert {code: rows[code] for code in REASONS} == dict(REASONS)


def test_docs_exist_and_link():
    """The IdP guide names every IdP of issue 3; the CLI guide the demo command."""
    setup = (DOCS / "idp-setup.md").read_text(encoding="utf-8")
    for idp in ("Okta", "Entra ID", "AD FS", "Keycloak", "Shibboleth", "PingFederate"):
        assert idp in setup
    cli = (DOCS / "cli.md").read_text(encoding="utf-8")
    assert "flask --app example_app demo" in cli
    assert "saml2-bearer inspect" in cli


# Runnable snippets. A fenced block runs when the line before its opening fence
# is "<!-- run: MODE -->": "python" (a script), "pytest" (a test module) or "sh"
# (bash). Every python and sh block of docs/testing.md must carry one.

RUN_MARKER = re.compile(r"<!-- run: (python|pytest|sh) -->")
ROOT = DOCS.parent
TOKEN_ENDPOINT = "https://as.example.com/oauth/token"
ACS_URL = "https://client.example.com/saml/acs"


@dataclass(frozen=True)
class Block:
    mode: str | None
    language: str
    code: str
    line: int


def code_blocks(text: str) -> list[Block]:
    """The fenced code blocks of a Markdown text, in order, with their run mode."""
    blocks = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("```"):
            start = index
            index += 1
            while lines[index] != "```":
                index += 1
            marker = RUN_MARKER.fullmatch(lines[start - 1]) if start else None
            blocks.append(
                Block(
                    mode=marker.group(1) if marker else None,
                    language=line[3:].strip(),
                    code="\n".join(lines[start + 1 : index]) + "\n",
                    line=start + 1,
                )
            )
        index += 1
    return blocks


def _environment() -> dict[str, str]:
    """The test's interpreter and its scripts first on PATH; no coverage hooks."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COV_CORE_")}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def run_block(block: Block, cwd: Path, name: str) -> subprocess.CompletedProcess:
    assert block.language == ("sh" if block.mode == "sh" else "python"), block
    if block.mode == "python":
        (cwd / f"{name}.py").write_text(block.code, encoding="utf-8")
        command = [sys.executable, f"{name}.py"]
    elif block.mode == "pytest":
        (cwd / f"test_{name}.py").write_text(block.code, encoding="utf-8")
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
        command.append(f"test_{name}.py")
    else:
        command = ["bash", "-euo", "pipefail", "-c", block.code]
    return subprocess.run(
        command, cwd=cwd, env=_environment(), capture_output=True, text=True, timeout=300
    )


def _failure(block: Block, result: subprocess.CompletedProcess) -> str:
    return (
        f"block at line {block.line} ({block.mode}) exited {result.returncode}\n"
        f"{block.code}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    )


def test_every_testing_guide_snippet_runs(tmp_path):
    """docs/testing.md promises that its snippets run: every python and sh block
    is executed in order in one empty directory, the pytest example's tests
    must pass, and the keys it writes must be private (mode 0600)."""
    assert shutil.which("saml2-bearer", path=_environment()["PATH"]), "saml2-bearer not installed"
    blocks = code_blocks((DOCS / "testing.md").read_text(encoding="utf-8"))
    unmarked = [b.line for b in blocks if b.language in ("python", "sh") and b.mode is None]
    assert not unmarked, f"docs/testing.md blocks without a run marker at lines {unmarked}"
    runnable = [b for b in blocks if b.mode]
    assert [b.mode for b in runnable].count("python") >= 5
    assert [b.mode for b in runnable].count("pytest") == 1
    assert [b.mode for b in runnable].count("sh") >= 2
    for number, block in enumerate(runnable):
        result = run_block(block, tmp_path, f"snippet_{number}")
        assert result.returncode == 0, _failure(block, result)
        if block.mode == "pytest":
            assert re.search(r"\b[1-9]\d* passed\b", result.stdout), result.stdout
    for key in ("idp-secrets/idp-key.pem", "cli-key.pem"):
        assert stat.S_IMODE((tmp_path / key).stat().st_mode) == 0o600, key


def _signature(name: str, function) -> str:
    """How the guide writes a call signature: double-quoted string defaults."""
    parts = []
    for parameter in inspect.signature(function).parameters.values():
        if parameter.name == "self":
            continue
        if parameter.kind is parameter.VAR_KEYWORD:
            parts.append(f"**{parameter.name}")
        elif parameter.default is parameter.empty:
            parts.append(parameter.name)
        elif isinstance(parameter.default, str):
            parts.append(f'{parameter.name}="{parameter.default}"')
        else:
            parts.append(f"{parameter.name}={parameter.default!r}")
    return f"{name}({', '.join(parts)})"


def test_testing_guide_matches_the_module():
    """Every field of build_assertion() and mint() has a row in docs/testing.md
    with its real default, and the documented signatures are the real ones."""
    text = (DOCS / "testing.md").read_text(encoding="utf-8")
    flat = " ".join(text.split())
    for name, function in (
        ("TestIdentityProvider", TestIdentityProvider.__init__),
        ("mint", TestIdentityProvider.mint),
        ("encode_assertion", encode_assertion),
    ):
        assert _signature(name, function) in flat
    section = text.split("## Every field of `mint()` and `build_assertion()`")[1].split("\n## ")[0]
    rows = dict(re.findall(r"^\| `(\w+)`(?: \(`mint` only\))? \| (.+?) \|", section, re.M))
    fields = dict(inspect.signature(build_assertion).parameters)
    mint_only = inspect.signature(TestIdentityProvider.mint).parameters
    fields.update({name: mint_only[name] for name in ("urlsafe", "padding")})
    assert sorted(rows) == sorted(fields), "the field table and build_assertion() differ"
    for name, parameter in fields.items():
        default = parameter.default
        if default is OMIT:
            expected = "`OMIT`"
        elif isinstance(default, str):
            expected = f'`"{default}"`'
        elif default is None or isinstance(default, bool):
            expected = f"`{default}`"
        else:  # lifetime: a timedelta
            assert isinstance(default, timedelta), name
            expected = f"`timedelta(minutes={default.total_seconds() / 60:g})`"
        if name == "issuer":  # mint_xml() defaults it to the IdP's entity_id
            assert rows[name].startswith("the IdP's `entity_id`")
            assert f'`"{default}"`' in rows[name]
        else:
            assert rows[name].startswith(expected), (name, rows[name])


def _saml_response(assertion_xml: bytes) -> str:
    """A posted SAMLResponse as an IdP sends it: the namespaces declared on the
    Response only, whitespace between elements, Base64 in 76-character lines."""
    declaration = b' xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion"'
    assert assertion_xml.count(declaration) == 1
    body = assertion_xml.replace(declaration, b"")
    response = (
        b'<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol"'
        + declaration
        + b' ID="_response-1" Version="2.0" IssueInstant="2030-01-01T00:00:00Z"'
        b' Destination="' + ACS_URL.encode() + b'">\n'
        b"  <saml:Issuer>https://idp.example.com</saml:Issuer>\n"
        b"  <samlp:Status>\n"
        b'    <samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/>\n'
        b"  </samlp:Status>\n  " + body + b"\n</samlp:Response>\n"
    )
    return base64.encodebytes(response).decode("ascii")


def test_idp_guide_extraction_keeps_the_signature(tmp_path, idp):
    """docs/idp-setup.md's ACS snippet takes the signed Assertion out of a
    Response whose namespaces it inherits, and its inspect command (the sh
    block, run as written) accepts the result; a wrong Recipient fails it."""
    blocks = [b for b in code_blocks((DOCS / "idp-setup.md").read_text("utf-8")) if b.mode]
    assert [b.mode for b in blocks] == ["python", "sh"]
    namespace: dict = {}
    exec(compile(blocks[0].code, str(DOCS / "idp-setup.md"), "exec"), namespace)
    assertion_parameter = namespace["assertion_parameter"]

    signed = idp.mint_xml(recipient=ACS_URL, audience="https://as.example.com")
    parameter = assertion_parameter(_saml_response(signed))
    assert "=" not in parameter
    verifier = AssertionVerifier(
        [idp.identity_provider],
        audiences=["https://as.example.com"],
        recipients=[TOKEN_ENDPOINT, ACS_URL],
    )
    assert verifier.verify(parameter).recipient == ACS_URL

    (tmp_path / "idp-metadata.xml").write_bytes(idp.metadata())
    (tmp_path / "assertion.txt").write_text(parameter)
    result = run_block(blocks[1], tmp_path, "inspect")
    assert result.returncode == 0, _failure(blocks[1], result)
    elsewhere = idp.mint_xml(recipient="https://elsewhere.example/acs")
    (tmp_path / "assertion.txt").write_text(assertion_parameter(_saml_response(elsewhere)))
    result = run_block(blocks[1], tmp_path, "inspect")
    assert result.returncode == 1, _failure(blocks[1], result)
    assert "recipient_mismatch" in result.stdout


def test_idp_guide_extraction_refuses_an_unsigned_assertion(idp):
    """A signature on the Response does not travel with the Assertion: the
    snippet refuses an Assertion without its own, which the grant would refuse
    as signature_missing."""
    blocks = [b for b in code_blocks((DOCS / "idp-setup.md").read_text("utf-8")) if b.mode]
    namespace: dict = {}
    exec(compile(blocks[0].code, str(DOCS / "idp-setup.md"), "exec"), namespace)
    element = build_assertion(issuer=idp.entity_id, recipient=ACS_URL)
    element.remove(element.find("{http://www.w3.org/2000/09/xmldsig#}Signature"))
    unsigned = etree.tostring(element)
    with pytest.raises(ValueError, match="not signed itself"):
        namespace["assertion_parameter"](_saml_response(unsigned))
    verifier = AssertionVerifier(
        [idp.identity_provider], audiences=["https://as.example.com"], recipients=[ACS_URL]
    )
    with pytest.raises(AssertionRejected) as refused:
        verifier.verify_xml(unsigned)
    assert refused.value.reason == "signature_missing"
    bad_status = base64.b64decode(_saml_response(idp.mint_xml())).replace(
        b"status:Success", b"status:Requester"
    )
    with pytest.raises(ValueError, match="Success"):
        namespace["assertion_parameter"](base64.b64encode(bad_status).decode())
