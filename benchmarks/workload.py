"""What is measured: the same ~4 KB assertion through the floor, bare signxml and us.

Keys are generated once; certificates and public keys are parsed once, as a
server would after start-up. Nothing here is timed; :mod:`benchmarks.runner`
times the callables built here.
"""

from __future__ import annotations

import base64
import hashlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from joserfc import jwt
from joserfc.jwk import RSAKey
from lxml import etree
from signxml import SignatureConfiguration
from signxml import XMLVerifier
from signxml.algorithms import DigestAlgorithm
from signxml.algorithms import SignatureMethod

from authlib_saml2_grant import AssertionVerifier
from authlib_saml2_grant import IdentityProvider
from authlib_saml2_grant.testing import TestIdentityProvider
from authlib_saml2_grant.testing import encode_assertion
from authlib_saml2_grant.testing import generate_key_pair

__all__ = [
    "AS_ENTITY_ID",
    "TOKEN_ENDPOINT",
    "CLIENT_ID",
    "SUBJECT",
    "ATTRIBUTES",
    "Workload",
    "floor_verify",
    "jwt_claims_registry",
]

AS_ENTITY_ID = "https://as.example.com"
TOKEN_ENDPOINT = "https://as.example.com/oauth/token"
CLIENT_ID = "bench-client"
SUBJECT = "alice@example.com"
#: Attributes that bring the signed assertion to about 4 KB, as IdPs send.
ATTRIBUTES = {
    "email": SUBJECT,
    "displayName": "Alice Example",
    "department": "Research and Development",
    "groups": ["engineering", "staff", "vpn-users", "wiki-editors"],
}

_DS = {"ds": "http://www.w3.org/2000/09/xmldsig#"}
_SIGNATURE = etree.XPath("ds:Signature", namespaces=_DS)
_SIGNED_INFO = etree.XPath("ds:SignedInfo", namespaces=_DS)
_SIGNATURE_VALUE = etree.XPath("ds:SignatureValue/text()", namespaces=_DS)
_DIGEST_VALUE = etree.XPath("ds:Reference/ds:DigestValue/text()", namespaces=_DS)
_FLOOR_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, collect_ids=False)
_PKCS1 = padding.PKCS1v15()
_SHA256 = hashes.SHA256()


def floor_verify(data: bytes, public_key: Any) -> None:
    """The least work any XML-DSig verification of this assertion must do.

    One lxml parse, exclusive c14n of SignedInfo, an RSA-2048 PKCS#1 v1.5
    verification with an already loaded public key, exclusive c14n of the
    assertion without its signature and a SHA-256 digest compared with the
    signed DigestValue. No checks of algorithms, structure or claims.
    """
    root = etree.fromstring(data, parser=_FLOOR_PARSER)
    signature = _SIGNATURE(root)[0]
    signed_info = _SIGNED_INFO(signature)[0]
    signed_info_c14n = etree.tostring(signed_info, method="c14n", exclusive=True)
    raw = base64.b64decode(_SIGNATURE_VALUE(signature)[0])
    public_key.verify(raw, signed_info_c14n, _PKCS1, _SHA256)
    expected = base64.b64decode(_DIGEST_VALUE(signed_info)[0])
    root.remove(signature)
    digest = hashlib.sha256(etree.tostring(root, method="c14n", exclusive=True)).digest()
    if digest != expected:
        raise ValueError("digest mismatch")


def jwt_claims_registry() -> jwt.JWTClaimsRegistry:
    """The claims checks Authlib's ``JWTBearerGrant.verify_claims`` builds per request."""
    return jwt.JWTClaimsRegistry(
        leeway=60,
        iss={"essential": True},
        aud={"essential": True, "values": [AS_ENTITY_ID, TOKEN_ENDPOINT]},
        exp={"essential": True},
    )


