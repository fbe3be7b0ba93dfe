"""The README's code runs as printed: the one-file server and the test of it."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks(heading: str) -> list[str]:
    """The ```python blocks of the README section under ``## heading``."""
    text = README.read_text(encoding="utf-8")
    section = text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.DOTALL)


@pytest.fixture
def readme_app(tmp_path, monkeypatch):
    """The README's ``app.py``, written out and importable as ``app``."""
    (tmp_path / "app.py").write_text(python_blocks("Register the grant")[0], encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("app", None)
    yield tmp_path
    sys.modules.pop("app", None)


def test_readme_app_and_its_test_run(readme_app):
    """RFC 7522 section 2.1 end to end with the README alone: its server file and
    its pytest example exchange a minted assertion for a Bearer token."""
    namespace: dict = {}
    exec(compile(python_blocks("Testing your own integration")[0], "README", "exec"), namespace)
    namespace["test_saml2_bearer_token"]()


def test_readme_app_refuses_a_bad_setting_at_start_up(readme_app):
    """The README's server validates its settings in create_app: the IdP metadata
    path it names for illustration does not exist here, and start-up says so."""
    import app

    from authlib_saml2_grant import ConfigurationError

    with pytest.raises(ConfigurationError, match="SAML2_BEARER_IDENTITY_PROVIDERS"):
        app.create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://"})
