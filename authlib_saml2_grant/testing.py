"""Mint signed SAML 2.0 bearer assertions for tests and demos.

Use it in your own integration tests::

    from authlib_saml2_grant.testing import TestIdentityProvider

    idp = TestIdentityProvider("https://idp.example.com")
    app.config["SAML2_BEARER_IDENTITY_PROVIDERS"] = [idp.settings_entry()]
    assertion = idp.mint(
        subject="alice@example.com",
        audience="https://as.example.com",
        recipient="https://as.example.com/oauth/token",
    )
    client.post("/oauth/token", data={"grant_type": SAML2_BEARER_GRANT_TYPE,
                                      "assertion": assertion})

Every field is overridable; pass :data:`OMIT` to leave an element or
attribute out. Keys and certificates are generated in memory.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from datetime import datetime
from datetime import timedelta
from datetime import timezone
from typing import Any
from typing import cast

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from lxml import etree

from .response import SUCCESS
from .signature import sign_enveloped
from .trust import IdentityProvider
from .verifier import BEARER
from .xml import ASSERTION_TAG
from .xml import DS_NS
from .xml import MD_NS
from .xml import RESPONSE_TAG
from .xml import SAML_NS
from .xml import SAMLP_NS
from .xml import hardened_parser
from .xml import qname

__all__ = [
    "OMIT",
    "TestIdentityProvider",
    "build_assertion",
    "build_response",
    "encode_assertion",
    "generate_key_pair",
    "format_instant",
]

#: Pass as a field value to leave that element or attribute out.
OMIT: Any = type("Omit", (), {"__repr__": lambda self: "OMIT"})()

PASSWORD_PROTECTED_TRANSPORT = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
_SIGNATURE_ALGORITHMS = {
    "rsa": "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
    "ec": "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
}


def generate_key_pair(
    key_type: str = "rsa",
    common_name: str = "Test IdP",
    key_size: int = 2048,
    curve: ec.EllipticCurve | None = None,
    valid_for: timedelta = timedelta(days=365),
    valid_from: timedelta = timedelta(days=-1),
) -> tuple[rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A private key and a self-signed certificate for it.

    :param key_type: ``"rsa"`` or ``"ec"`` (P-256 unless ``curve`` is given).
    :param valid_for: the certificate's ``notAfter``, from now.
    :param valid_from: its ``notBefore``, from now (negative: in the past).
    """
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    if key_type == "rsa":
        key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    elif key_type == "ec":
        key = ec.generate_private_key(curve or ec.SECP256R1())
    else:
        raise ValueError("key_type must be 'rsa' or 'ec'")
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + valid_from)
        .not_valid_after(now + valid_for)
        .sign(key, hashes.SHA256())
    )
    return key, certificate


def format_instant(value: datetime) -> str:
    """Format a datetime as a SAML UTC ``xs:dateTime`` (``...Z``)."""
    value = value.astimezone(timezone.utc)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def encode_assertion(xml: bytes, urlsafe: bool = True, padding: bool = False) -> str:
    """Encode XML as the ``assertion`` parameter (base64url without padding by default)."""
    encoded = (base64.urlsafe_b64encode(xml) if urlsafe else base64.b64encode(xml)).decode()
    return encoded if padding else encoded.rstrip("=")


def _set(element: etree._Element, name: str, value: object) -> None:
    if value is not OMIT and value is not None:
        element.set(name, format_instant(value) if isinstance(value, datetime) else str(value))


def _child(
    parent: etree._Element, name: str, text: str | None = None, **attrs: object
) -> etree._Element:
    child = etree.SubElement(parent, qname(SAML_NS, name))
    if text is not None:
        child.text = text
    for key, value in attrs.items():
        _set(child, key, value)
    return child


