"""A JSON-RPC proxy for indexer tests: forwards POSTs to a real node (anvil) and injects what real
providers do: 429 / 500 answers, stalls past the client's timeout, a cap on eth_getLogs block ranges
and on the number of results (with the error messages geth- and Alchemy-style nodes use); and what a
hostile node can do: eth_getLogs results rewritten by a function of the test's."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler

import requests
from httpfaults import _Service


class _RpcProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        proxy: RpcFaultProxy = self.server.service  # type: ignore[attr-defined]
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        fault = proxy.next_fault()
        if fault == "stall":
            time.sleep(proxy.stall_seconds)
        if fault in ("429", "500"):
            self._send(int(fault), b"busy", {"Retry-After": "0"} if fault == "429" else {})
            return
        payload = json.loads(body)
        calls = payload if isinstance(payload, list) else [payload]
        capped = [c for c in calls if c.get("method") == "eth_getLogs" and proxy.refuse(c["params"][0])]
        if capped:
            proxy.refusals += 1
            reply = [{"jsonrpc": "2.0", "id": c["id"], "error": {"code": -32005, "message": proxy.cap_message}}
                     for c in calls]
            self._send(200, json.dumps(reply if isinstance(payload, list) else reply[0]).encode())
            return
        upstream = requests.post(proxy.upstream, data=body, headers={"Content-Type": "application/json"},
                                 timeout=30)
        if proxy.max_results is not None or proxy.reshape is not None:
            replies = upstream.json()
            for reply in replies if isinstance(replies, list) else [replies]:
                result = reply.get("result")
                if proxy.max_results is not None and isinstance(result, list) and len(result) > proxy.max_results \
                        and "topics" in result[0]:
                    proxy.refusals += 1
                    reply.pop("result")
                    message = f"query returned more than {proxy.max_results} results"
                    reply["error"] = {"code": -32005, "message": message}
                if proxy.reshape is not None and isinstance(result, list) and "result" in reply:
                    reply["result"] = proxy.reshape(result)
            # compact, as nodes write it, when reshaping: the indexer's fast reader must step aside by itself
            self._send(200, json.dumps(replies, separators=(",", ":") if proxy.reshape else None).encode())
            return
        self._send(upstream.status_code, upstream.content)

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)


class RpcFaultProxy(_Service):
    """`faults`: a repeating script of None / "429" / "500" / "stall", one entry per request; `reshape`: what a
    hostile node does to eth_getLogs results."""

    handler = _RpcProxyHandler

    def __init__(self, upstream: str, *, faults: list[str | None] = (), max_range: int | None = None,
                 max_results: int | None = None, stall_seconds: float = 3.0,
                 reshape: Callable[[list], list] | None = None) -> None:
        self.upstream = upstream
        self.faults = list(faults)
        self.max_range = max_range
        self.max_results = max_results
        self.stall_seconds = stall_seconds
        self.reshape = reshape  # applied to every list result (eth_getLogs)
        self.cap_message = f"block range is too wide (maximum {max_range} blocks)"
        self.refusals = 0
        self.requests = 0
        self._lock = threading.Lock()

    def next_fault(self) -> str | None:
        with self._lock:
            self.requests += 1
            return self.faults[(self.requests - 1) % len(self.faults)] if self.faults else None

    def refuse(self, params: dict) -> bool:
        if self.max_range is None:
            return False
        return int(params["toBlock"], 16) - int(params["fromBlock"], 16) + 1 > self.max_range