@dataclass
class Workload:
    """Keys, identity providers and one assertion of each kind."""

    rsa_idp: TestIdentityProvider
    ec_idp: TestIdentityProvider
    jwt_private_key: RSAKey
    jwt_public_key: RSAKey

    @classmethod
    def create(cls) -> Workload:
        rsa_idp = TestIdentityProvider("https://idp.example.com")
        ec_idp = TestIdentityProvider("https://ec-idp.example.com", key_type="ec")
        # The JWT is signed with the same RSA-2048 key as the SAML assertion.
        private = RSAKey.import_key(rsa_idp.key)
        public = RSAKey.import_key(rsa_idp.key.public_key())
        return cls(rsa_idp, ec_idp, private, public)

    # -- assertions -----------------------------------------------------------

    def saml_xml(self, idp: TestIdentityProvider | None = None, **fields: Any) -> bytes:
        fields.setdefault("audience", AS_ENTITY_ID)
        fields.setdefault("recipient", TOKEN_ENDPOINT)
        fields.setdefault("subject", SUBJECT)
        fields.setdefault("attributes", ATTRIBUTES)
        fields.setdefault("lifetime", timedelta(hours=1))
        return (idp or self.rsa_idp).mint_xml(**fields)

    def saml(self, idp: TestIdentityProvider | None = None, **fields: Any) -> str:
        return encode_assertion(self.saml_xml(idp, **fields))

    def jwt(self, lifetime: int = 3600) -> str:
        now = int(time.time())
        claims = {
            "iss": CLIENT_ID,
            "sub": SUBJECT,
            "aud": TOKEN_ENDPOINT,
            "iat": now,
            "nbf": now - 30,
            "exp": now + lifetime,
            "jti": uuid.uuid4().hex,
            **ATTRIBUTES,
        }
        return jwt.encode({"alg": "RS256", "typ": "JWT"}, claims, self.jwt_private_key)

    # -- verifiers --------------------------------------------------------------

    def verifier(self, providers: list[IdentityProvider] | None = None) -> AssertionVerifier:
        if providers is None:
            providers = [self.rsa_idp.identity_provider, self.ec_idp.identity_provider]
        return AssertionVerifier(providers, audiences=[AS_ENTITY_ID], recipients=[TOKEN_ENDPOINT])

    def micro_candidates(self) -> dict[str, Callable[[], object]]:
        """Floor, tuned signxml, our verifier and JWT on equivalent assertions."""
        rsa_xml = self.saml_xml()
        ec_xml = self.saml_xml(self.ec_idp)
        rsa_param = encode_assertion(rsa_xml)
        ec_param = encode_assertion(ec_xml)
        rsa_cert = self.rsa_idp.certificate
        ec_cert = self.ec_idp.certificate
        public_key = rsa_cert.public_key()
        signxml_verifier = XMLVerifier()
        rsa_config = _tuned_config(SignatureMethod.RSA_SHA256)
        ec_config = _tuned_config(SignatureMethod.ECDSA_SHA256)
        ours = self.verifier()
        token = self.jwt()
        jwt_key = self.jwt_public_key

        def jwt_verify() -> None:
            decoded = jwt.decode(token, jwt_key)
            jwt_claims_registry().validate(decoded.claims)

        candidates = {
            "floor (parse+c14n+RSA verify)": lambda: floor_verify(rsa_xml, public_key),
            "signxml tuned, RSA-2048": lambda: signxml_verifier.verify(
                rsa_xml, x509_cert=rsa_cert, id_attribute="ID", expect_config=rsa_config
            ),
            "AssertionVerifier.verify_xml, RSA-2048": lambda: ours.verify_xml(rsa_xml),
            "AssertionVerifier.verify, RSA-2048": lambda: ours.verify(rsa_param),
            "signxml tuned, ECDSA P-256": lambda: signxml_verifier.verify(
                ec_xml, x509_cert=ec_cert, id_attribute="ID", expect_config=ec_config
            ),
            "AssertionVerifier.verify_xml, ECDSA P-256": lambda: ours.verify_xml(ec_xml),
            "AssertionVerifier.verify, ECDSA P-256": lambda: ours.verify(ec_param),
            "JWT RS256 (joserfc decode + claims)": jwt_verify,
        }
        for call in candidates.values():
            call()  # each must succeed before it is timed
        return candidates

    def scaling_candidates(self) -> dict[str, Callable[[], object]]:
        """1 vs 1,000 trusted IdPs, and 1 vs 10 pinned certificates per IdP."""
        rsa = self.rsa_idp
        param = encode_assertion(self.saml_xml())
        # Certificates of the other IdPs never verify this assertion; cheap EC ones do.
        _, other_cert = generate_key_pair("ec", common_name="Other IdP")
        many_idps = [rsa.identity_provider] + [
            IdentityProvider(f"https://idp-{index}.example.org", (other_cert,))
            for index in range(999)
        ]
        old_certs = [generate_key_pair("ec", common_name=f"Old {i}")[1] for i in range(9)]
        # The matching certificate last: the KeyInfo fingerprint must move it first.
        rollover = IdentityProvider(rsa.entity_id, (*old_certs, rsa.certificate))
        one = self.verifier([rsa.identity_provider])
        thousand = self.verifier(many_idps)
        ten_certs = self.verifier([rollover])
        candidates = {
            "1 IdP, 1 certificate": lambda: one.verify(param),
            "1,000 IdPs, 1 certificate each": lambda: thousand.verify(param),
            "1 IdP, 10 certificates (match last)": lambda: ten_certs.verify(param),
        }
        for call in candidates.values():
            call()
        return candidates


def _tuned_config(method: SignatureMethod) -> SignatureConfiguration:
    return SignatureConfiguration(
        location="./",
        expect_references=1,
        signature_methods=frozenset({method}),
        digest_algorithms=frozenset({DigestAlgorithm.SHA256}),
    )
