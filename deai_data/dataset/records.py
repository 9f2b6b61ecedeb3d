"""Record-level random access: the records asked for, opening only the segments that hold them.

A shard is one Arrow IPC file holding one record batch (docs/formats.md section 1). Its plaintext is mapped as
sparse memory (pages never written cost nothing) and filled segment by segment on demand, each segment fetched by
byte range from the shard's locators and authenticated (AES-GCM, as verify="aead" does for whole shards): first
the file's footer and the batch's metadata, then, for each requested record and column, the bytes of its
validity bit, offsets and values. Shards that this cannot cover (compressed buffers, dictionary or nested columns)
are read whole.
"""

from __future__ import annotations

import mmap
import struct
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np
import pyarrow as pa

from ..crypto.sealing import HEADER_SIZE, TAG_SIZE, ShardCipher, ShardHeader, segment_span
from ..errors import IntegrityError, UsageError
from ..formats.manifest import Manifest, ShardEntry
from ..formats.shard import fixed_width


class Dataset(Protocol):
    """What random access needs of a dataset (`reader.Dataset`)."""

    manifest: Manifest

    @property
    def label(self) -> str: ...

    @property
    def schema(self) -> pa.Schema: ...

    def opening(self, entry: ShardEntry) -> tuple[bytes, bytes, int]: ...

    def fetch_range(self, entry: ShardEntry, start: int, end: int) -> bytes: ...

    def read_shard(self, index: int) -> pa.Table: ...

_OPEN_SHARDS = 4  # sparse shards a dataset keeps for the next lookups (only touched pages use memory)
_FOOTER_TAIL = 10  # int32 footer length + "ARROW1"
_MESSAGE_PREFIX = 8  # continuation marker + int32 metadata length


