"""Strict decoding and hardened parsing of the ``assertion`` parameter.

:rfc:`7522#section-2.1` sends the assertion base64url-encoded without padding;
real clients also send standard Base64, padded or not, and sometimes
URL-encoded twice. Each of those spellings is accepted deliberately, and
nothing else: whitespace inside the data, foreign characters, mixed alphabets,
misplaced padding and non-canonical trailing bits are refused, because
:func:`base64.b64decode` would silently skip them.

The XML is parsed once by a hardened lxml parser (no entities, no network, no
DTD, no huge trees); a DOCTYPE, a relative namespace URI, an encoding other
than UTF-8 and more than one root are refused.
"""

from __future__ import annotations

import base64
import binascii
import re
import sys
import threading
from collections.abc import Callable
from collections.abc import Mapping
from datetime import datetime
from datetime import timezone
from typing import cast
from urllib.parse import unquote

from lxml import etree

from .errors import AssertionRejected

__all__ = [
    "check_size",
    "SAML_NS",
    "DS_NS",
    "NAMESPACES",
    "ASSERTION_TAG",
    "RESPONSE_TAG",
    "decode_assertion",
    "parse_xml",
    "parse_instant",
    "parse_datetime",
    "element_text",
    "hardened_parser",
    "qname",
    "element_xpath",
    "string_xpath",
]

#: SAML 2.0 assertion namespace.
SAML_NS = "urn:oasis:names:tc:SAML:2.0:assertion"
#: SAML 2.0 protocol namespace (``Response``).
SAMLP_NS = "urn:oasis:names:tc:SAML:2.0:protocol"
#: SAML 2.0 metadata namespace.
MD_NS = "urn:oasis:names:tc:SAML:2.0:metadata"
#: XML-DSig namespace.
DS_NS = "http://www.w3.org/2000/09/xmldsig#"
#: XML Schema instance namespace.
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"

NAMESPACES = {"saml": SAML_NS, "samlp": SAMLP_NS, "md": MD_NS, "ds": DS_NS, "xsi": XSI_NS}

#: Clark name of ``saml:Assertion``, the only root element the verifier accepts.
ASSERTION_TAG = f"{{{SAML_NS}}}Assertion"
#: Clark name of ``samlp:Response``, the root of a Web SSO response (:mod:`~.response`).
RESPONSE_TAG = f"{{{SAMLP_NS}}}Response"

_ALPHANUMERIC = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_STD_ALPHABET = _ALPHANUMERIC + b"+/"
_URL_ALPHABET = _ALPHANUMERIC + b"-_"
_URL_TO_STD = bytes.maketrans(b"-_", b"+/")
_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")

# A namespace URI without a scheme is relative: libxml2's canonicalization
# fails or voids on it ("void canonicalization"), so it is refused up front.
_ABSOLUTE_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
# Every namespace declaration whose raw value does not start with a scheme.
# Character references start with "&", so a declaration this misses has an
# absolute URI; a hit (including xmlns="") only triggers the exact check.
_SUSPECT_NAMESPACE = re.compile(rb"""xmlns(?::[^\s=]+)?\s*=\s*["'](?![A-Za-z][A-Za-z0-9+.-]*:)""")
# libxml2 opens the file named by a DOCTYPE's external subset or parameter
# entity even with load_dtd=False and resolve_entities=False, and decodes any
# declared encoding (UTF-7 can spell "<!DOCTYPE" without a "<" byte). So the
# document is decoded as UTF-8 whatever it declares, a declaration of another
# encoding is refused, and a DOCTYPE is refused before libxml2 sees the bytes.
_DOCTYPE = b"<!DOCTYPE"
_DECLARED_ENCODING = re.compile(
    rb"(?:\xef\xbb\xbf)?<\?xml[^>]*?\sencoding\s*=\s*[\"']([^\"']*)[\"']"
)
#: Holds this thread's hardened parser (``.parser``); see :func:`hardened_parser`.
_thread_parsers = threading.local()


class _NoExternalResources(etree.Resolver):
    """Resolves every external DTD or entity to nothing: no file, no network."""

    # lxml calls resolve(system_url, public_id, context); lxml-stubs 0.5 omit context.
    def resolve(  # type: ignore[override]
        self, system_url: str | None, public_id: str | None, context: object
    ) -> object:
        return self.resolve_string("", context, base_url=None)


