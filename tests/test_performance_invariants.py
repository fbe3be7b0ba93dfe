"""Performance invariants that hold on any machine: counted calls, no timings.

Requests parse nothing but the assertion: certificates, metadata and settings
are turned into ready objects once, when the app starts. With several pinned
certificates (key rollover) the one named by the signature's ``KeyInfo`` is
tried first, so a rollover costs no extra signature check.
"""

from __future__ import annotations

import collections
import functools

import pytest

from authlib_saml2_grant import AssertionVerifier
from authlib_saml2_grant import IdentityProvider
from authlib_saml2_grant import SignaturePolicy
from authlib_saml2_grant import TrustStore
from authlib_saml2_grant import get_settings
from authlib_saml2_grant.testing import generate_key_pair

from .conftest import AS_ENTITY_ID
from .conftest import create_app
from .conftest import in_context
from .conftest import mint_for
from .conftest import request_token

#: Everything that parses a certificate, a key, metadata or settings.
PARSERS = (
    "cryptography.x509.load_der_x509_certificate",
    "cryptography.x509.load_pem_x509_certificate",
    "cryptography.hazmat.primitives.serialization.load_der_public_key",
    "cryptography.hazmat.primitives.serialization.load_pem_public_key",
    "signxml.verifier.load_der_public_key",
    "authlib_saml2_grant.trust.load_certificate",
    "authlib_saml2_grant.trust.load_metadata",
    "authlib_saml2_grant.settings.load_certificate",
    "authlib_saml2_grant.settings.load_metadata",
    "authlib_saml2_grant.settings.load_settings",
    "authlib_saml2_grant.extension.load_settings",
)
#: Constructors of the ready objects settings become.
CONSTRUCTORS = (
    (IdentityProvider, "__post_init__"),
    (SignaturePolicy, "__post_init__"),
    (AssertionVerifier, "__init__"),
    (TrustStore, "__init__"),
)


def _count_calls(monkeypatch, calls: collections.Counter) -> None:
    def counted(name, function):
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return function(*args, **kwargs)

        return wrapper

    for path in PARSERS:
        module_path, _, attribute = path.rpartition(".")
        module = __import__(module_path, fromlist=[attribute])
        monkeypatch.setattr(module, attribute, counted(path, getattr(module, attribute)))
    for cls, method in CONSTRUCTORS:
        name = f"{cls.__name__}.{method}"
        monkeypatch.setattr(cls, method, counted(name, getattr(cls, method)))


def test_requests_parse_no_certificate_metadata_or_setting(app, client, idp, ec_idp, monkeypatch):
    """After start-up, token requests only look up ready objects."""
    assertions = [mint_for(signer) for signer in (idp, ec_idp, idp, ec_idp, idp)]
    calls: collections.Counter = collections.Counter()
    _count_calls(monkeypatch, calls)
    for assertion in assertions:
        status, body = request_token(client, assertion)
        assert status == 200, body
    assert dict(calls) == {}


def test_counters_see_parsing(monkeypatch, idp):
    """The counters work: building settings does call what the requests must not."""
    from authlib_saml2_grant import settings

    calls: collections.Counter = collections.Counter()
    _count_calls(monkeypatch, calls)
    settings.load_settings(
        {
            "SAML2_BEARER_AUDIENCES": [AS_ENTITY_ID],
            "SAML2_BEARER_IDENTITY_PROVIDERS": [idp.settings_entry()],
        }
    )
    assert calls["authlib_saml2_grant.settings.load_certificate"] == 1
    assert calls["cryptography.x509.load_der_x509_certificate"] == 1
    assert calls["AssertionVerifier.__init__"] == 1


class _RolloverIdP:
    """A settings entry pinning nine old certificates, then the signing one."""

    def __init__(self, idp):
        self.idp = idp
        self.old = [generate_key_pair("ec", common_name=f"Old key {i}")[1] for i in range(9)]

    def settings_entry(self):
        return {"entity_id": self.idp.entity_id, "certificates": [*self.old, self.idp.certificate]}


@pytest.fixture
def rollover_app(tmp_path, idp):
    with in_context(create_app(tmp_path, [_RolloverIdP(idp)])) as app:
        yield app


def test_keyinfo_certificate_tried_first(rollover_app, idp, monkeypatch):
    """With 10 pinned certificates, the matching one listed last, signxml runs once."""
    from signxml import XMLVerifier

    verifier = get_settings(rollover_app).verifier
    provider = verifier.trust.get(idp.entity_id)
    assert len(provider.certificates) == 10
    assert provider.certificates[-1] == idp.certificate
    assertions = [mint_for(idp) for _ in range(3)]
    calls = []
    original = XMLVerifier.verify

    def verify(self, data, **kwargs):
        calls.append(kwargs.get("x509_cert"))
        return original(self, data, **kwargs)

    monkeypatch.setattr(XMLVerifier, "verify", verify)
    client = rollover_app.test_client()
    for assertion in assertions:
        status, body = request_token(client, assertion)
        assert status == 200, body
    assert calls == [idp.certificate] * 3


def test_benchmarks_smoke():
    """The ``python -m benchmarks`` code paths run, with a tiny iteration count."""
    from benchmarks.runner import Plan
    from benchmarks.runner import run

    plan = Plan(
        micro_rounds=2,
        scaling_rounds=2,
        endpoint_requests=3,
        memory_count=20,
        traced_count=5,
        memory_warmup=5,
        time_cap=2.0,
    )
    report = run(plan, load=False, command="pytest")
    text = report.text()
    markdown = report.markdown()
    for title in ("Verification of one", "Token endpoint", "Memory growth", "Targets"):
        assert title in text
        assert title in markdown
    assert all(table.rows for table in report.tables)