def build_assertion(
    *,
    issuer: str = "https://idp.example.com",
    subject: str = "alice@example.com",
    audience: str | Iterable[str] | Iterable[Iterable[str]] = "https://as.example.com",
    recipient: str | None = "https://as.example.com/oauth/token",
    name_id_format: str | None = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
    assertion_id: str | None = None,
    issue_instant: datetime | str | None = None,
    lifetime: timedelta = timedelta(minutes=5),
    not_before: datetime | str | None = None,
    not_on_or_after: datetime | str | None = None,
    confirmation_not_on_or_after: datetime | str | None = None,
    confirmation_method: str = BEARER,
    in_response_to: str | None = OMIT,
    attributes: Mapping[str, str | Sequence[str]] | None = None,
    authn_statement: bool = True,
    authn_context_class_ref: str = PASSWORD_PROTECTED_TRANSPORT,
    session_index: str | None = "_session-1",
    one_time_use: bool = False,
    conditions: bool = True,
    version: str | None = "2.0",
    nsmap: Mapping[str | None, str] | None = None,
) -> etree._Element:
    """Build an unsigned ``saml:Assertion`` with a signature placeholder after ``Issuer``.

    ``audience`` may be a string, a list (one AudienceRestriction with several
    Audiences), or a list of lists (several AudienceRestrictions). Times are
    datetimes, or strings written as they are (to test malformed values).
    """
    now = datetime.now(timezone.utc)
    issue_instant = now if issue_instant is None else issue_instant
    base = issue_instant if isinstance(issue_instant, datetime) else now
    if not_before is None:
        not_before = base - timedelta(seconds=30)
    if not_on_or_after is None:
        not_on_or_after = base + lifetime
    if confirmation_not_on_or_after is None:
        confirmation_not_on_or_after = not_on_or_after
    # lxml takes None (the default namespace) as a prefix; lxml-stubs 0.5 do not.
    root = etree.Element(ASSERTION_TAG, nsmap=nsmap or {"saml": SAML_NS})  # type: ignore[arg-type]
    _set(root, "ID", assertion_id or f"_{uuid.uuid4().hex}")
    _set(root, "Version", version)
    _set(root, "IssueInstant", issue_instant)
    if issuer is not OMIT:
        _child(root, "Issuer", issuer)
    placeholder = etree.SubElement(root, qname(DS_NS, "Signature"), nsmap={"ds": DS_NS})
    placeholder.set("Id", "placeholder")
    subject_el = _child(root, "Subject")
    if subject is not OMIT:
        _child(subject_el, "NameID", subject, Format=name_id_format)
    confirmation = _child(subject_el, "SubjectConfirmation", Method=confirmation_method)
    _child(
        confirmation,
        "SubjectConfirmationData",
        NotOnOrAfter=confirmation_not_on_or_after,
        Recipient=recipient,
        InResponseTo=in_response_to,
    )
    if conditions:
        conditions_el = _child(
            root, "Conditions", NotBefore=not_before, NotOnOrAfter=not_on_or_after
        )
        for group in _audience_groups(audience):
            restriction = _child(conditions_el, "AudienceRestriction")
            for value in group:
                _child(restriction, "Audience", value)
        if one_time_use:
            _child(conditions_el, "OneTimeUse")
    if authn_statement:
        statement = _child(root, "AuthnStatement", AuthnInstant=base, SessionIndex=session_index)
        context = _child(statement, "AuthnContext")
        _child(context, "AuthnContextClassRef", authn_context_class_ref)
    if attributes:
        statement = _child(root, "AttributeStatement")
        for name, values in attributes.items():
            attribute = _child(statement, "Attribute", Name=name)
            for value in [values] if isinstance(values, str) else values:
                _child(attribute, "AttributeValue", value)
    return root


def build_response(
    assertion: etree._Element | bytes,
    *,
    issuer: str | None = "https://idp.example.com",
    destination: str | None = "https://as.example.com/oauth/token",
    status: str = SUCCESS,
    response_id: str | None = None,
    issue_instant: datetime | str | None = None,
    in_response_to: str | None = OMIT,
    signature_placeholder: bool = True,
    nsmap: Mapping[str | None, str] | None = None,
) -> etree._Element:
    """Build an unsigned Web SSO ``samlp:Response`` carrying ``assertion``.

    The ``Issuer`` comes first, then (with ``signature_placeholder``) where
    :func:`~.signature.sign_enveloped` puts the Response signature, then the
    ``Status`` and the assertion (an element, or signed XML bytes).
    """
    root = etree.Element(
        RESPONSE_TAG,
        nsmap=nsmap or {"samlp": SAMLP_NS, "saml": SAML_NS},  # type: ignore[arg-type]
    )
    _set(root, "ID", response_id or f"_{uuid.uuid4().hex}")
    _set(root, "Version", "2.0")
    _set(root, "IssueInstant", issue_instant or datetime.now(timezone.utc))
    _set(root, "Destination", destination)
    _set(root, "InResponseTo", in_response_to)
    if issuer is not OMIT and issuer is not None:
        _child(root, "Issuer", issuer)
    if signature_placeholder:
        placeholder = etree.SubElement(root, qname(DS_NS, "Signature"), nsmap={"ds": DS_NS})
        placeholder.set("Id", "placeholder")
    status_el = etree.SubElement(root, qname(SAMLP_NS, "Status"))
    etree.SubElement(status_el, qname(SAMLP_NS, "StatusCode")).set("Value", status)
    if isinstance(assertion, bytes):
        assertion = etree.fromstring(assertion, parser=hardened_parser())
    root.append(assertion)
    return root


def _audience_groups(
    audience: str | Iterable[str] | Iterable[Iterable[str]],
) -> list[list[str]]:
    if audience is OMIT:
        return []
    if isinstance(audience, str):
        return [[audience]]
    items = list(audience)
    if items and not isinstance(items[0], str):
        return [list(group) for group in items]
    return [cast("list[str]", items)]


