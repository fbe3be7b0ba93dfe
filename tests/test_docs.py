"""The operator documentation covers every reason code the grant can report."""

from __future__ import annotations

import re
from pathlib import Path

from authlib_saml2_grant.errors import REASONS

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
