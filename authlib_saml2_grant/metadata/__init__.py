"""IdP metadata URLs: fetched, verified and refreshed off the request path.

An entry ``{"metadata_url": ...}`` of ``SAML2_BEARER_IDENTITY_PROVIDERS`` is a
:class:`MetadataSource`. At start-up it is fetched; if that fails, the last
good copy is read from its backing file, so a restart during an IdP outage
still trusts the last good keys. If neither works the app starts anyway: that
IdP is untrusted (its assertions are refused as ``issuer_unknown``) and every
failed attempt logs an ERROR until a fetch succeeds.

Afterwards one daemon thread per process (:class:`MetadataRefresher`, started
again in a forked worker) fetches each document when due: after its
``cacheDuration``, or three quarters of the time left to its ``validUntil``,
clamped to the configured minimum and maximum interval, and with exponential
back-off after a failure. A document that cannot be fetched, is not signed by
the configured ``metadata_certificate``, names no such IdP or has expired is
refused; the last good copy stays, in memory and in the backing file.

Requests never wait for any of this: :class:`RefreshingTrustStore` answers
from a dict that a refresh replaces whole, and the verifier refuses an IdP
whose ``validUntil`` has passed (``metadata_expired``).
"""

from .document import MetadataSnapshot
from .document import parse_duration
from .document import read_metadata
from .document import read_metadata_file
from .document import report_expired
from .fetch import HttpFetcher
from .fetch import MetadataError
from .fetch import check_metadata_url
from .refresher import REFRESHER
from .refresher import MetadataRefresher
from .refresher import RefreshingTrustStore
from .source import ENTRY_KEYS
from .source import MetadataSource
from .source import RefreshPolicy
from .source import metadata_source

__all__ = [
    "ENTRY_KEYS",
    "REFRESHER",
    "HttpFetcher",
    "MetadataError",
    "MetadataRefresher",
    "MetadataSnapshot",
    "MetadataSource",
    "RefreshPolicy",
    "RefreshingTrustStore",
    "check_metadata_url",
    "metadata_source",
    "parse_duration",
    "read_metadata",
    "read_metadata_file",
    "report_expired",
]
