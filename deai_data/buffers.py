"""Reusable per-thread byte buffers: hot paths write into memory they already own instead of
allocating (and page-faulting) a fresh buffer for every shard."""

from __future__ import annotations

import threading


class ReusableBuffers(threading.local):
    """`get(name, size)` returns a writable view of at least `size` bytes, reused by the same thread.

    A view stays valid until the same thread asks for the same name again.
    """

    def __init__(self) -> None:
        self._buffers: dict[str, bytearray] = {}

    def get(self, name: str, size: int) -> memoryview:
        buf = self._buffers.get(name)
        if buf is None or len(buf) < size:
            buf = self._buffers[name] = bytearray(size + size // 8)
        return memoryview(buf)[:size]
