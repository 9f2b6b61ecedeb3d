"""Reusable per-thread byte buffers: hot paths write into memory they already own instead of
allocating (and page-faulting) a fresh buffer for every shard."""

from __future__ import annotations

import mmap
import queue
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


def page_aligned(size: int) -> mmap.mmap:
    """Anonymous memory starting on a page boundary (what O_DIRECT writes need)."""
    return mmap.mmap(-1, max(size, 1))


class BufferPool:
    """A fixed number of growable, page-aligned buffers handed between threads; `acquire` blocks
    while all are in use, which is the backpressure that bounds memory between a fast and a slow stage."""

    def __init__(self, count: int) -> None:
        self._free: queue.SimpleQueue[mmap.mmap | None] = queue.SimpleQueue()
        self._slots = threading.Semaphore(count)
        for _ in range(count):
            self._free.put(None)

    def acquire(self, size: int) -> mmap.mmap:
        self._slots.acquire()
        buf = self._free.get()
        if buf is None or len(buf) < size:
            buf = page_aligned(size + size // 8)
        return buf

    def release(self, buf: mmap.mmap) -> None:
        self._free.put(buf)
        self._slots.release()