def qname(namespace: str, name: str) -> str:
    """Clark notation ``{namespace}name`` used by lxml."""
    return f"{{{namespace}}}{name}"


def element_xpath(
    path: str, namespaces: Mapping[str, str] | None = None
) -> Callable[..., list[etree._Element]]:
    """Compile, once, an XPath expression that selects elements.

    The result is the :class:`lxml.etree.XPath` object itself; only its type
    says what a node-set expression of elements returns.
    """
    return cast("Callable[..., list[etree._Element]]", etree.XPath(path, namespaces=namespaces))


def string_xpath(
    path: str, namespaces: Mapping[str, str] | None = None
) -> Callable[..., list[str]]:
    """Compile, once, an XPath expression that selects attribute values (strings)."""
    return cast("Callable[..., list[str]]", etree.XPath(path, namespaces=namespaces))


def hardened_parser() -> etree.XMLParser:
    """This thread's hardened lxml parser: no entities, network, DTD or huge trees."""
    parser = getattr(_thread_parsers, "parser", None)
    if parser is None:
        parser = etree.XMLParser(
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            dtd_validation=False,
            huge_tree=False,
            remove_blank_text=False,
            collect_ids=False,
            encoding="utf-8",
        )
        parser.resolvers.add(_NoExternalResources())
        _thread_parsers.parser = parser
    return parser


def decode_assertion(value: str, max_size: int, line_breaks: bool = False) -> bytes:
    """Decode the ``assertion`` parameter into XML bytes.

    :param value: the parameter as received in the form.
    :param max_size: the largest accepted parameter, in bytes; checked before
        any decoding work.
    :param line_breaks: accept CR and LF between the Base64 characters, as
        RFC 2045 Base64 has them (76-character lines): the SAML HTTP-POST
        binding (bindings 3.5.4) encodes a Web SSO Response that way, and
        clients pass the ``SAMLResponse`` value on. Never for a bare
        assertion (:rfc:`7522#section-2.1`).
    :raise AssertionRejected: ``assertion_too_large`` or ``encoding_invalid``.
    """
    check_size(len(value), max_size)
    text = value.strip(" \t\r\n")
    if "%" in text:
        # Some clients (Salesforce among them) URL-encode the Base64 twice.
        if _PERCENT.search(text):
            raise _encoding("a percent sign not followed by two hex digits")
        try:
            text = unquote(text, errors="strict")
        except UnicodeDecodeError as exc:
            raise _encoding("a percent-escape that is not UTF-8") from exc
    if line_breaks:
        text = text.replace("\r", "").replace("\n", "")
    if not text.isascii():
        raise _encoding("non-ASCII characters")
    raw = text.encode("ascii")
    body = raw.rstrip(b"=")
    padding = len(raw) - len(body)
    # bytes.translate(None, alphabet) deletes the alphabet: what is left is foreign.
    if not body.translate(None, _URL_ALPHABET):
        body = body.translate(_URL_TO_STD)
    elif body.translate(None, _STD_ALPHABET) or padding > 2:
        raise _encoding("characters outside one Base64 alphabet")
    if not body:
        raise _encoding("an empty value")
    if len(body) % 4 == 1 or (padding and len(raw) % 4):
        raise _encoding("a length or padding that no Base64 encoding produces")
    body += b"=" * (-len(body) % 4)
    try:
        data = binascii.a2b_base64(body)  # the alphabet was checked above
        # Only the last group can carry unused bits; they must be zero.
        if base64.b64encode(binascii.a2b_base64(body[-4:])) != body[-4:]:
            raise ValueError("non-canonical trailing bits")
    except (binascii.Error, ValueError) as exc:
        raise _encoding(str(exc)) from exc
    return data


def check_size(size: int, max_size: int) -> None:
    """Refuse an assertion larger than ``max_size`` bytes, before any work on it.

    :raise AssertionRejected: ``assertion_too_large``.
    """
    if size > max_size:
        raise AssertionRejected(
            "assertion_too_large",
            "The assertion exceeds the configured size limit",
            limit=max_size,
            size=size,
        )


def _encoding(problem: str) -> AssertionRejected:
    return AssertionRejected(
        "encoding_invalid",
        f"The assertion parameter is not valid Base64: {problem}",
        problem=problem,
    )


