"""Hostile HTTP servers against the bounded client: compression bombs, declared and endless huge bodies,
slow drips, redirects to where the fetch policy forbids, request forgery to non-public addresses, and
credentials that must not follow a redirect. Each ends in a typed error, in bounded time and memory."""

from __future__ import annotations

import gzip
import socket
import threading
import time

import pytest
from hostile import bounded
from httpfaults import QuietHandler, serve

from deai_data.errors import FetchRefusedError, LimitError, StorageError
from deai_data.formats import limits
from deai_data.storage import fetch_policy
from deai_data.storage.fetch_policy import FetchPolicy
from deai_data.storage.filecoin.pdp import PdpClient
from deai_data.storage.http import HttpStore

BOMB = gzip.compress(bytes(256 << 20), compresslevel=9)  # ~255 KB on the wire, 256 MiB inflated
SEEN: dict[str, list[dict[str, str]]] = {}


class Hostile(QuietHandler):
    """One misbehaviour per path."""

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        SEEN.setdefault(self.path, []).append(dict(self.headers))
        if self.path == "/bomb":
            self.reply(200, BOMB, {"Content-Encoding": "gzip"})
        elif self.path == "/declared-huge":
            self.send_response(200)
            self.send_header("Content-Length", str(300 << 20))
            self.end_headers()
            try:
                for _ in range(300):
                    self.wfile.write(bytes(1 << 20))
            except OSError:
                return
        elif self.path == "/endless":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            chunk = bytes(1 << 20)
            try:
                while True:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            except OSError:
                return
        elif self.path == "/drip":
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            try:
                for _ in range(1000):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.05)
            except OSError:
                return
        elif self.path.startswith("/to?"):
            self.reply(302, b"", {"Location": self.path.split("?", 1)[1]})
        else:
            self.reply(200, b"fine")

    def do_POST(self) -> None:
        SEEN.setdefault(self.path, []).append(dict(self.headers))
        self.body()
        target = self.server.upload_to  # type: ignore[attr-defined]
        self.reply(201, b"", {"Location": target})

    def do_PUT(self) -> None:
        SEEN.setdefault(self.path, []).append(dict(self.headers))
        self.body()
        self.reply(204)


@pytest.fixture(scope="module")
def hostile():
    server, url = serve(Hostile)
    yield server, url
    server.shutdown()
    server.server_close()


@pytest.fixture
def client():
    return HttpStore(retries=1, backoff=0.01, timeout=3, deadline=2)


def test_a_compression_bomb_is_refused_not_inflated(hostile, client):
    """The attack: 255 KB of gzip that inflates to 256 MiB (it used to come back inflated although identity
    was asked for)."""
    _, url = hostile
    error = bounded(lambda: client.get(f"{url}/bomb"), StorageError, mib=16)
    assert "gzip-encoded" in str(error)


def test_a_body_larger_than_wanted_is_not_read(hostile, client):
    _, url = hostile
    started = time.perf_counter()
    assert len(client.get(f"{url}/declared-huge", 0, 1000)) == 1000  # a range read stops at its end
    assert time.perf_counter() - started < 5
    bounded(lambda: client.read(client.request("GET", f"{url}/declared-huge")), LimitError, mib=16)


def test_an_endless_body_hits_the_limit(hostile, client):
    _, url = hostile
    before = limits.current()
    limits.configure(response_bytes=8 << 20)
    try:
        error = bounded(lambda: client.get(f"{url}/endless"), LimitError, mib=40)
        assert error.limit == "response_bytes"
    finally:
        limits.configure(response_bytes=before.response_bytes)


def test_a_slow_drip_meets_the_deadline(hostile, client):
    """The attack: one byte every 50 ms keeps every read timeout happy (149 s for one call before)."""
    _, url = hostile
    error = bounded(lambda: client.get(f"{url}/drip"), StorageError, seconds=8)
    assert "deadline" in str(error)


@pytest.mark.parametrize("target", ["http://127.0.0.1:9/", "http://[::1]:9/", "http://169.254.169.254/latest/",
                                    "http://10.1.2.3/", "http://localhost:9/", "http://2130706433:9/",
                                    "http://0x7f000001:9/", "file:///etc/passwd", "gopher://example/"])
