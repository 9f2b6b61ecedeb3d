"""Shard buffers in shared memory for DataLoader workers: a worker decrypts into them, the main process views
them without a copy, and the worker reuses a buffer only once no process holds any view of it (fresh shared
memory costs a page fault per 4 KiB, about 2 GB/s here: more than decrypting). A buffer's handle travels
once; after that a batch names it by key, so a batch of views costs a few hundred bytes of pipe.
"""

from __future__ import annotations

import os
import secrets
import threading
import weakref
from itertools import count
from typing import Any

import numpy as np
import torch

from ..errors import DeaiError

HEADER = 64  # bytes before the data: [0:8] counts the views other processes have dropped (int64)
_IDLE = 8  # idle buffers an arena keeps for reuse
_lock = threading.Lock()  # guards every count in this process (finalizers run on any thread)

Key = tuple[int, int, int]  # (worker pid, arena token, serial): names one buffer for as long as it lives


class SharedBuffer:
    """One buffer in shared memory and who holds it. `data()` is its writable data region; `lease()` a view
    of it that counts as held until every memoryview or array made from it is gone."""

    __slots__ = ("_header", "announced", "held", "key", "live", "sent", "size", "tensor")

    def __init__(self, key: Key, size: int) -> None:
        self.tensor = torch.empty(0, dtype=torch.uint8).set_(torch.UntypedStorage._new_shared(HEADER + size))
        self._header = self.tensor.numpy()[:8].view(np.int64)
        self.key, self.size = key, size
        self.held = True  # the worker's own use (a loaded shard, a batch being packed)
        self.live = 0  # leases alive in this process
        self.sent = 0  # leases sent to other processes
        self.announced = False  # its handle went to the main process, which keeps it until told otherwise

    def data(self, size: int | None = None) -> np.ndarray:
        return self.tensor.numpy()[HEADER:HEADER + (self.size if size is None else size)]

    def lease(self) -> np.ndarray:
        view = self.data()
        with _lock:
            self.live += 1
            _leases[id(view)] = self
        weakref.finalize(view, _drop_live, self, id(view))
        return view

    def reusable(self) -> bool:
        with _lock:
            return not self.held and self.live == 0 and int(self._header[0]) == self.sent


_leases: dict[int, SharedBuffer] = {}  # id(lease) -> its buffer, while the lease lives


def _drop_live(buffer: SharedBuffer, lease_id: int) -> None:
    with _lock:
        buffer.live -= 1
        del _leases[lease_id]


def leased_from(value: memoryview) -> tuple[SharedBuffer, int] | None:
    """The shared buffer a view was cut from (through a lease), and where in its data it starts; else None."""
    lease: Any = value.obj
    buffer = _leases.get(id(lease)) if isinstance(lease, np.ndarray) else None
    if buffer is None:
        return None
    return buffer, np.frombuffer(value, np.uint8).ctypes.data - lease.ctypes.data


class Arena:
    """The shared buffers of one worker process: `take(size)` reuses an idle one nobody views, else makes
    one; `give_back(buffer)` ends the worker's own use."""

    def __init__(self) -> None:
        self._idle: list[SharedBuffer] = []
        self._guard = threading.Lock()
        self._token = secrets.randbits(62)
        self._serials = count()
        self._retired: list[Key] = []  # buffers forgotten here that the main process still keeps

    def take(self, size: int) -> SharedBuffer:
        with self._guard:
            for i, buffer in enumerate(self._idle):
                if size <= buffer.size <= 2 * size and buffer.reusable():
                    del self._idle[i]
                    buffer.held = True
                    return buffer
        return SharedBuffer((os.getpid(), self._token, next(self._serials)), size + size // 16)

    def give_back(self, buffer: SharedBuffer) -> None:
        with self._guard:
            buffer.held = False
            self._idle.append(buffer)
            if len(self._idle) > _IDLE:  # forget the oldest one nobody views
                unviewed = next((b for b in self._idle if b.reusable()), None)
                if unviewed is not None:
                    self._idle.remove(unviewed)
                    if unviewed.announced:
                        self._retired.append(unviewed.key)

    def send(self, buffer: SharedBuffer) -> tuple[Key, torch.Tensor | None, int, list[Key]]:
        """What travels for one more lease of `buffer`: its key, its tensor the first time (torch passes it by
        handle), its size, and the keys of buffers this arena has forgotten since the last send."""
        with _lock:
            buffer.sent += 1
            first, buffer.announced = not buffer.announced, True
        with self._guard:
            retired, self._retired = self._retired, []
        return buffer.key, (buffer.tensor if first else None), buffer.size, retired


_arena: Arena | None = None


def arena() -> Arena:
    """This process's arena (one per DataLoader worker)."""
    global _arena
    if _arena is None:
        _arena = Arena()
    return _arena


# ---- the receiving side ----------------------------------------------------------------------------
_known: dict[Key, torch.Tensor] = {}  # buffers of live workers, by key


def received(key: Key, tensor: torch.Tensor | None, size: int, retired: list[Key]) -> np.ndarray:
    """In the receiving process: a view of a sent buffer's data; when it and everything made from it are
    gone, the sender may reuse the buffer."""
    with _lock:
        for old in retired:
            _known.pop(old, None)
        if tensor is not None:
            if not any(k[:2] == key[:2] for k in _known):
                _forget_ended_workers()  # a new worker: those of earlier epochs may have gone
            _known[key] = tensor
        else:
            tensor = _known.get(key)
    if tensor is None:
        raise DeaiError(f"a batch names shared buffer {key} that this process never received; batches from "
                        "a DataLoader worker can be unpickled only in the process that started it")
    view = tensor.numpy()[HEADER:HEADER + size]
    weakref.finalize(view, _count_dropped, tensor)
    return view


def forget_ended_workers() -> None:
    """Let go of the buffers of workers that have exited (their memory goes once no view remains)."""
    with _lock:
        _forget_ended_workers()


def _forget_ended_workers() -> None:
    for pid in {key[0] for key in _known}:
        if not _alive(pid):
            for key in [k for k in _known if k[0] == pid]:
                del _known[key]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _count_dropped(tensor: torch.Tensor) -> None:
    with _lock:
        tensor.numpy()[:8].view(np.int64)[0] += 1  # only the receiving side writes this count
