"""`Blobs`: the binary values of a batch without copying them: views into the decrypted shards. From a DataLoader
worker they travel as the keys of the worker's shared buffers (see shared.py), never pickled value by value;
small values that are not in shared memory go as bytes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, TypeAlias

import numpy as np
import torch
from torch.utils.data import default_collate, get_worker_info

from ..errors import UsageError
from . import shared
from .shared import SharedBuffer
from .travel import INLINE_BYTES, parcel

Buffer: TypeAlias = memoryview | SharedBuffer  # unsigned bytes here, or shared memory of a DataLoader worker


class Blobs(Sequence[memoryview]):
    """A sequence of bytes-like values: item i is `buffers[which[i]][starts[i]:ends[i]]`, a read-only
    memoryview (equal to the same bytes; feeds `np.frombuffer`, `io.BytesIO`, `PIL.Image.open`, `b"".join`).
    `bytes(blobs[i])` copies one value out, `tolist()` all of them, `as_tensor()` equal-length values as one
    tensor. The values view the decrypted shards: the views (and anything made from them without a copy) keep
    those shards in memory, so copy out what you keep longer than a few batches."""

    __slots__ = ("_views", "buffers", "ends", "starts", "which")

    def __init__(self, buffers: Sequence[Buffer], which: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> None:
        self.buffers = list(buffers)
        self.which, self.starts, self.ends = which, starts, ends
        # A worker's shared buffers are leased now: the worker must not reuse them while this object lives.
        self._views = [b.lease().data.toreadonly() if isinstance(b, SharedBuffer) else None
                       for b in self.buffers]

    @classmethod
    def of(cls, items: Sequence[Any]) -> Blobs:
        """Blobs over bytes-like items, copied into one buffer (shared memory inside a DataLoader worker)."""
        bounds = _bounds(np.fromiter((memoryview(v).nbytes for v in items), np.int64, len(items)))
        total = int(bounds[-1])
        buffer: Buffer
        if get_worker_info() is not None and total >= INLINE_BYTES:
            buffer = shared.arena().take(total)
            out = buffer.data(total)
        else:
            out = np.empty(total, np.uint8)
            buffer = out.data
        _copy_into(out, items, bounds)
        blobs = cls([buffer], np.zeros(len(items), np.int64), bounds[:-1], bounds[1:])
        if isinstance(buffer, SharedBuffer):
            shared.arena().give_back(buffer)  # the lease `blobs` holds keeps it until it has been sent
        return blobs

    @classmethod
    def joined(cls, items: Sequence[Any]) -> Blobs:
        """Blobs over bytes-like items without copying them: views cut from a worker's shared buffers stay
        views of those buffers (so they travel by key), anything else is viewed as it is."""
        views = [_unsigned_bytes(memoryview(item)) for item in items]
        sizes = np.fromiter((v.nbytes for v in views), np.int64, len(views))
        origins = [shared.leased_from(v) for v in views]
        if views and all(origin is not None for origin in origins):
            buffers: list[Buffer] = []
            position: dict[int, int] = {}
            which = np.empty(len(views), np.int64)
            starts = np.empty(len(views), np.int64)
            for i, (buffer, start) in enumerate(origins):  # type: ignore[misc]
                if id(buffer) not in position:
                    position[id(buffer)] = len(buffers)
                    buffers.append(buffer)
                which[i], starts[i] = position[id(buffer)], start
            return cls(buffers, which, starts, starts + sizes)
        return cls(views, np.arange(len(views)), np.zeros(len(views), np.int64), sizes)

    def __len__(self) -> int:
        return len(self.starts)

    def _view(self, index: int) -> memoryview:
        view = self._views[index]
        if view is None:
            view = self._views[index] = memoryview(self.buffers[index]).toreadonly()  # type: ignore[arg-type]
        return view

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        index = int(index)
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError("Blobs index out of range")
        return self._view(int(self.which[index]))[int(self.starts[index]):int(self.ends[index])]

    def __iter__(self) -> Iterator[memoryview]:
        views = [self._view(i) for i in range(len(self.buffers))]
        for w, start, end in zip(self.which.tolist(), self.starts.tolist(), self.ends.tolist(), strict=True):
            yield views[w][start:end]

    def __repr__(self) -> str:
        return f"Blobs({len(self)} values, {self.nbytes} bytes)"

    @property
    def nbytes(self) -> int:
        return int((self.ends - self.starts).sum())

    def tolist(self) -> list[bytes]:
        return [bytes(v) for v in self]

    def pack(self) -> Blobs:
        """The values copied into one buffer (shared memory inside a DataLoader worker)."""
        return Blobs.of(list(self))

    def pin_memory(self, device: Any = None) -> Blobs:
        """For DataLoader(pin_memory=True): the values copied into pinned memory."""
        bounds = _bounds(self.ends - self.starts)
        out = torch.empty(int(bounds[-1]), dtype=torch.uint8).pin_memory(device).numpy()
        _copy_into(out, self, bounds)
        return Blobs([out.data], np.zeros(len(self), np.int64), bounds[:-1], bounds[1:])

    def as_tensor(self) -> torch.Tensor:
        """Values of one length as a new [n, length] uint8 tensor; UsageError when their lengths differ."""
        sizes = self.ends - self.starts
        if len(sizes) and not (sizes == sizes[0]).all():
            raise UsageError("the values differ in length: index them one by one (or pad them in a transform)")
        out = torch.empty((len(self), int(sizes[0]) if len(sizes) else 0), dtype=torch.uint8)
        rows = out.numpy()
        for i, value in enumerate(self):
            rows[i] = np.frombuffer(value, np.uint8)
        return out

    def __reduce__(self) -> tuple[Any, ...]:
        # From a worker, views of its shared buffers travel as keys (the first time with the buffer's handle):
        # no copy, a few bytes per batch. Other values travel as bytes when small or when pickled outside a
        # worker (to a file, say), else packed into one shared buffer first.
        everything_shared = all(isinstance(b, SharedBuffer) for b in self.buffers)
        if not everything_shared and (self.nbytes < INLINE_BYTES or get_worker_info() is None):
            return (_from_bytes, (b"".join(self), self.ends - self.starts))
        blobs = self if everything_shared else self.pack()
        travelling = [shared.arena().send(b) for b in blobs.buffers]  # type: ignore[arg-type]
        return (_received, (travelling, blobs.which, blobs.starts, blobs.ends))

    def __copy__(self) -> Blobs:
        return Blobs(self.buffers, self.which, self.starts, self.ends)

    def __deepcopy__(self, memo: dict[int, Any]) -> Blobs:
        return _from_bytes(b"".join(self), self.ends - self.starts)


def _unsigned_bytes(view: memoryview) -> memoryview:
    return view if view.format == "B" and view.ndim == 1 else view.cast("B")


def _received(travelling: list[tuple[shared.Key, torch.Tensor | None, int, list[shared.Key]]], which: np.ndarray,
              starts: np.ndarray, ends: np.ndarray) -> Blobs:
    return Blobs([shared.received(*sent).data for sent in travelling], which, starts, ends)


def _bounds(sizes: np.ndarray) -> np.ndarray:
    """Where values of these sizes start and end packed one after another: [0, s0, s0 + s1, ...]."""
    bounds = np.zeros(len(sizes) + 1, np.int64)
    np.cumsum(sizes, out=bounds[1:])
    return bounds


def _copy_into(out: np.ndarray, values: Any, bounds: np.ndarray) -> None:
    for value, start, end in zip(values, bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
        out[start:end] = np.frombuffer(value, np.uint8)


def _from_bytes(data: bytes, sizes: np.ndarray) -> Blobs:
    bounds = _bounds(sizes)
    return Blobs([memoryview(data)], np.zeros(len(sizes), np.int64), bounds[:-1], bounds[1:])


def collate(samples: list[Any]) -> Any:
    """The default collate of per-sample mode: bytes-like values of a column become one `Blobs` viewing them
    where they lie (a worker's shared buffers, so they travel by key); everything else as torch's
    `default_collate` does it."""
    first = samples[0]
    if isinstance(first, dict):
        batch = {key: collate([s[key] for s in samples]) for key in first}
        return parcel(batch) if get_worker_info() is not None else batch
    if isinstance(first, (memoryview, bytes, bytearray)):
        return Blobs.joined(samples)
    return default_collate(samples)
