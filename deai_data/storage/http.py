"""`http://` / `https://` store: read objects from any HTTP server or gateway, with range requests.

Retries with exponential backoff on timeouts, dropped or short bodies, 429 (honouring Retry-After)
and 5xx; a 404 is a `NotFoundError` at once. Read-only: publishing goes through a writable backend.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping

import requests

from ..errors import NotFoundError, StorageError
from .base import Buffer, ObjectStat, check_range

RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_CHUNK = 1 << 20


class HttpStore:
    """Read-only store over HTTP(S), with a pooled `requests.Session` per thread."""

    schemes = ("http", "https")

    def __init__(
        self,
        *,
        timeout: float = 30.0,
        connect_timeout: float = 5.0,
        retries: int = 4,
        backoff: float = 0.25,
        max_retry_after: float = 30.0,
        session: requests.Session | None = None,
    ) -> None:
        self.timeout = (connect_timeout, timeout)
        self.retries = retries
        self.backoff = backoff
        self.max_retry_after = max_retry_after
        self._given = session
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"HttpStore(retries={self.retries}, timeout={self.timeout})"

    @property
    def session(self) -> requests.Session:
        """The session given at construction, else one per thread (requests does not promise that a
        Session is thread-safe; each keeps its own connection pool)."""
        if self._given is not None:
            return self._given
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    def put(self, data: Buffer, *, sha256: str | None = None, labels: Mapping[str, str] | None = None) -> str:
        raise StorageError("the HTTP store is read-only", hint="publish to a writable store (file://, ar://, ipfs://)")

    put_file = put  # equally refused

    def request(self, method: str, locator: str, headers: dict[str, str] | None = None, *,
                body: bytes | Callable[[], Iterable[bytes]] | None = None,
                retry_status: frozenset[int] = RETRY_STATUS) -> requests.Response:
        """Send one request, retrying transient failures; the caller reads (and retries) the body.
        A 404 is `NotFoundError`, other 4xx a `StorageError` at once. A streamed request body is given
        as a function returning a fresh iterator, so that each attempt sends it whole. A status outside
        `retry_status` and below 400 (or one the caller takes out of it) is returned to the caller."""
        last = "no attempt made"
        last_response: requests.Response | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self._delay(attempt, last_response))
            last_response = None
            try:
                data = body() if callable(body) else body
                response = self.session.request(method, locator, headers=headers, data=data,
                                                timeout=self.timeout, stream=True, allow_redirects=True)
            except (requests.ConnectionError, requests.Timeout) as exc:
                last = f"{type(exc).__name__}: {exc}"
                continue
            if response.status_code == 404:
                response.close()
                raise NotFoundError(locator)
            if response.status_code in retry_status:
                last = f"HTTP {response.status_code}"
                last_response = response
                response.close()
                continue
            if response.status_code >= 400 and response.status_code not in RETRY_STATUS:
                detail = response.text[:200].strip()
                response.close()
                raise StorageError(f"HTTP {response.status_code} for {method}" + (f": {detail}" if detail else ""),
                                   locator=locator,
                                   hint="the server refused the request; check the URL and access rights")
            return response
        raise StorageError(f"gave up after {self.retries + 1} attempts: {last}", locator=locator,
                           hint="the server or gateway is failing; retry later or use another mirror")

    def _delay(self, attempt: int, response: requests.Response | None) -> float:
        if response is not None and response.headers.get("Retry-After", "").isdigit():
            return min(float(response.headers["Retry-After"]), self.max_retry_after)
        return self.backoff * (2 ** (attempt - 1))

    def get(self, locator: str, start: int = 0, end: int | None = None) -> bytes:
        check_range(start, end)
        if end is not None and end == start:
            return b""
        headers = {"Accept-Encoding": "identity"}
        if start or end is not None:
            headers["Range"] = f"bytes={start}-" + ("" if end is None else str(end - 1))
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self._delay(attempt, None))
            response = self.request("GET", locator, headers)
            try:
                body = self._read_body(response, start, end)
            except (requests.RequestException, ValueError) as exc:
                last = f"body: {type(exc).__name__}: {exc}"
                continue
            finally:
                response.close()
            if body is not None:
                return body
            last = "short body (connection closed early)"
        raise StorageError(f"gave up after {self.retries + 1} attempts: {last}", locator=locator,
                           hint="the server keeps dropping the transfer; retry later or use another mirror")

    def _read_body(self, response: requests.Response, start: int, end: int | None) -> bytes | None:
        """The requested bytes, or None when the body was cut short."""
        skip = 0
        if response.status_code == 200 and (start or end is not None):
            skip = start  # server ignored Range: discard the prefix ourselves
        elif response.status_code == 206:
            content_range = response.headers.get("Content-Range", "")
            if not content_range.startswith(f"bytes {start}-"):
                raise ValueError(f"unexpected Content-Range {content_range!r}")
        declared = response.headers.get("Content-Length")
        expected = int(declared) - skip if declared is not None else None
        if end is not None:
            want = end - start
            expected = want if expected is None else min(expected, want)
        out = bytearray()
        for chunk in response.iter_content(_CHUNK):
            if skip:
                cut = min(skip, len(chunk))
                chunk, skip = chunk[cut:], skip - cut
            out += chunk
            if end is not None and len(out) >= end - start:
                del out[end - start:]
                break
        if expected is not None and len(out) < expected:
            return None
        return bytes(out)

    def exists(self, locator: str) -> bool:
        try:
            self.request("HEAD", locator, {}).close()
        except NotFoundError:
            return False
        return True

    def stat(self, locator: str) -> ObjectStat:
        response = self.request("HEAD", locator, {"Accept-Encoding": "identity"})
        response.close()
        length = response.headers.get("Content-Length")
        if length is None or not length.isdigit():
            raise StorageError("server did not report the object's size", locator=locator)
        return ObjectStat(locator, int(length))