class TestIdentityProvider:
    """A throwaway IdP: a key pair, a certificate, and an assertion mint.

    :param entity_id: the ``Issuer`` it signs as.
    :param key_type: ``"rsa"`` (2048-bit) or ``"ec"`` (P-256).
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        entity_id: str = "https://idp.example.com",
        key_type: str = "rsa",
        key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | None = None,
        certificate: x509.Certificate | None = None,
    ) -> None:
        self.entity_id = entity_id
        self.key_type = key_type
        if key is None or certificate is None:
            key, certificate = generate_key_pair(key_type, common_name=entity_id[:64])
        self.key = key
        self.certificate = certificate

    @property
    def certificate_pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")

    @property
    def identity_provider(self) -> IdentityProvider:
        return IdentityProvider(self.entity_id, (self.certificate,))

    def settings_entry(self) -> dict[str, Any]:
        """This IdP as an entry of ``SAML2_BEARER_IDENTITY_PROVIDERS``."""
        return {"entity_id": self.entity_id, "certificates": [self.certificate_pem]}

    def sign(
        self,
        assertion: etree._Element,  # or a Response built by build_response()
        signature_algorithm: str | None = None,
        digest_algorithm: str = "http://www.w3.org/2001/04/xmlenc#sha256",
    ) -> bytes:
        """Sign an assertion built by :func:`build_assertion`; return XML bytes."""
        signed = sign_enveloped(
            assertion,
            self.key,
            self.certificate,
            signature_algorithm=signature_algorithm or _SIGNATURE_ALGORITHMS[self.key_type],
            digest_algorithm=digest_algorithm,
        )
        return etree.tostring(signed)

    def mint_xml(self, **fields: Any) -> bytes:
        """Build and sign an assertion; ``fields`` go to :func:`build_assertion`."""
        fields.setdefault("issuer", self.entity_id)
        return self.sign(build_assertion(**fields))

    def mint(self, urlsafe: bool = True, padding: bool = False, **fields: Any) -> str:
        """Build, sign and encode an assertion as the ``assertion`` parameter."""
        return encode_assertion(self.mint_xml(**fields), urlsafe=urlsafe, padding=padding)

    def mint_response_xml(
        self, sign: str = "response", response: Mapping[str, Any] | None = None, **fields: Any
    ) -> bytes:
        """A Web SSO ``Response`` around a new assertion, as XML bytes.

        :param sign: ``"response"`` (the Response root only, as Okta and
            Entra ID do by default), ``"assertion"`` (only the Assertion, as
            Shibboleth and AD FS do) or ``"both"``.
        :param response: fields for :func:`build_response` (``destination``,
            ``status``, ...); its ``issuer`` defaults to this IdP.
        :param fields: fields for :func:`build_assertion`.
        """
        if sign not in ("response", "assertion", "both"):
            raise ValueError("sign must be 'response', 'assertion' or 'both'")
        fields.setdefault("issuer", self.entity_id)
        assertion = build_assertion(**fields)
        if sign == "response":
            for placeholder in list(assertion.iterchildren(qname(DS_NS, "Signature"))):
                assertion.remove(placeholder)
            inner: etree._Element | bytes = assertion
        else:
            inner = self.sign(assertion)
        options = {"issuer": self.entity_id, **(response or {})}
        envelope = build_response(inner, signature_placeholder=sign != "assertion", **options)
        if sign == "assertion":
            return etree.tostring(envelope)
        return self.sign(envelope)

    def mint_response(
        self,
        sign: str = "response",
        response: Mapping[str, Any] | None = None,
        urlsafe: bool = False,
        padding: bool = True,
        **fields: Any,
    ) -> str:
        """:meth:`mint_response_xml`, Base64-encoded (padded, standard alphabet,
        as Salesforce's assertion flow and an ACS form post send it)."""
        xml = self.mint_response_xml(sign=sign, response=response, **fields)
        return encode_assertion(xml, urlsafe=urlsafe, padding=padding)

    def metadata(self) -> bytes:
        """SAML metadata (an ``EntityDescriptor``) publishing this IdP's certificate."""
        root = etree.Element(qname(MD_NS, "EntityDescriptor"), nsmap={"md": MD_NS, "ds": DS_NS})
        root.set("entityID", self.entity_id)
        descriptor = etree.SubElement(root, qname(MD_NS, "IDPSSODescriptor"))
        descriptor.set("protocolSupportEnumeration", SAMLP_NS)
        key = etree.SubElement(descriptor, qname(MD_NS, "KeyDescriptor"))
        key.set("use", "signing")
        data = etree.SubElement(
            etree.SubElement(key, qname(DS_NS, "KeyInfo")), qname(DS_NS, "X509Data")
        )
        cert = etree.SubElement(data, qname(DS_NS, "X509Certificate"))
        der = self.certificate.public_bytes(serialization.Encoding.DER)
        cert.text = base64.b64encode(der).decode("ascii")
        return etree.tostring(root, xml_declaration=True, encoding="UTF-8")
