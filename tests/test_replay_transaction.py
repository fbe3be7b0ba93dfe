"""The replay record shares the token's transaction, :rfc:`7522#section-3` item 6.

``SQLAlchemyReplayCache(db)`` writes the (Issuer, ID) key through the app's
``db.session`` and the grant commits it with the token, before answering. So a
token is never sent without a durable record (no second token), and a token
that could not be issued leaves the assertion unspent (nothing lost). Each
test runs on a SQLite file and on the real PostgreSQL.
"""

from __future__ import annotations

import logging

import pytest
import sqlalchemy as sa

from authlib_saml2_grant import SQLAlchemyReplayCache

from .conftest import Token as TokenModel
from .conftest import db
from .conftest import mint_for
from .conftest import replay_cache
from .helpers import INVALID_GRANT
from .helpers import INVALID_SCOPE
from .helpers import ago
from .helpers import app_for
from .helpers import assert_redeemed_once
from .helpers import assert_rejected
from .helpers import assert_unavailable
from .helpers import from_now
from .helpers import redeem_concurrently
from .helpers import replay_rows
from .helpers import token_store_down

#: Above Flask-SQLAlchemy's default pool (5 + 10): the requests must neither
#: starve nor double-spend.
THREADS = 16


@pytest.fixture
def harness(tmp_path, idp, database_url):
    """The test app on ``database_url``, its tables dropped before and after."""
    engine = sa.create_engine(database_url)
    db.metadata.drop_all(engine)
    try:
        with app_for(tmp_path, [idp], SQLALCHEMY_DATABASE_URI=database_url) as h:
            assert db.engine.dialect.name == engine.dialect.name
            yield h
            db.session.remove()
    finally:
        db.metadata.drop_all(engine)
        engine.dispose()


def test_default_cache_is_transactional():
    """With a Flask-SQLAlchemy ``db`` the key goes into the request's transaction."""
    assert replay_cache.transactional is True


def test_record_is_committed_with_the_token(harness, idp):
    """Item 6: the granted request leaves one committed record; the replay is refused."""
    assertion = mint_for(idp)
    status, body = harness.token(assertion)
    assert status == 200, body
    assert replay_rows(replay_cache) == 1
    status, body = harness.token(assertion)
    assert_rejected(status, body, harness.reasons, "replayed")
    assert replay_rows(replay_cache) == 1


def test_failed_token_save_leaves_the_assertion_unspent(harness, idp, caplog):
    """Nothing lost: when the token store fails the record is rolled back, so the
    client may retry the same assertion; it still yields one token only."""
    assertion = mint_for(idp)
    with token_store_down(harness.app), caplog.at_level(logging.INFO, "authlib_saml2_grant"):
        status, body = harness.token(assertion)
    assert_unavailable(status, body, harness.reasons, "token_error")
    assert "'assertion_spent': False" in caplog.text
    assert replay_rows(replay_cache) == 0
    status, body = harness.token(assertion)
    assert status == 200, body
    assert harness.token(assertion) == (400, INVALID_GRANT)
    assert harness.reasons == ["token_error", "replayed"]


def test_database_without_on_conflict_reports_the_spent_assertion(
    harness, idp, caplog, monkeypatch
):
    """Without ``ON CONFLICT`` the key is committed at once, so a failed token save
    spends the assertion, and the log says so instead of claiming a release."""
    monkeypatch.setattr(replay_cache, "_upsert", lambda dialect: None)
    assertion = mint_for(idp)
    with token_store_down(harness.app), caplog.at_level(logging.INFO, "authlib_saml2_grant"):
        assert_unavailable(*harness.token(assertion), harness.reasons, "token_error", spent=True)
    assert "'assertion_spent': True" in caplog.text
    assert replay_rows(replay_cache) == 1
    assert harness.token(assertion) == (400, INVALID_GRANT)
    assert harness.reasons == ["token_error", "replayed"]


