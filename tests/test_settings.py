"""The ``SAML2_BEARER_*`` settings: defaults, validation at start-up, parsed once per app."""

from __future__ import annotations

import base64
import logging
import re
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from lxml import etree

from authlib_saml2_grant import ConfigurationError
from authlib_saml2_grant import IdentityProvider
from authlib_saml2_grant import MemoryReplayCache
from authlib_saml2_grant import get_settings
from authlib_saml2_grant import settings as settings_module
from authlib_saml2_grant.settings import DEFAULTS
from authlib_saml2_grant.settings import load_settings
from authlib_saml2_grant.signature import DEFAULT_DIGEST_ALGORITHMS
from authlib_saml2_grant.signature import DEFAULT_SIGNATURE_ALGORITHMS

from .conftest import AUDIENCES
from .conftest import mint_for
from .helpers import ECDSA_SHA256
from .helpers import HMAC_SHA1
from .helpers import HMAC_SHA256
from .helpers import MD_NS
from .helpers import RSA_SHA1
from .helpers import RSA_SHA256
from .helpers import SHA1
from .helpers import SHA256
from .helpers import app_for
from .helpers import assert_rejected
from .helpers import entities_descriptor
from .helpers import metadata_with_key_of

#: A replay cache importable by string, for SAML2_BEARER_REPLAY_CACHE.
SHARED_CACHE = MemoryReplayCache(max_entries=10)


class NeedsArguments:
    def __init__(self, db):  # pragma: no cover - never instantiated
        self.db = db

    def add(self, key, expires_at):  # pragma: no cover
        return True


def load(**config):
    """load_settings with the required audiences and a replay cache (no warning)."""
    config.setdefault("SAML2_BEARER_AUDIENCES", AUDIENCES)
    config.setdefault("SAML2_BEARER_REPLAY_CACHE", MemoryReplayCache())
    return load_settings(config)


# -- defaults -------------------------------------------------------------------------


def test_defaults_table():
    """Every setting and its default, documented in one table."""
    assert dict(DEFAULTS) == {
        "SAML2_BEARER_AUDIENCES": None,
        "SAML2_BEARER_RECIPIENTS": None,
        "SAML2_BEARER_IDENTITY_PROVIDERS": (),
        "SAML2_BEARER_CLOCK_SKEW": 60,
        "SAML2_BEARER_MAX_ASSERTION_LIFETIME": 7200,
        "SAML2_BEARER_MAX_ASSERTION_SIZE": 131_072,
        "SAML2_BEARER_SIGNATURE_ALGORITHMS": DEFAULT_SIGNATURE_ALGORITHMS,
        "SAML2_BEARER_DIGEST_ALGORITHMS": DEFAULT_DIGEST_ALGORITHMS,
        "SAML2_BEARER_ISSUE_REFRESH_TOKEN": False,
        "SAML2_BEARER_REPLAY_CACHE": None,
        "SAML2_BEARER_CLAIMS": {},
        "SAML2_BEARER_LEGACY_CLIENT_ID": None,
        "SAML2_BEARER_MAX_REQUEST_SIZE": None,
        "SAML2_BEARER_MAX_REQUEST_PARAMETERS": 100,
        "SAML2_BEARER_RETRY_AFTER": 5,
        "SAML2_BEARER_METADATA_MIN_REFRESH": 300,
        "SAML2_BEARER_METADATA_MAX_REFRESH": 14_400,
        "SAML2_BEARER_METADATA_RETRY_MIN": 30,
        "SAML2_BEARER_METADATA_RETRY_MAX": 1_800,
        "SAML2_BEARER_METADATA_TIMEOUT": 10,
        "SAML2_BEARER_METADATA_MAX_SIZE": 16 << 20,
        "SAML2_BEARER_METADATA_CACHE_DIR": None,
    }


