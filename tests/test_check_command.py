"""``check`` and ``refresh-metadata``, as ``saml2-bearer ... --app IMPORT`` and as
``flask saml2-bearer ...``: every IdP with its certificates (SHA-256, notAfter),
where its keys come from and how old and how valid that metadata is, whether the
replay cache answers, and an exit status monitoring can use (0 ok, 1 warnings,
2 errors).

Certificates with the validity each case needs are generated at test time; the
metadata URL is served by the real local server of :mod:`tests.test_metadata`.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from datetime import timedelta
from datetime import timezone

import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from authlib_saml2_grant import MemoryReplayCache
from authlib_saml2_grant import SQLAlchemyReplayCache
from authlib_saml2_grant.cli import main
from authlib_saml2_grant.health import ERROR
from authlib_saml2_grant.health import OK
from authlib_saml2_grant.health import WARNING
from authlib_saml2_grant.health import check_app
from authlib_saml2_grant.testing import TestIdentityProvider
from authlib_saml2_grant.testing import generate_key_pair
from authlib_saml2_grant.trust import fingerprint

from .conftest import create_app
from .test_metadata import ENTITY_ID
from .test_metadata import metadata
from .test_metadata import metadata_app
from .test_metadata import server  # noqa: F401 - the fixture
from .test_metadata import signer  # noqa: F401 - the fixture
from .test_metadata import url_entry


def certificate(days_from: int, days_to: int):
    """A P-256 key and a self-signed certificate valid from ``days_from`` to
    ``days_to`` days from now (negative: in the past)."""
    return generate_key_pair(
        "ec",
        common_name="check test",
        valid_from=timedelta(days=days_from),
        valid_for=timedelta(days=days_to),
    )


def idp_with(entity_id: str, *validity: tuple[int, int]) -> dict:
    """An inline SAML2_BEARER_IDENTITY_PROVIDERS entry with certificates of these validities."""
    pems = [certificate(*days)[1].public_bytes(Encoding.PEM).decode() for days in validity]
    return {"entity_id": entity_id, "certificates": pems}


def sha256(cert: x509.Certificate) -> str:
    return fingerprint(cert.public_bytes(Encoding.DER))


def levels(report, subject_part: str) -> list[int]:
    return [f.level for f in report.findings if subject_part in f.subject]


def flask_cli(app, *args):
    result = app.test_cli_runner().invoke(args=["saml2-bearer", *args])
    return result.exit_code, result.output


def test_healthy_app_is_ok(tmp_path, server, signer, idp):  # noqa: F811
    """Inline IdP, metadata URL, SQL replay cache: exit 0, and the report names
    each certificate by SHA-256 fingerprint with its notAfter, the metadata
    source, its age and next refresh, and the replay cache answering."""
    server.serve(metadata(TestIdentityProvider(ENTITY_ID, key_type="ec"), signer=signer))
    entries = [idp.settings_entry(), url_entry(server, signer)]
    with metadata_app(tmp_path, server, signer, entries=entries) as harness:
        report = check_app(harness.app)
        assert report.status == OK, report.format()
        text = report.format()
        assert sha256(idp.certificate) in text
        assert sha256(signer.certificate) in text  # the metadata signing certificate
        assert "notAfter" in text and "keys configured inline" in text
        assert f"keys from metadata URL {server.url}" in text
        assert "network copy loaded" in text and "next refresh" in text
        assert "SQLAlchemyReplayCache answers" in text
        code, output = flask_cli(harness.app, "check")
        assert code == 0, output
        assert output.rstrip().endswith("Result: OK")
        code, output = flask_cli(harness.app, "check", "--json")
        assert (code, json.loads(output)["status"]) == (0, "OK")


def test_certificate_expiry_warnings_and_errors(tmp_path):
    """Under 30 days: WARNING (exit 1). Expired: ERROR (exit 2), unless another
    certificate of the IdP is still valid (a rollover): then WARNING."""
    soon = idp_with("https://soon.example", (-1, 10))
    rollover = idp_with("https://rollover.example", (-100, -1), (-1, 300))
    expired = idp_with("https://expired.example", (-100, -1))
    app = create_app(tmp_path, [], SAML2_BEARER_IDENTITY_PROVIDERS=[soon, rollover])
    report = check_app(app)
    assert report.status == WARNING, report.format()
    assert "expires in less than 30 days" in report.format()
    assert "EXPIRED (another certificate is still valid)" in report.format()
    assert flask_cli(app, "check")[0] == 1
    (tmp_path / "2").mkdir()
    app = create_app(tmp_path / "2", [], SAML2_BEARER_IDENTITY_PROVIDERS=[expired])
    report = check_app(app)
    assert report.status == ERROR
    assert levels(report, "https://expired.example") == [OK, ERROR]
    assert flask_cli(app, "check")[0] == 2


def test_metadata_file_valid_until(tmp_path):
    """A metadata file's validUntil: passed is an ERROR, within a day a WARNING;
    the file and its age are named."""
    late = TestIdentityProvider("https://late.example", key_type="ec")
    close = TestIdentityProvider("https://close.example", key_type="ec")
    now = datetime.now(timezone.utc)
    (tmp_path / "late.xml").write_bytes(metadata(late, valid_until=now - timedelta(hours=1)))
    (tmp_path / "close.xml").write_bytes(metadata(close, valid_until=now + timedelta(hours=2)))
    entries = [{"metadata": str(tmp_path / "late.xml")}, {"metadata": str(tmp_path / "close.xml")}]
    report = check_app(create_app(tmp_path, [], SAML2_BEARER_IDENTITY_PROVIDERS=entries))
    assert levels(report, "late.example")[-1] == ERROR
    assert levels(report, "close.example")[-1] == WARNING
    text = report.format()
    assert f"keys from metadata file {tmp_path / 'late.xml'}, written" in text
    assert "(expired: its assertions are refused)" in text


def test_replay_cache_that_does_not_answer(tmp_path, idp):
    """A replay store that cannot be reached (a database file in a folder that
    does not exist) is an ERROR; the in-memory cache answers but is a WARNING
    (it protects one process only)."""
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'missing' / 'replay.db'}")
    broken = SQLAlchemyReplayCache(engine, metadata=sa.MetaData())
    app = create_app(tmp_path, [idp], SAML2_BEARER_REPLAY_CACHE=broken)
    report = check_app(app)
    assert levels(report, "replay cache") == [ERROR]
    assert "SQLAlchemyReplayCache does not answer: OperationalError" in report.format()
    (tmp_path / "2").mkdir()
    app = create_app(tmp_path / "2", [idp], SAML2_BEARER_REPLAY_CACHE=MemoryReplayCache())
    assert levels(check_app(app), "replay cache") == [WARNING, OK]


def test_unreachable_metadata_url_is_an_error(tmp_path, server, signer):  # noqa: F811
    """A metadata URL with no copy at all (IdP down, no backing file): ERROR."""
    server.fail(503)
    with metadata_app(tmp_path, server, signer) as harness:
        report = check_app(harness.app)
        assert report.status == ERROR
        assert "no copy could be fetched or read" in report.format()
        assert "HTTP status 503" in report.format()


def test_refresh_metadata_command(tmp_path, server, signer):  # noqa: F811
    """``flask saml2-bearer refresh-metadata`` fetches now: ok with the new key's
    fingerprint (exit 0); the IdP down: FAILED, the last good copy kept (exit 1)."""
    old, new = (TestIdentityProvider(ENTITY_ID, key_type="ec") for _ in range(2))
    server.serve(metadata(old, signer=signer))
    with metadata_app(tmp_path, server, signer) as harness:
        server.serve(
            metadata(new, signer=signer, valid_until=datetime(2099, 1, 1, tzinfo=timezone.utc))
        )
        code, output = flask_cli(harness.app, "refresh-metadata")
        assert code == 0, output
        assert f"OK       {server.url}: fetched" in output
        assert sha256(new.certificate)[:16] in output and "validUntil 2099-01-01" in output
        server.fail(500)
        code, output = flask_cli(harness.app, "refresh-metadata", "--json")
        assert code == 1, output
        finding = json.loads(output)["findings"][0]
        assert finding["level"] == "WARNING"
        assert "FAILED: MetadataError: HTTP status 500" in finding["message"]
        assert "keeping the copy loaded at" in finding["message"]


def _app_module(tmp_path, body: str) -> str:
    """A module defining ``create_app()``, as ``--app`` imports it."""
    name = f"check_app_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text(
        "from flask import Flask\n"
        "from authlib_saml2_grant import SAML2Bearer, MemoryReplayCache\n\n\n"
        "def create_app():\n"
        f"    app = Flask(__name__, instance_path={str(tmp_path / 'instance')!r})\n"
        f"    app.config.update({body})\n"
        "    SAML2Bearer(app)\n"
        "    return app\n"
    )
    return f"{tmp_path / name}.py:create_app()"


def test_saml2_bearer_check_with_app(tmp_path, server, signer, capsys):  # noqa: F811
    """``saml2-bearer check --app`` and ``refresh-metadata --app`` load the app
    as ``inspect --app`` does; an app whose settings are refused is exit 2."""
    server.serve(metadata(TestIdentityProvider(ENTITY_ID, key_type="ec"), signer=signer))
    entry = url_entry(server, signer)
    good = _app_module(
        tmp_path,
        f"SAML2_BEARER_AUDIENCES=['https://as.example.com'], "
        f"SAML2_BEARER_IDENTITY_PROVIDERS=[{entry!r}], "
        "SAML2_BEARER_REPLAY_CACHE=MemoryReplayCache()",
    )
    assert main(["check", "--app", good]) == WARNING  # the in-memory replay cache
    output = capsys.readouterr().out
    assert f"keys from metadata URL {server.url}" in output
    assert main(["refresh-metadata", "--app", good, "--json"]) == OK
    assert json.loads(capsys.readouterr().out)["findings"][0]["level"] == "OK"
    bad = _app_module(tmp_path, "SAML2_BEARER_AUDIENCES=[], SAML2_BEARER_CLOCK_SKEW=-1")
    assert main(["check", "--app", bad]) == ERROR
    assert "ERROR    settings: SAML2_BEARER_AUDIENCES" in capsys.readouterr().out
