"""Arrow IPC shards: cutting to a target size keeps every row once, in order; codecs round-trip."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from conftest import sample_table
from hypothesis import given, settings
from hypothesis import strategies as st

from deai_data.formats.shard import cut_into_shards, decode_shard, encode_shard, one_batch, row_sizes


def test_row_sizes_follow_offsets():
    batch = pa.record_batch({"b": pa.array([b"", b"abc", b"x" * 100]), "n": pa.array([1, 2, 3], pa.int32())})
    assert row_sizes(batch).tolist() == [0 + 4 + 4, 3 + 4 + 4, 100 + 4 + 4]
    sliced = batch.slice(1)
    assert row_sizes(sliced).tolist() == [11, 108]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 5000), min_size=0, max_size=300), st.integers(1, 20000), st.integers(1, 64))
def test_cutting_keeps_every_row_once_in_order(sizes, target, batch_rows):
    blobs = [b"z" * s for s in sizes]
    table = pa.table({"i": np.arange(len(blobs)), "b": pa.array(blobs, pa.binary())})
    shards = list(cut_into_shards(table.to_batches(max_chunksize=batch_rows), target))
    ids = [i for shard in shards for batch in shard for i in batch.column("i").to_pylist()]
    assert ids == list(range(len(blobs)))
    for shard in shards[:-1]:
        total = sum(int(row_sizes(b).sum()) for b in shard)
        last = int(row_sizes(shard[-1])[-1])
        assert total >= max(1, target * 3 // 4)  # a shard closes only once it holds 3/4 of the target
        assert total - last < target * 3 // 2  # ... and at the latest at the row that brings it to 3/2 of it
    assert all(sum(b.num_rows for b in shard) > 0 for shard in shards)


def test_record_larger_than_a_shard_gets_its_own_shard():
    table = pa.table({"b": pa.array([b"a" * 10, b"b" * 5000, b"c" * 10], pa.binary())})
    shards = list(cut_into_shards(table.to_batches(), 1000))
    assert [sum(b.num_rows for b in s) for s in shards] == [2, 1]
    shards = list(cut_into_shards(table.to_batches(), 20))
    assert [sum(b.num_rows for b in s) for s in shards] == [2, 1]


def _cuts(sizes, target: int, table: pa.Table | None = None) -> list[int]:
    """Row indices where shards end, for rows of the given sizes (or `table`'s rows)."""
    table = table if table is not None else pa.table({"b": pa.array([b"z" * s for s in sizes], pa.binary())})
    ends, rows = [], 0
    for shard in cut_into_shards(table.to_batches(max_chunksize=997), target):
        rows += sum(b.num_rows for b in shard)
        ends.append(rows)
    return ends


def test_an_edit_moves_only_the_boundaries_near_it():
    """Boundaries are content-defined: rows inserted, removed or resized in one place leave the shards beyond the
    next boundary or two exactly as they were (the rows after an edit shift by the rows it added or removed)."""
    rng = np.random.default_rng(5)
    sizes = [int(x) for x in rng.integers(50, 400, 20_000)]
    target = 16_000
    before = _cuts(sizes, target)
    average = sum(sizes) / len(before)
    assert 0.6 * target < average < 1.4 * target  # about the target on average
    edits = {"resized": sizes[:10_000] + [s + 37 for s in sizes[10_000:10_050]] + sizes[10_050:],
             "inserted": sizes[:10_000] + [123] * 40 + sizes[10_000:],
             "removed": sizes[:10_000] + sizes[10_040:]}
    for name, edited in edits.items():
        shift = len(edited) - len(sizes)
        after = _cuts(edited, target)
        kept = {c for c in before if c <= 10_000} | {c + shift for c in before if c > 10_000}
        changed = [c for c in after if c not in kept]
        assert len(changed) <= 6, name  # the shards around the edit, not the ~140 after it
        assert [c for c in before if c < 9_000] == [c for c in after if c < 9_000], name


def test_rows_of_one_size_are_cut_by_their_content():
    """Fixed-size rows give the sizes nothing to say: their content places the boundaries, still about the target,
    still moving only near an edit."""
    rng = np.random.default_rng(9)
    table = pa.table({"x": rng.random(40_000), "blob": [rng.bytes(24) for _ in range(40_000)]})
    target = 32_000
    before = _cuts(None, target, table)
    assert 0.6 * target < table.nbytes / len(before) < 1.4 * target
    edited = pa.concat_tables([table.slice(0, 20_000), table.slice(20_000 + 50)])  # 50 rows removed
    after = _cuts(None, target, edited)
    kept = {c for c in before if c <= 20_000} | {c - 50 for c in before if c > 20_000}
    assert len([c for c in after if c not in kept]) <= 6


def _mixed_table(n: int) -> pa.Table:
    """Columns of every kind a size is estimated for: nulls (validity bitmaps), strings, lists, bools,
    structs, dictionaries, fixed-shape tensors."""
    rng = np.random.default_rng(n)
    return pa.table({
        "i": rng.integers(0, 100, n), "s": [None if i % 7 == 0 else "x" * (i % 13) for i in range(n)],
        "l": [[1, 2, 3][:i % 4] if i % 5 else None for i in range(n)], "b": [i % 3 == 0 for i in range(n)],
        "st": [{"a": i, "b": str(i)} for i in range(n)], "d": pa.array(["a", "bb"] * (n // 2)).dictionary_encode(),
        "t": pa.FixedShapeTensorArray.from_numpy_ndarray(rng.random((n, 2, 3)))})


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 600), st.integers(200, 20000))
def test_shards_depend_on_the_rows_not_on_their_batching(batch_rows, target):
    """The cuts and every shard's bytes are the same however the rows arrive batched (a cluster sees the rows
    as blocks of its own sizes): one batch, or batches of `batch_rows`."""
    table = _mixed_table(600)
    whole = [bytes(encode_shard(one_batch(s, table.schema), table.schema))
             for s in cut_into_shards(table.to_batches(), target)]
    batched = [bytes(encode_shard(one_batch(s, table.schema), table.schema))
               for s in cut_into_shards(table.to_batches(max_chunksize=batch_rows), target)]
    assert batched == whole
    assert np.array_equal(np.concatenate([row_sizes(b) for b in table.to_batches(max_chunksize=batch_rows)]),
                          row_sizes(table.to_batches()[0]))


def test_one_batch_joins_batches_with_different_dictionaries():
    first, second = pa.array(["a", "b"]).dictionary_encode(), pa.array(["c", "a"]).dictionary_encode()
    schema = pa.schema([("d", first.type)])
    joined = one_batch([pa.record_batch([first], schema=schema), pa.record_batch([second], schema=schema)], schema)
    assert joined[0].column(0).to_pylist() == ["a", "b", "c", "a"]


@pytest.mark.parametrize("compression", [None, "zstd", "lz4"])
def test_encode_decode_round_trip(compression):
    table = sample_table(2000)
    buf = encode_shard(table.to_batches(max_chunksize=333), table.schema, compression)
    assert decode_shard(buf).equals(table)
    assert decode_shard(buf.to_pybytes()).equals(table)


def test_compression_shrinks_compressible_data():
    table = pa.table({"t": ["same text " * 20] * 5000})
    plain = encode_shard(table.to_batches(), table.schema, None)
    packed = encode_shard(table.to_batches(), table.schema, "zstd")
    assert packed.size < plain.size / 5


def test_unknown_compression_is_refused():
    with pytest.raises(ValueError):
        encode_shard([], pa.schema([]), "gzip")
