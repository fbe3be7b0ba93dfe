"""The built-in demo identity provider.

Its key pair and self-signed certificate live in the instance folder. They
are written only by :func:`init_demo_idp`, which the commands that need them
call (``flask --app example_app init``, ``demo`` and ``mint``); creating the
app never writes key material, so ``saml2-bearer inspect --app example_app``
and ``flask run`` leave the instance folder as they found it. Once written,
the pair is read back, so assertions minted by ``mint`` stay valid across
restarts.

The app trusts the demo IdP through ``SAML2_BEARER_IDENTITY_PROVIDERS``,
exactly as it trusts a real IdP: an entity ID and the path of its signing
certificate. An app created before the certificate existed trusts it once
:func:`init_demo_idp` ran on it (a server already running elsewhere needs a
restart).

The demo IdP has a directory of one user, the demo user, and asserts her
``mail``, ``displayName`` and ``memberOf`` attributes (:data:`DEMO_DIRECTORY`),
which the example's ``SAML2_BEARER_CLAIMS`` maps to the ``email``, ``name``
and ``groups`` claims of access tokens and ID tokens. It asserts no
attribute of anyone else.

Never enable the demo IdP in production: whoever can read the instance
folder can mint assertions for any user.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from collections.abc import Sequence
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask

from authlib_saml2_grant import load_certificate
from authlib_saml2_grant.testing import TestIdentityProvider
from authlib_saml2_grant.testing import generate_key_pair

from .bootstrap import DEMO_USER_EMAIL
from .bootstrap import DEMO_USER_NAME
from .keys import write_atomically
from .oauth import saml2_bearer

__all__ = [
    "DEMO_IDP_ENTITY_ID",
    "DEMO_DIRECTORY",
    "KEY_FILENAME",
    "CERTIFICATE_FILENAME",
    "demo_idp_exists",
    "init_demo_idp",
    "load_demo_idp",
    "mint_assertion",
    "mint_response",
    "settings_entry",
]

log = logging.getLogger(__name__)

#: The ``Issuer`` of assertions minted by the demo IdP.
DEMO_IDP_ENTITY_ID = "urn:example-app:demo-idp"
#: The demo IdP's private key, in the instance folder (mode 0600).
KEY_FILENAME = "demo-idp-key.pem"
#: The demo IdP's self-signed certificate, in the instance folder.
CERTIFICATE_FILENAME = "demo-idp-cert.pem"
#: The users the demo IdP knows: ``NameID`` -> the attributes it asserts.
DEMO_DIRECTORY: Mapping[str, Mapping[str, str | Sequence[str]]] = {
    DEMO_USER_EMAIL: {
        "mail": DEMO_USER_EMAIL,
        "displayName": DEMO_USER_NAME,
        "memberOf": ("staff", "demo-admins"),
    },
}


def demo_idp_exists(instance_path: str | os.PathLike) -> bool:
    """Whether the demo IdP's key and certificate are in the instance folder."""
    folder = Path(instance_path)
    return (folder / KEY_FILENAME).is_file() and (folder / CERTIFICATE_FILENAME).is_file()


def init_demo_idp(app: Flask) -> TestIdentityProvider:
    """The demo IdP of ``app``: its key pair is generated if missing, and ``app``
    made to trust it if it did not yet.

    :raise RuntimeError: if ``EXAMPLE_APP_DEMO_IDP`` is off.
    """
    if not app.config["EXAMPLE_APP_DEMO_IDP"]:
        raise RuntimeError("The demo IdP is disabled (EXAMPLE_APP_DEMO_IDP = False).")
    if not demo_idp_exists(app.instance_path):
        _generate(Path(app.instance_path))
    entry = settings_entry(app.instance_path)
    providers = list(app.config["SAML2_BEARER_IDENTITY_PROVIDERS"])
    if entry not in providers:
        app.config["SAML2_BEARER_IDENTITY_PROVIDERS"] = [*providers, entry]
        saml2_bearer.reload(app)
        log.info("The app now trusts the demo IdP %s", DEMO_IDP_ENTITY_ID)
    return load_demo_idp(app.instance_path)


def load_demo_idp(instance_path: str | os.PathLike) -> TestIdentityProvider:
    """The demo IdP whose key pair is in ``instance_path``; never writes.

    :raise RuntimeError: if the key pair was not created yet.
    """
    folder = Path(instance_path)
    if not demo_idp_exists(folder):
        raise RuntimeError(
            f"The demo IdP is not initialised in {folder}: run flask --app example_app init"
        )
    key = serialization.load_pem_private_key((folder / KEY_FILENAME).read_bytes(), password=None)
    if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
        raise RuntimeError(f"{folder / KEY_FILENAME} is not an RSA or EC private key")
    certificate = load_certificate(str(folder / CERTIFICATE_FILENAME))
    return TestIdentityProvider(DEMO_IDP_ENTITY_ID, key=key, certificate=certificate)


def settings_entry(instance_path: str | os.PathLike) -> dict:
    """The demo IdP as an entry of ``SAML2_BEARER_IDENTITY_PROVIDERS``.

    It has the shape a real IdP's entry has; the certificate is a file path.
    """
    return {
        "entity_id": DEMO_IDP_ENTITY_ID,
        "certificates": [str(Path(instance_path) / CERTIFICATE_FILENAME)],
    }


def mint_assertion(app: Flask, subject: str, **fields) -> str:
    """A base64url assertion from the demo IdP, addressed to ``app``.

    Initialises the demo IdP first (see :func:`init_demo_idp`). The
    ``Audience`` and ``Recipient`` are the first of the app's
    ``SAML2_BEARER_AUDIENCES`` and ``SAML2_BEARER_RECIPIENTS``, which is what
    a real IdP is configured with (see ``docs/idp-setup.md``); the
    attributes are those :data:`DEMO_DIRECTORY` has for ``subject``.
    """
    fields.setdefault("audience", app.config["SAML2_BEARER_AUDIENCES"][0])
    fields.setdefault("recipient", app.config["SAML2_BEARER_RECIPIENTS"][0])
    fields.setdefault("attributes", dict(DEMO_DIRECTORY.get(subject, {})))
    return init_demo_idp(app).mint(subject=subject, **fields)


def mint_response(app: Flask, subject: str, recipient: str | None = None, **fields) -> str:
    """A whole signed Web SSO ``Response`` from the demo IdP, Base64 (padded,
    standard alphabet), for Salesforce's ``grant_type=assertion`` flow.

    Its ``Destination`` and the assertion's ``Recipient`` are ``recipient``
    (default: the first of ``SAML2_BEARER_RECIPIENTS``, the token endpoint);
    the Response root is signed, as Okta and Entra ID sign by default. Other
    ``fields`` are those of :func:`mint_assertion`.
    """
    recipient = recipient or app.config["SAML2_BEARER_RECIPIENTS"][0]
    fields.setdefault("audience", app.config["SAML2_BEARER_AUDIENCES"][0])
    fields.setdefault("attributes", dict(DEMO_DIRECTORY.get(subject, {})))
    return init_demo_idp(app).mint_response(
        response={"destination": recipient}, subject=subject, recipient=recipient, **fields
    )


def _generate(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    key, certificate = generate_key_pair("rsa", common_name="example_app demo IdP")
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = certificate.public_bytes(serialization.Encoding.PEM)
    # The key first: the pair counts as present once the certificate exists.
    write_atomically(folder / KEY_FILENAME, private, mode=0o600)
    write_atomically(folder / CERTIFICATE_FILENAME, public, mode=0o644)
    log.info("Generated the demo IdP key pair in %s", folder)
