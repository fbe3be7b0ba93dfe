"""Limits on token requests, enforced before the body is parsed.

A token request is a small form (:rfc:`6749#section-3.2`): a few parameters,
the largest an assertion of at most ``SAML2_BEARER_MAX_ASSERTION_SIZE``. Left
alone, Werkzeug reads a urlencoded body whole whatever its size (its
``max_form_memory_size`` and ``max_form_parts`` bound ``multipart/form-data``
only) and splits every ``&`` of it, so a 200 MB body or a million parameters
hold a worker for seconds and hundreds of megabytes. :func:`check_token_request`
refuses, in this order and before anything else reads the body:

- a ``Content-Length`` over ``SAML2_BEARER_MAX_REQUEST_SIZE``: 413, unread;
- a body of another type than ``application/x-www-form-urlencoded`` (JSON,
  multipart): 400 ``invalid_request`` (not ``unsupported_grant_type``);
- a body without ``Content-Length`` (chunked) that grows past the limit: 413,
  once the limit is read (Flask's per-request ``max_content_length``; Werkzeug
  returns a truncated body there rather than failing, so one byte more is read);
- a body that is not UTF-8, or a JSON text sent as a form: 400 ``invalid_request``;
- more than ``SAML2_BEARER_MAX_REQUEST_PARAMETERS`` parameters in the body or
  the query: 413, counted on the raw bytes before parsing.

The body read here is kept (``request.get_data()``), and Werkzeug parses the
form from that copy. Every refusal is an Authlib-style JSON error. Apply it to
the token view with :meth:`~authlib_saml2_grant.SAML2Bearer.token_endpoint`.
"""

from __future__ import annotations

import json
import logging

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import InvalidRequestError
from flask import Request
from flask import Response
from werkzeug.exceptions import RequestEntityTooLarge

from .settings import Saml2BearerSettings

__all__ = ["FORM_MIMETYPE", "RequestTooLargeError", "check_token_request", "error_response"]

log = logging.getLogger(__name__)

#: The only body type of a token request, :rfc:`6749#section-3.2`.
FORM_MIMETYPE = "application/x-www-form-urlencoded"


class RequestTooLargeError(InvalidRequestError):
    """HTTP 413 ``invalid_request``: the body or its parameter count is over a limit."""

    status_code = 413


def check_token_request(request: Request, settings: Saml2BearerSettings) -> None:
    """Enforce the token request limits of ``settings`` on ``request``, reading
    at most ``settings.max_request_size`` bytes of its body.

    :raise OAuth2Error: :class:`RequestTooLargeError` (413) or
        ``InvalidRequestError`` (400).
    """
    limit = settings.max_request_size
    # Flask 3.1: per request. Werkzeug stops reading a chunked body there, and
    # returns what it read: one byte more than the limit tells it was larger.
    request.max_content_length = limit + 1
    request.max_form_parts = settings.max_request_parameters
    request.max_form_memory_size = limit
    length = request.content_length
    if length is not None and length > limit:
        raise RequestTooLargeError(f"The request body is larger than {limit} bytes.")
    _check_parameter_count(request.query_string, settings)
    if "form" in request.__dict__:  # parsed by someone else already: too late to check
        return
    if length == 0:
        return
    if request.mimetype != FORM_MIMETYPE:
        if length is None and not request.mimetype:
            return  # no body at all
        raise InvalidRequestError(f"The token request body must be {FORM_MIMETYPE}.")
    try:
        body = request.get_data(cache=True)
    except RequestEntityTooLarge:
        body = None
    if body is None or len(body) > limit:
        raise RequestTooLargeError(f"The request body is larger than {limit} bytes.")
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequestError(f"The request body is not {FORM_MIMETYPE} in UTF-8.") from None
    if body.lstrip()[:1] in (b"{", b"["):
        raise InvalidRequestError(f"The token request body must be {FORM_MIMETYPE}, not JSON.")
    _check_parameter_count(body, settings)


def _check_parameter_count(raw: bytes, settings: Saml2BearerSettings) -> None:
    # Every parameter but the first follows an "&" (Python's parse_qsl splits
    # on "&" only): an upper bound, counted without parsing anything.
    maximum = settings.max_request_parameters
    if raw and raw.count(b"&") >= maximum:
        raise RequestTooLargeError(f"The request has more than {maximum} parameters.")


def error_response(error: OAuth2Error) -> Response:
    """``error`` as the JSON response Authlib's Flask server would send."""
    status, body, headers = error()
    return Response(json.dumps(body), status=status, headers=headers)