def test_default_algorithms_are_strong():
    """SHA-1, MD5, DSA and HMAC are never among the defaults."""
    for uri in (*DEFAULT_SIGNATURE_ALGORITHMS, *DEFAULT_DIGEST_ALGORITHMS):
        assert not re.search(r"sha1|md5|#dsa-|hmac", uri, re.IGNORECASE), uri
    assert RSA_SHA256 in DEFAULT_SIGNATURE_ALGORITHMS
    assert ECDSA_SHA256 in DEFAULT_SIGNATURE_ALGORITHMS
    assert SHA256 in DEFAULT_DIGEST_ALGORITHMS


def test_defaults_applied():
    """Only SAML2_BEARER_AUDIENCES is required; everything else has its default."""
    settings = load_settings({"SAML2_BEARER_AUDIENCES": AUDIENCES})
    verifier = settings.verifier
    assert verifier.audiences == frozenset(AUDIENCES)
    assert verifier.recipients == frozenset(AUDIENCES)
    assert len(verifier.trust) == 0
    assert verifier.clock_skew == timedelta(seconds=60)
    assert verifier.max_lifetime == timedelta(seconds=7200)
    assert verifier.max_size == 131_072
    assert verifier.signature_policy.signature_algorithms == DEFAULT_SIGNATURE_ALGORITHMS
    assert verifier.signature_policy.digest_algorithms == DEFAULT_DIGEST_ALGORITHMS
    assert isinstance(settings.replay_cache, MemoryReplayCache)
    assert settings.issue_refresh_token is False


def test_every_setting_read(idp):
    """Each SAML2_BEARER_* setting reaches the verifier."""
    cache = MemoryReplayCache()
    settings = load(
        SAML2_BEARER_AUDIENCES="https://as.example.net",
        SAML2_BEARER_RECIPIENTS=("https://as.example.net/token",),
        SAML2_BEARER_IDENTITY_PROVIDERS=[idp.settings_entry()],
        SAML2_BEARER_CLOCK_SKEW=0,
        SAML2_BEARER_MAX_ASSERTION_LIFETIME=300,
        SAML2_BEARER_MAX_ASSERTION_SIZE=4096,
        SAML2_BEARER_SIGNATURE_ALGORITHMS=["http://www.w3.org/2001/04/xmldsig-more#rsa-sha512"],
        SAML2_BEARER_DIGEST_ALGORITHMS=["http://www.w3.org/2001/04/xmlenc#sha512"],
        SAML2_BEARER_ISSUE_REFRESH_TOKEN=True,
        SAML2_BEARER_REPLAY_CACHE=cache,
    )
    verifier = settings.verifier
    assert verifier.audiences == frozenset(["https://as.example.net"])
    assert verifier.recipients == frozenset(["https://as.example.net/token"])
    assert verifier.trust.get(idp.entity_id).certificates == (idp.certificate,)
    assert verifier.clock_skew == timedelta(0)
    assert verifier.max_lifetime == timedelta(seconds=300)
    assert verifier.max_size == 4096
    assert verifier.signature_policy.signature_algorithms == (
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512",
    )
    assert verifier.signature_policy.digest_algorithms == (
        "http://www.w3.org/2001/04/xmlenc#sha512",
    )
    assert settings.replay_cache is cache
    assert settings.issue_refresh_token is True


# -- validation: fail fast, naming the key --------------------------------------------------

PEM_JUNK = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"
PRIVATE_KEY = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----"
NO_IDP_METADATA = f"<md:EntityDescriptor xmlns:md='{MD_NS}' entityID='https://x'/>"
DOCTYPE_METADATA = f"<!DOCTYPE x><md:EntityDescriptor xmlns:md='{MD_NS}' entityID='https://x'/>"

