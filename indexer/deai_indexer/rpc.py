"""A small JSON-RPC client for bulk log reading: batched requests, retries with backoff, typed errors.

Raw JSON, no web3 formatting: the indexer decodes logs in bulk (web3's per-log formatting and decoding
cost about 30x the transfer on anvil; see docs/indexer.md).
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import requests
import urllib3

from deai_data import ChainError, network_reason

_dumps: Callable[[Any], bytes]
_loads: Callable[[bytes], Any]
try:  # orjson parses eth_getLogs replies about 3x faster; the standard library's json works too
    import orjson
    _dumps, _loads = orjson.dumps, orjson.loads
except ImportError:  # pragma: no cover - exercised where orjson is not installed
    import json
    _dumps, _loads = (lambda obj: json.dumps(obj).encode()), json.loads

_JSON = {"Content-Type": "application/json"}

# Messages nodes use when a getLogs range or result set is too large (geth, erigon, anvil, Alchemy,
# Infura, QuickNode, Lotus...); matched case-insensitively.
_TOO_LARGE = ("too large", "too many", "limit exceeded", "range is too", "more than", "exceeds", "query timeout",
              "response size", "block range", "range limit", "max results")
_RETRY_STATUS = {429, 500, 502, 503, 504}


class RangeTooLarge(ChainError):
    """The node refused a getLogs range or result set as too large: split the range."""


class RpcClient:
    """POSTs JSON-RPC to `url`; `retries` attempts for transport errors, 429 and 5xx, honouring Retry-After."""

    def __init__(self, url: str | Any, *, timeout: float = 30.0, retries: int = 6, backoff: float = 0.2) -> None:
        # A Web3 instead of a URL: the embedded in-process chain (no HTTP), for the demo and small tests.
        self.w3 = None if isinstance(url, str) else url
        url = url if isinstance(url, str) else "embedded chain"
        self.url = url
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self._local = threading.local()
        self._ids = itertools.count(1)
        self.requests = 0

    @property
    def session(self) -> requests.Session:
        """One HTTP session (keep-alive connection) per thread: requests in flight never share one."""
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    def call(self, method: str, *params: Any) -> Any:
        return self.batch([(method, list(params))])[0]

    def call_body(self, method: str, *params: Any) -> bytes:
        """The reply to one call as the node sent it, for a caller that parses it its own way (`result` reads
        it as `call` would)."""
        if self.w3 is not None:
            return _dumps({"jsonrpc": "2.0", "id": 0, "result": self._in_process(method, list(params))})
        return self._post({"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": list(params)},
                          parse=False)

    def result(self, body: bytes, method: str) -> Any:
        """The result in a reply body from `call_body`; the node's error as a ChainError (RangeTooLarge)."""
        try:
            reply = _loads(body)
        except ValueError:
            reply = None
        if not isinstance(reply, dict) or not ("result" in reply or "error" in reply):
            raise ChainError(f"{self.url}: the reply to {method} is not JSON-RPC")
        if "error" in reply:
            raise _rpc_error(method, reply["error"], self.url)
        return reply["result"]

    def batch(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        """Results of several calls in one HTTP request, in order; the first error raises."""
        if not calls:
            return []
        if self.w3 is not None:
            return [self._in_process(method, params) for method, params in calls]
        payload = [{"jsonrpc": "2.0", "id": next(self._ids), "method": m, "params": p} for m, p in calls]
        replies = self._post(payload if len(payload) > 1 else payload[0])
        if isinstance(replies, dict):
            replies = [replies]
        by_id = {r.get("id"): r for r in replies}
        results = []
        for request in payload:
            reply = by_id.get(request["id"])
            if reply is None:
                raise ChainError(f"{self.url}: no reply to {request['method']} in a batch",
                                 hint="the node may not support batched requests")
            if "error" in reply:
                raise _rpc_error(str(request["method"]), reply["error"], self.url)
            results.append(reply["result"])
        return results

    def _in_process(self, method: str, params: list[Any]) -> Any:
        """Ask web3's in-process chain (the few methods the indexer uses), answering raw JSON-RPC values."""
        w3 = self.w3
        assert w3 is not None  # only called for an in-process chain
        eth = w3.eth
        try:
            if method == "eth_getLogs":
                f = params[0]
                result = eth.get_logs({"address": w3.to_checksum_address(f["address"]),
                                       "fromBlock": int(f["fromBlock"], 16), "toBlock": int(f["toBlock"], 16)})
            elif method == "eth_getBlockByNumber":
                number = params[0] if params[0] in ("latest", "finalized", "safe") else int(params[0], 16)
                result = eth.get_block(number, False)
            elif method == "eth_blockNumber":
                result = eth.block_number
            elif method == "eth_chainId":
                result = eth.chain_id
            else:
                result = w3.manager.request_blocking(method, params)
        except Exception as exc:  # eth-tester raises its own types
            if type(exc).__name__ == "BlockNotFound":
                return None
            raise ChainError(f"embedded chain: {method} failed: {exc}") from exc
        return _raw(result)

    def _post(self, payload: Any, *, parse: bool = True) -> Any:
        delay = self.backoff
        for attempt in range(self.retries + 1):
            wait = None
            try:
                self.requests += 1
                response = self.session.post(self.url, data=_dumps(payload), headers=_JSON, timeout=self.timeout,
                                             stream=True)
                if response.status_code in _RETRY_STATUS:
                    retry_after = response.headers.get("Retry-After", "")
                    wait = float(retry_after) if retry_after.replace(".", "", 1).isdigit() else None
                    problem = f"HTTP {response.status_code}"
                elif response.status_code == 413:
                    raise RangeTooLarge(f"{self.url}: request or response too large (HTTP 413)")
                else:
                    response.raise_for_status()
                    # One read of the whole body (requests' own .json() reads it in 10 KiB pieces).
                    body = response.raw.read(decode_content=True)
                    return _loads(body) if parse else body
            except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
                    urllib3.exceptions.HTTPError, ValueError) as exc:
                problem = network_reason(exc)
            except requests.HTTPError as exc:
                raise ChainError(f"{self.url}: {exc}") from exc
            if attempt == self.retries:
                raise ChainError(f"{self.url}: {problem} after {self.retries + 1} attempts",
                                 hint="check that the node is up; rate limits clear with time")
            time.sleep(min(wait if wait is not None else delay * (1 + random.random()), 30.0))
            delay *= 2
        raise AssertionError("unreachable")


def _raw(value: Any) -> Any:
    """web3-formatted values (ints, HexBytes, AttributeDicts) back to JSON-RPC's hex strings."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value.lower() if isinstance(value, str) and value.startswith("0x") else value
    if isinstance(value, int):
        return hex(value)
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    if isinstance(value, dict) or hasattr(value, "items"):
        return {k: _raw(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_raw(v) for v in value]
    return value


def _rpc_error(method: str, error: dict[str, Any], url: str) -> ChainError:
    message = str(error.get("message", error))
    if method == "eth_getLogs" and (error.get("code") in (-32005,) or
                                    any(m in message.lower() for m in _TOO_LARGE)):
        return RangeTooLarge(f"{url}: {method}: {message}")
    return ChainError(f"{url}: {method} failed: {message} (code {error.get('code')})")
