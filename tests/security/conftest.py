"""Fixtures for the attack suite, on top of :mod:`tests.conftest`."""

from __future__ import annotations

import pytest

from ..conftest import create_app
from ..conftest import in_context


@pytest.fixture
def trio_app(tmp_path, idp, ec_idp, other_idp):
    """An app that trusts three IdPs, for cross-IdP key confusion."""
    with in_context(create_app(tmp_path, [idp, ec_idp, other_idp])) as app:
        yield app