def test_grant_commits_when_save_token_does_not(harness, idp, monkeypatch):
    """No second token: a host ``save_token`` that only adds the token to the session
    still gets both committed by the grant before the token is sent."""

    def save_without_commit(token, request):
        db.session.add(
            TokenModel(client_id=request.client.client_id, user_id=request.user.id, **token)
        )

    monkeypatch.setattr(harness.app.extensions["test_storage"], "save_token", save_without_commit)
    assertion = mint_for(idp)
    assert harness.token(assertion)[0] == 200
    db.session.remove()  # what the end of the request does: uncommitted work is lost
    assert replay_rows(replay_cache) == 1
    with replay_cache.engine.connect() as conn:
        tokens = conn.execute(sa.select(sa.func.count()).select_from(TokenModel.__table__))
        assert tokens.scalar_one() == 1
    status, body = harness.token(assertion)
    assert_rejected(status, body, harness.reasons, "replayed")


def test_granted_request_commits_once(harness, idp):
    """The grant's commit adds no second (empty) commit after a ``save_token`` that
    committed the token and the record together."""
    commits = []
    session = db.session()

    def count(_session):
        commits.append(1)

    sa.event.listen(session, "after_commit", count)
    try:
        assert harness.token(mint_for(idp))[0] == 200
    finally:
        sa.event.remove(session, "after_commit", count)
    assert len(commits) == 1
    assert replay_rows(replay_cache) == 1


def test_refused_request_writes_nothing(harness, idp):
    """A request refused after verification (unknown scope) records nothing."""
    assertion = mint_for(idp)
    status, body = harness.token(assertion, scope="unknown-scope")
    assert (status, body) == (400, INVALID_SCOPE)
    assert harness.reasons == []
    assert replay_rows(replay_cache) == 0
    assert harness.token(assertion)[0] == 200


def test_expired_record_is_taken_over_and_rollback_releases(harness):
    """The upsert takes over only an expired key; a rollback releases a written key."""
    assert replay_cache.add("k", ago(30)) is True
    replay_cache.commit()
    assert replay_cache.add("k", from_now(60)) is True
    replay_cache.commit()
    assert replay_cache.add("k", from_now(60)) is False
    replay_cache.rollback()
    assert replay_cache.add("fresh", from_now(60)) is True
    replay_cache.rollback()
    assert replay_cache.add("fresh", from_now(60)) is True
    replay_cache.commit()
    assert replay_rows(replay_cache) == 2


def test_sixteen_concurrent_requests_one_token(harness, idp):
    """16 threads redeem one assertion at once: one 200, fifteen ``replayed``.

    Each later transaction waits for the first one's commit (PostgreSQL: the
    key's row lock; SQLite: the write lock) and then finds the key taken."""
    results = redeem_concurrently(harness.app, mint_for(idp), THREADS)
    assert_redeemed_once(results, harness.reasons)
    assert replay_rows(replay_cache) == 1


def test_committed_mode_spends_on_failed_save(tmp_path, idp):
    """``transactional=False`` commits the key at once: a failed token save spends it."""
    cache = SQLAlchemyReplayCache(db, transactional=False)
    with app_for(tmp_path, [idp], SAML2_BEARER_REPLAY_CACHE=cache) as h:
        assertion = mint_for(idp)
        with token_store_down(h.app):
            assert_unavailable(*h.token(assertion), h.reasons, "token_error", spent=True)
        assert h.token(assertion) == (400, INVALID_GRANT)
        assert h.reasons == ["token_error", "replayed"]


def test_transactional_needs_a_session(tmp_path):
    """An Engine has no request transaction to join."""
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'r.db'}")
    with pytest.raises(ValueError, match="Flask-SQLAlchemy"):
        SQLAlchemyReplayCache(engine, transactional=True)
    assert SQLAlchemyReplayCache(engine).transactional is False


def test_lost_table_fails_closed_then_recovers(harness, idp):
    """Item 6: a missing replay table refuses the token (``replay_cache_error``, a 503,
    not a 500) without spending the assertion; once the table is back it is accepted."""
    replay_cache.table.drop(replay_cache.engine)
    assertion = mint_for(idp)
    status, body = harness.token(assertion)
    assert_unavailable(status, body, harness.reasons, "replay_cache_error")
    db.session.remove()
    replay_cache.create_table()
    status, body = harness.token(assertion)
    assert status == 200, body