INVALID = [
    ("SAML2_BEARER_AUDIENCES", None),
    ("SAML2_BEARER_AUDIENCES", 123),
    ("SAML2_BEARER_AUDIENCES", ""),
    ("SAML2_BEARER_AUDIENCES", []),
    ("SAML2_BEARER_AUDIENCES", [""]),
    ("SAML2_BEARER_AUDIENCES", [1]),
    ("SAML2_BEARER_AUDIENCES", {"https://as.example.com": True}),
    ("SAML2_BEARER_AUDIENCES", b"https://as.example.com"),
    ("SAML2_BEARER_RECIPIENTS", []),
    ("SAML2_BEARER_RECIPIENTS", [""]),
    ("SAML2_BEARER_RECIPIENTS", 5),
    ("SAML2_BEARER_CLOCK_SKEW", "60"),
    ("SAML2_BEARER_CLOCK_SKEW", True),
    ("SAML2_BEARER_CLOCK_SKEW", -1),
    ("SAML2_BEARER_CLOCK_SKEW", 3601),
    ("SAML2_BEARER_CLOCK_SKEW", 1.5),
    ("SAML2_BEARER_CLOCK_SKEW", None),
    ("SAML2_BEARER_MAX_ASSERTION_LIFETIME", 0),
    ("SAML2_BEARER_MAX_ASSERTION_LIFETIME", 86_401),
    ("SAML2_BEARER_MAX_ASSERTION_LIFETIME", "3600"),
    ("SAML2_BEARER_MAX_ASSERTION_LIFETIME", timedelta(hours=1)),
    ("SAML2_BEARER_MAX_ASSERTION_SIZE", 100),
    ("SAML2_BEARER_MAX_ASSERTION_SIZE", 10**8),
    ("SAML2_BEARER_MAX_ASSERTION_SIZE", "big"),
    ("SAML2_BEARER_SIGNATURE_ALGORITHMS", ["urn:bogus"]),
    ("SAML2_BEARER_SIGNATURE_ALGORITHMS", "rsa-sha256"),
    ("SAML2_BEARER_SIGNATURE_ALGORITHMS", []),
    ("SAML2_BEARER_SIGNATURE_ALGORITHMS", [None]),
    ("SAML2_BEARER_SIGNATURE_ALGORITHMS", None),
    ("SAML2_BEARER_SIGNATURE_ALGORITHMS", [SHA256]),
    ("SAML2_BEARER_DIGEST_ALGORITHMS", ["http://www.w3.org/2001/04/xmldsig-more#md5x"]),
    ("SAML2_BEARER_DIGEST_ALGORITHMS", []),
    ("SAML2_BEARER_DIGEST_ALGORITHMS", ["http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"]),
    ("SAML2_BEARER_IDENTITY_PROVIDERS", "https://idp.example.com"),
    ("SAML2_BEARER_IDENTITY_PROVIDERS", {"entity_id": "https://idp.example.com"}),
    ("SAML2_BEARER_IDENTITY_PROVIDERS", None),
    ("SAML2_BEARER_IDENTITY_PROVIDERS", 42),
    ("SAML2_BEARER_IDENTITY_PROVIDERS", [42]),
    ("SAML2_BEARER_IDENTITY_PROVIDERS", ["https://idp.example.com"]),
    ("SAML2_BEARER_REPLAY_CACHE", "nonexistent_module_xyz:Cache"),
    ("SAML2_BEARER_REPLAY_CACHE", "authlib_saml2_grant.replay:NoSuchCache"),
    ("SAML2_BEARER_REPLAY_CACHE", "os:path"),
    ("SAML2_BEARER_REPLAY_CACHE", "tests.test_settings:NeedsArguments"),
    ("SAML2_BEARER_REPLAY_CACHE", 42),
    ("SAML2_BEARER_REPLAY_CACHE", object()),
    ("SAML2_BEARER_ISSUE_REFRESH_TOKEN", "yes"),
    ("SAML2_BEARER_ISSUE_REFRESH_TOKEN", 1),
    ("SAML2_BEARER_ISSUE_REFRESH_TOKEN", None),
]


