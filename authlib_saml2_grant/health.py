"""Operator checks of a running configuration: ``check`` and ``refresh-metadata``.

:func:`check_app` looks at a Flask app the way its grant will: its settings
load, each trusted IdP with its certificates (SHA-256 fingerprint, expiry),
where its keys come from (inline, a metadata file, a metadata URL) with the
age and ``validUntil`` of that metadata, and whether the replay cache answers.
:func:`refresh_app_metadata` fetches every metadata URL now and reports.

Each finding has a level; the worst is the exit status of the commands, for
monitoring: :data:`OK` 0, :data:`WARNING` 1, :data:`ERROR` 2.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field
from datetime import datetime
from datetime import timedelta
from datetime import timezone
from typing import Any

import click
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from flask import Flask
from flask import current_app
from flask.cli import AppGroup

from .errors import ConfigurationError
from .errors import describe_error
from .metadata import MetadataSource
from .metadata import RefreshingTrustStore
from .replay import MemoryReplayCache
from .trust import IdentityProvider
from .trust import TrustStore
from .trust import fingerprint

__all__ = [
    "OK",
    "WARNING",
    "ERROR",
    "Finding",
    "Report",
    "check_app",
    "flask_commands",
    "refresh_app_metadata",
]

OK = 0
WARNING = 1
ERROR = 2
LEVELS = {OK: "OK", WARNING: "WARNING", ERROR: "ERROR"}

#: A certificate expiring sooner than this is a warning.
CERTIFICATE_WARNING = timedelta(days=30)
#: Metadata whose ``validUntil`` is sooner than this is a warning.
METADATA_WARNING = timedelta(days=1)


@dataclass(frozen=True)
class Finding:
    """One line of a report: a level, what it is about, and what was found."""

    level: int
    subject: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"level": LEVELS[self.level], "subject": self.subject, "message": self.message}


@dataclass
class Report:
    """The findings of a command, in order; :attr:`status` is the worst level."""

    findings: list[Finding] = field(default_factory=list)

    def add(self, level: int, subject: str, message: str) -> None:
        self.findings.append(Finding(level, subject, message))

    @property
    def status(self) -> int:
        return max((finding.level for finding in self.findings), default=OK)

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": LEVELS[self.status],
            "findings": [finding.to_dict() for finding in self.findings],
        }

    def format(self) -> str:
        lines = [f"{LEVELS[f.level]:<8} {f.subject}: {f.message}" for f in self.findings]
        lines.append(f"Result: {LEVELS[self.status]}")
        return "\n".join(lines)


def check_app(app: Flask, now: datetime | None = None) -> Report:
    """Check ``app``'s SAML2 bearer configuration; see the module docstring."""
    from .extension import get_settings

    now = now or datetime.now(timezone.utc)
    report = Report()
    try:
        settings = get_settings(app)
    except (RuntimeError, ConfigurationError) as exc:
        report.add(ERROR, "settings", str(exc))
        return report
    report.add(OK, "settings", "every SAML2_BEARER_* setting is valid")
    trust = settings.verifier.trust
    sources: tuple[MetadataSource, ...] = ()
    providers: Iterable[IdentityProvider] = trust
    if isinstance(trust, RefreshingTrustStore):
        sources, providers = trust.sources, trust.static_providers
    if not len(trust) and not sources:
        report.add(WARNING, "identity providers", "none configured: every assertion is refused")
    for provider in providers:
        _check_provider(report, provider, _static_source(provider, now), now)
    for source in sources:
        _check_source(report, source, trust, now)
    with app.app_context():
        _check_replay_cache(report, settings.replay_cache)
    return report


def refresh_app_metadata(app: Flask) -> Report:
    """Fetch every metadata URL of ``app`` now; report each one's outcome."""
    from .extension import get_settings

    report = Report()
    try:
        trust = get_settings(app).verifier.trust
    except (RuntimeError, ConfigurationError) as exc:
        report.add(ERROR, "settings", str(exc))
        return report
    sources = trust.sources if isinstance(trust, RefreshingTrustStore) else ()
    if not sources:
        report.add(OK, "metadata", "no 'metadata_url' entry in SAML2_BEARER_IDENTITY_PROVIDERS")
    for source in sources:
        now = datetime.now(timezone.utc)
        if source.refresh(now):
            report.add(OK, source.url, f"fetched; {_snapshot_summary(source, now)}")
        else:
            level = WARNING if _usable(source, now) else ERROR
            kept = (
                f"keeping the copy loaded at {_when(source.snapshot.loaded_at, now)}; "
                f"{_snapshot_summary(source, now)}"
                if source.snapshot
                else "no copy is in force: its IdP is untrusted"
            )
            report.add(level, source.url, f"FAILED: {source.last_error}; {kept}")
    return report


#: ``flask saml2-bearer check`` and ``flask saml2-bearer refresh-metadata``,
#: added to every app :class:`~authlib_saml2_grant.SAML2Bearer` initialises.
flask_commands = AppGroup("saml2-bearer", help="SAML 2.0 bearer grant (RFC 7522) operations.")


@flask_commands.command("check")
@click.option("--json", "as_json", is_flag=True, help="print JSON for machines")
def _flask_check(as_json: bool) -> None:
    """Check settings, IdP certificates and metadata, and the replay cache.

    Exit status: 0 ok, 1 warnings, 2 errors.
    """
    _finish(check_app(current_app._get_current_object()), as_json)  # type: ignore[attr-defined]


