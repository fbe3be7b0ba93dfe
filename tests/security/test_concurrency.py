"""Concurrent redemption of one assertion through the Flask app.

SECURITY.md step 8: "Concurrent submissions of one assertion yield exactly one
token". The app's replay cache is the SQLAlchemy one on a SQLite *file*
(tests/conftest.py), so the race is decided by the database, not a lock.
"""

from __future__ import annotations

import threading

from lxml import etree

from authlib_saml2_grant import assertion_rejected
from authlib_saml2_grant.testing import encode_assertion

from ..conftest import create_app
from ..conftest import db
from ..conftest import request_token
from .forge import GENERIC
from .forge import mint_tree

THREADS = 16


def test_sixteen_threads_one_token(app, idp):
    """16 threads post the same assertion at once: one 200, fifteen ``replayed``.

    The app keeps Flask-SQLAlchemy's default pool (5 + 10): 16 simultaneous
    requests exceed it, and must still neither starve nor double-spend."""
    assert app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite:///")
    assert not app.config["SQLALCHEMY_DATABASE_URI"].endswith(":memory:")
    reasons, lock = [], threading.Lock()

    def record(sender, reason, **kwargs):
        with lock:
            reasons.append(reason)

    assertion_rejected.connect(record, app)
    assertion = encode_assertion(etree.tostring(mint_tree(idp)))
    barrier = threading.Barrier(THREADS)
    results = [None] * THREADS

    def redeem(index):
        client = app.test_client()
        barrier.wait(timeout=30)
        results[index] = request_token(client, assertion)

    threads = [threading.Thread(target=redeem, args=(i,)) for i in range(THREADS)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        assertion_rejected.disconnect(record, app)
    assert all(r is not None for r in results), results
    statuses = sorted(status for status, _ in results)
    assert statuses == [200] + [400] * (THREADS - 1), (statuses, reasons)
    for status, body in results:
        if status == 400:
            assert body == {"error": "invalid_grant", "error_description": GENERIC}
    assert sorted(reasons) == ["replayed"] * (THREADS - 1), reasons


def test_pool_sized_concurrency_does_not_starve(tmp_path, idp):
    """SECURITY.md step 8, availability side: N simultaneous redemptions on a pool of
    N connections still yield one token and N-1 ``replayed``, not cache errors."""
    threads = 4
    app = create_app(
        tmp_path,
        [idp],
        SQLALCHEMY_ENGINE_OPTIONS={"pool_size": threads, "max_overflow": 0, "pool_timeout": 2},
    )
    reasons = []
    assertion_rejected.connect(lambda s, reason, **k: reasons.append(reason), app, weak=False)
    assertion = encode_assertion(etree.tostring(mint_tree(idp)))
    barrier = threading.Barrier(threads)
    results = []

    def redeem():
        client = app.test_client()
        barrier.wait(timeout=30)
        try:
            results.append(request_token(client, assertion)[0])
        except Exception as exc:  # the pool timeout escapes the grant
            results.append(type(exc).__name__)

    workers = [threading.Thread(target=redeem) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    with app.app_context():
        db.session.remove()
    assert sorted(map(str, results)) == ["200"] + ["400"] * (threads - 1), results
    assert sorted(reasons) == ["replayed"] * (threads - 1), reasons
