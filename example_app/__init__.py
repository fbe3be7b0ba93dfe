"""example_app
~~~~~~~~~~~

A reference integration of the SAML 2.0 Bearer Assertion grant
(:rfc:`7522`) with Flask, Flask-SQLAlchemy and Authlib, to copy from.

Run the whole flow in one command, from the repository root::

    pip install -e ".[sqlalchemy]"
    flask --app example_app demo
"""

from .app import create_app

__all__ = ["create_app"]
