"""Shards: records packed as Arrow IPC files (schema once per shard), cut to a target size.

Cutting is vectorised per record batch (row sizes from Arrow offsets, no per-row Python), and
deterministic: the same rows and target always give the same shards, however the rows are batched.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import numpy as np
import pyarrow as pa

from ..errors import UsageError

DEFAULT_SHARD_SIZE = 64 << 20
COMPRESSIONS = (None, "zstd", "lz4")


def fixed_width(typ: pa.DataType) -> int:
    """A type's width in bits (0 when it has none)."""
    try:
        return typ.bit_width
    except ValueError:
        return 0


def _value_sizes(values: pa.Array) -> np.ndarray:
    """Estimated size of every value of `values` in bytes (int64); each value's estimate depends on that
    value alone, never on the array around it, so the same rows get the same sizes however they are batched."""
    n = len(values)
    typ = values.type
    if pa.types.is_binary(typ) or pa.types.is_string(typ) or pa.types.is_large_binary(typ) \
            or pa.types.is_large_string(typ):
        wide = pa.types.is_large_binary(typ) or pa.types.is_large_string(typ)
        dtype = np.int64 if wide else np.int32
        offsets = np.frombuffer(values.buffers()[1], dtype=dtype)[values.offset:values.offset + n + 1]
        return np.diff(offsets).astype(np.int64) + dtype().itemsize
    if isinstance(typ, pa.BaseExtensionType):
        return _value_sizes(values.storage)
    if pa.types.is_dictionary(typ):
        return _value_sizes(values.indices)
    if pa.types.is_list(typ) or pa.types.is_large_list(typ) or pa.types.is_map(typ):
        offsets = values.offsets.to_numpy(zero_copy_only=False).astype(np.int64)
        inner = np.concatenate(([0], np.cumsum(_value_sizes(values.values))))
        return inner[offsets[1:]] - inner[offsets[:-1]] + (8 if pa.types.is_large_list(typ) else 4)
    if pa.types.is_fixed_size_list(typ):
        return _value_sizes(values.flatten()).reshape(n, typ.list_size).sum(axis=1) if n else np.zeros(0, np.int64)
    if pa.types.is_struct(typ):
        return sum((_value_sizes(field) for field in values.flatten()), np.zeros(n, dtype=np.int64))
    width = fixed_width(typ)
    return np.full(n, max(1, width // 8) if width else 8, dtype=np.int64)


def row_sizes(batch: pa.RecordBatch) -> np.ndarray:
    """Estimated uncompressed size of every row of `batch` in bytes (int64), from that row alone."""
    sizes = np.zeros(batch.num_rows, dtype=np.int64)
    for column in batch.columns:
        sizes += _value_sizes(column)
    return sizes


_SIGNAL_BYTES = 8


def _value_signals(values: pa.Array) -> np.ndarray:
    """A cheap 64-bit trace of every value's content (uint64), from that value alone: the bits of a number of up
    to 64 bits, the first 8 bytes and the length of a string or binary; 0 for nulls and other types (their
    sizes still count). What content-defined shard boundaries hash (`ShardCutter`)."""
    n = len(values)
    typ = values.type
    if isinstance(typ, pa.BaseExtensionType):
        return _value_signals(values.storage)
    signals = np.zeros(n, dtype=np.uint64)
    if not n:
        return signals
    if pa.types.is_binary(typ) or pa.types.is_string(typ) or pa.types.is_large_binary(typ) \
            or pa.types.is_large_string(typ):
        wide = pa.types.is_large_binary(typ) or pa.types.is_large_string(typ)
        offsets = np.frombuffer(values.buffers()[1], dtype=np.int64 if wide else np.int32)[
            values.offset:values.offset + n + 1].astype(np.int64)
        data = values.buffers()[2]
        lengths = np.diff(offsets)
        if data is not None and data.size >= _SIGNAL_BYTES:
            signals = _heads(np.frombuffer(data, dtype=np.uint8), offsets[:-1], lengths)
        signals ^= lengths.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    elif (pa.types.is_integer(typ) or pa.types.is_floating(typ) or pa.types.is_temporal(typ)) and \
            fixed_width(typ) in (8, 16, 32, 64):
        width = fixed_width(typ) // 8
        signals = np.frombuffer(values.buffers()[1], dtype=np.dtype(f"<u{width}"))[
            values.offset:values.offset + n].astype(np.uint64)
    if values.null_count:
        signals[values.is_null().to_numpy(zero_copy_only=False)] = 0
    return signals


def _heads(raw: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The first 8 bytes of every value (little-endian uint64, bytes past the value's end zero): one unaligned
    8-byte read per value from a strided view of the buffer, values in the buffer's last 8 bytes one by one."""
    words = np.ndarray((raw.size - _SIGNAL_BYTES + 1,), dtype="<u8", buffer=raw, strides=(1,))
    inside = starts <= raw.size - _SIGNAL_BYTES
    heads = np.zeros(len(starts), dtype=np.uint64)
    heads[inside] = words[starts[inside]]
    for i in np.flatnonzero(~inside):
        tail = raw[starts[i]:starts[i] + _SIGNAL_BYTES].tobytes().ljust(_SIGNAL_BYTES, b"\0")
        heads[i] = np.frombuffer(tail, dtype="<u8")[0]
    kept = np.minimum(lengths, _SIGNAL_BYTES).astype(np.uint64) * np.uint64(8)
    with np.errstate(over="ignore"):
        mask = np.where(kept == 64, np.uint64(2**64 - 1), (np.uint64(1) << (kept % np.uint64(64))) - np.uint64(1))
    return heads & mask


def row_profile(batch: pa.RecordBatch) -> tuple[np.ndarray, np.ndarray]:
    """Every row's estimated size (`row_sizes`) and a 64-bit trace of its content (uint64), each from that row
    alone: what `ShardCutter` cuts by."""
    signals = np.zeros(batch.num_rows, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for i, column in enumerate(batch.columns):
            signals = signals * np.uint64(0x100000001B3 + 2 * i) + _value_signals(column)
    return row_sizes(batch), signals


class ShardCutter:
    """Where shards end, from the rows of successive batches (`row_profile`). The boundaries are content-defined,
    so that an edit moves only the boundaries near it and a new version inherits every other shard
    (docs/versions.md): once a shard holds three quarters of `target_size` bytes it closes after the first
    *anchor* row, and at the latest at the row that brings it to 3/2 of the target (a record larger than that
    gets a shard of its own). A row is an anchor when a hash of its content trace and size and those of the three
    rows before it falls below 4 * size / target_size (one anchor in a quarter of a target's bytes), so shards hold
    the target on average.

    The cuts depend on the sequence of rows only, not on how it is split into batches: one process
    (`cut_into_shards`) and a cluster (`deai_data.ray`, which sees the rows as blocks) cut the same rows alike.
    """

    _MIX = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0xD6E8FEB86659FD93],
                    dtype=np.uint64)

    def __init__(self, target_size: int) -> None:
        if target_size <= 0:
            raise UsageError("shard size must be positive")
        self.target_size = target_size
        self.min_fill = max(1, target_size * 3 // 4)
        self.max_fill = target_size * 3 // 2
        self._filled = 0  # bytes in the shard now open
        self._before = np.zeros(3, dtype=np.uint64)  # traces of the last three rows seen (the hash's window)

    def _anchors(self, sizes: np.ndarray, signals: np.ndarray) -> np.ndarray:
        """Indices of the anchor rows among the batch's (the window reaches back into earlier batches)."""
        with np.errstate(over="ignore"):
            traced = signals.astype(np.uint64) ^ (sizes.astype(np.uint64) * np.uint64(0xFF51AFD7ED558CCD))
            window = np.concatenate((self._before, traced))
            self._before = window[-3:]
            h = window[3:] * self._MIX[0] + window[2:-1] * self._MIX[1] + window[1:-2] * self._MIX[2] + \
                window[:-3] * self._MIX[3]
            h ^= h >> np.uint64(31)  # splitmix64's finaliser: every bit of the window reaches the top bits
            h *= np.uint64(0xBF58476D1CE4E5B9)
            h ^= h >> np.uint64(27)
            h *= np.uint64(0x94D049BB133111EB)
            h ^= h >> np.uint64(31)
        unit = (h >> np.uint64(11)).astype(np.float64) * 2.0 ** -53
        return np.flatnonzero(unit * self.target_size < 4.0 * sizes)

    def cut(self, sizes: np.ndarray, signals: np.ndarray) -> list[tuple[int, int, bool]]:
        """The pieces of the next batch (its `row_profile`): (start, stop, closes_shard) in row order."""
        pieces: list[tuple[int, int, bool]] = []
        if not len(sizes):
            return pieces
        anchors = self._anchors(sizes, signals)
        cumulative = np.cumsum(sizes)
        start = 0
        consumed = 0  # bytes of this batch already placed in shards
        while start < len(sizes):
            # the first rows whose end brings the open shard to 3/4 and to 3/2 of the target
            at_min = int(np.searchsorted(cumulative, consumed + self.min_fill - self._filled, side="left"))
            at_max = int(np.searchsorted(cumulative, consumed + self.max_fill - self._filled, side="left"))
            k = int(np.searchsorted(anchors, max(at_min, start), side="left"))
            last = min(int(anchors[k]) if k < len(anchors) else len(sizes), at_max)
            if last >= len(sizes):
                pieces.append((start, len(sizes), False))
                self._filled += int(cumulative[-1]) - consumed
                break
            pieces.append((start, last + 1, True))
            self._filled = 0
            consumed = int(cumulative[last])
            start = last + 1
        return pieces


def cut_into_shards(batches: Iterable[pa.RecordBatch], target_size: int) -> Iterator[list[pa.RecordBatch]]:
    """Group and slice `batches` into shards of about `target_size` uncompressed bytes each (`ShardCutter`).
    Empty batches are dropped."""
    cutter = ShardCutter(target_size)
    current: list[pa.RecordBatch] = []
    for batch in batches:
        for start, stop, closes in cutter.cut(*row_profile(batch)):
            current.append(batch.slice(start, stop - start))
            if closes:
                yield current
                current = []
    if current:
        yield current


def _write_ipc(sink: pa.NativeFile, batches: list[pa.RecordBatch], schema: pa.Schema,
               compression: str | None) -> None:
    if compression not in COMPRESSIONS:
        raise UsageError(f"compression must be one of {COMPRESSIONS}, got {compression!r}")
    with pa.ipc.new_file(sink, schema, options=pa.ipc.IpcWriteOptions(compression=compression)) as writer:
        for batch in batches:
            writer.write_batch(batch)


def one_batch(pieces: list[pa.RecordBatch], schema: pa.Schema) -> list[pa.RecordBatch]:
    """A shard's rows as one freshly built record batch, so that a shard's bytes depend on its rows alone: not
    on how they were batched when they arrived, nor on what a sliced buffer holds past its end (the padding
    bits of a validity bitmap). Costs one copy of the shard."""
    if not pieces:
        return []
    try:
        columns = [pa.concat_arrays([piece.column(i) for piece in pieces]) for i in range(len(schema))]
    except pa.ArrowException as exc:
        raise UsageError(f"the records' batches cannot be joined into one shard: {exc}") from exc
    return [pa.RecordBatch.from_arrays(columns, schema=schema)]


def encode_shard(batches: list[pa.RecordBatch], schema: pa.Schema, compression: str | None = None) -> pa.Buffer:
    """Serialise record batches as one Arrow IPC file (optional buffer compression)."""
    sink = pa.BufferOutputStream()
    _write_ipc(sink, batches, schema, compression)
    return sink.getvalue()


def encode_shard_into(batches: list[pa.RecordBatch], schema: pa.Schema, compression: str | None,
                      allocate: Callable[[int], memoryview]) -> memoryview:
    """Like `encode_shard`, but into memory from `allocate(size)` (a reusable buffer) when the size
    can be known without compressing twice; returns a view of exactly the encoded bytes."""
    if compression is not None:
        return memoryview(encode_shard(batches, schema, compression)).cast("B")
    counter = pa.MockOutputStream()
    _write_ipc(counter, batches, schema, None)
    out = allocate(counter.size())
    _write_ipc(pa.FixedSizeBufferWriter(pa.py_buffer(out)), batches, schema, None)
    return out


def decode_shard(data: bytes | bytearray | memoryview | pa.Buffer) -> pa.Table:
    """Read an Arrow IPC file shard without copying its buffers."""
    buf = data if isinstance(data, pa.Buffer) else pa.py_buffer(data)
    return pa.ipc.open_file(buf).read_all()
