"""Client for a Curio storage provider's PDP HTTP API: upload a piece (`POST /pdp/piece`, then `PUT` the
bytes to the upload URL), find it, download it (`GET /piece/{PieceCIDv2}`, re-hashed before use), and
create data sets / add pieces with the client's EIP-712 authorisation in `extraData`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

from ...errors import IntegrityError, NotFoundError, StorageError
from ..base import Buffer, parse_uri
from ..http import HttpStore
from .commp import Piece, piece_of

_JSON = {"Content-Type": "application/json"}
_ANSWER_BYTES = 1 << 20  # a provider's JSON or text answer


@dataclass(frozen=True)
class PendingTransaction:
    """A provider's on-chain submission: its hash and where to poll its status."""

    tx_hash: str
    status_url: str


def origin(url: str) -> str:
    """scheme://host[:port] of a URL, lowercase: what a credential is bound to."""
    parsed = parse_uri(url)
    return f"{parsed.scheme.lower()}://{parsed.netloc.lower()}"


class PdpClient:
    """One PDP provider at `url` (its service URL, e.g. https://sp.example). `token` is sent to that
    provider's origin only: never to an upload URL or a redirect elsewhere."""

    def __init__(self, url: str, *, http: HttpStore | None = None, token: str | None = None) -> None:
        self.url = url.rstrip("/")
        self.http = http or HttpStore()
        self._token = token

    def _headers(self, url: str) -> dict[str, str]:
        same = self._token is not None and origin(url) == origin(self.url)
        return {"Authorization": f"Bearer {self._token}"} if same else {}

    def __repr__(self) -> str:
        return f"PdpClient({self.url})"

    def _call(self, method: str, path: str, doc: Any = None, headers: dict[str, str] | None = None,
              body: bytes | None = None) -> tuple[int, dict[str, str], str]:
        if doc is not None:
            body, headers = json.dumps(doc).encode(), {**_JSON, **(headers or {})}
        response = self.http.request(method, self.url + path, {**self._headers(self.url), **(headers or {})},
                                     body=body)
        return response.status_code, dict(response.headers), self.http.text(response, limit=_ANSWER_BYTES)

    def ping(self) -> None:
        self._call("GET", "/pdp/ping")

    # ---- pieces -----------------------------------------------------------------------------------------
    def upload_piece(self, data: Buffer, piece: Piece | None = None) -> Piece:
        """Upload `data` as a piece (nothing is sent when the provider already holds it); the provider
        re-computes the PieceCID from the bytes and refuses a mismatch."""
        piece = piece or piece_of(data)
        status, headers, _ = self._call("POST", "/pdp/piece", {"pieceCid": str(piece.cid)})
        if status == 200:
            return piece
        location = headers.get("Location") or headers.get("location")
        if status != 201 or not location:
            raise StorageError(f"POST /pdp/piece answered {status} without an upload location", locator=self.url)
        upload = urljoin(self.url + "/", location)
        headers = {**self._headers(upload), "Content-Type": "application/octet-stream"}
        response = self.http.request("PUT", upload, headers, body=bytes(data))
        answer = self.http.text(response, limit=_ANSWER_BYTES)
        if response.status_code != 204:
            raise StorageError(f"piece upload answered {response.status_code}: {answer[:200]}", locator=upload)
        return piece

    def has_piece(self, piece_cid: str) -> bool:
        try:
            status, _, _ = self._call("GET", f"/pdp/piece?pieceCid={piece_cid}")
        except NotFoundError:
            return False
        return status == 200

    def wait_for_piece(self, piece_cid: str, *, timeout: float = 300.0, interval: float = 1.0) -> None:
        """Poll until the provider has parked the piece (its upload is processed asynchronously)."""
        deadline = time.monotonic() + timeout
        while not self.has_piece(piece_cid):
            if time.monotonic() > deadline:
                raise StorageError(f"the provider did not report piece {piece_cid} within {timeout:.0f} s",
                                   locator=self.url, hint="retry later; the upload may still be processing")
            time.sleep(interval)

    def download_piece(self, piece_cid: str, start: int = 0, end: int | None = None) -> bytes:
        """Bytes of a piece; a whole piece is re-hashed and must match its PieceCID (ranges are checked
        by the reader's AEAD tags and hashes)."""
        data = self.http.get(f"{self.url}/piece/{piece_cid}", start, end)
        if start == 0 and end is None:
            expected = Piece.from_cid(piece_cid)
            if len(data) != expected.payload_size or piece_of(data).root != expected.root:
                raise IntegrityError(f"the provider returned {len(data)} bytes that are not piece {piece_cid}",
                                     locator=f"{self.url}/piece/{piece_cid}")
        return data

    # ---- data sets (the provider submits the transactions) ------------------------------------------------
    def _pending(self, status: int, headers: dict[str, str], what: str) -> PendingTransaction:
        location = headers.get("Location") or headers.get("location") or ""
        if status != 201 or not location:
            raise StorageError(f"{what} answered {status} without a status location", locator=self.url)
        return PendingTransaction(location.rstrip("/").rsplit("/", 1)[1], urljoin(self.url + "/", location))

    def create_data_set(self, record_keeper: str, extra_data: bytes) -> PendingTransaction:
        status, headers, _ = self._call("POST", "/pdp/data-sets",
                                        {"recordKeeper": record_keeper, "extraData": "0x" + extra_data.hex()})
        return self._pending(status, headers, "POST /pdp/data-sets")

    def add_pieces(self, data_set_id: int, piece_cids: list[str], extra_data: bytes) -> PendingTransaction:
        pieces = [{"pieceCid": c, "subPieces": [{"subPieceCid": c}]} for c in piece_cids]
        status, headers, _ = self._call("POST", f"/pdp/data-sets/{data_set_id}/pieces",
                                        {"pieces": pieces, "extraData": "0x" + extra_data.hex()})
        return self._pending(status, headers, f"POST /pdp/data-sets/{data_set_id}/pieces")

    def status(self, pending: PendingTransaction) -> dict[str, Any]:
        """The provider's JSON about a submitted transaction (e.g. txStatus, dataSetCreated, dataSetId)."""
        response = self.http.request("GET", pending.status_url, self._headers(pending.status_url))
        return self.http.json(response, limit=_ANSWER_BYTES)
