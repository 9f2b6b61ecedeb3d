"""The publish journal: an append-only JSON-lines file that lets an interrupted publish resume.

Finished shards are keyed by (index, the shard's synthetic salt, a keyed hash of its content): a resumed
publish skips every shard whose content is unchanged and whose sealed object is still in the store. Lines are fsynced;
a torn last line (a crash mid-write) is ignored.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..formats.manifest import ShardEntry

JOURNAL_VERSION = 2  # 2: seal_id in the header, BLAKE3 per shard (version-1 journals are redone)


@dataclass(frozen=True)
class JournalHeader:
    publish_id: str
    seal_id: str
    key_commitment: str


class Journal:
    """One publish's journal file. Thread-safe appends."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.header: JournalHeader | None = None
        self.shards: dict[tuple[int, str], ShardEntry] = {}
        self._lock = threading.Lock()
        if path.exists():
            self._load()

    def _load(self) -> None:
        for line in self.path.read_bytes().splitlines():
            try:
                doc = json.loads(line)
                if doc.get("type") == "header" and doc.get("version") == JOURNAL_VERSION:
                    self.header = JournalHeader(doc["publish_id"], doc["seal_id"], doc["key_commitment"])
                    self.shards.clear()
                elif doc.get("type") == "shard" and self.header is not None:
                    entry = ShardEntry(doc["index"], doc["records"], doc["plaintext_size"], doc["sealed_size"],
                                       doc["sha256"], tuple(doc["locators"]), doc["blake3"])
                    self.shards[(entry.index, doc["salt"])] = entry
            except (ValueError, KeyError, TypeError, AttributeError):
                continue  # a torn write from a crash (or another version's line): the shard is simply redone

    def _append(self, doc: dict[str, Any]) -> None:
        line = json.dumps(doc, sort_keys=True).encode() + b"\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "ab") as fh:
                fh.write(line)
                fh.flush()
                os.fsync(fh.fileno())

    def start(self, header: JournalHeader) -> None:
        """Begin a fresh publish (forgets any earlier content of the file)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.unlink(missing_ok=True)
        self.header = header
        self.shards.clear()
        self._append({"type": "header", "version": JOURNAL_VERSION, "publish_id": header.publish_id,
                      "seal_id": header.seal_id, "key_commitment": header.key_commitment})

    def finished(self, index: int, salt: str) -> ShardEntry | None:
        return self.shards.get((index, salt))

    def record(self, entry: ShardEntry, salt: str) -> None:
        """Note a shard as sealed and stored in every store."""
        doc = {"type": "shard", "salt": salt, **entry.to_dict()}
        self._append(doc)
        with self._lock:
            self.shards[(entry.index, salt)] = entry

    def close(self) -> None:
        """The publish finished: the journal is no longer needed."""
        self.path.unlink(missing_ok=True)
