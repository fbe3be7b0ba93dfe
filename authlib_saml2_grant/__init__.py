"""authlib_saml2_grant
~~~~~~~~~~~~~~~~~~~

The SAML 2.0 Bearer Assertion grant for Authlib's OAuth 2.0 server.

https://www.rfc-editor.org/rfc/rfc7522
"""

from .assertion import Attributes
from .assertion import Claims
from .assertion import VerifiedAssertion
from .client_auth import SAML2_CLIENT_ASSERTION_TYPE
from .client_auth import SAML2BearerClientAssertion
from .errors import REASONS
from .errors import AssertionRejected
from .errors import ConfigurationError
from .extension import SAML2Bearer
from .extension import get_settings
from .extension import init_app
from .grant import SAML2_BEARER_GRANT_TYPE
from .grant import SAML2BearerGrant
from .legacy import SAML2_BROWSER_SSO_ASSERTION_TYPE
from .legacy import SAML2LegacyAssertionGrant
from .limits import RequestTooLargeError
from .oidc import SAML2OpenIDToken
from .outages import TemporarilyUnavailableError
from .replay import MemoryReplayCache
from .replay import ReplayCache
from .replay import SQLAlchemyReplayCache
from .replay import TransactionalReplayCache
from .replay_redis import RedisReplayCache
from .signals import assertion_accepted
from .signals import assertion_rejected
from .signature import SignaturePolicy
from .trust import IdentityProvider
from .trust import TrustStore
from .trust import load_certificate
from .trust import load_metadata
from .verifier import AssertionVerifier

__version__ = "0.1.0"

__all__ = [
    "SAML2_BEARER_GRANT_TYPE",
    "SAML2BearerGrant",
    "SAML2LegacyAssertionGrant",
    "SAML2_BROWSER_SSO_ASSERTION_TYPE",
    "SAML2Bearer",
    "SAML2OpenIDToken",
    "SAML2BearerClientAssertion",
    "SAML2_CLIENT_ASSERTION_TYPE",
    "AssertionVerifier",
    "VerifiedAssertion",
    "Attributes",
    "Claims",
    "AssertionRejected",
    "ConfigurationError",
    "TemporarilyUnavailableError",
    "RequestTooLargeError",
    "REASONS",
    "IdentityProvider",
    "TrustStore",
    "load_certificate",
    "load_metadata",
    "SignaturePolicy",
    "ReplayCache",
    "TransactionalReplayCache",
    "MemoryReplayCache",
    "SQLAlchemyReplayCache",
    "RedisReplayCache",
    "init_app",
    "get_settings",
    "assertion_accepted",
    "assertion_rejected",
]
