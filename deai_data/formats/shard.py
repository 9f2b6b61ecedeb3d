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


class ShardCutter:
    """Where shards end, from the row sizes of successive batches: a shard closes at the first row that
    reaches `target_size` bytes (so a record larger than the target gets a shard of its own).

    The cuts depend on the sequence of rows only, not on how it is split into batches: one process
    (`cut_into_shards`) and a cluster (`deai_data.ray`, which sees the rows as blocks) cut the same rows alike.
    """

    def __init__(self, target_size: int) -> None:
        if target_size <= 0:
            raise UsageError("shard size must be positive")
        self.target_size = target_size
        self._filled = 0  # bytes in the shard now open

    def cut(self, sizes: np.ndarray) -> list[tuple[int, int, bool]]:
        """The pieces of the next batch (row sizes `sizes`): (start, stop, closes_shard) in row order."""
        pieces: list[tuple[int, int, bool]] = []
        if not len(sizes):
            return pieces
        cumulative = np.cumsum(sizes)
        start = 0
        consumed = 0  # bytes of this batch already placed in shards
        while start < len(sizes):
            need = self.target_size - self._filled
            # first row whose end reaches the target (relative to what the open shard already holds)
            stop = int(np.searchsorted(cumulative, consumed + need, side="left")) + 1
            if stop > len(sizes):
                pieces.append((start, len(sizes), False))
                self._filled += int(cumulative[-1]) - consumed
                break
            pieces.append((start, stop, True))
            self._filled = 0
            consumed = int(cumulative[stop - 1])
            start = stop
        return pieces


def cut_into_shards(batches: Iterable[pa.RecordBatch], target_size: int) -> Iterator[list[pa.RecordBatch]]:
    """Group and slice `batches` into shards of about `target_size` uncompressed bytes each (`ShardCutter`).
    Empty batches are dropped."""
    cutter = ShardCutter(target_size)
    current: list[pa.RecordBatch] = []
    for batch in batches:
        for start, stop, closes in cutter.cut(row_sizes(batch)):
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
