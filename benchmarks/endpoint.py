"""The token endpoint through Flask's test client, both grants on one app.

Every request carries a fresh assertion (the replay cache refuses a second
use), so assertions are minted before timing starts; each candidate pops the
next one. The timed region is one ``client.post`` and its status check.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from contextlib import AbstractContextManager

from cryptography.hazmat.primitives import serialization

from authlib_saml2_grant import SAML2_BEARER_GRANT_TYPE
from authlib_saml2_grant import get_settings

from .app import CLIENT_SECRET
from .app import JWT_BEARER_GRANT_TYPE
from .app import SignxmlBoundGrant
from .app import SignxmlOnlyVerifier
from .app import create_app
from .app import db
from .workload import CLIENT_ID
from .workload import Workload

__all__ = ["BASIC_AUTH", "EndpointBench", "certificate_pem"]

BASIC_AUTH = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()


def certificate_pem(workload: Workload) -> str:
    return workload.rsa_idp.certificate.public_bytes(serialization.Encoding.PEM).decode()


class EndpointBench(AbstractContextManager):
    """An app on ``directory/bench.db`` and ``requests`` pre-minted assertions per grant."""

    def __init__(self, workload: Workload, directory: str, requests: int) -> None:
        self.app = create_app(
            os.path.join(directory, "bench.db"),
            certificate_pem(workload),
            workload.jwt_public_key,
            create=True,
        )
        self.client = self.app.test_client()
        self.certificate = workload.rsa_idp.certificate
        self.saml = [workload.saml() for _ in range(requests)]
        self.bound = [workload.saml() for _ in range(requests)]
        self.jwts = [workload.jwt() for _ in range(requests)]
        self.jwts_plain = [workload.jwt() for _ in range(requests)]
        self._context = self.app.app_context()

    def __enter__(self) -> EndpointBench:
        self._context.push()
        real = get_settings(self.app).verifier
        template = real.verify(self.bound[-1])
        SignxmlBoundGrant.VERIFIER = SignxmlOnlyVerifier(real, self.certificate, template)
        return self

    def __exit__(self, *exc_info) -> None:
        db.session.remove()
        db.engine.dispose()
        self._context.pop()

    def _post(self, path: str, data: dict, headers: dict | None = None) -> None:
        response = self.client.post(path, data=data, headers=headers)
        if response.status_code != 200:
            raise RuntimeError(f"{path}: {response.status_code} {response.get_data(as_text=True)}")

    def candidates(self) -> dict[str, Callable[[], None]]:
        saml = iter(self.saml)
        jwts = iter(self.jwts)
        plain = iter(self.jwts_plain)
        bound = iter(self.bound)
        auth = {"Authorization": BASIC_AUTH}

        def saml_request() -> None:
            data = {"grant_type": SAML2_BEARER_GRANT_TYPE, "assertion": next(saml)}
            self._post("/oauth/token", data, auth)

        def bound_request() -> None:
            data = {"grant_type": SAML2_BEARER_GRANT_TYPE, "assertion": next(bound)}
            self._post("/bound/token", data, auth)

        def jwt_replay_request() -> None:
            data = {"grant_type": JWT_BEARER_GRANT_TYPE, "assertion": next(jwts)}
            self._post("/oauth/token", data)

        def jwt_plain_request() -> None:
            data = {"grant_type": JWT_BEARER_GRANT_TYPE, "assertion": next(plain)}
            self._post("/jwt/token", data)

        return {
            "SAML2BearerGrant (replay cache)": saml_request,
            "bound: same grant, verify = bare signxml": bound_request,
            "JWTBearerGrant + jti replay cache": jwt_replay_request,
            "JWTBearerGrant as shipped (no replay)": jwt_plain_request,
        }
