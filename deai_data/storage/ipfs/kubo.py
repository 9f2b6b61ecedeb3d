"""Client for the Kubo RPC API (`/api/v0/...`, spoken by Kubo, js-ipfs and pinning services): import a
CAR (pinning its roots), get and stat raw blocks, version. Every call is a POST, retried like any HTTP read."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ...errors import LimitError, NotFoundError, StorageError
from ..http import RETRY_STATUS, HttpStore, parse_json
from .car import MAX_BLOCK
from .cid import CID

_RETRY_BUT_500 = RETRY_STATUS - {500}
_ANSWER_BYTES = 1 << 20  # a JSON answer of the RPC API


class KuboClient:
    """One node's RPC API at `url` (e.g. http://127.0.0.1:5001)."""

    def __init__(self, url: str, *, http: HttpStore | None = None, block_timeout: str = "10s") -> None:
        self.url = url.rstrip("/")
        self.http = http or HttpStore()
        self.block_timeout = block_timeout

    def __repr__(self) -> str:
        return f"KuboClient({self.url})"

    def _post(self, command: str, params: dict[str, str] | None = None, *,
              body: bytes | Callable[[], Iterable[bytes]] | None = None, headers: dict[str, str] | None = None) -> Any:
        query = "&".join(f"{k}={v}" for k, v in (params or {}).items())
        url = f"{self.url}/api/v0/{command}" + (f"?{query}" if query else "")
        response = self.http.request("POST", url, headers, body=body, retry_status=_RETRY_BUT_500)
        if response.status_code == 500:  # Kubo's answer to any failed command: not worth retrying
            text = self.http.text(response, limit=_ANSWER_BYTES)
            try:
                answer = parse_json(text)
                message = str(answer.get("Message", "")) if isinstance(answer, dict) else text[:200]
            except (StorageError, LimitError):
                message = text[:200]
            if "not found" in message.lower() or "timed out" in message.lower():
                raise NotFoundError(url, hint=f"the node says: {message}")
            raise StorageError(f"{command} failed: {message}", locator=self.url)
        return response

    def version(self) -> str:
        answer = self.http.json(self._post("version"), limit=_ANSWER_BYTES)
        if not isinstance(answer, dict) or not isinstance(answer.get("Version"), str):
            raise StorageError("version: unexpected answer", locator=self.url)
        return answer["Version"]

    def block_get(self, cid: CID) -> bytes:
        """A block's bytes (unverified: the caller checks them against the CID). A block the node
        cannot find within `block_timeout` is NotFound."""
        response = self._post("block/get", {"arg": str(cid), "timeout": self.block_timeout})
        return self.http.read(response, limit=MAX_BLOCK)

    def block_stat(self, cid: CID) -> int:
        answer = self.http.json(self._post("block/stat", {"arg": str(cid), "timeout": self.block_timeout}),
                                limit=_ANSWER_BYTES)
        try:
            return int(answer["Size"])
        except (ValueError, KeyError, TypeError) as exc:
            raise StorageError(f"block/stat {cid}: unexpected answer ({exc})", locator=self.url) from None

    def dag_import(self, car: Callable[[], Iterable[bytes]]) -> list[str]:
        """Import a CAR (multipart upload, streamed: `car()` returns the CAR's pieces, called again on a
        retry); returns the roots the node pinned."""
        boundary = uuid.uuid4().hex

        def body() -> Iterator[bytes]:
            yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"data.car\"\r\n"
                   "Content-Type: application/vnd.ipld.car\r\n\r\n").encode()
            yield from car()
            yield f"\r\n--{boundary}--\r\n".encode()

        response = self._post("dag/import", {"pin-roots": "true"}, body=body,
                              headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        text = self.http.text(response, limit=_ANSWER_BYTES)
        lines = [parse_json(line, self.url) for line in text.splitlines() if line.strip()]
        roots = []
        for line in lines:
            root = line.get("Root")
            if root:
                if root.get("PinErrorMsg"):
                    raise StorageError(f"the node imported but did not pin {root['Cid']['/']}: {root['PinErrorMsg']}",
                                       locator=self.url)
                roots.append(root["Cid"]["/"])
        return roots