class SparseShard:
    """One shard's plaintext, its segments opened on demand."""

    def __init__(self, dataset: Dataset, index: int) -> None:
        self.dataset = dataset
        self.entry = dataset.manifest.shards[index]
        self.size = self.entry.plaintext_size
        self.segment_size = dataset.manifest.segment_size
        self.memory = mmap.mmap(-1, max(1, self.size))
        self.plaintext = memoryview(self.memory)[:self.size]
        self.opened: set[int] = set()
        self.sealed_bytes_read = 0
        self._cipher: ShardCipher | None = None
        self._batch: pa.RecordBatch | None = None

    # ---- bytes ------------------------------------------------------------------------------------
    def ensure(self, start: int, end: int) -> None:
        """Make plaintext bytes [start, end) readable: fetch and open the segments that hold them."""
        if end <= start:
            return
        if start < 0 or end > self.size:  # lengths and offsets inside an (authenticated) shard point elsewhere
            raise IntegrityError(f"the shard's layout points at bytes {start}-{end}, outside its {self.size} bytes",
                                 dataset=self.dataset.label, shard=self.entry.index,
                                 hint="the owner published a broken shard")
        wanted = [i for i in range(start // self.segment_size, (end - 1) // self.segment_size + 1)
                  if i not in self.opened]
        runs: list[list[int]] = []
        for i in wanted:
            if runs and runs[-1][-1] == i - 1:
                runs[-1].append(i)
            else:
                runs.append([i])
        for run in runs:
            self._open_run(run)

    def _open_run(self, run: list[int]) -> None:
        first = segment_span(run[0], self.size, self.segment_size)[0]
        last = segment_span(run[-1], self.size, self.segment_size)[1]
        if self._cipher is None and run[0] != 0:
            self._cipher = self._cipher_for(memoryview(self._fetch(0, HEADER_SIZE)))
        head = 0 if self._cipher is None else first  # the header comes with segment 0 when not yet known
        sealed = memoryview(self._fetch(head, last))
        if self._cipher is None:
            self._cipher = self._cipher_for(sealed[:HEADER_SIZE])
        for i in run:
            start, end = segment_span(i, self.size, self.segment_size)
            out = self.plaintext[i * self.segment_size:i * self.segment_size + end - start - TAG_SIZE]
            self._cipher.open_segment_into(i, sealed[start - head:end - head], out)
            self.opened.add(i)

    def _cipher_for(self, header_bytes: memoryview) -> ShardCipher:
        """The shard's cipher from its fetched header; the sizes and index are the manifest's (the header is
        authenticated with every segment, so a header that differs fails the first segment)."""
        label = self.dataset.label
        salt = ShardHeader.decode(header_bytes, dataset=label, shard=self.entry.index).salt
        key, seal_id, sealed_index = self.dataset.opening(self.entry)
        return ShardCipher(key, seal_id, ShardHeader(self.segment_size, self.size, sealed_index, salt), dataset=label)

    def _fetch(self, start: int, end: int) -> bytes:
        data = self.dataset.fetch_range(self.entry, start, end)
        self.sealed_bytes_read += len(data)
        return data

    def _u32(self, offset: int) -> int:
        self.ensure(offset, offset + 4)
        return int(struct.unpack_from("<I", self.plaintext, offset)[0])

    # ---- the record batch -------------------------------------------------------------------------
    def batch(self) -> pa.RecordBatch | None:
        """The shard's record batch over the sparse memory (None when this shard must be read whole)."""
        if self._batch is None:
            if self.size < 16 or any(pa.types.is_dictionary(f.type) for f in self.dataset.schema) or \
                    self.dataset.manifest.compression is not None:
                return None
            self.ensure(0, _MESSAGE_PREFIX * 2)  # the header with segment 0 (the schema's start)
            footer = self._u32(self.size - _FOOTER_TAIL)
            self.ensure(self.size - _FOOTER_TAIL - footer, self.size)
            position = 8  # after "ARROW1" and its padding: the schema message, then the batch's
            for _ in range(2):
                message = position
                position += _MESSAGE_PREFIX + self._u32(position + 4)
                self.ensure(message, position)
            try:
                reader = pa.ipc.open_file(pa.py_buffer(self.memory))
                if reader.num_record_batches != 1:
                    return None
                batch = reader.get_batch(0)
            except pa.ArrowException as exc:
                raise IntegrityError(f"authenticated shard is not valid Arrow IPC: {exc}", dataset=self.dataset.label,
                                     shard=self.entry.index, hint="the owner published a broken shard") from None
            if batch.num_rows != self.entry.records or not batch.schema.equals(self.dataset.schema):
                raise IntegrityError("shard rows or schema differ from the manifest", dataset=self.dataset.label,
                                     shard=self.entry.index, hint="the owner published an inconsistent dataset")
            self._batch = batch
        return self._batch

    def rows(self, rows: Sequence[int]) -> pa.Table | None:
        """Records `rows` of this shard (None when the shard must be read whole)."""
        batch = self.batch()
        if batch is None:
            return None
        base = np.frombuffer(self.memory, dtype=np.uint8).ctypes.data
        readers = [_value_reader(column, base, self) for column in batch.columns]
        if any(reader is None for reader in readers):
            return None
        for reader in readers:
            for row in rows:
                reader(row)  # type: ignore[misc]
        return pa.Table.from_batches([batch]).take(pa.array(rows, pa.int64()))


def _value_reader(column: pa.Array, base: int, shard: SparseShard) -> Callable[[int], None] | None:
    """For a column over the shard's sparse memory (at address `base`): a function that makes one row's value
    readable (its validity bit, offsets and values); None for a type this does not cover."""
    typ = column.type.storage_type if isinstance(column.type, pa.BaseExtensionType) else column.type
    array = column.storage if isinstance(column, pa.ExtensionArray) else column
    buffers = array.buffers()
    first = array.offset

    def where(buffer: pa.Buffer | None) -> int:
        return -1 if buffer is None else buffer.address - base

    validity = where(buffers[0])

    def valid_bit(row: int) -> None:
        if validity >= 0:
            shard.ensure(validity + (first + row) // 8, validity + (first + row) // 8 + 1)

    def fixed(values: int, bits: int) -> Callable[[int], None]:
        def read(row: int) -> None:
            valid_bit(row)
            start, end = (first + row) * bits, (first + row + 1) * bits
            shard.ensure(values + start // 8, values + -(-end // 8))
        return read

    if pa.types.is_fixed_size_list(typ) and len(buffers) == 3 and buffers[1] is None and \
            fixed_width(typ.value_type) % 8 == 0 and fixed_width(typ.value_type) > 0:
        return fixed(where(buffers[2]), typ.list_size * fixed_width(typ.value_type))
    if pa.types.is_binary(typ) or pa.types.is_string(typ) or pa.types.is_large_binary(typ) \
            or pa.types.is_large_string(typ):
        wide = pa.types.is_large_binary(typ) or pa.types.is_large_string(typ)
        size, code = (8, "<2q") if wide else (4, "<2i")
        offsets, values = where(buffers[1]), where(buffers[2])

        def read(row: int) -> None:
            valid_bit(row)
            at = offsets + (first + row) * size
            shard.ensure(at, at + 2 * size)
            start, end = struct.unpack_from(code, shard.plaintext, at)
            if not 0 <= start <= end <= shard.size - values:
                raise IntegrityError(f"record {row}: offsets {start}-{end} leave the shard",
                                     dataset=shard.dataset.label, shard=shard.entry.index)
            shard.ensure(values + start, values + end)
        return read
    if len(buffers) == 2 and fixed_width(typ) > 0 and (fixed_width(typ) % 8 == 0 or pa.types.is_boolean(typ)):
        return fixed(where(buffers[1]), fixed_width(typ))
    return None


class RecordIndex:
    """A dataset's records by position: which shard holds record i, and the sparse shards opened lately."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset
        counts = [e.records for e in dataset.manifest.shards]
        self.starts = np.concatenate(([0], np.cumsum(counts, dtype=np.int64)))
        self.shards: OrderedDict[int, SparseShard] = OrderedDict()
        self.lock = threading.Lock()

    def take(self, indices: Sequence[int]) -> pa.Table:
        total = int(self.starts[-1])
        try:
            wanted = np.asarray(indices, dtype=np.int64).reshape(-1)
        except (TypeError, ValueError, OverflowError):
            raise UsageError("indices must be integers") from None
        wanted = np.where(wanted < 0, wanted + total, wanted)
        if len(wanted) and (wanted.min() < 0 or wanted.max() >= total):
            raise UsageError(f"record index out of range: the dataset has {total} records")
        shard_of = np.searchsorted(self.starts, wanted, side="right") - 1
        parts, order = [], []
        with self.lock:
            for shard in np.unique(shard_of):
                positions = np.flatnonzero(shard_of == shard)
                rows = (wanted[positions] - self.starts[shard]).tolist()
                parts.append(self._rows(int(shard), rows))
                order.extend(positions.tolist())
        if not parts:
            return pa.Table.from_batches([], schema=self.dataset.schema)
        joined = pa.concat_tables(parts)
        return joined.take(pa.array(np.argsort(np.asarray(order, dtype=np.int64), kind="stable")))

    def _rows(self, index: int, rows: list[int]) -> pa.Table:
        sparse = self.shards.pop(index, None) or SparseShard(self.dataset, index)
        self.shards[index] = sparse
        while len(self.shards) > _OPEN_SHARDS:
            self.shards.popitem(last=False)
        table = sparse.rows(rows)
        if table is None:  # a shard this cannot open piecemeal: read (and verify) it whole
            table = self.dataset.read_shard(index).take(pa.array(rows, pa.int64()))
        return table
