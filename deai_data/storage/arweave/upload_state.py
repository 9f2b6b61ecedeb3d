"""The persisted state of one Arweave upload, so a killed upload resumes without paying twice or
re-sending chunks the gateway already took. One append-only JSON-lines file per (gateway, wallet,
content): the signed header (public once posted; no secret), then one line per chunk sent, then `done`.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any


class UploadState:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.tx: dict[str, Any] | None = None
        self.chunks_sent: set[int] = set()
        self.done_id: str | None = None
        self._lock = threading.Lock()
        self._load()

    @classmethod
    def for_upload(cls, state_dir: Path, gateway: str, address: str, sha256: str) -> UploadState:
        key = hashlib.sha256(f"{gateway}\n{address}\n{sha256}".encode()).hexdigest()[:40]
        return cls(state_dir / f"{key}.jsonl")

    def _load(self) -> None:
        try:
            lines = self.path.read_text().splitlines()
        except FileNotFoundError:
            return
        for line in lines:
            try:
                doc = json.loads(line)
            except ValueError:
                break  # a line torn by a crash: everything after it is unknown
            if "tx" in doc:
                self.tx, self.chunks_sent, self.done_id = doc["tx"], set(), None
            elif "chunk" in doc:
                self.chunks_sent.add(int(doc["chunk"]))
            elif "done" in doc:
                self.done_id = doc["done"]

    def _append(self, doc: dict[str, Any], *, truncate: bool = False, durable: bool = True) -> None:
        """Append a line; `durable=False` skips the fsync where losing the line only costs a resend."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock, open(self.path, "w" if truncate else "a") as fh:
            fh.write(json.dumps(doc, separators=(",", ":")) + "\n")
            fh.flush()
            if durable:
                os.fsync(fh.fileno())

    def start(self, tx: dict[str, Any]) -> None:
        """Record a freshly signed header (forgetting any earlier attempt)."""
        self.tx, self.chunks_sent, self.done_id = tx, set(), None
        self._append({"tx": tx}, truncate=True)

    def chunk_sent(self, index: int) -> None:
        self.chunks_sent.add(index)
        self._append({"chunk": index}, durable=False)

    def finish(self, tx_id: str) -> None:
        self.done_id = tx_id
        self._append({"done": tx_id})
