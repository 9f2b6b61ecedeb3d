"""Shards: records packed as Arrow IPC files (schema once per shard), cut to a target size.

Cutting is vectorised per record batch (row sizes from Arrow offsets, no per-row Python), and
deterministic: the same batches and target always give the same shards.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import numpy as np
import pyarrow as pa

from ..errors import UsageError

DEFAULT_SHARD_SIZE = 64 << 20
COMPRESSIONS = (None, "zstd", "lz4")


def _fixed_width(typ: pa.DataType) -> int:
    try:
        return typ.bit_width
    except ValueError:
        return 0


def row_sizes(batch: pa.RecordBatch) -> np.ndarray:
    """Estimated uncompressed size of every row of `batch` in bytes (int64)."""
    n = batch.num_rows
    sizes = np.zeros(n, dtype=np.int64)
    for column in batch.columns:
        typ = column.type
        if pa.types.is_binary(typ) or pa.types.is_string(typ) or pa.types.is_large_binary(typ) \
                or pa.types.is_large_string(typ):
            wide = pa.types.is_large_binary(typ) or pa.types.is_large_string(typ)
            dtype = np.int64 if wide else np.int32
            offsets = np.frombuffer(column.buffers()[1], dtype=dtype)[column.offset:column.offset + n + 1]
            sizes += np.diff(offsets).astype(np.int64) + dtype().itemsize
        elif _fixed_width(typ) >= 8:
            sizes += _fixed_width(typ) // 8
        elif n:
            sizes += -(-column.nbytes // n)
    return sizes


def cut_into_shards(batches: Iterable[pa.RecordBatch], target_size: int) -> Iterator[list[pa.RecordBatch]]:
    """Group and slice `batches` into shards of about `target_size` uncompressed bytes each.

    A shard closes at the first row that reaches the target, so a record larger than the target
    gets a shard of its own. Empty batches are dropped.
    """
    if target_size <= 0:
        raise UsageError("shard size must be positive")
    current: list[pa.RecordBatch] = []
    filled = 0
    for batch in batches:
        if batch.num_rows == 0:
            continue
        cumulative = np.cumsum(row_sizes(batch))
        start = 0
        consumed = 0  # bytes of this batch already placed in shards
        while start < batch.num_rows:
            need = target_size - filled
            # first row whose end reaches the target (relative to what this shard already holds)
            stop = int(np.searchsorted(cumulative, consumed + need, side="left")) + 1
            if stop > batch.num_rows:
                current.append(batch.slice(start))
                filled += int(cumulative[-1]) - consumed
                break
            current.append(batch.slice(start, stop - start))
            yield current
            current, filled = [], 0
            consumed = int(cumulative[stop - 1])
            start = stop
    if current:
        yield current


def _write_ipc(sink: pa.NativeFile, batches: list[pa.RecordBatch], schema: pa.Schema,
               compression: str | None) -> None:
    if compression not in COMPRESSIONS:
        raise UsageError(f"compression must be one of {COMPRESSIONS}, got {compression!r}")
    with pa.ipc.new_file(sink, schema, options=pa.ipc.IpcWriteOptions(compression=compression)) as writer:
        for batch in batches:
            writer.write_batch(batch)


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