@flask_commands.command("refresh-metadata")
@click.option("--json", "as_json", is_flag=True, help="print JSON for machines")
def _flask_refresh(as_json: bool) -> None:
    """Fetch every IdP metadata URL now and report.

    Exit status: 0 all fetched, 1 a fetch failed (last good copy kept), 2 an IdP
    has no usable copy.
    """
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    _finish(refresh_app_metadata(app), as_json)


def _finish(report: Report, as_json: bool) -> None:
    click.echo(json.dumps(report.to_dict(), indent=2) if as_json else report.format())
    raise SystemExit(report.status)


def _check_provider(report: Report, provider: IdentityProvider, origin: str, now: datetime) -> None:
    subject = f"IdP {provider.entity_id}"
    report.add(OK, subject, origin)
    certificates = provider.certificates
    usable = [c for c in certificates if c.not_valid_after_utc > now]
    for certificate in certificates:
        level, message = _certificate(certificate, now)
        if level == ERROR and usable:
            level, message = WARNING, message + " (another certificate is still valid)"
        report.add(level, subject, message)
    if provider.valid_until is not None:
        left = provider.valid_until - now
        level = ERROR if left <= timedelta(0) else WARNING if left < METADATA_WARNING else OK
        expired = " (expired: its assertions are refused)" if level == ERROR else ""
        report.add(
            level, subject, f"metadata validUntil {_when(provider.valid_until, now)}{expired}"
        )


def _certificate(certificate: x509.Certificate, now: datetime) -> tuple[int, str]:
    digest = fingerprint(certificate.public_bytes(Encoding.DER))
    not_after = certificate.not_valid_after_utc
    text = f"certificate SHA-256 {digest} notAfter {_when(not_after, now)}"
    if not_after <= now:
        return ERROR, text + " EXPIRED"
    if certificate.not_valid_before_utc > now:
        return WARNING, text + " (not valid yet)"
    if not_after - now < CERTIFICATE_WARNING:
        return WARNING, text + " (expires in less than 30 days)"
    return OK, text


def _static_source(provider: IdentityProvider, now: datetime) -> str:
    if provider.source is None:
        return "keys configured inline"
    try:
        written = datetime.fromtimestamp(os.stat(provider.source).st_mtime, timezone.utc)
    except OSError:
        return f"keys from metadata file {provider.source}"
    return f"keys from metadata file {provider.source}, written {_when(written, now)}"


def _check_source(report: Report, source: MetadataSource, trust: TrustStore, now: datetime) -> None:
    snapshot = source.snapshot
    if snapshot is None:
        report.add(
            ERROR,
            source.url,
            f"no copy could be fetched or read ({source.last_error}); its IdP is untrusted; "
            f"next attempt {_when(source.next_refresh, now)}",
        )
        return
    level = OK
    state = f"{snapshot.origin} copy loaded {_when(snapshot.loaded_at, now)}"
    if source.failures:
        level = WARNING
        state += f"; {source.failures} failed refreshes in a row, last: {source.last_error}"
    signed = "signed" if source.signer_certificate is not None else "not signature-checked"
    report.add(
        level,
        source.url,
        f"metadata URL ({signed}): {state}; next refresh {_when(source.next_refresh, now)}",
    )
    if source.signer_certificate is not None:
        level, message = _certificate(source.signer_certificate, now)
        report.add(level, source.url, "metadata signing " + message)
    for provider in snapshot.providers:
        if trust.get(provider.entity_id) is provider:
            _check_provider(report, provider, f"keys from metadata URL {source.url}", now)
        else:
            report.add(
                ERROR,
                f"IdP {provider.entity_id}",
                f"also trusted by another entry: {source.url} ignored",
            )


def _check_replay_cache(report: Report, cache: Any) -> None:
    name = type(cache).__name__
    if isinstance(cache, MemoryReplayCache):
        report.add(
            WARNING, "replay cache", f"{name}: protects one process only (use a shared store)"
        )
    ping = getattr(cache, "ping", None)
    if not callable(ping):
        report.add(OK, "replay cache", f"{name} has no ping(): not checked")
        return
    try:
        answered = ping()
    except Exception as exc:  # any failure of the store is the finding
        report.add(ERROR, "replay cache", f"{name} does not answer: {describe_error(exc)}")
        return
    if answered is False:
        report.add(ERROR, "replay cache", f"{name} does not answer")
    else:
        report.add(OK, "replay cache", f"{name} answers")


def _usable(source: MetadataSource, now: datetime) -> bool:
    snapshot = source.snapshot
    return snapshot is not None and (snapshot.valid_until is None or snapshot.valid_until > now)


def _snapshot_summary(source: MetadataSource, now: datetime) -> str:
    snapshot = source.snapshot
    if snapshot is None:  # pragma: no cover - only called with a snapshot
        return ""
    idps = ", ".join(
        f"{p.entity_id} [{', '.join(fp[:16] for fp in p.fingerprints)}]" for p in snapshot.providers
    )
    valid_until = _when(snapshot.valid_until, now) if snapshot.valid_until else "none"
    return f"IdPs {idps}; validUntil {valid_until}; next refresh {_when(source.next_refresh, now)}"


def _when(instant: datetime, now: datetime) -> str:
    """An instant in UTC, with how far it is from now (``in 3 d``, ``2 h ago``)."""
    seconds = (instant - now).total_seconds()
    span = abs(seconds)
    for unit, size in (("d", 86_400), ("h", 3600), ("min", 60)):
        if span >= size:
            amount = f"{span / size:.0f} {unit}"
            break
    else:
        amount = f"{span:.0f} s"
    relative = f"in {amount}" if seconds >= 0 else f"{amount} ago"
    stamp = instant.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{stamp} ({relative})"
