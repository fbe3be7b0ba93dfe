"""The example app's console logging: reason codes where an operator looks.

pytest configures logging itself (it adds handlers to the root logger for
each test's call), which the app rightly leaves alone; the tests create the
app inside ``unconfigured_root()``, which takes those handlers away for a
moment, as in a ``flask --app example_app`` process. The ``loggers`` fixture
restores the library's and the app's loggers afterwards.
"""

from __future__ import annotations

import base64
import contextlib
import logging

import pytest

from authlib_saml2_grant import SAML2_BEARER_GRANT_TYPE
from example_app import create_app
from example_app.bootstrap import DEMO_USER_EMAIL
from example_app.bootstrap import initialize
from example_app.idp import mint_assertion
from example_app.logs import LOGGERS
from example_app.logs import ConsoleHandler
from example_app.models import db

REPLAYED = (
    "INFO authlib_saml2_grant.grant: SAML2 bearer assertion rejected: "
    "reason=replayed client='demo-client': "
)


pytestmark = pytest.mark.usefixtures("no_example_env")


@pytest.fixture
def loggers(monkeypatch):
    """The library's and the app's loggers, bare; restored (handlers, level) afterwards."""
    found = [logging.getLogger(name) for name in LOGGERS]
    levels = [logger.level for logger in found]
    for logger in found:
        monkeypatch.setattr(logger, "handlers", [])
        logger.setLevel(logging.NOTSET)
    yield found
    for logger, level in zip(found, levels, strict=True):
        logger.setLevel(level)


@contextlib.contextmanager
def unconfigured_root():
    """No handler on the root logger for a moment, as when nothing configured logging."""
    root = logging.getLogger()
    saved = list(root.handlers)
    for handler in saved:
        root.removeHandler(handler)
    try:
        yield
    finally:
        for handler in saved:
            root.addHandler(handler)


def consoles(logger):
    return [h for h in logger.handlers if isinstance(h, ConsoleHandler)]


def token_request(app, credentials, assertion):
    raw = f"{credentials.client_id}:{credentials.client_secret}".encode()
    return app.test_client().post(
        "/oauth/token",
        data={"grant_type": SAML2_BEARER_GRANT_TYPE, "assertion": assertion},
        headers={"Authorization": "Basic " + base64.b64encode(raw).decode()},
        base_url="http://127.0.0.1:5000/",
    )


def test_rejection_reason_and_values_on_the_console(tmp_path, loggers, capsys):
    """RFC 7522 section 3, item 2: an assertion for another audience is refused
    with invalid_grant; the console (standard error) shows the reason code and
    the expected and actual values, though the client does not see them."""
    with unconfigured_root():
        app = create_app(instance_path=str(tmp_path))
    for logger in loggers:
        assert len(consoles(logger)) == 1
        assert logger.level == logging.INFO
    with app.app_context():
        credentials = initialize()
        assertion = mint_assertion(app, DEMO_USER_EMAIL, audience="https://elsewhere.example")
        capsys.readouterr()
        response = token_request(app, credentials, assertion)
        db.session.remove()
    assert response.status_code == 400
    assert "audience" not in response.get_data(as_text=True)
    err = capsys.readouterr().err
    assert "] INFO authlib_saml2_grant.grant: SAML2 bearer assertion rejected: " in err
    assert "reason=audience_mismatch client='demo-client'" in err
    assert "'found': ['https://elsewhere.example']" in err
    assert "'accepted': ['http://127.0.0.1:5000']" in err


def test_demo_transcript_shows_the_replay_log_line(tmp_path, loggers):
    """``flask --app example_app demo``: the served app's log line for the
    replayed assertion (RFC 7522 section 3, item 6), with reason=replayed,
    appears between the replayed request and its 400 response."""
    with unconfigured_root():
        app = create_app(instance_path=str(tmp_path))
        result = app.test_cli_runner().invoke(args=["demo"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert REPLAYED in result.stderr
    replay = out.index("== 7. Replay")
    assert replay < out.index(REPLAYED) < out.index("< 400 BAD REQUEST", replay)
    assert "All 11 steps gave the expected result." in result.stdout
    for logger in loggers:
        assert len(consoles(logger)) == 1  # the served app reused the handler


def test_log_level_setting_quietens_the_console(tmp_path, loggers, capsys):
    """EXAMPLE_APP_LOG_LEVEL = "warning" hides the INFO rejection lines;
    warnings still show."""
    with unconfigured_root():
        app = create_app({"EXAMPLE_APP_LOG_LEVEL": "warning"}, str(tmp_path))
    for logger in loggers:
        assert logger.level == logging.WARNING
    with app.app_context():
        credentials = initialize()
        assertion = mint_assertion(app, DEMO_USER_EMAIL)
        assert token_request(app, credentials, assertion).status_code == 200
        capsys.readouterr()
        assert token_request(app, credentials, assertion).status_code == 400
        db.session.remove()
    assert "reason=replayed" not in capsys.readouterr().err
    app.test_client().get("/.well-known/oauth-authorization-server")
    assert "WARNING example_app.routes: Requests reach this server at" in capsys.readouterr().err


def test_log_level_from_the_environment(tmp_path, loggers, monkeypatch):
    """The setting also comes from the environment; the last app created sets it."""
    monkeypatch.setenv("EXAMPLE_APP_LOG_LEVEL", "error")
    with unconfigured_root():
        create_app(instance_path=str(tmp_path))
    assert [logger.level for logger in loggers] == [logging.ERROR] * 2
    with unconfigured_root():
        create_app({"EXAMPLE_APP_LOG_LEVEL": "DEBUG"}, str(tmp_path))
    assert [logger.level for logger in loggers] == [logging.DEBUG] * 2
    assert [len(consoles(logger)) for logger in loggers] == [1, 1]


def test_a_configured_root_logger_is_left_alone(tmp_path, loggers):
    """When the process configured logging (here pytest, with handlers on the
    root logger), the app adds no handler and sets no level: that
    configuration decides."""
    assert logging.getLogger().handlers
    create_app(instance_path=str(tmp_path))
    for logger in loggers:
        assert logger.handlers == []
        assert logger.level == logging.NOTSET


def test_a_configured_library_logger_is_left_alone(tmp_path, loggers):
    """A handler the user put on ``authlib_saml2_grant`` keeps that logger as
    configured; the app's own logger still gets the console."""
    library, own = loggers
    theirs = logging.NullHandler()
    library.addHandler(theirs)
    library.setLevel(logging.ERROR)
    with unconfigured_root():
        create_app(instance_path=str(tmp_path))
    assert library.handlers == [theirs]
    assert library.level == logging.ERROR
    assert len(consoles(own)) == 1


def test_console_goes_when_logging_is_configured_later(tmp_path, loggers):
    """An app created after the process configured logging removes the console
    handler an earlier app added, so no line is printed twice."""
    with unconfigured_root():
        create_app(instance_path=str(tmp_path))
    assert all(consoles(logger) for logger in loggers)
    assert logging.getLogger().handlers
    create_app(instance_path=str(tmp_path))
    for logger in loggers:
        assert logger.handlers == []
        assert logger.level == logging.NOTSET
