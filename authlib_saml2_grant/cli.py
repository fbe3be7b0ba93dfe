"""Command line: ``saml2-bearer inspect`` and ``saml2-bearer mint``.

``inspect`` explains why the grant would accept or refuse an assertion: it
runs the same :class:`~authlib_saml2_grant.AssertionVerifier` the grant runs
(built from the options, or the very instance of a Flask app with ``--app``)
and prints every :rfc:`7522#section-3` check with its expected-versus-actual
values. It never records the assertion as used.

``mint`` signs a test assertion with :mod:`authlib_saml2_grant.testing`.

``check`` and ``refresh-metadata`` look at a Flask app's configuration
(:mod:`~authlib_saml2_grant.health`).

Exit status: 0 valid (or minted), 1 invalid, 2 usage error; ``check`` and
``refresh-metadata``: 0 ok, 1 warnings, 2 errors (or a usage error).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from datetime import timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import rsa

from . import __version__
from .errors import ConfigurationError
from .inspection import FAIL
from .inspection import NOT_RUN
from .inspection import PASS
from .inspection import Inspection
from .inspection import inspect_assertion
from .trust import IdentityProvider
from .trust import TrustStore
from .trust import load_certificate
from .trust import load_metadata
from .verifier import AssertionVerifier
from .xml import parse_datetime

__all__ = ["main", "build_parser", "UsageError"]

log = logging.getLogger(__name__)

EXIT_VALID = 0
EXIT_INVALID = 1
EXIT_USAGE = 2

#: The Audience of a minted assertion when no ``--audience`` is given.
MINT_AUDIENCE = "https://as.example.com"


class UsageError(Exception):
    """Bad arguments or unusable input files: exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    """The ``saml2-bearer`` parser: ``--version`` and the ``inspect`` and
    ``mint`` subcommands, every option with its help text and default.
    """
    parser = argparse.ArgumentParser(
        prog="saml2-bearer",
        description="Inspect and mint SAML 2.0 bearer assertions (RFC 7522).",
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"%(prog)s {__version__}",
        help="print the version and exit",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_inspect(commands)
    _add_mint(commands)
    _add_operations(commands)
    return parser


def _add_operations(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``check`` and ``refresh-metadata`` (:mod:`~.health`); also ``flask saml2-bearer ...``."""
    for name, summary, handler in (
        (
            "check",
            "check settings, IdP certificates and metadata, and the replay cache "
            "(exit 0 ok, 1 warnings, 2 errors)",
            check_command,
        ),
        (
            "refresh-metadata",
            "fetch every IdP metadata URL now and report (exit 0 ok, 1 a fetch failed, "
            "2 an IdP has no usable metadata)",
            refresh_metadata_command,
        ),
    ):
        p = commands.add_parser(name, help=summary, description=summary[0].upper() + summary[1:])
        p.add_argument(
            "--app", required=True, metavar="IMPORT", help="the Flask app (e.g. example_app)"
        )
        p.add_argument("--json", action="store_true", help="print JSON for machines")
        p.set_defaults(handler=handler)


# -- check, refresh-metadata ---------------------------------------------------


def check_command(args: argparse.Namespace) -> int:
    from .health import check_app

    return _report(args, check_app)


def refresh_metadata_command(args: argparse.Namespace) -> int:
    from .health import refresh_app_metadata

    return _report(args, refresh_app_metadata)


def _report(args: argparse.Namespace, run: Any) -> int:
    from flask.cli import NoAppException
    from flask.cli import ScriptInfo

    from .health import ERROR
    from .health import Report

    try:
        report = run(ScriptInfo(app_import_path=args.app).load_app())
    except NoAppException as exc:
        raise UsageError(str(exc)) from exc
    except ConfigurationError as exc:  # the app factory's init_app refused a setting
        report = Report()
        report.add(ERROR, "settings", str(exc))
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.format())
    return int(report.status)


def _add_inspect(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = commands.add_parser(
        "inspect",
        help="explain why an assertion is accepted or refused",
        description="Run every RFC 7522 section 3 check with the grant's verifier and print "
        "each result with expected and actual values. Replay is never recorded.",
    )
    p.add_argument(
        "assertion", help="file with the assertion (base64url, Base64 or XML); - = stdin"
    )
    trust = p.add_argument_group(
        "trust",
        "The trusted identity providers: --metadata, --certificate with --issuer, or --app.",
    )
    trust.add_argument(
        "--metadata",
        action="append",
        default=[],
        metavar="FILE",
        help="SAML 2.0 metadata file; trust each IdP it describes with its signing "
        "certificates (repeatable)",
    )
    trust.add_argument(
        "--certificate",
        action="append",
        default=[],
        metavar="PEM_FILE",
        help="trust this PEM signing certificate for the --issuer given at the same position "
        "(repeatable)",
    )
    trust.add_argument(
        "--issuer",
        action="append",
        default=[],
        metavar="ENTITY_ID",
        help="the IdP entity ID (the assertion's Issuer) of the matching --certificate; "
        "one --issuer applies to every --certificate (repeatable)",
    )
    trust.add_argument(
        "--app",
        metavar="IMPORT",
        help="use the verifier of this Flask app (e.g. example_app), as its grant does",
    )
    p.add_argument(
        "--audience",
        action="append",
        default=[],
        help="accepted Audience, this server's identity (repeatable; required unless --app, "
        "whose audiences it then overrides)",
    )
    p.add_argument(
        "--recipient",
        action="append",
        default=[],
        help="accepted SubjectConfirmationData Recipient, the token endpoint URL "
        "(repeatable; default: the accepted audiences; with --app, the app's recipients)",
    )
    p.add_argument(
        "--client-id",
        metavar="CLIENT_ID",
        help="the OAuth client that would send the assertion: check that the IdP serves it "
        "(the IdP entry's client_ids; default: not checked)",
    )
    limits = p.add_argument_group("limits", "Ignored with --app: the app's settings apply.")
    limits.add_argument(
        "--clock-skew",
        type=int,
        default=60,
        metavar="SECONDS",
        help="tolerated clock difference with the IdP (default: %(default)s)",
    )
    limits.add_argument(
        "--max-lifetime",
        type=int,
        default=7200,
        metavar="SECONDS",
        help="longest accepted window from IssueInstant to any NotOnOrAfter (default: %(default)s)",
    )
    limits.add_argument(
        "--max-size",
        type=int,
        default=131_072,
        metavar="BYTES",
        help="largest accepted assertion parameter, before decoding (default: %(default)s)",
    )
    p.add_argument("--now", type=_instant, help="verify at this ISO 8601 time (default: now)")
    p.add_argument("--json", action="store_true", help="print JSON for machines")
    p.set_defaults(handler=inspect_command)


def _add_mint(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = commands.add_parser(
        "mint",
        help="sign a test assertion",
        description="Create a signed SAML 2.0 bearer assertion for tests; print it base64url.",
    )
    keys = p.add_argument_group("signing key", "Default: a throwaway pair generated for this run.")
    keys.add_argument(
        "--key",
        metavar="PEM_FILE",
        help="sign with this unencrypted PEM private key, RSA or EC (needs --certificate)",
    )
    keys.add_argument(
        "--certificate",
        metavar="PEM_FILE",
        help="the PEM certificate of --key, embedded in the signature's KeyInfo",
    )
    keys.add_argument(
        "--key-type",
        choices=("rsa", "ec"),
        default="rsa",
        help="type of the generated pair: rsa (RSA-SHA256) or ec (ECDSA-SHA256 on P-256) "
        "(default: %(default)s)",
    )
    keys.add_argument(
        "--write-key",
        metavar="FILE",
        help="save the generated private key here (PKCS#8 PEM, mode 0600)",
    )
    keys.add_argument(
        "--write-certificate",
        metavar="FILE",
        help="save the generated certificate here (PEM), to give inspect or the server",
    )
    p.add_argument(
        "--issuer",
        default="https://idp.example.com",
        help="the IdP entity ID, the Issuer (default: %(default)s)",
    )
    p.add_argument(
        "--subject", default="alice@example.com", help="the Subject's NameID (default: %(default)s)"
    )
    p.add_argument(
        "--name-id-format",
        default="urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
        help="the NameID Format (default: %(default)s)",
    )
    p.add_argument(
        "--audience",
        action="append",
        default=[],
        help=f"an Audience of the AudienceRestriction (repeatable; default: {MINT_AUDIENCE})",
    )
    p.add_argument(
        "--recipient",
        default="https://as.example.com/oauth/token",
        help="the SubjectConfirmationData Recipient, the token endpoint URL (default: %(default)s)",
    )
    p.add_argument(
        "--lifetime",
        type=int,
        default=300,
        metavar="SECONDS",
        help="from IssueInstant to NotOnOrAfter (default: %(default)s)",
    )
    p.add_argument(
        "--issue-instant",
        type=_instant,
        help="the IssueInstant, ISO 8601, UTC unless a zone is given (default: now)",
    )
    p.add_argument(
        "--id",
        dest="assertion_id",
        metavar="ID",
        help="the Assertion ID (default: a random one)",
    )
    p.add_argument(
        "--in-response-to",
        metavar="ID",
        help="add InResponseTo=ID to the SubjectConfirmationData, as a browser SSO response "
        "has; the grant refuses it (default: no InResponseTo)",
    )
    p.add_argument(
        "--attribute",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="add an attribute value to the AttributeStatement (repeatable; a repeated NAME "
        "gets several values)",
    )
    p.add_argument("--one-time-use", action="store_true", help="add a OneTimeUse condition")
    p.add_argument(
        "--response",
        choices=("response", "assertion", "both"),
        help="wrap the assertion in a Web SSO samlp:Response for grant_type=assertion "
        "(Salesforce's flow), signing the Response, the Assertion or both; printed as "
        "padded standard Base64 (default: a bare assertion, base64url)",
    )
    p.add_argument(
        "--destination",
        help="the Response Destination (with --response; default: the recipient)",
    )
    p.add_argument("--xml", action="store_true", help="print raw XML instead of base64url")
    p.set_defaults(handler=mint_command)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse printed the usage error or --help
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        return args.handler(args)
    except UsageError as exc:
        print(f"saml2-bearer {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


# -- inspect -----------------------------------------------------------------


def inspect_command(args: argparse.Namespace) -> int:
    data = _read_input(args.assertion)
    overrides: dict[str, Any] = {}
    if args.app:
        verifier = _app_verifier(args)
        # The app's settings, unless --audience/--recipient override them.
        overrides = {"audiences": args.audience or None, "recipients": args.recipient or None}
    else:
        verifier = _build_verifier(args)
    inspection = inspect_assertion(
        verifier, data, now=args.now, client_id=args.client_id, **overrides
    )
    if args.json:
        print(json.dumps(inspection.to_dict(), indent=2))
    else:
        print(format_inspection(inspection, args.assertion))
    return EXIT_VALID if inspection.valid else EXIT_INVALID


def _read_input(path: str) -> bytes:
    try:
        if path == "-":
            return sys.stdin.buffer.read()
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise UsageError(f"cannot read {path!r}: {exc.strerror}") from exc


def _build_verifier(args: argparse.Namespace) -> AssertionVerifier:
    if not args.audience:
        raise UsageError("give at least one --audience (the Audience this server accepts)")
    providers = _trusted_providers(args)
    if not providers:
        raise UsageError("give trust: --metadata FILE, or --certificate PEM --issuer ENTITY_ID")
    try:
        return AssertionVerifier(
            trust=TrustStore(providers),
            audiences=args.audience,
            recipients=args.recipient or None,
            clock_skew=args.clock_skew,
            max_lifetime=args.max_lifetime,
            max_size=args.max_size,
        )
    except ConfigurationError as exc:
        raise UsageError(str(exc)) from exc


def _trusted_providers(args: argparse.Namespace) -> list[IdentityProvider]:
    providers: list[IdentityProvider] = []
    try:
        for path in args.metadata:
            providers.extend(load_metadata(path))
        certificates = [load_certificate(path) for path in args.certificate]
    except ConfigurationError as exc:
        raise UsageError(str(exc)) from exc
    issuers = args.issuer
    if certificates or issuers:
        if len(issuers) == 1:
            issuers = issuers * len(certificates)
        if not certificates or len(issuers) != len(certificates):
            raise UsageError(
                "pair each --certificate with an --issuer (or give one --issuer for all)"
            )
        grouped: dict[str, list] = {}
        for issuer, certificate in zip(issuers, certificates, strict=True):
            grouped.setdefault(issuer, []).append(certificate)
        providers.extend(IdentityProvider(i, tuple(c)) for i, c in grouped.items())
    return providers


def _app_verifier(args: argparse.Namespace) -> AssertionVerifier:
    """The verifier instance a Flask app's grant uses, from its settings."""
    if args.metadata or args.certificate or args.issuer:
        raise UsageError("--app uses the app's trusted IdPs: drop --metadata/--certificate")
    from flask.cli import NoAppException
    from flask.cli import ScriptInfo

    from .extension import get_settings

    try:
        app = ScriptInfo(app_import_path=args.app).load_app()
    except NoAppException as exc:
        raise UsageError(str(exc)) from exc
    return get_settings(app).verifier


def _instant(value: str) -> datetime:
    try:
        return parse_datetime(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {value!r}") from None


_MARKS = {PASS: "PASS", FAIL: "FAIL", NOT_RUN: "not run"}


def format_inspection(inspection: Inspection, source: str = "-") -> str:
    """The human-readable report of ``inspect``."""
    lines = [
        f"Assertion: {'stdin' if source == '-' else source} "
        f"({inspection.input_format}, {inspection.input_size} bytes)",
        "",
        "RFC 7522 section 3 checks, in order:",
    ]
    for check in inspection.checks:
        mark = _MARKS.get(check.status, check.status)
        lines.append(f"  {mark:<8} {check.name:<21} {check.description}")
        if check.status == FAIL:
            lines.append(f"           reason: {check.reason}: {check.message}")
        for key, value in check.details.items():
            if (
                check.status == PASS
                or check.status == FAIL
                or key in ("input", "allowed_client_ids")
            ):
                lines.append(f"           {key.replace('_', ' ')}: {_show(value)}")
    lines.append("  not run  replay                item 6: inspect never checks nor records replay")
    lines.append("")
    failure = inspection.failure
    if failure is None:  # inspection.valid
        lines.append("Result: VALID. Verified assertion:")
        for key, value in inspection.assertion_fields().items():
            lines.append(f"  {key}: {_show(value)}")
    else:
        lines.append(f"Result: INVALID at check '{failure.check}' (reason {failure.reason})")
        lines.append("The grant answers the client with invalid_grant.")
    return "\n".join(lines)


def _show(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(_show(v) for v in value) if value else "(none)"
    if isinstance(value, dict):
        return "; ".join(f"{k}={_show(v)}" for k, v in value.items()) if value else "(none)"
    return "(none)" if value is None else str(value)


# -- mint --------------------------------------------------------------------


def mint_command(args: argparse.Namespace) -> int:
    from .testing import TestIdentityProvider

    if args.lifetime < 1:
        raise UsageError("--lifetime must be at least 1 second")
    key, certificate, key_type = _signing_key(args)
    idp = TestIdentityProvider(args.issuer, key_type=key_type, key=key, certificate=certificate)
    fields: dict[str, Any] = {
        "subject": args.subject,
        "name_id_format": args.name_id_format,
        "audience": args.audience or [MINT_AUDIENCE],
        "recipient": args.recipient,
        "lifetime": timedelta(seconds=args.lifetime),
        "attributes": _attributes(args.attribute),
        "one_time_use": args.one_time_use,
    }
    if args.issue_instant:
        fields["issue_instant"] = args.issue_instant
    if args.assertion_id:
        fields["assertion_id"] = args.assertion_id
    if args.in_response_to:
        fields["in_response_to"] = args.in_response_to
    if args.response:
        envelope = {"destination": args.destination or args.recipient}
        if args.xml:
            xml = idp.mint_response_xml(sign=args.response, response=envelope, **fields)
            print(xml.decode("utf-8"))
        else:
            print(idp.mint_response(sign=args.response, response=envelope, **fields))
    elif args.xml:
        print(idp.mint_xml(**fields).decode("utf-8"))
    else:
        print(idp.mint(**fields))
    return EXIT_VALID


def _signing_key(
    args: argparse.Namespace,
) -> tuple[rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, x509.Certificate, str]:
    from .testing import generate_key_pair

    if bool(args.key) != bool(args.certificate):
        raise UsageError("give both --key and --certificate, or neither")
    if args.key:
        if args.write_key or args.write_certificate:
            raise UsageError("--write-key/--write-certificate save a generated pair only")
        try:
            with open(args.key, "rb") as handle:
                key = serialization.load_pem_private_key(handle.read(), password=None)
            certificate = load_certificate(args.certificate)
        except (OSError, ValueError, TypeError) as exc:
            raise UsageError(f"cannot load the signing key: {exc}") from exc
        if isinstance(key, rsa.RSAPrivateKey):
            return key, certificate, "rsa"
        if isinstance(key, ec.EllipticCurvePrivateKey):
            return key, certificate, "ec"
        raise UsageError("--key must be an RSA or EC private key")
    key, certificate = generate_key_pair(args.key_type, common_name=args.issuer[:64])
    try:
        if args.write_key:
            _write(
                args.write_key,
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                ),
                0o600,
            )
        if args.write_certificate:
            _write(
                args.write_certificate, certificate.public_bytes(serialization.Encoding.PEM), 0o644
            )
    except OSError as exc:
        raise UsageError(f"cannot write {exc.filename!r}: {exc.strerror}") from exc
    return key, certificate, args.key_type


def _write(path: str, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _attributes(pairs: list[str]) -> dict[str, list[str]]:
    attributes: dict[str, list[str]] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise UsageError(f"--attribute needs NAME=VALUE, got {pair!r}")
        attributes.setdefault(name, []).append(value)
    return attributes
