"""Record-level random access (`Dataset.take`, `ds[i]`): the right records in the asked order, only the segments
that hold them fetched (ranged reads, counted at the real store), each authenticated; fallbacks read whole."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deai_data import Dataset, IntegrityError, UsageError, open_dataset, publish
from deai_data.storage.local import LocalStore, content_path

SEGMENT = 4096


def mixed(n: int) -> pa.Table:
    rng = np.random.default_rng(n)
    return pa.table({
        "i": np.arange(n), "blob": [rng.bytes(int(k)) for k in rng.integers(50, 400, n)],
        "s": [None if k % 7 == 0 else f"r{k}" for k in range(n)], "f": rng.random(n),
        "b": [k % 3 == 0 for k in range(n)], "t": pa.FixedShapeTensorArray.from_numpy_ndarray(rng.random((n, 2, 2)))})


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    table = mixed(5000)
    store = tmp_path_factory.mktemp("store")
    result = publish(table, store=store, name="ra", keystore=False, shard_size=350_000, segment_size=SEGMENT)
    assert len(result.manifest.shards) >= 4
    return table, store, result


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(-5000, 4999), min_size=0, max_size=12))
def test_take_returns_the_records_in_the_asked_order(published, indices):
    table, _, result = published
    dataset = open_dataset(result.manifest_uri, key=result.key)
    assert dataset.take(indices).equals(table.take(pa.array([i % 5000 for i in indices], pa.int64())))


def test_one_record_reads_a_few_segments_not_the_shards(published, monkeypatch):
    """Counted at the real LocalStore: the bytes its ranged reads return."""
    table, _, result = published
    read = []
    real_get = LocalStore.get

    def counting_get(self, locator, start=0, end=None):
        data = real_get(self, locator, start, end)
        read.append(len(data))
        return data

    monkeypatch.setattr(LocalStore, "get", counting_get)
    dataset = open_dataset(result.manifest_uri, key=result.key)
    read.clear()  # the manifest
    assert dataset[1234] == table.slice(1234, 1).to_pylist()[0]
    shard = result.manifest.shards[0]
    assert 0 < sum(read) < 12 * (SEGMENT + 16) < shard.sealed_size / 6
    first = sum(read)
    assert dataset[1235]["i"] == 1235
    assert sum(read) - first < 4 * (SEGMENT + 16)  # the next record of an open shard: at most a few segments more
    assert dataset[-1]["i"] == 4999


def test_bad_indexes_are_clear_errors(published):
    _, _, result = published
    dataset = open_dataset(result.manifest_uri, key=result.key)
    with pytest.raises(IndexError):
        dataset[5000]
    with pytest.raises(TypeError):
        dataset["3"]
    with pytest.raises(UsageError, match="out of range"):
        dataset.take([0, 10**12])
    with pytest.raises(UsageError, match="integers"):
        dataset.take(["a"])


def test_a_tampered_segment_fails_the_records_it_holds_and_no_other(published, tmp_path):
    table, store, result = published
    entry = result.manifest.shards[1]
    victim = tmp_path / "tampered"
    data = bytearray((store / content_path(entry.sha256)).read_bytes())
    data[64 + 20 * (SEGMENT + 16) + 100] ^= 1  # inside segment 20 of shard 1, in the middle of the blobs
    victim.write_bytes(bytes(data))
    dataset = Dataset(result.manifest.with_locators({entry.index: (victim.as_uri(),)}), result.manifest_uri,
                      key=result.key)
    first = result.manifest.shards[0].records
    assert dataset.take([first]).equals(table.slice(first, 1))  # its bytes lie in other segments
    with pytest.raises(IntegrityError, match="segment 20"):
        dataset.take(range(first, first + entry.records))


@pytest.mark.parametrize("kind", ["nested", "compressed"])
def test_shards_it_cannot_open_piecemeal_are_read_whole(tmp_path, kind):
    table = pa.table({"i": np.arange(300), "l": [[k, k + 1][: k % 3] for k in range(300)]}) if kind == "nested" \
        else mixed(300)
    result = publish(table, store=tmp_path, name=kind, keystore=False, shard_size=5_000, segment_size=SEGMENT,
                     compression="zstd" if kind == "compressed" else None)
    dataset = open_dataset(result.manifest_uri, key=result.key)
    assert dataset.take([299, 5, 150]).equals(table.take(pa.array([299, 5, 150])))


def test_random_access_from_s3_uses_ranged_reads(s3, tmp_path):
    table = mixed(2000)
    uri = f"s3://{s3.bucket('random-access')}/data"
    result = publish(table, store=uri, name="s3-ra", keystore=False, shard_size=200_000, segment_size=SEGMENT)
    dataset = open_dataset(result.manifest_uri, key=result.key)
    assert dataset.take([1999, 7, 1000]).equals(table.take(pa.array([1999, 7, 1000])))
    opened = sum(len(s.opened) for s in dataset._records.shards.values())
    read = sum(s.sealed_bytes_read for s in dataset._records.shards.values())
    assert opened < 40 and read < result.manifest.sealed_size / 4


@pytest.mark.parametrize("where", ["footer length", "schema message length"])
def test_a_key_holders_broken_layout_is_an_integrity_error(published, tmp_path, where):
    """An owner (who holds the key) seals a shard whose Arrow lengths point outside it: every segment
    authenticates, and random access still answers with an IntegrityError, not a crash or a bare ValueError."""
    from deai_data.crypto.sealing import ShardSealer, open_shard
    _, store, result = published
    entry, seal_id = result.manifest.shards[0], bytes.fromhex(result.manifest.seal_id)
    plain = bytearray(open_shard((store / content_path(entry.sha256)).read_bytes(), data_key=result.key,
                                 seal_id=seal_id, shard_index=0))
    at = len(plain) - 10 if where == "footer length" else 12
    plain[at:at + 4] = (0x7FFFFFF0).to_bytes(4, "little")
    sealer = ShardSealer(result.key, seal_id, SEGMENT)
    out = memoryview(bytearray(sealer.sealed_size(len(plain))))
    sealed = sealer.seal_into(0, memoryview(plain), sealer.salt(0, memoryview(plain), out), out)
    forged = tmp_path / "forged"
    forged.write_bytes(bytes(sealed))
    dataset = Dataset(result.manifest.with_locators({0: (forged.as_uri(),)}), result.manifest_uri, key=result.key)
    with pytest.raises(IntegrityError, match="outside"):
        dataset.take([1])