@pytest.mark.parametrize(("key", "value"), INVALID)
def test_invalid_setting_names_key(key, value):
    """A bad setting fails at start-up with a ConfigurationError naming it."""
    with pytest.raises(ConfigurationError, match=re.escape(key)):
        load(**{key: value})


def test_missing_audiences():
    """SAML2_BEARER_AUDIENCES is required (:rfc:`7522#section-3` item 2 needs our identity)."""
    with pytest.raises(ConfigurationError, match="SAML2_BEARER_AUDIENCES"):
        load_settings({})


@pytest.mark.parametrize(
    "uri",
    [
        HMAC_SHA1,
        HMAC_SHA256,
        "http://www.w3.org/2001/04/xmldsig-more#hmac-sha512",
    ],
)
def test_hmac_refused(uri):
    """HMAC is never accepted: the pinned key is public (algorithm confusion)."""
    with pytest.raises(ConfigurationError, match="SAML2_BEARER_SIGNATURE_ALGORITHMS.*HMAC"):
        load(SAML2_BEARER_SIGNATURE_ALGORITHMS=[DEFAULT_SIGNATURE_ALGORITHMS[0], uri])


@pytest.mark.parametrize(
    ("signature_algorithm", "digest_algorithm"),
    [
        pytest.param("http://www.w3.org/2009/xmldsig11#dsa-sha256", None, id="dsa-sha256"),
        pytest.param(RSA_SHA1, None, id="rsa-sha1"),
        pytest.param("http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha1", None, id="ecdsa-sha1"),
        pytest.param(None, SHA1, id="sha1-digest"),
    ],
)
def test_weak_algorithms_warn(caplog, signature_algorithm, digest_algorithm):
    """Enabling a weak algorithm works, and is logged as weak."""
    config = {}
    if signature_algorithm:
        config["SAML2_BEARER_SIGNATURE_ALGORITHMS"] = [RSA_SHA256, signature_algorithm]
    if digest_algorithm:
        config["SAML2_BEARER_DIGEST_ALGORITHMS"] = [SHA256, digest_algorithm]
    with caplog.at_level(logging.WARNING):
        load(**config)
    assert any("Weak" in r.getMessage() for r in caplog.records)


def test_sha1_can_be_enabled():
    """SHA-1 is off by default but may be enabled, explicitly, for a legacy IdP."""
    settings = load(
        SAML2_BEARER_SIGNATURE_ALGORITHMS=[RSA_SHA1], SAML2_BEARER_DIGEST_ALGORITHMS=[SHA1]
    )
    assert settings.verifier.signature_policy.signature_algorithms == (RSA_SHA1,)
    assert settings.verifier.signature_policy.digest_algorithms == (SHA1,)


