"""example_app
~~~~~~~~~~~

A reference integration of the SAML 2.0 Bearer Assertion grant
(:rfc:`7522`) with Flask, Flask-SQLAlchemy and Authlib, to copy from.

Run the whole flow in one command, from the repository root::

    pip install -e ".[sqlalchemy]"
    flask --app example_app demo

Modules, in the order a request meets them: :mod:`~example_app.config`
(settings, from ``instance/config.py`` and ``EXAMPLE_APP_*`` environment
variables), :mod:`~example_app.logs` (console logging of reason codes),
:mod:`~example_app.oauth` (the ``saml2_bearer`` extension, the saml2-bearer
and refresh-token grants, the authorization server),
:mod:`~example_app.legacy` (Salesforce's ``grant_type=assertion``, its
``id`` and ``instance_url``, the identity URLs),
:mod:`~example_app.tokens` (RFC 9068 JWT access tokens, OpenID Connect ID
tokens), :mod:`~example_app.keys` (the server's signing key),
:mod:`~example_app.routes` (endpoints, RFC 8414 metadata, JWKS),
:mod:`~example_app.models`, :mod:`~example_app.idp` (the demo IdP),
:mod:`~example_app.commands` (``init``, ``mint``, ``demo``).
"""

from .app import create_app

__all__ = ["create_app"]
