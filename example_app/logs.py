"""Console logging, so an operator sees why each assertion was refused.

The library logs every rejected assertion at ``INFO`` on the
``authlib_saml2_grant.grant`` logger, with its reason code and the
expected-versus-actual values::

    [2025-01-01 12:00:00,000] INFO authlib_saml2_grant.grant: SAML2 bearer assertion
    rejected: reason=replayed client='demo-client': The assertion was already used {...}

Python shows nothing below ``WARNING`` until logging is configured, so on a
fresh app these lines would be lost. :func:`configure_logging` therefore
attaches one handler writing to standard error to the ``authlib_saml2_grant``
and ``example_app`` loggers, at ``EXAMPLE_APP_LOG_LEVEL`` (default ``INFO``),
but only while the process has no logging configuration of its own:

- when the root logger has a handler (``basicConfig``, ``dictConfig``,
  gunicorn's ``--log-config``, pytest...), nothing is added, a console
  handler an earlier app added is removed, and that configuration decides
  what is shown; ``EXAMPLE_APP_LOG_LEVEL`` is then not used;
- a logger that already has a handler of its own is left as it is.

The root logger itself is never changed.
"""

from __future__ import annotations

import logging
import sys

from flask import Flask

from .config import parse_log_level

__all__ = ["LOGGERS", "LOG_FORMAT", "ConsoleHandler", "configure_logging"]

log = logging.getLogger(__name__)

#: The loggers given a console handler: the library's and this app's.
LOGGERS = ("authlib_saml2_grant", "example_app")
#: The console format: time, level, logger name, message.
LOG_FORMAT = "[%(asctime)s] %(levelname)s %(name)s: %(message)s"


class ConsoleHandler(logging.StreamHandler):
    """Writes to the current ``sys.stderr``, looked up at each record, as
    :data:`logging.lastResort` does (so a replaced ``sys.stderr``, e.g. by a
    test runner, receives the lines)."""

    def __init__(self) -> None:
        logging.Handler.__init__(self)
        self.setFormatter(logging.Formatter(LOG_FORMAT))

    @property
    def stream(self):
        return sys.stderr


def configure_logging(app: Flask) -> None:
    """Show the library's and the app's log lines on standard error, unless
    logging is configured already; see the module documentation.

    Idempotent: a second app in the process reuses the handler and applies
    its own ``EXAMPLE_APP_LOG_LEVEL``.
    """
    level = parse_log_level(app.config["EXAMPLE_APP_LOG_LEVEL"], "EXAMPLE_APP_LOG_LEVEL")
    root_configured = bool(logging.getLogger().handlers)
    for name in LOGGERS:
        logger = logging.getLogger(name)
        ours = [h for h in logger.handlers if isinstance(h, ConsoleHandler)]
        if root_configured:
            # Configured since our handler was attached: let that configuration decide.
            for handler in ours:
                logger.removeHandler(handler)
                logger.setLevel(logging.NOTSET)
            log.debug("The root logger has handlers: logger %r left to them", name)
            continue
        if not ours:
            if logger.handlers:
                log.debug("Logger %r has handlers already: left as configured", name)
                continue
            logger.addHandler(ConsoleHandler())
        logger.setLevel(level)
