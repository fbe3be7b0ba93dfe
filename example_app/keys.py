"""The authorization server's own signing key: JWT access tokens and ID tokens.

One RSA key, ``signing-key.pem`` in the instance folder (mode 0600), signs
the :rfc:`9068` access tokens and the OpenID Connect ID tokens with
``RS256``; its public half is served at ``GET /oauth/jwks.json``
(:rfc:`7517` key set, advertised as ``jwks_uri`` in the :rfc:`8414`
metadata), with the key's :rfc:`7638` thumbprint as ``kid``.

As with the demo IdP's key pair (:mod:`example_app.idp`), creating the app
never writes key material: :func:`create_signing_key` generates the key, and
only the commands call it (``flask --app example_app init``, ``demo`` and
``mint``, through :func:`example_app.oauth.init_signing_key`). An app
created before the key exists issues opaque access tokens and no ID token,
and logs a WARNING saying so (see :mod:`example_app.oauth`).

A production server would keep this key in a KMS or a secret store and
rotate it, publishing the next key in the JWKS before signing with it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from flask import Flask
from flask import current_app
from joserfc.jwk import KeySet
from joserfc.jwk import RSAKey

__all__ = [
    "SIGNING_ALG",
    "SIGNING_KEY_FILENAME",
    "signing_key_exists",
    "load_signing_keys",
    "create_signing_key",
    "signing_keys",
    "public_jwks",
    "write_atomically",
]

log = logging.getLogger(__name__)

#: The JWS algorithm of access tokens and ID tokens.
SIGNING_ALG = "RS256"
#: The signing key, PEM (PKCS#8), in the instance folder (mode 0600).
SIGNING_KEY_FILENAME = "signing-key.pem"
#: RSA modulus size of a generated key, in bits.
KEY_SIZE = 2048

_EXTENSION_KEY = "example_app.signing_keys"


def signing_key_exists(instance_path: str | os.PathLike) -> bool:
    """Whether the signing key is in the instance folder."""
    return (Path(instance_path) / SIGNING_KEY_FILENAME).is_file()


def load_signing_keys(app: Flask) -> KeySet | None:
    """Read the signing key of ``app`` from its instance folder, if it is
    there, and keep it for :func:`signing_keys`. Never writes.

    :return: a key set of the one private key, or ``None`` when missing.
    """
    path = Path(app.instance_path) / SIGNING_KEY_FILENAME
    if not path.is_file():
        return None
    return _keep(app, _read(path))


def create_signing_key(app: Flask) -> KeySet:
    """The signing key of ``app``: generated into its instance folder if
    missing, then loaded. Only the commands call it."""
    path = Path(app.instance_path) / SIGNING_KEY_FILENAME
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        key = RSAKey.generate_key(KEY_SIZE)
        write_atomically(path, key.as_pem(private=True), mode=0o600)
        log.info("Generated the signing key of access tokens and ID tokens in %s", path)
    return _keep(app, _read(path))


def signing_keys(app: Flask | None = None) -> KeySet | None:
    """The private key set of ``app`` (default: the current app), or ``None``
    until :func:`load_signing_keys` or :func:`create_signing_key` found one."""
    app = app or current_app
    return app.extensions.get(_EXTENSION_KEY)


def public_jwks(app: Flask | None = None) -> dict[str, Any]:
    """The public JWK set of ``app``: ``{"keys": [...]}``, empty without a key."""
    keys = signing_keys(app)
    if keys is None:
        return {"keys": []}
    return keys.as_dict(private=False)


def _read(path: Path) -> KeySet:
    key = RSAKey.import_key(path.read_bytes(), parameters={"use": "sig", "alg": SIGNING_ALG})
    if not key.is_private:
        raise RuntimeError(f"{path} is not an RSA private key")
    key.ensure_kid()  # the RFC 7638 thumbprint
    return KeySet([key])


def _keep(app: Flask, keys: KeySet) -> KeySet:
    app.extensions[_EXTENSION_KEY] = keys
    return keys


def write_atomically(path: Path, data: bytes, mode: int) -> None:
    """Write atomically, so a crash never leaves a half-written key."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)