#: Invalid SAML2_BEARER_IDENTITY_PROVIDERS values, built from the test IdP and a
#: temporary directory; the last entry of each is the bad one.
INVALID_IDENTITY_PROVIDERS = {
    "no entity_id": lambda idp, tmp: [{"certificates": [idp.certificate_pem]}],
    "empty entity_id": lambda idp, tmp: [{"entity_id": "", "certificates": [idp.certificate_pem]}],
    "entity_id not a string": lambda idp, tmp: [
        {"entity_id": 5, "certificates": [idp.certificate_pem]}
    ],
    "no certificates": lambda idp, tmp: [{"entity_id": "https://x"}],
    "empty certificates": lambda idp, tmp: [{"entity_id": "https://x", "certificates": []}],
    "certificates an int": lambda idp, tmp: [{"entity_id": "https://x", "certificates": 42}],
    "certificates a dict": lambda idp, tmp: [
        {"entity_id": "https://x", "certificates": {"a": "b"}}
    ],
    "certificate an int": lambda idp, tmp: [{"entity_id": "https://x", "certificates": [123]}],
    "certificate None": lambda idp, tmp: [{"entity_id": "https://x", "certificates": [None]}],
    "certificate junk": lambda idp, tmp: [
        {"entity_id": "https://x", "certificates": ["not a certificate"]}
    ],
    "certificate empty": lambda idp, tmp: [{"entity_id": "https://x", "certificates": [""]}],
    "certificate bad PEM": lambda idp, tmp: [
        {"entity_id": "https://x", "certificates": [PEM_JUNK]}
    ],
    "private key": lambda idp, tmp: [{"entity_id": "https://x", "certificates": [PRIVATE_KEY]}],
    "certificate path missing": lambda idp, tmp: [
        {"entity_id": "https://x", "certificates": [str(tmp / "missing.xml")]}
    ],
    "two certificates in one PEM": lambda idp, tmp: [
        {"entity_id": "https://x", "certificates": [idp.certificate_pem * 2]}
    ],
    "metadata missing file": lambda idp, tmp: [{"metadata": str(tmp / "missing.xml")}],
    "metadata directory": lambda idp, tmp: [{"metadata": str(tmp)}],
    "metadata an int": lambda idp, tmp: [{"metadata": 42}],
    "metadata None": lambda idp, tmp: [{"metadata": None}],
    "metadata not XML": lambda idp, tmp: [{"metadata": "<md:EntityDescriptor"}],
    "metadata without IdP": lambda idp, tmp: [{"metadata": NO_IDP_METADATA}],
    "metadata with DOCTYPE": lambda idp, tmp: [{"metadata": DOCTYPE_METADATA}],
    "metadata not metadata": lambda idp, tmp: [{"metadata": "<a/>"}],
    "second entry bad": lambda idp, tmp: [idp.settings_entry(), {"entity_id": "https://x"}],
    "unknown key": lambda idp, tmp: [{**idp.settings_entry(), "certificate": idp.certificate_pem}],
    "metadata and certificates": lambda idp, tmp: [
        {"metadata": idp.metadata(), "certificates": [idp.certificate_pem]}
    ],
    "metadata lacks entity_id": lambda idp, tmp: [
        {"metadata": idp.metadata(), "entity_id": "https://x"}
    ],
}


@pytest.mark.parametrize("case", list(INVALID_IDENTITY_PROVIDERS))
def test_invalid_identity_provider(tmp_path, idp, case):
    """A bad IdP entry fails fast, naming the setting and the entry's index."""
    entries = INVALID_IDENTITY_PROVIDERS[case](idp, tmp_path)
    index = len(entries) - 1
    with pytest.raises(
        ConfigurationError, match=re.escape(f"SAML2_BEARER_IDENTITY_PROVIDERS[{index}]")
    ):
        load(SAML2_BEARER_IDENTITY_PROVIDERS=entries)


@pytest.mark.parametrize("how", ["twice", "entry and metadata", "provider objects"])
def test_duplicate_identity_provider(idp, how):
    """One entity ID configured twice is ambiguous: refused."""
    entries = {
        "twice": [idp.settings_entry(), idp.settings_entry()],
        "entry and metadata": [idp.settings_entry(), {"metadata": idp.metadata()}],
        "provider objects": [idp.identity_provider, idp.settings_entry()],
    }[how]
    with pytest.raises(ConfigurationError, match=r"SAML2_BEARER_IDENTITY_PROVIDERS.*twice"):
        load(SAML2_BEARER_IDENTITY_PROVIDERS=entries)


def test_configuration_error_is_value_error():
    """ConfigurationError is a ValueError, for callers that catch broadly."""
    assert issubclass(ConfigurationError, ValueError)


# -- certificates and identity providers -------------------------------------------------------


def _der_base64(idp) -> str:
    return base64.b64encode(idp.certificate.public_bytes(serialization.Encoding.DER)).decode()


