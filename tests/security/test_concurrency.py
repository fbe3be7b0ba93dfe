"""Concurrent redemption of one assertion through the Flask app.

SECURITY.md step 8: "Concurrent submissions of one assertion yield exactly one
token". Sixteen threads on the default pool, on SQLite and PostgreSQL, are
``tests/test_replay_transaction.py``; here the pool is exactly as large as the
number of requests, so the race must be decided without starving the pool.
"""

from __future__ import annotations

from ..conftest import create_app
from ..conftest import mint_for
from ..conftest import record_signals
from ..helpers import assert_redeemed_once
from ..helpers import redeem_concurrently


def test_pool_sized_concurrency_does_not_starve(tmp_path, idp):
    """SECURITY.md step 8, availability side: N simultaneous redemptions on a pool of
    N connections still yield one token and N-1 ``replayed``, not cache errors."""
    threads = 4
    app = create_app(
        tmp_path,
        [idp],
        SQLALCHEMY_ENGINE_OPTIONS={"pool_size": threads, "max_overflow": 0, "pool_timeout": 2},
    )
    with record_signals(app) as signals:
        results = redeem_concurrently(app, mint_for(idp), threads)
    # A pool timeout would escape the grant: its exception name appears in results.
    assert_redeemed_once(results, signals.reasons)
