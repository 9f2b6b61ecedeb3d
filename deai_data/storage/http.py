"""`http://` / `https://` store: read objects from any HTTP server or gateway, with range requests; and the
bounded, retrying HTTP client the network stores build on.

Retries with exponential backoff on timeouts, dropped or short bodies, 429 (honouring Retry-After) and 5xx;
a 404 is a `NotFoundError` at once. Every body is read raw (no transparent decompression), bounded by the
size expected or a limit, within a total deadline; redirects are followed only where the fetch policy allows.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import urljoin

import requests
import urllib3
from requests.adapters import HTTPAdapter

from ..errors import FetchRefusedError, LimitError, NotFoundError, StorageError, nested_exceptions, network_reason
from ..formats import limits
from ..formats.canonical import nesting_depth
from . import fetch_policy
from .base import Buffer, ObjectStat, check_range, parse_uri

RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
REDIRECT_STATUS = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 5
_CHUNK = 1 << 20
_IDENTITY = ("", "identity")


class _VettedAdapter(HTTPAdapter):
    """An adapter whose connections check each address against the fetch policy when they connect."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        fetch_policy.vet_connections(self.poolmanager)


class HttpStore:
    """Read-only store over HTTP(S), with a pooled `requests.Session` per thread.

    `untrusted=True` (the store that reads `http(s)://` locators named by manifests): every URL, redirect and
    connected address must pass the fetch policy. A client of configured gateways is trusted with its own
    hosts; its redirects must still stay within the policy widened for the host it asked.
    `deadline` bounds a whole request (`min_rate` bytes/s extends it for large bodies).
    """

    schemes: tuple[str, ...] = ("http", "https")

    def __init__(
        self,
        *,
        timeout: float = 30.0,
        connect_timeout: float = 5.0,
        retries: int = 4,
        backoff: float = 0.25,
        max_retry_after: float = 30.0,
        deadline: float = 120.0,
        min_rate: float = 256 * 1024,
        untrusted: bool = False,
        session: requests.Session | None = None,
    ) -> None:
        self.timeout = (connect_timeout, timeout)
        self.retries = retries
        self.backoff = backoff
        self.max_retry_after = max_retry_after
        self.deadline = deadline
        self.min_rate = min_rate
        self.untrusted = untrusted
        self._given = session
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"HttpStore(retries={self.retries}, timeout={self.timeout}, untrusted={self.untrusted})"

    @property
    def session(self) -> requests.Session:
        """The session given at construction, else one per thread (requests does not promise that a
        Session is thread-safe; each keeps its own connection pool)."""
        if self._given is not None:
            return self._given
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            session.trust_env = False  # no proxies or .netrc credentials from the environment
            if self.untrusted:
                adapter = _VettedAdapter()
                session.mount("http://", adapter)
                session.mount("https://", adapter)
        return session

    def put(self, data: Buffer, *, sha256: str | None = None, labels: Mapping[str, str] | None = None) -> str:
        raise StorageError("the HTTP store is read-only", hint="publish to a writable store (file://, ar://, ipfs://)")

    put_file = put  # equally refused

    # ---- requests --------------------------------------------------------------------------------------

    def request(self, method: str, locator: str, headers: dict[str, str] | None = None, *,
                body: bytes | Callable[[], Iterable[bytes]] | None = None,
                retry_status: frozenset[int] = RETRY_STATUS) -> requests.Response:
        """Send one request, retrying transient failures; the caller reads the body (with `read`, `text` or
        `json`). A 404 is `NotFoundError`, other 4xx a `StorageError` at once. A streamed request body is given
        as a function returning a fresh iterator, so that each attempt sends it whole. A status outside
        `retry_status` and below 400 (or one the caller takes out of it) is returned to the caller."""
        if self.untrusted:
            fetch_policy.current().check(locator)
        last = "no attempt made"
        last_response: requests.Response | None = None
        started = time.monotonic()
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self._delay(attempt, last_response))
            if time.monotonic() - started > self.deadline:
                last = f"{last}; gave up at the {self.deadline:.0f} s deadline"
                break
            last_response = None
            try:
                response = self._send_following(method, locator, headers, body, started)
            except (requests.ConnectionError, requests.Timeout) as exc:
                refused = _refusal(exc)
                if refused is not None:
                    raise refused from None
                last = network_reason(exc)
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
                detail = self._detail(response)
                raise StorageError(f"HTTP {response.status_code} for {method}" + (f": {detail}" if detail else ""),
                                   locator=locator,
                                   hint="the server refused the request; check the URL and access rights")
            return response
        raise StorageError(f"gave up after {attempt + 1} attempts: {last}", locator=locator,
                           hint="the server or gateway is failing; retry later or use another mirror")

    def _send_following(self, method: str, url: str, headers: dict[str, str] | None,
                        body: bytes | Callable[[], Iterable[bytes]] | None, started: float) -> requests.Response:
        """Send, following at most MAX_REDIRECTS redirects, each to where the fetch policy allows."""
        policy = fetch_policy.current() if self.untrusted else fetch_policy.configured().widened_for(url)
        origin = parse_uri(url).netloc
        for _ in range(MAX_REDIRECTS + 1):
            data = body() if callable(body) else body
            sent = dict(headers or {})
            if parse_uri(url).netloc != origin:
                sent.pop("Authorization", None)  # credentials never follow a redirect to another host
            with fetch_policy.applied(policy):
                response = self.session.request(method, url, headers=sent, data=data, timeout=self.timeout,
                                                stream=True, allow_redirects=False)
            response.deai_started = started  # type: ignore[attr-defined]  # the deadline covers the body too
            if response.status_code not in REDIRECT_STATUS or "Location" not in response.headers:
                return response
            target = urljoin(url, response.headers["Location"])
            response.close()
            if parse_uri(target).scheme not in ("http", "https"):
                raise FetchRefusedError(target, "a redirect out of HTTP")
            policy.check(target)
            url = target
            if response.status_code == 303:
                method, body = "GET", None
        raise StorageError(f"more than {MAX_REDIRECTS} redirects", locator=url)

    def _delay(self, attempt: int, response: requests.Response | None) -> float:
        if response is not None and response.headers.get("Retry-After", "").isdigit():
            return min(float(response.headers["Retry-After"]), self.max_retry_after)
        return self.backoff * (2 ** (attempt - 1))

    def _detail(self, response: requests.Response) -> str:
        """At most 200 characters of an error body, for the message (never more is read)."""
        try:
            return response.raw.read1(200, decode_content=False).decode(errors="replace").strip()[:200]
        except Exception:
            return ""
        finally:
            response.close()

    # ---- bounded bodies --------------------------------------------------------------------------------

    def chunks(self, response: requests.Response, *, limit: int | None = None, stop_at: int | None = None,
               expected: int | None = None) -> Iterator[bytes]:
        """The raw body in chunks: no transparent decompression (a body encoded although identity was asked
        for is refused); the first `stop_at` bytes and no more are read, or else at most `limit` bytes
        (LimitError past it; default the `response_bytes` limit); all within the request's deadline, extended
        by `min_rate` for the `expected` size."""
        encoding = response.headers.get("Content-Encoding", "").strip().lower()
        if encoding not in _IDENTITY:
            response.close()
            raise StorageError(f"the server sent a {encoding[:40]}-encoded body although identity was asked for",
                               locator=response.url, hint="the server or a proxy rewrites bodies; use another")
        declared = response.headers.get("Content-Length", "")
        cap = None
        if stop_at is None:
            cap = limits.current().response_bytes if limit is None else limit
            if declared.isdigit() and int(declared) > cap:
                response.close()
                raise LimitError(f"the server declares a body of {declared} bytes, more than {cap}",
                                 limit="response_bytes")
        size = expected or stop_at or (int(declared) if declared.isdigit() else 0)
        budget = max(self.deadline, size / self.min_rate)
        started = getattr(response, "deai_started", time.monotonic())
        seen = 0
        try:
            for chunk in _raw_chunks(response):
                if time.monotonic() - started > budget:
                    raise StorageError(f"the transfer took longer than its {budget:.0f} s deadline",
                                       locator=response.url, hint="the server sends too slowly; use another")
                if stop_at is not None and seen + len(chunk) >= stop_at:
                    yield chunk[:stop_at - seen]
                    return
                seen += len(chunk)
                if cap is not None and seen > cap:
                    raise LimitError(f"the body is longer than {cap} bytes", limit="response_bytes")
                yield chunk
        finally:
            response.close()

    def read(self, response: requests.Response, *, limit: int | None = None) -> bytes:
        """The whole raw body, bounded as `chunks`."""
        return b"".join(self.chunks(response, limit=limit))

    def text(self, response: requests.Response, *, limit: int | None = None) -> str:
        return self.read(response, limit=limit).decode(response.encoding or "utf-8", errors="replace")

    def json(self, response: requests.Response, *, limit: int | None = None) -> Any:
        """A JSON body (bounded; nesting checked before parsing); StorageError when it is not JSON."""
        return parse_json(self.read(response, limit=limit), response.url)

    # ---- the Store protocol ----------------------------------------------------------------------------

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
                body = self._read_range(response, start, end)
            except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
                last = f"body: {type(exc).__name__}: {_short(exc)}"
                continue
            if body is not None:
                return body
            last = "short body (connection closed early)"
        raise StorageError(f"gave up after {self.retries + 1} attempts: {last}", locator=locator,
                           hint="the server keeps dropping the transfer; retry later or use another mirror")

    def _read_range(self, response: requests.Response, start: int, end: int | None) -> bytes | None:
        """The requested bytes, or None when the body was cut short."""
        skip = 0
        if response.status_code == 200 and (start or end is not None):
            skip = start  # server ignored Range: discard the prefix ourselves
        elif response.status_code == 206:
            content_range = response.headers.get("Content-Range", "")
            if not content_range.startswith(f"bytes {start}-"):
                response.close()
                raise StorageError(f"unexpected Content-Range {content_range[:80]!r}", locator=response.url)
        declared = response.headers.get("Content-Length", "")
        expected = int(declared) - skip if declared.isdigit() else None
        want = None if end is None else end - start
        if want is not None:
            expected = want if expected is None else min(expected, want)
        body = b"".join(self.chunks(response, stop_at=None if want is None else skip + want, expected=want))
        body = body[skip:]
        if expected is not None and len(body) < expected:
            return None
        return body

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


def parse_json(data: bytes | str, locator: str | None = None) -> Any:
    """JSON from a server: nesting depth checked before parsing (no RecursionError), any failure a
    StorageError."""
    raw = data.encode() if isinstance(data, str) else data
    depth = nesting_depth(raw)
    if depth > limits.current().json_depth:
        raise LimitError(f"a JSON answer nests {depth} deep, more than {limits.current().json_depth}",
                         limit="json_depth")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise StorageError(f"the answer is not JSON: {_short(exc)}", locator=locator) from None


def _raw_chunks(response: requests.Response) -> Iterator[bytes]:
    """The undecoded body as it arrives: each chunk is what one socket read gave (up to 1 MiB), so that a
    server dripping bytes cannot hold a read past the deadline checked between chunks."""
    raw = response.raw
    while chunk := raw.read1(_CHUNK, decode_content=False):
        yield chunk


def _short(exc: BaseException) -> str:
    return str(exc)[:300]


def _refusal(exc: BaseException) -> FetchRefusedError | None:
    """The fetch policy's refusal inside a requests connection error, if that is what it is."""
    return next((e for e in nested_exceptions(exc) if isinstance(e, FetchRefusedError)), None)