#: Spellings of the test IdP's certificate; ``pem`` and ``der`` are files holding it.
CERTIFICATE_FORMS = {
    "PEM text": lambda idp, pem, der: idp.certificate_pem,
    "PEM text, indented": lambda idp, pem, der: "\n".join(
        "    " + line for line in idp.certificate_pem.splitlines()
    ),
    "PEM bytes": lambda idp, pem, der: idp.certificate_pem.encode(),
    "PEM file path": lambda idp, pem, der: str(pem),
    "PEM pathlib.Path": lambda idp, pem, der: pem,
    "PEM file path, padded": lambda idp, pem, der: f"  {pem}\n",
    "DER file path": lambda idp, pem, der: str(der),
    "bare Base64 DER": lambda idp, pem, der: _der_base64(idp),
    "bare Base64 DER, wrapped": lambda idp, pem, der: "\n".join(
        _der_base64(idp)[i : i + 64] for i in range(0, 2000, 64)
    ),
    "certificate object": lambda idp, pem, der: idp.certificate,
}


@pytest.mark.parametrize("form", list(CERTIFICATE_FORMS))
def test_certificate_forms(tmp_path, idp, form):
    """Certificates as PEM text, PEM or DER file path, bare Base64 DER, or objects."""
    pem, der = tmp_path / "idp.pem", tmp_path / "idp.der"
    pem.write_text(idp.certificate_pem)
    der.write_bytes(idp.certificate.public_bytes(serialization.Encoding.DER))
    certificate = CERTIFICATE_FORMS[form](idp, pem, der)
    for certificates in ([certificate], certificate, (certificate,)):
        if not isinstance(certificate, str) and certificates is certificate:
            continue
        settings = load(
            SAML2_BEARER_IDENTITY_PROVIDERS=[
                {"entity_id": idp.entity_id, "certificates": certificates}
            ]
        )
        assert settings.verifier.trust.get(idp.entity_id).certificates == (idp.certificate,)


def test_certificate_file_path_end_to_end(tmp_path, idp):
    """An IdP pinned by certificate file path verifies its assertions."""
    path = tmp_path / "idp.pem"
    path.write_text(idp.certificate_pem)
    entry = {"entity_id": idp.entity_id, "certificates": [str(path)]}
    with app_for(tmp_path, [], SAML2_BEARER_IDENTITY_PROVIDERS=[entry]) as h:
        status, body = h.token(mint_for(idp))
        assert status == 200, body


def test_identity_provider_objects(idp, ec_idp):
    """IdentityProvider objects may be listed as they are."""
    settings = load(
        SAML2_BEARER_IDENTITY_PROVIDERS=[idp.identity_provider, ec_idp.settings_entry()]
    )
    trust = settings.verifier.trust
    assert len(trust) == 2
    assert isinstance(trust.get(ec_idp.entity_id), IdentityProvider)


def test_metadata_entry_file(tmp_path, idp):
    """{"metadata": path} reads the IdP's entity ID and signing certificates."""
    path = tmp_path / "metadata.xml"
    path.write_bytes(idp.metadata())
    provider = load(SAML2_BEARER_IDENTITY_PROVIDERS=[{"metadata": str(path)}]).verifier.trust.get(
        idp.entity_id
    )
    assert provider.certificates == (idp.certificate,)


def test_metadata_entry_pathlib(tmp_path, idp):
    """{"metadata": pathlib.Path} works like a string path."""
    path = tmp_path / "metadata.xml"
    path.write_bytes(idp.metadata())
    settings = load(SAML2_BEARER_IDENTITY_PROVIDERS=[{"metadata": path}])
    assert settings.verifier.trust.get(idp.entity_id).certificates == (idp.certificate,)


def test_metadata_aggregate_trusts_every_idp(idp, ec_idp):
    """An EntitiesDescriptor without 'entity_id' trusts every IdP it lists."""
    entry = {"metadata": entities_descriptor(idp.metadata(), ec_idp.metadata())}
    trust = load(SAML2_BEARER_IDENTITY_PROVIDERS=[entry]).verifier.trust
    assert {p.entity_id for p in trust} == {idp.entity_id, ec_idp.entity_id}


