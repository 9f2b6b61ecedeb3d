"""HTTP client for Arweave gateways: the node API (`/price`, `/tx_anchor`, `/tx`, `/chunk`, status,
offsets), data by id with byte ranges, and GraphQL. Several gateways are tried in order (failover);
each request retries transient failures (timeouts, resets, 429 with Retry-After, 5xx) first.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from ...errors import IntegrityError, StorageError
from ..failover import first_answer
from ..http import HttpStore, parse_json
from .merkle import b64url, unb64url, validate_path
from .transaction import Transaction

T = TypeVar("T")
DEFAULT_GATEWAY = "https://arweave.net"
_JSON = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class TxStatus:
    """Where a transaction stands: `pending`, or `confirmed` at `block_height` with `confirmations`."""

    id: str
    state: str
    block_height: int | None = None
    confirmations: int = 0

    @property
    def confirmed(self) -> bool:
        return self.state == "confirmed"


class GatewayClient:
    """The Arweave HTTP API over one or more gateways (base URLs), tried in order."""

    def __init__(self, gateways: str | Sequence[str] = DEFAULT_GATEWAY, *, timeout: float = 30.0,
                 retries: int = 4, backoff: float = 0.25, http: HttpStore | None = None) -> None:
        urls = [gateways] if isinstance(gateways, str) else list(gateways)
        if not urls:
            raise StorageError("no Arweave gateway given", hint="pass at least one gateway URL")
        self.gateways = [u.rstrip("/") for u in urls]
        self.http = http or HttpStore(timeout=timeout, retries=retries, backoff=backoff)  # injectable client

    def __repr__(self) -> str:
        return f"GatewayClient({self.gateways})"

    def _each(self, what: str, call: Callable[[str], T]) -> T:
        return first_answer(self.gateways, call, what=what, kind="gateway")

    def _text(self, method: str, path: str, *, body: bytes | None = None, headers: dict[str, str] | None = None,
              first_only: bool = False) -> tuple[int, str]:
        def call(base: str) -> tuple[int, str]:
            response = self.http.request(method, base + path, headers, body=body)
            return response.status_code, self.http.text(response)
        return call(self.gateways[0]) if first_only else self._each(f"{method} {path}", call)

    def _json(self, path: str) -> Any:
        status, text = self._text("GET", path)
        try:
            return parse_json(text)
        except StorageError:
            raise StorageError(f"GET {path}: the gateway answered {status} with no JSON: {text[:80]!r}") from None

    # ---- node API ---------------------------------------------------------------------------------
    def price(self, size: int, target: str = "") -> int:
        """The reward (winston) a gateway asks to store `size` bytes."""
        _, text = self._text("GET", f"/price/{size}" + (f"/{target}" if target else ""))
        if not text.strip().isdigit():
            raise StorageError(f"/price/{size} answered {text[:80]!r}, not a number of winston")
        return int(text)

    def anchor(self) -> str:
        _, text = self._text("GET", "/tx_anchor")
        anchor = text.strip()
        try:
            if len(unb64url(anchor)) not in (32, 48):
                raise ValueError
        except ValueError:
            raise StorageError(f"/tx_anchor answered {anchor[:80]!r}, not an anchor") from None
        return anchor

    def height(self) -> int:
        """The current block height (`/info`)."""
        info = self._json("/info")
        try:
            return int(info["height"])
        except (KeyError, TypeError, ValueError):
            raise StorageError(f"/info has no height: {str(info)[:80]}") from None

    def balance(self, address: str) -> int:
        _, text = self._text("GET", f"/wallet/{address}/balance")
        if not text.strip().isdigit():
            raise StorageError(f"balance of {address}: gateway answered {text[:80]!r}")
        return int(text)

    def post_transaction(self, tx: Transaction, *, with_data: bool) -> None:
        """Submit a signed header (with its data when it rides inline) to each gateway in turn."""
        body = json.dumps(tx.to_json(with_data=with_data)).encode()
        self._text("POST", "/tx", body=body, headers=_JSON)

    def post_chunk(self, payload: dict[str, str], *, first_only: bool = False) -> None:
        self._text("POST", "/chunk", body=json.dumps(payload).encode(), headers=_JSON, first_only=first_only)

    def status(self, tx_id: str) -> TxStatus:
        """Pending or confirmed (arweave.net answers 202 for pending, arlocal 200 "Pending")."""
        status, text = self._text("GET", f"/tx/{tx_id}/status")
        if status == 202 or text.strip().lower().startswith("pending"):
            return TxStatus(tx_id, "pending")
        try:
            doc = json.loads(text)
            return TxStatus(tx_id, "confirmed", int(doc["block_height"]), int(doc.get("number_of_confirmations", 0)))
        except (ValueError, KeyError, TypeError):
            raise StorageError(f"status of {tx_id}: unexpected answer {text[:80]!r}") from None

    def transaction(self, tx_id: str) -> Transaction:
        """A transaction's header, its id and signature checked."""
        tx = Transaction.from_json(self._json(f"/tx/{tx_id}"))
        if tx.id != tx_id or not tx.verify():
            raise IntegrityError(f"the gateway returned a header that is not transaction {tx_id}",
                                 locator=f"ar://{tx_id}")
        return tx

    # ---- data ---------------------------------------------------------------------------------------
    def data(self, tx_id: str, start: int = 0, end: int | None = None,
             check: Callable[[str, bytes], None] | None = None) -> bytes:
        """Bytes `[start, end)` of a transaction's or data item's data (`GET /{id}` with a Range);
        `check(url, data)` raises IntegrityError to reject one gateway's answer and try the next."""
        def call(base: str) -> bytes:
            data = self.http.get(f"{base}/{tx_id}", start, end)
            if check is not None:
                check(f"{base}/{tx_id}", data)
            return data
        return self._each(f"data of {tx_id}", call)

    def size(self, tx_id: str) -> int:
        return self._each(f"size of {tx_id}", lambda base: self.http.stat(f"{base}/{tx_id}").size)

    def chunk(self, absolute_offset: int) -> dict[str, str]:
        return self._json(f"/chunk/{absolute_offset}")

    def verified_data(self, tx_id: str) -> bytes:
        """A transaction's data fetched chunk by chunk, each chunk proven against the signed `data_root`."""
        tx = self.transaction(tx_id)
        where = self._json(f"/tx/{tx_id}/offset")
        end_offset, size = int(where["offset"]), int(where["size"])
        if size != tx.data_size:
            raise IntegrityError(f"gateway reports {size} bytes, the signed header {tx.data_size}",
                                 locator=f"ar://{tx_id}")
        first = end_offset - size + 1
        out = bytearray()
        while len(out) < size:
            doc = self.chunk(first + len(out))
            chunk, path = unb64url(doc["chunk"]), unb64url(doc["data_path"])
            proven = validate_path(tx.data_root, len(out), size, path)
            if proven is None or proven[0] != len(out) or proven[1] - proven[0] != len(chunk):
                raise IntegrityError(f"chunk at byte {len(out)} has no valid proof under data_root "
                                     f"{b64url(tx.data_root)}", locator=f"ar://{tx_id}")
            if hashlib.sha256(chunk).digest() != proven[2]:
                raise IntegrityError(f"chunk at byte {len(out)} does not match its proof", locator=f"ar://{tx_id}")
            out += chunk
        return bytes(out)

    # ---- GraphQL ------------------------------------------------------------------------------------
    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        _, text = self._text("POST", "/graphql", body=body, headers=_JSON)
        try:
            doc = json.loads(text)
        except ValueError:
            raise StorageError(f"GraphQL answered no JSON: {text[:80]!r}") from None
        if doc.get("errors"):
            raise StorageError(f"GraphQL error: {doc['errors'][0].get('message', doc['errors'][0])}")
        return doc["data"]
