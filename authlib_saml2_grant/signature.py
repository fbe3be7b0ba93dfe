"""XML-DSig verification of an assertion with the IdP's pinned certificates.

With its signxml adapter :mod:`~.xmldsig`, the only module that imports
signxml. It verifies the enveloped signature of the root ``Assertion`` with a
certificate chosen by Issuer (never with one carried in ``KeyInfo``), with
narrow algorithm allow-lists, and hands back only the element signxml proved
signed (``VerifyResult.signed_xml``).
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field
from enum import Enum
from typing import TypeVar

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree
from signxml import SignatureConfiguration
from signxml import VerifyResult
from signxml.algorithms import CanonicalizationMethod
from signxml.algorithms import DigestAlgorithm
from signxml.algorithms import SignatureMethod
from signxml.exceptions import InvalidCertificate
from signxml.exceptions import InvalidDigest

from .errors import AssertionRejected
from .errors import ConfigurationError
from .trust import IdentityProvider
from .trust import fingerprint
from .xml import ASSERTION_TAG
from .xml import DS_NS
from .xml import element_xpath
from .xml import hardened_parser
from .xml import qname
from .xml import string_xpath
from .xmldsig import thread_verifier

__all__ = [
    "DEFAULT_SIGNATURE_ALGORITHMS",
    "DEFAULT_DIGEST_ALGORITHMS",
    "SignaturePolicy",
    "has_signature",
    "sign_enveloped",
]

log = logging.getLogger(__name__)

#: Signature methods accepted unless configured otherwise: RSA PKCS#1 v1.5,
#: RSA-PSS and ECDSA with SHA-2. SHA-1, MD5, DSA and HMAC are never defaults.
DEFAULT_SIGNATURE_ALGORITHMS: tuple[str, ...] = tuple(
    method.value
    for method in (
        SignatureMethod.RSA_SHA256,
        SignatureMethod.RSA_SHA384,
        SignatureMethod.RSA_SHA512,
        SignatureMethod.SHA256_RSA_MGF1,
        SignatureMethod.SHA384_RSA_MGF1,
        SignatureMethod.SHA512_RSA_MGF1,
        SignatureMethod.ECDSA_SHA256,
        SignatureMethod.ECDSA_SHA384,
        SignatureMethod.ECDSA_SHA512,
    )
)
#: Digest algorithms accepted unless configured otherwise.
DEFAULT_DIGEST_ALGORITHMS: tuple[str, ...] = tuple(
    digest.value
    for digest in (DigestAlgorithm.SHA256, DigestAlgorithm.SHA384, DigestAlgorithm.SHA512)
)

_ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
_EXC_C14N = (
    CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0.value,
    CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0_WITH_COMMENTS.value,
)
#: Reference transforms a SAML signature may use (SAML core 5.4.4).
_ALLOWED_TRANSFORMS = frozenset((_ENVELOPED, *_EXC_C14N))
#: Canonicalization of SignedInfo: exclusive, or inclusive 1.0/1.1.
_ALLOWED_SIGNED_INFO_C14N = frozenset(
    (
        *_EXC_C14N,
        CanonicalizationMethod.CANONICAL_XML_1_0.value,
        CanonicalizationMethod.CANONICAL_XML_1_1.value,
    )
)

_NS = {"ds": DS_NS}
_SIGNATURE_METHOD = string_xpath("ds:SignedInfo/ds:SignatureMethod/@Algorithm", namespaces=_NS)
_DIGEST_METHODS = string_xpath(
    "ds:SignedInfo/ds:Reference/ds:DigestMethod/@Algorithm", namespaces=_NS
)
_KEYINFO_CERT = element_xpath("ds:KeyInfo/ds:X509Data/ds:X509Certificate", namespaces=_NS)
_SIGNATURE = qname(DS_NS, "Signature")
_SIGNED_INFO = qname(DS_NS, "SignedInfo")
_REFERENCE = qname(DS_NS, "Reference")
_TRANSFORMS = qname(DS_NS, "Transforms")
_TRANSFORM = qname(DS_NS, "Transform")
_C14N_METHOD = qname(DS_NS, "CanonicalizationMethod")

_Algorithm = TypeVar("_Algorithm", bound=Enum)


def _allow_list(uris: Iterable[str], enum: type[_Algorithm], setting: str) -> frozenset[_Algorithm]:
    members: set[_Algorithm] = set()
    for uri in uris:
        try:
            member = enum(uri)
        except ValueError:
            raise ConfigurationError(f"{setting}: unknown algorithm URI {uri!r}") from None
        members.add(member)
    if not members:
        raise ConfigurationError(f"{setting} must name at least one algorithm")
    return frozenset(members)


@dataclass(frozen=True)
class SignaturePolicy:
    """Which algorithms an IdP signature may use, and how it is verified.

    :param signature_algorithms: allowed ``SignatureMethod`` URIs.
    :param digest_algorithms: allowed ``DigestMethod`` URIs.
    """

    signature_algorithms: tuple[str, ...] = DEFAULT_SIGNATURE_ALGORITHMS
    digest_algorithms: tuple[str, ...] = DEFAULT_DIGEST_ALGORITHMS
    # Derived once from the two tuples above; equality and hashing use only those.
    _config: SignatureConfiguration = field(init=False, repr=False, compare=False)
    _methods: frozenset[str] = field(init=False, repr=False, compare=False)
    _digests: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        methods = _allow_list(
            self.signature_algorithms, SignatureMethod, "SAML2_BEARER_SIGNATURE_ALGORITHMS"
        )
        digests = _allow_list(
            self.digest_algorithms, DigestAlgorithm, "SAML2_BEARER_DIGEST_ALGORITHMS"
        )
        hmac = [method.value for method in methods if method.name.startswith("HMAC")]
        if hmac:
            raise ConfigurationError(
                f"SAML2_BEARER_SIGNATURE_ALGORITHMS: HMAC is never accepted ({hmac[0]})"
            )
        enabled: tuple[Enum, ...] = (*methods, *digests)
        weak = sorted(
            member.value
            for member in enabled
            if "SHA1" in member.name or member.name.startswith("DSA_")
        )
        if weak:
            log.warning("Weak signature or digest algorithms enabled: %s", ", ".join(weak))
        object.__setattr__(
            self,
            "_config",
            SignatureConfiguration(
                require_x509=True,
                location="./",
                expect_references=1,
                signature_methods=methods,
                digest_algorithms=digests,
            ),
        )
        object.__setattr__(self, "_methods", frozenset(m.value for m in methods))
        object.__setattr__(self, "_digests", frozenset(d.value for d in digests))

    def verify(
        self, root: etree._Element, provider: IdentityProvider, tag: str = ASSERTION_TAG
    ) -> etree._Element:
        """Verify an element's enveloped signature with the provider's pinned keys.

        :param root: the signed element: the root ``Assertion`` as parsed by
            :func:`~.xml.parse_xml`, or the root ``Response`` or its
            ``Assertion`` child (see :mod:`~.response`).
        :param provider: the IdP selected by the assertion's ``Issuer``.
        :param tag: the Clark tag the signed element must have.
        :return: that element, as signxml proved it signed (a new tree).
        :raise AssertionRejected: ``signature_missing``,
            ``signature_algorithm_forbidden``, ``signature_reference_invalid``,
            ``certificate_invalid`` or ``signature_invalid``.
        """
        signature = _single_signature(root)
        hint = _key_info_fingerprint(signature) if len(provider.certificates) > 1 else None
        failures = []
        for certificate in provider.get_candidate_certificates(hint):
            try:
                result = thread_verifier().verify(
                    root,
                    x509_cert=certificate,
                    parser=hardened_parser(),
                    id_attribute="ID",
                    expect_config=self._config,
                )
            except Exception as exc:  # signxml, lxml and cryptography all raise here
                failures.append(exc)
                if isinstance(exc, InvalidDigest):
                    break  # the key matched; the content was changed
                continue
            # expect_references=1: signxml returns one VerifyResult, never a list.
            return _check_signed(result, root, tag)  # type: ignore[arg-type]
        # signxml enforced the allow-lists; name the algorithm it refused.
        self._check_algorithms(signature)
        raise _failure(failures, provider, _key_info_fingerprint(signature))

    def _check_algorithms(self, signature: etree._Element) -> None:
        method = _SIGNATURE_METHOD(signature)
        if not method or method[0] not in self._methods:
            raise AssertionRejected(
                "signature_algorithm_forbidden",
                "The signature method is not allowed",
                algorithm=method[0] if method else None,
                allowed=sorted(self._methods),
            )
        for digest in _DIGEST_METHODS(signature):
            if digest not in self._digests:
                raise AssertionRejected(
                    "signature_algorithm_forbidden",
                    "The digest method is not allowed",
                    algorithm=digest,
                    allowed=sorted(self._digests),
                )


def _single_signature(root: etree._Element) -> etree._Element:
    signatures = _children_named(root, _SIGNATURE)
    if not signatures:
        raise AssertionRejected(
            "signature_missing", f"The {_local_name(root)} has no enveloped ds:Signature"
        )
    if len(signatures) > 1:
        raise AssertionRejected(
            "signature_invalid",
            f"The {_local_name(root)} has more than one enveloped ds:Signature",
            count=len(signatures),
        )
    return signatures[0]


def has_signature(element: etree._Element) -> bool:
    """Whether ``element`` has an enveloped ``ds:Signature`` child (verified or not)."""
    return any(child.tag == _SIGNATURE for child in element)


def _local_name(element: etree._Element) -> str:
    return str(element.tag).rpartition("}")[2]


def _key_info_fingerprint(signature: etree._Element) -> str | None:
    certs = _KEYINFO_CERT(signature)
    if len(certs) != 1 or not certs[0].text:
        return None
    try:
        return fingerprint(base64.b64decode("".join(certs[0].text.split())))
    except ValueError:
        return None


def _children_named(parent: etree._Element, tag: str) -> list[etree._Element]:
    """The direct children of ``parent`` whose tag is ``tag``, in order."""
    return [child for child in parent if child.tag == tag]


def _check_signed(result: VerifyResult, root: etree._Element, tag: str) -> etree._Element:
    """Require that the one signed reference is the element itself, with the tag expected."""
    root_id = root.get("ID")
    what = _local_name(root)
    signed_info = _children_named(result.signature_xml, _SIGNED_INFO)[0]  # signxml required one
    references = _children_named(signed_info, _REFERENCE)
    uri = references[0].get("URI") if len(references) == 1 else None
    if uri != f"#{root_id}":
        raise AssertionRejected(
            "signature_reference_invalid",
            f"The signature does not reference its {what}",
            expected=f"#{root_id}",
            actual=uri,
        )
    transforms = [
        transform.get("Algorithm")
        for group in _children_named(references[0], _TRANSFORMS)
        for transform in _children_named(group, _TRANSFORM)
    ]
    if _ENVELOPED not in transforms or not _ALLOWED_TRANSFORMS.issuperset(transforms):
        raise AssertionRejected(
            "signature_reference_invalid",
            "The signature uses transforms other than enveloped-signature and exc-c14n",
            transforms=transforms,
        )
    c14n = [method.get("Algorithm") for method in _children_named(signed_info, _C14N_METHOD)]
    if len(c14n) != 1 or c14n[0] not in _ALLOWED_SIGNED_INFO_C14N:
        raise AssertionRejected(
            "signature_reference_invalid",
            "The SignedInfo canonicalization method is not allowed",
            algorithm=c14n[0] if c14n else None,
        )
    signed = result.signed_xml
    if signed is None or signed.tag != tag or root.tag != tag or signed.get("ID") != root_id:
        raise AssertionRejected(
            "signature_reference_invalid",
            f"The signed element is not the {_local_name(root)} expected",
            actual=None if signed is None else signed.tag,
        )
    return signed


def _failure(
    failures: list[Exception], provider: IdentityProvider, hint: str | None
) -> AssertionRejected:
    details = {
        "issuer": provider.entity_id,
        "key_info_fingerprint": hint,
        "fingerprints_tried": list(provider.fingerprints),
        "errors": [f"{type(exc).__name__}: {str(exc)[:160]}" for exc in failures],
    }
    if failures and all(isinstance(exc, InvalidCertificate) for exc in failures):
        return AssertionRejected(
            "certificate_invalid", "No pinned certificate of the IdP is currently valid", **details
        )
    if failures and isinstance(failures[-1], InvalidDigest):
        return AssertionRejected(
            "signature_invalid", "The signed content was modified (digest mismatch)", **details
        )
    return AssertionRejected(
        "signature_invalid", "The signature does not verify with any pinned certificate", **details
    )


def sign_enveloped(
    root: etree._Element,
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
    certificate: x509.Certificate,
    signature_algorithm: str = SignatureMethod.RSA_SHA256.value,
    digest_algorithm: str = DigestAlgorithm.SHA256.value,
) -> etree._Element:
    """Sign ``root`` with an enveloped exc-c14n signature referencing its ``ID``.

    Used by :mod:`authlib_saml2_grant.testing` to mint assertions. A
    ``<ds:Signature Id="placeholder"/>`` child of ``root`` marks where the
    signature goes (SAML requires it right after ``Issuer``).

    :return: the signed element (a new tree).
    """
    from signxml import XMLSigner  # signing is only for tests and the CLI

    signer = XMLSigner(
        signature_algorithm=SignatureMethod(signature_algorithm),
        digest_algorithm=DigestAlgorithm(digest_algorithm),
        c14n_algorithm=_EXC_C14N[0],
    )
    return signer.sign(
        root,
        key=key,
        cert=[certificate],
        reference_uri=root.get("ID"),
        id_attribute="ID",
    )
