"""The benchmark app for gunicorn: ``gunicorn benchmarks.wsgi:app``.

:mod:`benchmarks.load` creates the database and writes the keys first, then
points the workers at them with ``SAML2_BENCH_DIR``.
"""

from __future__ import annotations

import os

from joserfc.jwk import RSAKey

from .app import create_app

_directory = os.environ["SAML2_BENCH_DIR"]
with open(os.path.join(_directory, "idp.pem"), encoding="ascii") as _handle:
    _certificate = _handle.read()
with open(os.path.join(_directory, "jwt.pem"), "rb") as _handle:
    _jwt_key = RSAKey.import_key(_handle.read())

# The production shape (benchmarks.production) sets a PostgreSQL URL and a replay store.
_replay = None
if os.environ.get("SAML2_BENCH_REDIS_URL"):
    from authlib_saml2_grant import RedisReplayCache

    _replay = RedisReplayCache(
        os.environ["SAML2_BENCH_REDIS_URL"], key_prefix=os.environ["SAML2_BENCH_REDIS_PREFIX"]
    )
app = create_app(
    os.environ.get("SAML2_BENCH_DATABASE_URL") or os.path.join(_directory, "bench.db"),
    _certificate,
    _jwt_key,
    replay=_replay,
)
