"""A local cache of stored objects (the reader keeps sealed shards there: ciphertext only),
bounded in size, shared safely by processes.

Files are named by the SHA-256 of their content and written atomically (temp file + rename);
least recently used files are evicted past the limit. A shard larger than the limit is not cached
(it is streamed instead), so a small limit never blocks. Readers still verify what they read.
"""

from __future__ import annotations

import os
from pathlib import Path

from .staging import staged_path, sweep


class ShardCache:
    """`get(sha256)` / `put(sha256, data)`; `limit` in bytes (None: unbounded)."""

    def __init__(self, directory: str | Path, limit: int | None = None) -> None:
        self.directory = Path(directory)
        self.limit = limit
        self.directory.mkdir(parents=True, exist_ok=True)
        sweep(self.directory, recursive=False)

    def __repr__(self) -> str:
        return f"ShardCache({str(self.directory)!r}, limit={self.limit})"

    def _path(self, sha256: str) -> Path:
        return self.directory / sha256

    def get(self, sha256: str, *, size: int | None = None) -> bytes | None:
        """The cached bytes, or None (also when the file is not `size` bytes: it is then discarded unread).
        Marks the file as recently used."""
        path = self._path(sha256)
        try:
            with open(path, "rb") as fh:
                if size is not None and os.fstat(fh.fileno()).st_size != size:
                    self.discard(sha256)
                    return None
                data = fh.read()
            os.utime(path)
        except FileNotFoundError:
            return None  # never cached, or evicted by another process in the meantime
        return data

    def discard(self, sha256: str) -> None:
        self._path(sha256).unlink(missing_ok=True)

    def put(self, sha256: str, data: bytes) -> bool:
        """Cache `data` unless it alone exceeds the limit; returns whether it was cached."""
        if self.limit is not None and len(data) > self.limit:
            return False
        final = self._path(sha256)
        tmp = staged_path(final)
        try:
            with open(tmp, "xb") as fh:
                fh.write(data)
            os.replace(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self.evict(keep=sha256)
        return True

    def size(self) -> int:
        return sum(entry.stat().st_size for entry in self._entries())

    def _entries(self) -> list[os.DirEntry]:
        return [e for e in os.scandir(self.directory) if e.is_file() and not e.name.startswith(".")]

    def evict(self, keep: str | None = None) -> None:
        """Delete least recently used files until the cache fits its limit (never `keep`).

        Deleting a file another process is reading is safe on POSIX: its open handle still reads it.
        """
        if self.limit is None:
            return
        entries = []
        for entry in self._entries():
            try:
                stat = entry.stat()
            except FileNotFoundError:
                continue
            entries.append((stat.st_mtime_ns, stat.st_size, entry.name))
        total = sum(size for _, size, _ in entries)
        for _, size, name in sorted(entries):
            if total <= self.limit:
                break
            if name == keep:
                continue
            (self.directory / name).unlink(missing_ok=True)
            total -= size
