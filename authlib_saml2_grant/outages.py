"""Honest answers while a store is down: 503 ``temporarily_unavailable``.

When the client store (``query_client``, client authentication), the user
store (``authenticate_user``, ``has_granted_permission``), the replay store or
the token store (``generate_token``, ``save_token``, the replay commit) raises,
the request did nothing wrong: telling the client ``invalid_client`` or
``invalid_grant`` would send it looking for bad credentials or a new assertion.
It gets HTTP 503 with ``error=temporarily_unavailable`` (the code
:rfc:`6749#section-4.1.2.1` defines for an overloaded or unavailable server)
and a ``Retry-After`` header (``SAML2_BEARER_RETRY_AFTER`` seconds). The
reason code (:data:`OUTAGE_REASONS`) still goes to the log and the
``assertion_rejected`` signal.

Authlib has no such error for the token endpoint, so it is defined here in
Authlib's way: an :class:`~authlib.oauth2.OAuth2Error` that any grant or client
authentication method may raise.
"""

from __future__ import annotations

from typing import Any

from authlib.oauth2 import OAuth2Error

__all__ = [
    "OUTAGE_REASONS",
    "TemporarilyUnavailableError",
]

#: Reason codes that mean a store failed, not the request: answered with 503.
OUTAGE_REASONS = frozenset(
    ("client_lookup_error", "user_lookup_error", "replay_cache_error", "token_error")
)


class TemporarilyUnavailableError(OAuth2Error):
    """HTTP 503 ``temporarily_unavailable``, with a ``Retry-After`` header.

    :param description: the ``error_description`` (ASCII, no ``"`` or ``\\``).
    :param retry_after: seconds for the ``Retry-After`` header; ``None`` omits it.
    """

    error = "temporarily_unavailable"
    status_code = 503
    #: The ``error_description`` when the client may retry the same request.
    RETRY_DESCRIPTION = "The service is temporarily unavailable; retry the same request later."
    #: The ``error_description`` when the assertion was recorded as used before
    #: the failure (a replay cache that commits at once): a retry needs a new one.
    SPENT_DESCRIPTION = (
        "The service is temporarily unavailable and the assertion was used up; "
        "retry later with a new assertion."
    )

    def __init__(
        self, description: str | None = None, retry_after: int | None = None, **kwargs: Any
    ) -> None:
        super().__init__(description=description or self.RETRY_DESCRIPTION, **kwargs)
        self.retry_after = retry_after

    def get_headers(self) -> list[tuple[str, str]]:
        headers: list[tuple[str, str]] = super().get_headers()
        if self.retry_after is not None:
            headers.append(("Retry-After", str(self.retry_after)))
        return headers