def test_request_forgery_to_non_public_places_is_refused(monkeypatch, target):
    """What an untrusted locator or registration may name: no loopback, private, link-local (cloud metadata)
    or odd spellings of them, no local files, no other schemes. Refused before or at connect time."""
    monkeypatch.delenv("DEAI_FETCH_ALLOW", raising=False)
    if target.startswith("http://"):
        untrusted = HttpStore(untrusted=True, retries=0, timeout=2, deadline=2)
        bounded(lambda: untrusted.get(target), FetchRefusedError, seconds=5)
    else:
        bounded(lambda: FetchPolicy().check(target), FetchRefusedError)


def test_names_are_checked_where_the_socket_connects(monkeypatch, hostile):
    """A name that resolves to loopback (as DNS rebinding would make it) is refused by the connection itself:
    the address checked is the address connected to."""
    monkeypatch.delenv("DEAI_FETCH_ALLOW", raising=False)
    server, _ = hostile
    port = server.server_address[1]
    real = socket.getaddrinfo
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, *a, **k: real("127.0.0.1" if host == "rebind.test"
                                                                          else host, *a, **k))
    before = len(SEEN.get("/", []))
    bounded(lambda: HttpStore(untrusted=True, retries=0).get(f"http://rebind.test:{port}/"), FetchRefusedError)
    assert len(SEEN.get("/", [])) == before, "no request reached the server"


def test_redirects_stay_within_the_policy(hostile, monkeypatch):
    _, url = hostile
    monkeypatch.setenv("DEAI_FETCH_ALLOW", "private")
    untrusted = HttpStore(untrusted=True, retries=0)
    assert untrusted.get(f"{url}/to?{url}/ok") == b"fine"
    bounded(lambda: untrusted.get(f"{url}/to?file:///etc/passwd"), FetchRefusedError)
    # Link-local (cloud metadata) is refused even where private networks are allowed, before any connection.
    bounded(lambda: untrusted.get(f"{url}/to?http://169.254.169.254/latest/"), FetchRefusedError)
    monkeypatch.delenv("DEAI_FETCH_ALLOW")
    # A trusted client (a configured gateway on loopback) may not be redirected off to a public-only policy's
    # forbidden places either: its redirects follow the policy widened for the host it asked.
    trusted = HttpStore(retries=0)
    bounded(lambda: trusted.get(f"{url}/to?file:///etc/passwd"), FetchRefusedError)


def test_credentials_never_leave_their_provider(hostile, monkeypatch):
    """The attack: a PDP provider names an upload URL on another host; the token used to go along."""
    monkeypatch.setenv("DEAI_FETCH_ALLOW", "private")
    server, url = hostile
    other = url.replace("127.0.0.1", "localhost")
    server.upload_to = f"{other}/elsewhere"
    client = PdpClient(url, token="secret-token")
    client.upload_piece(b"piece bytes" * 100)
    assert SEEN["/pdp/piece"][-1].get("Authorization") == "Bearer secret-token"
    assert "Authorization" not in SEEN["/elsewhere"][-1]
    server.upload_to = "/same-origin"
    client.upload_piece(b"other piece bytes" * 100)
    assert SEEN["/same-origin"][-1].get("Authorization") == "Bearer secret-token"
    store = HttpStore(retries=0)
    response = store.request("GET", f"{url}/to?{other}/landing", {"Authorization": "Bearer secret-token"})
    response.close()
    assert "Authorization" not in SEEN["/landing"][-1]


def test_concurrent_fetches_keep_their_own_policy(hostile, monkeypatch):
    """The policy is per fetch (a context variable): one thread's widened policy never leaks to another."""
    monkeypatch.delenv("DEAI_FETCH_ALLOW", raising=False)
    _, url = hostile
    results: dict[str, object] = {}

    def allowed() -> None:
        with fetch_policy.applied(fetch_policy.OPEN):
            time.sleep(0.2)
            results["open"] = HttpStore(untrusted=True, retries=0).get(f"{url}/ok")

    def strict() -> None:
        time.sleep(0.1)
        try:
            HttpStore(untrusted=True, retries=0).get(f"{url}/ok")
        except FetchRefusedError as exc:
            results["strict"] = exc

    threads = [threading.Thread(target=allowed), threading.Thread(target=strict)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results["open"] == b"fine" and isinstance(results["strict"], FetchRefusedError)
