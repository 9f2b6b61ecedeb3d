"""Publish -> open round trips for every source type, edge sizes, compression and mirrors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import sample_table

from deai_data import Keystore, PublishError, SourceError, open_dataset, publish
from deai_data.crypto.keystore import DATA_KEY, PENDING_DATA_KEY
from deai_data.formats.merkle import merkle_root


def round_trip(source, store_dir, keystore, **kw) -> tuple:
    result = publish(source, store=store_dir, name="t", keystore=keystore, **kw)
    dataset = open_dataset(result.manifest_uri, keystore=keystore)
    return result, dataset, dataset.to_arrow()


def test_table_round_trip_and_manifest_facts(table, store_dir, keystore):
    result, dataset, back = round_trip(table, store_dir, keystore, shard_size=64 << 10)
    assert back.equals(table)
    m = result.manifest
    assert len(m.shards) > 3
    assert m.records == table.num_rows == len(dataset)
    assert m.content_root == merkle_root([bytes.fromhex(s.sha256) for s in m.shards]).hex()
    assert result.manifest_hash == m.hash == dataset.manifest_hash
    assert [r["id"] for r in dataset][:5] == [0, 1, 2, 3, 4]
    assert sum(dataset.read_shard(i).num_rows for i in range(dataset.num_shards)) == table.num_rows
    report = dataset.verify()
    assert report.ok and report.shards == len(m.shards) and report.records == table.num_rows
    assert keystore.get(DATA_KEY, result.manifest_hash) == result.key
    assert not keystore.entries(PENDING_DATA_KEY)


@pytest.mark.parametrize("compression", ["zstd", "lz4"])
def test_compression(table, store_dir, keystore, compression):
    result, _, back = round_trip(table, store_dir, keystore, compression=compression, shard_size=1 << 16)
    assert back.equals(table)
    assert result.manifest.compression == compression


def test_folder_source(tmp_path, store_dir, keystore):
    src = tmp_path / "src"
    files = {"cat/1.jpg": b"\x01" * 10, "cat/2.jpg": b"", "dog/deep/3.jpg": b"\x03" * 5000, "root.txt": b"r"}
    for rel, data in files.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)
    _, dataset, back = round_trip(src, store_dir, keystore, shard_size=2000)
    assert back.column_names == ["path", "bytes", "label"]
    rows = {r["path"]: r for r in back.to_pylist()}
    assert set(rows) == set(files)
    assert all(rows[p]["bytes"] == files[p] for p in files)
    assert rows["cat/1.jpg"]["label"] == "cat" and rows["dog/deep/3.jpg"]["label"] == "deep"
    assert rows["root.txt"]["label"] is None
    assert dataset.num_shards >= 2


def test_parquet_sources(table, tmp_path, store_dir, keystore):
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    pq.write_table(table.slice(0, 2000), a)
    pq.write_table(table.slice(2000), b)
    assert round_trip(a, store_dir, keystore)[2].equals(table.slice(0, 2000))
    assert round_trip([a, b], store_dir, keystore)[2].equals(table)
    pq.write_table(pa.table({"other": [1]}), b)
    with pytest.raises(SourceError, match="different schema"):
        publish([a, b], store=store_dir, name="x", keystore=keystore)


def test_record_batch_reader(table, store_dir, keystore):
    reader = pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=700))
    assert round_trip(reader, store_dir, keystore)[2].equals(table)


def test_pandas(store_dir, keystore):
    df = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", None], "c": [0.5, 1.5, 2.5]})
    back = round_trip(df, store_dir, keystore)[2].to_pandas()
    pd.testing.assert_frame_equal(back, df)


def test_iterable_of_dicts(store_dir, keystore):
    records = ({"i": i, "name": f"n{i}", "tags": ["a"] * (i % 3)} for i in range(20000))
    back = round_trip(records, store_dir, keystore, shard_size=50_000)[2]
    assert back.num_rows == 20000
    assert back.slice(19999).to_pylist() == [{"i": 19999, "name": "n19999", "tags": ["a"]}]


def test_iterable_with_changing_types_is_a_source_error(store_dir, keystore):
    records = [{"i": i} for i in range(9000)] + [{"i": "not a number"}]
    with pytest.raises(SourceError, match="same keys"):
        publish(iter(records), store=store_dir, name="x", keystore=keystore)


def test_numpy_arrays(store_dir, keystore):
    images = np.random.default_rng(0).integers(0, 255, size=(50, 8, 8, 3), dtype=np.uint8)
    labels = np.arange(50, dtype=np.int16)
    back = round_trip({"image": images, "label": labels}, store_dir, keystore)[2]
    assert np.array_equal(back.column("image").combine_chunks().to_numpy_ndarray(), images)
    assert np.array_equal(back.column("label").to_numpy(), labels)
    vector = round_trip(np.linspace(0, 1, 1000), store_dir, keystore)[2]
    assert np.array_equal(vector.column("data").to_numpy(), np.linspace(0, 1, 1000))
    no_images = round_trip({"image": images[:0]}, store_dir, keystore)[2]  # no rows: still a tensor column
    assert no_images.num_rows == 0 and no_images.schema.field("image").type.shape == [8, 8, 3]
    with pytest.raises(SourceError, match="cannot build Arrow columns"):
        publish({"x": np.array([[object(), 1], [2, 3]], dtype=object)}, store=store_dir, name="x", keystore=keystore)


def test_empty_and_single_record(store_dir, keystore):
    empty = pa.table({"x": pa.array([], pa.int64())})
    result, dataset, back = round_trip(empty, store_dir, keystore)
    assert back.num_rows == 0 and back.schema.equals(empty.schema)
    assert result.manifest.shards == () and dataset.verify().ok
    result, _, back = round_trip(iter([]), store_dir, keystore)
    assert back.num_rows == 0 and result.manifest.records == 0
    one = pa.table({"x": [42]})
    result, _, back = round_trip(one, store_dir, keystore)
    assert back.equals(one) and len(result.manifest.shards) == 1


def test_records_larger_than_a_shard(store_dir, keystore):
    big = pa.table({"b": pa.array([b"s", b"L" * 300_000, b"s", b"L" * 200_000], pa.binary())})
    result, _, back = round_trip(big, store_dir, keystore, shard_size=100_000, segment_size=4096)
    assert back.equals(big)
    assert [s.records for s in result.manifest.shards] == [2, 2]


def test_mirrored_stores_carry_every_locator(table, tmp_path, keystore):
    stores = [tmp_path / "a", tmp_path / "b"]
    result = publish(table, store=stores, name="m", keystore=keystore, shard_size=1 << 16)
    assert all(len(s.locators) == 2 for s in result.manifest.shards)
    assert len(result.manifest_uris) == 2
    for uri in result.manifest_uris:
        assert open_dataset(uri, keystore=keystore).to_arrow().equals(table)


def test_explicit_key_without_keystore(table, store_dir):
    key = bytes(range(32))
    result = publish(table, store=store_dir, name="k", key=key, keystore=False)
    assert result.key == key
    assert open_dataset(result.manifest_uri, key=key.hex()).to_arrow().equals(table)
    assert repr(result).count(key.hex()) == 0 and "key=" not in repr(result)


def test_fresh_publish_of_same_data_gets_a_new_key(table, store_dir, keystore):
    first = publish(table, store=store_dir, name="same", keystore=keystore)
    second = publish(table, store=store_dir, name="same", keystore=keystore)
    assert first.key != second.key and first.manifest_hash != second.manifest_hash


def test_same_rows_key_and_seal_id_give_the_same_manifest_however_batched(table, tmp_path, keystore):
    """A reproducible publish: the same rows, key, seal id and settings give the same manifest byte for byte,
    whether the rows come as one batch or as many (a cluster's blocks)."""
    key, seal_id = bytes(range(32)), bytes(range(32, 64))
    one = publish(table.combine_chunks(), store=tmp_path / "a", name="r", key=key, seal_id=seal_id,
                  shard_size=50_000, keystore=keystore, resume=False)
    many = publish(pa.Table.from_batches(table.to_batches(max_chunksize=37)), store=tmp_path / "a", name="r",
                   key=key, seal_id=seal_id, shard_size=50_000, keystore=keystore, resume=False)
    assert len(one.manifest.shards) > 2
    assert many.manifest.to_bytes() == one.manifest.to_bytes() and many.manifest_hash == one.manifest_hash
    other_seal = publish(table, store=tmp_path / "c", name="r", key=key, keystore=keystore, resume=False,
                         shard_size=50_000)
    assert other_seal.content_root != one.content_root  # without a seal id, a fresh one: another sealing


@pytest.mark.parametrize("kw", [{"seal_id": b"short", "key": bytes(32)}, {"seal_id": bytes(32)}])
def test_bad_seal_id(table, store_dir, keystore, kw):
    with pytest.raises(PublishError, match="seal_id"):
        publish(table, store=store_dir, name="bad", keystore=keystore, **kw)


@pytest.mark.parametrize("kw", [{"compression": "gzip"}, {"shard_size": 0}, {"segment_size": 10}, {"store": []}])
def test_bad_parameters(table, store_dir, keystore, kw):
    args = {"store": store_dir, **kw}
    with pytest.raises(PublishError):
        publish(table, name="bad", keystore=keystore, **args)


def test_unsupported_source(store_dir, keystore):
    with pytest.raises(SourceError, match="unsupported source"):
        publish(42, store=store_dir, name="x", keystore=keystore)
    with pytest.raises(SourceError, match="neither a folder nor a Parquet"):
        publish(str(store_dir / "missing.csv"), store=store_dir, name="x", keystore=keystore)


def test_default_keystore_comes_from_environment(table, store_dir, isolated_home):
    result = publish(sample_table(10), store=store_dir, name="env")
    assert Keystore().get(DATA_KEY, result.manifest_hash) == result.key
    assert (isolated_home / "keystore" / "keystore.json").exists()
    assert open_dataset(result.manifest_uri).to_arrow().num_rows == 10


@pytest.mark.parametrize("kw", [{"metadata": {"n": 1}}, {"previous_manifest": "not-a-hash"}, {"key": b"short"},
                                {"license": None}])
def test_parameters_that_would_make_an_unreadable_manifest_are_refused(table, store_dir, keystore, kw):
    with pytest.raises(PublishError):
        publish(table, store=store_dir, name="bad", keystore=keystore, **kw)
    assert not list(store_dir.glob("objects/sha256/*/*")), "nothing is stored before the parameters are checked"