def parse_xml(data: bytes) -> etree._Element:
    """Parse XML bytes with the hardened parser and return the root element.

    :raise AssertionRejected: ``xml_malformed``, ``doctype_forbidden`` or
        ``namespace_invalid``.
    """
    if data[:2] in (b"\xff\xfe", b"\xfe\xff") or data[:1] == b"\x00" or data[1:2] == b"\x00":
        raise AssertionRejected("xml_malformed", "The assertion is not UTF-8 encoded XML")
    declared = _DECLARED_ENCODING.match(data)
    if declared and declared.group(1).upper() not in (b"UTF-8", b"UTF8"):
        raise AssertionRejected(
            "xml_malformed",
            "The assertion declares an encoding other than UTF-8",
            encoding=declared.group(1)[:40].decode("ascii", "replace"),
        )
    if _DOCTYPE in data:  # before libxml2 can open anything the DOCTYPE names
        raise AssertionRejected("doctype_forbidden", "The assertion carries a DOCTYPE")
    try:  # decoded as UTF-8 whatever it declares; invalid UTF-8 is refused
        root = etree.fromstring(data, parser=hardened_parser())
    except (etree.XMLSyntaxError, ValueError) as exc:
        raise AssertionRejected(
            "xml_malformed", "The assertion is not well-formed XML", error=str(exc)[:200]
        ) from exc
    docinfo = root.getroottree().docinfo
    if (
        docinfo.doctype  # type: ignore[union-attr]  # lxml-stubs 0.5 lack DocInfo.doctype
        or docinfo.internalDTD is not None
        or docinfo.externalDTD is not None
    ):
        raise AssertionRejected("doctype_forbidden", "The assertion carries a DOCTYPE")
    if (docinfo.encoding or "UTF-8").upper() not in ("UTF-8", "UTF8"):
        raise AssertionRejected(
            "xml_malformed",
            "The assertion declares an encoding other than UTF-8",
            encoding=docinfo.encoding,
        )
    if _SUSPECT_NAMESPACE.search(data):  # cheap and conservative; exact check below
        for _event, (_prefix, uri) in etree.iterwalk(root, events=("start-ns",)):
            if uri and not _ABSOLUTE_URI.match(uri):
                raise AssertionRejected(
                    "namespace_invalid",
                    "The assertion declares a relative namespace URI",
                    namespace=uri[:200],
                )
    return root


def parse_instant(value: str | None, attribute: str) -> datetime | None:
    """Parse a SAML ``xs:dateTime`` in UTC (``Z``), per SAML core 1.3.3.

    :return: an aware UTC datetime, or ``None`` when ``value`` is ``None``.
    :raise AssertionRejected: ``time_malformed``.
    """
    if value is None:
        return None
    match = _INSTANT.fullmatch(value)
    try:
        if match is None:
            raise ValueError("not a UTC xs:dateTime")
        if _FROMISOFORMAT_Z:  # Python 3.11+: C parser, any number of fraction digits
            return datetime.fromisoformat(value)
        return _from_match(match)
    except ValueError as exc:
        raise AssertionRejected(
            "time_malformed",
            f"{attribute} is not a valid UTC xs:dateTime",
            attribute=attribute,
            value=value[:64],
        ) from exc


def parse_datetime(value: str) -> datetime:
    """A lenient ISO 8601 date and time as an aware UTC datetime: ``Z`` or an
    offset, or no zone (read as UTC). For metadata ``validUntil`` and command
    options; assertion times go through the strict :func:`parse_instant`.

    :raise ValueError: when it is not a date and time.
    """
    text = value.strip()
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    instant = datetime.fromisoformat(text)
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=timezone.utc)
    return instant.astimezone(timezone.utc)


def _from_match(match: re.Match[str]) -> datetime:
    year, month, day, hour, minute, second = map(int, match.group(1, 2, 3, 4, 5, 6))
    fraction = match.group(7)
    microsecond = int(fraction[:6].ljust(6, "0")) if fraction else 0
    return datetime(year, month, day, hour, minute, second, microsecond, tzinfo=timezone.utc)


_INSTANT = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?Z", re.ASCII)
_FROMISOFORMAT_Z = sys.version_info >= (3, 11)


def element_text(element: etree._Element) -> str | None:
    """Return the whole text of a simple element, or ``None`` if it has children.

    A comment, processing instruction or child element inside a value that
    decides identity (CVE-2017-11427 family) makes the value ambiguous, so
    callers refuse it rather than read a truncated ``.text``.
    """
    if len(element):
        return None
    return element.text or ""
