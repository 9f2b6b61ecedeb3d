"""Loopback HTTP test services: a static file server with range requests, and a fault-injecting proxy.

Both bind 127.0.0.1 on a free port and run on a thread of the test process
(`with StaticServer(root) as server: ... server.url`).
The proxy is reused by every backend's and the loader's tests: put it in front of any real gateway
(arlocal, an IPFS node, the static server) and script errors, 429s, stalls, truncation and altered bytes.
"""

from __future__ import annotations

import http.client
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

_RANGE = re.compile(r"bytes=(\d+)-(\d*)$")
_CHUNK = 64 << 10


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class _Service:
    """Start/stop a handler class on 127.0.0.1:<free port> in a background thread."""

    handler: type[BaseHTTPRequestHandler]

    def __enter__(self):
        self.server = _Server(("127.0.0.1", 0), self.handler)
        self.server.service = self  # type: ignore[attr-defined]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"


# ---- static files with Range ----------------------------------------------------------------------
class QuietHandler(BaseHTTPRequestHandler):
    """A base for the test doubles' handlers: HTTP/1.1, no logging, `body()` and `reply()`."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def reply(self, status: int, body: bytes | str | dict | list = b"", headers: dict[str, str] | None = None) -> None:
        """Answer with `body` (a dict or list is sent as JSON) and a Content-Length."""
        if isinstance(body, (dict, list)):
            body, headers = json.dumps(body).encode(), {"Content-Type": "application/json", **(headers or {})}
        elif isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def serve(handler: type[BaseHTTPRequestHandler]) -> tuple[ThreadingHTTPServer, str]:
    """Serve `handler` on 127.0.0.1 (a free port) from a daemon thread; returns (server, base URL).
    Stop it with `server.shutdown(); server.server_close()`."""
    server = _Server(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


class _StaticHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go in separate writes: no 40 ms delayed-ACK stall

    def log_message(self, *args: object) -> None:
        pass

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    def _serve(self, body: bool) -> None:
        root: Path = self.server.service.root  # type: ignore[attr-defined]
        path = (root / unquote(urlparse(self.path).path).lstrip("/")).resolve()
        if root.resolve() not in path.parents or not path.is_file():
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        size = path.stat().st_size
        start, end = 0, size
        match = _RANGE.match(self.headers.get("Range", ""))
        if match:
            start = int(match.group(1))
            end = min(size, int(match.group(2)) + 1) if match.group(2) else size
            if start >= size:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{size}")
        else:
            self.send_response(200)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(end - start))
        self.end_headers()
        if body:
            with open(path, "rb") as fh:
                fh.seek(start)
                self.wfile.write(fh.read(end - start))


class StaticServer(_Service):
    """Serves the files under `root` with single byte-range support (200, 206, 404, 416)."""

    handler = _StaticHandler

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)


# ---- the fault-injecting proxy -----------------------------------------------------------------------
@dataclass
class Fault:
    """One scripted misbehaviour, applied to the next `times` requests whose path contains `match`.

    kind: "status" (answer `status`, with `headers`), "stall" (wait `delay` s before answering),
    "stall-body" (send `at` bytes, then wait `delay` s), "truncate" (announce the full length, send
    `at` bytes, close), "corrupt" (flip the byte at body offset `at`), "reset" (close at once).
    """

    kind: str
    match: str = ""
    times: int = 1
    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    at: int = 0


@dataclass
class Hit:
    method: str
    path: str
    range: str | None
    fault: str | None


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, *args: object) -> None:
        pass

    def do_HEAD(self) -> None:
        self._proxy()

    def do_GET(self) -> None:
        self._proxy()

    def do_POST(self) -> None:
        self._proxy()

    def _proxy(self) -> None:
        proxy: FaultProxy = self.server.service  # type: ignore[attr-defined]
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)) if self.command == "POST" else None
        fault = proxy._take(self.path)
        proxy.hits.append(Hit(self.command, self.path, self.headers.get("Range"), fault.kind if fault else None))
        if fault and fault.kind == "reset":
            self.close_connection = True
            return
        if fault and fault.kind == "status":
            self.send_response(fault.status)
            for k, v in fault.headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if fault and fault.kind == "stall":
            time.sleep(fault.delay)
        upstream = urlparse(proxy.upstream)
        conn = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=30)
        headers = {k: v for k, v in self.headers.items() if k.lower() in ("range", "accept-encoding", "content-type")}
        conn.request(self.command, upstream.path.rstrip("/") + self.path, body=body, headers=headers)
        response = conn.getresponse()
        self.send_response(response.status)
        for k, v in response.getheaders():
            if k.lower() in ("content-length", "content-range", "content-type", "accept-ranges", "retry-after"):
                self.send_header(k, v)
        if fault and fault.kind == "truncate":
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        sent = 0
        while chunk := response.read(_CHUNK):
            if fault and fault.kind == "corrupt" and sent <= fault.at < sent + len(chunk):
                chunk = bytearray(chunk)
                chunk[fault.at - sent] ^= 0xFF
            if fault and fault.kind in ("truncate", "stall-body") and sent + len(chunk) > fault.at:
                keep = max(0, fault.at - sent)
                self.wfile.write(chunk[:keep])
                self.wfile.flush()
                if fault.kind == "truncate":
                    conn.close()
                    return
                time.sleep(fault.delay)
                chunk = chunk[keep:]
                fault = None
            self.wfile.write(chunk)
            sent += len(chunk)
        conn.close()


class FaultProxy(_Service):
    """An HTTP proxy in front of `upstream` that applies scripted `Fault`s and records every request."""

    handler = _ProxyHandler

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.faults: list[Fault] = []
        self.hits: list[Hit] = []
        self._lock = threading.Lock()

    def add(self, *faults: Fault) -> None:
        with self._lock:
            self.faults.extend(faults)

    def _take(self, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.times > 0 and fault.match in path:
                    fault.times -= 1
                    return fault
        return None