def test_metadata_entity_id_selects_one_idp(tmp_path, idp, ec_idp):
    """With 'entity_id', only that IdP of a federation's metadata is trusted."""
    metadata = entities_descriptor(idp.metadata(), ec_idp.metadata())
    entry = {"metadata": metadata, "entity_id": ec_idp.entity_id}
    with app_for(tmp_path, [], SAML2_BEARER_IDENTITY_PROVIDERS=[entry]) as h:
        assert [p.entity_id for p in get_settings(h.app).verifier.trust] == [ec_idp.entity_id]
        status, body = h.token(mint_for(ec_idp))
        assert status == 200, body
        status, body = h.token(mint_for(idp))
        assert_rejected(status, body, h.reasons, "issuer_unknown")


def test_identity_provider_loads_certificates(idp):
    """IdentityProvider accepts PEM text like the settings do, and refuses junk."""
    provider = IdentityProvider(idp.entity_id, (idp.certificate_pem,))
    assert provider.certificates == (idp.certificate,)
    with pytest.raises(ConfigurationError):
        IdentityProvider(idp.entity_id, ("junk",))
    with pytest.raises(ConfigurationError):
        IdentityProvider(idp.entity_id, ())
    with pytest.raises(ConfigurationError):
        IdentityProvider("", (idp.certificate,))


def test_metadata_ignores_encryption_keys(idp, ec_idp):
    """Only signing KeyDescriptors (or ones without ``use``) are trusted to sign."""
    root = metadata_with_key_of(idp, ec_idp, use="encryption")
    settings = load(SAML2_BEARER_IDENTITY_PROVIDERS=[{"metadata": etree.tostring(root)}])
    assert settings.verifier.trust.get(idp.entity_id).certificates == (idp.certificate,)


def test_empty_identity_providers_warn(caplog):
    """No IdP configured is allowed (a subclass may resolve them) but logged."""
    with caplog.at_level(logging.WARNING):
        load()
    assert any("SAML2_BEARER_IDENTITY_PROVIDERS is empty" in r.getMessage() for r in caplog.records)


# -- replay cache ------------------------------------------------------------------------


def test_replay_cache_import_string_class():
    """An import string naming a class is instantiated without arguments."""
    cache = load(
        SAML2_BEARER_REPLAY_CACHE="authlib_saml2_grant.replay:MemoryReplayCache"
    ).replay_cache
    assert isinstance(cache, MemoryReplayCache)
    dotted = load(
        SAML2_BEARER_REPLAY_CACHE="authlib_saml2_grant.replay.MemoryReplayCache"
    ).replay_cache
    assert isinstance(dotted, MemoryReplayCache)
    assert dotted is not cache


def test_replay_cache_import_string_object():
    """An import string naming an object uses that very object."""
    cache = load(SAML2_BEARER_REPLAY_CACHE="tests.test_settings:SHARED_CACHE").replay_cache
    assert cache is SHARED_CACHE


def test_replay_cache_object():
    """Any object with ``add(key, expires_at)`` is a replay cache."""

    class Cache:
        def add(self, key, expires_at):  # pragma: no cover
            return True

    cache = Cache()
    assert load(SAML2_BEARER_REPLAY_CACHE=cache).replay_cache is cache


# -- parsed once per app ---------------------------------------------------------------------


def test_requests_do_not_parse_settings(tmp_path, idp, monkeypatch):
    """Token requests use the prepared settings; configuration is never parsed again."""
    with app_for(tmp_path, [idp]) as h:

        def fail(*args, **kwargs):  # pragma: no cover - must not run
            raise AssertionError("settings parsed during a request")

        monkeypatch.setattr(settings_module, "load_settings", fail)
        monkeypatch.setattr(settings_module, "load_certificate", fail)
        monkeypatch.setattr(settings_module, "load_metadata", fail)
        for _ in range(2):
            status, body = h.token(mint_for(idp))
            assert status == 200, body
