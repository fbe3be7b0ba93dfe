"""The built-in demo identity provider.

On first run a key pair and a self-signed certificate are generated into the
instance folder; afterwards they are read back, so assertions minted by
``flask --app example_app mint`` stay valid across restarts. The app trusts
the demo IdP through ``SAML2_BEARER_IDENTITY_PROVIDERS``, exactly as it
trusts a real IdP: an entity ID and the path of its signing certificate.

Never enable the demo IdP in production: whoever can read the instance
folder can mint assertions for any user.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from authlib_saml2_grant import load_certificate
from authlib_saml2_grant.testing import TestIdentityProvider
from authlib_saml2_grant.testing import generate_key_pair

__all__ = [
    "DEMO_IDP_ENTITY_ID",
    "KEY_FILENAME",
    "CERTIFICATE_FILENAME",
    "load_demo_idp",
    "mint_assertion",
    "settings_entry",
]

log = logging.getLogger(__name__)

#: The ``Issuer`` of assertions minted by the demo IdP.
DEMO_IDP_ENTITY_ID = "urn:example-app:demo-idp"
#: The demo IdP's private key, in the instance folder (mode 0600).
KEY_FILENAME = "demo-idp-key.pem"
#: The demo IdP's self-signed certificate, in the instance folder.
CERTIFICATE_FILENAME = "demo-idp-cert.pem"


def load_demo_idp(instance_path: str | os.PathLike) -> TestIdentityProvider:
    """The demo IdP, generating its key and certificate on first use."""
    folder = Path(instance_path)
    key_path = folder / KEY_FILENAME
    cert_path = folder / CERTIFICATE_FILENAME
    if not (key_path.is_file() and cert_path.is_file()):
        folder.mkdir(parents=True, exist_ok=True)
        key, certificate = generate_key_pair("rsa", common_name="example_app demo IdP")
        _write(
            key_path,
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
            mode=0o600,
        )
        _write(cert_path, certificate.public_bytes(serialization.Encoding.PEM), mode=0o644)
        log.info("Generated the demo IdP key pair in %s", folder)
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    certificate = load_certificate(str(cert_path))
    return TestIdentityProvider(DEMO_IDP_ENTITY_ID, key=key, certificate=certificate)


def settings_entry(instance_path: str | os.PathLike) -> dict:
    """The demo IdP as an entry of ``SAML2_BEARER_IDENTITY_PROVIDERS``.

    It has the shape a real IdP's entry has; the certificate is a file path.
    """
    return {
        "entity_id": DEMO_IDP_ENTITY_ID,
        "certificates": [str(Path(instance_path) / CERTIFICATE_FILENAME)],
    }


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write atomically, so a crash never leaves a half-written key."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)


def mint_assertion(app, subject: str, **fields) -> str:
    """A base64url assertion from the demo IdP, addressed to ``app``.

    The ``Audience`` and ``Recipient`` are the first of the app's
    ``SAML2_BEARER_AUDIENCES`` and ``SAML2_BEARER_RECIPIENTS``, which is what
    a real IdP is configured with (see ``docs/idp-setup.md``).
    """
    fields.setdefault("audience", app.config["SAML2_BEARER_AUDIENCES"][0])
    fields.setdefault("recipient", app.config["SAML2_BEARER_RECIPIENTS"][0])
    return load_demo_idp(app.instance_path).mint(subject=subject, **fields)
