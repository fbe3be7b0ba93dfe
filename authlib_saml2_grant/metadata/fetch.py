"""Fetching a metadata document over HTTP(S), bounded in time and size.

urllib3 (the ``metadata`` extra) with connect and read timeouts, an overall
deadline that a server sending one byte at a time cannot stretch, a size limit
checked before and while reading, no retries (the refresher has its own
back-off) and at most a few redirects, never from ``https`` to ``http``.
"""

from __future__ import annotations

import ipaddress
import time
from typing import Any
from urllib.parse import urljoin
from urllib.parse import urlsplit

from ..errors import ConfigurationError

__all__ = ["HttpFetcher", "MetadataError", "check_metadata_url"]

_REDIRECTS = frozenset((301, 302, 303, 307, 308))
_ACCEPT = "application/samlmetadata+xml, application/xml;q=0.9, text/xml;q=0.8"


class MetadataError(Exception):
    """A metadata document could not be fetched, read or trusted; the last good
    copy stays in force."""


def check_metadata_url(url: Any, signed: bool) -> str:
    """Check a ``metadata_url`` at start-up.

    ``https`` always; plain ``http`` only when the document's signature is
    checked (``signed``) or the host is this machine, since anyone on the path
    could otherwise publish keys.

    :raise ConfigurationError: naming the problem.
    """
    if not isinstance(url, str) or not url:
        raise ConfigurationError("'metadata_url' must be a URL string")
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ConfigurationError(f"'metadata_url' must be an http(s) URL: {url[:80]!r}")
    if parts.scheme == "http" and not signed and not _is_loopback(parts.hostname):
        raise ConfigurationError(
            f"'metadata_url' {url[:80]!r} is plain http: use https, or configure "
            "'metadata_certificate' so the document's signature is verified"
        )
    return url


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class HttpFetcher:
    """``fetch(url) -> bytes``: one GET, bounded.

    :param timeout: seconds for the whole fetch, and for connecting and each read.
    :param max_size: largest accepted body, in bytes (after content decoding).
    :param max_redirects: redirects followed; ``https`` never redirects to ``http``.
    :raise ConfigurationError: when urllib3 is not installed.
    """

    def __init__(self, timeout: float = 10.0, max_size: int = 16 << 20, max_redirects: int = 3):
        try:
            import urllib3
        except ImportError as exc:
            raise ConfigurationError(
                "'metadata_url' needs urllib3: pip install 'authlib-saml2-grant[metadata]'"
            ) from exc
        from .. import __version__  # the package's __init__ is complete by now

        self._urllib3 = urllib3
        self._user_agent = f"authlib-saml2-grant/{__version__}"
        self.timeout = timeout
        self.max_size = max_size
        self.max_redirects = max_redirects

    def __call__(self, url: str) -> bytes:
        urllib3 = self._urllib3
        deadline = time.monotonic() + self.timeout
        pool = urllib3.PoolManager(
            retries=False,
            timeout=urllib3.Timeout(connect=self.timeout, read=self.timeout),
            headers={"Accept": _ACCEPT, "User-Agent": self._user_agent},
        )
        try:
            for _ in range(self.max_redirects + 1):
                response = pool.request("GET", url, preload_content=False, redirect=False)
                try:
                    if response.status in _REDIRECTS:
                        url = self._redirect(url, response.headers.get("Location"))
                        continue
                    if response.status != 200:
                        raise MetadataError(f"HTTP status {response.status} from {url}")
                    return self._read_body(response, deadline)
                finally:
                    response.release_conn()
            raise MetadataError(f"more than {self.max_redirects} redirects from {url}")
        except urllib3.exceptions.HTTPError as exc:
            raise MetadataError(f"cannot fetch {url}: {type(exc).__name__}: {exc}") from exc
        finally:
            pool.clear()

    def _redirect(self, url: str, location: str | None) -> str:
        if not location:
            raise MetadataError(f"redirect without a Location from {url}")
        target = urljoin(url, location)
        if urlsplit(url).scheme == "https" and urlsplit(target).scheme != "https":
            raise MetadataError(f"refused redirect from https to {target[:120]}")
        return target

    def _read_body(self, response: Any, deadline: float) -> bytes:
        length = response.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > self.max_size:
            raise MetadataError(f"metadata of {length} bytes exceeds the {self.max_size} limit")
        chunks: list[bytes] = []
        size = 0
        while True:
            # read1: returns after one network read, so the deadline is checked
            # even when a server sends its body one byte at a time.
            chunk = response.read1(65536)
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > self.max_size:
                raise MetadataError(f"metadata exceeds the {self.max_size}-byte limit")
            if time.monotonic() > deadline:
                raise MetadataError(f"metadata download took more than {self.timeout:g} s")
            chunks.append(chunk)
