"""Database models: users, OAuth 2.0 clients and tokens, and the replay table.

Clients and tokens use Authlib's ``sqla_oauth2`` mixins; the replay table is
the one :class:`~authlib_saml2_grant.SQLAlchemyReplayCache` declares in
``db.metadata``, so ``db.create_all()`` creates it with the others and every
process sharing the database refuses a replayed assertion.
"""

from __future__ import annotations

from authlib.integrations.sqla_oauth2 import OAuth2ClientMixin
from authlib.integrations.sqla_oauth2 import OAuth2TokenMixin
from flask_sqlalchemy import SQLAlchemy

from authlib_saml2_grant import SQLAlchemyReplayCache

__all__ = ["db", "User", "Client", "Token", "replay_cache"]

db = SQLAlchemy()


class User(db.Model):
    """A resource owner; the IdP's ``NameID`` is matched against ``email``.

    :meth:`get_user_id` is required: Authlib's token generator and
    ``save_token`` call it on the user the grant's ``authenticate_user``
    returns. Without it the grant refuses the assertion
    (``reason=user_lookup_error``) and logs an ERROR naming the model.
    """

    id = db.Column(db.Integer, primary_key=True)
    email = db.Column(db.String(255), unique=True, nullable=False)
    name = db.Column(db.String(255), nullable=False, default="")

    def get_user_id(self) -> int:
        """The id Authlib stores with the token (``Token.user_id``)."""
        return self.id

    def to_dict(self) -> dict:
        return {"id": self.id, "email": self.email, "name": self.name}


class Client(db.Model, OAuth2ClientMixin):
    """An OAuth 2.0 client; ``grant_types`` must list the saml2-bearer grant."""

    __tablename__ = "oauth2_client"

    id = db.Column(db.Integer, primary_key=True)


class Token(db.Model, OAuth2TokenMixin):
    """An issued access token, bound to the user the assertion named.

    ``access_token`` is text rather than the mixin's ``VARCHAR(255)``: a JWT
    access token (RFC 9068) with its claims and signature is longer. A
    PostgreSQL database created by an earlier version of this app keeps the
    255-character column and cannot save JWTs: create a new one with
    ``flask --app example_app init``.
    """

    __tablename__ = "oauth2_token"

    id = db.Column(db.Integer, primary_key=True)
    access_token = db.Column(db.Text, unique=True, nullable=False)
    user_id = db.Column(db.Integer, db.ForeignKey("user.id", ondelete="CASCADE"))
    user = db.relationship("User")


#: The replay cache of ``SAML2_BEARER_REPLAY_CACHE``: a table in this database.
replay_cache = SQLAlchemyReplayCache(db)
