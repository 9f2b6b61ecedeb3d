"""A dataset in the tools people already use: publish from Hugging Face `datasets` (features kept), open as a
`datasets.Dataset`, `DatasetDict` or `IterableDataset`, Polars, DuckDB SQL over the records, notebook HTML.
Real libraries; the plaintext never reaches the disk (checked: nothing new in the temp or HF cache folders)."""

from __future__ import annotations

import os

import datasets
import pyarrow as pa
import pytest

from deai_data import UsageError, open_dataset, publish


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    """Hugging Face's caches in an empty folder of this test (to see that nothing is written there)."""
    folder = tmp_path / "hf-cache"
    folder.mkdir()
    monkeypatch.setenv("HF_HOME", str(folder))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(folder / "datasets"))
    return folder


def reviews() -> datasets.DatasetDict:
    features = datasets.Features({"text": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["neg", "pos"])})
    train = datasets.Dataset.from_dict({"text": ["good", "bad", "fine", "awful"], "label": [1, 0, 1, 0]},
                                       features=features)
    test = datasets.Dataset.from_dict({"text": ["great", "poor"], "label": [1, 0]}, features=features)
    return datasets.DatasetDict({"train": train, "test": test.shuffle(seed=1)})  # an index mapping too


def test_hugging_face_round_trip_keeps_features_and_splits(tmp_path, keystore, hf_cache):
    source = reviews()
    result = publish(source, store=tmp_path / "store", name="reviews", keystore=keystore)
    dataset = open_dataset(result.manifest_uri, keystore=keystore)
    assert dataset.num_shards == 1 and len(dataset) == 6
    back = dataset.to_hf(split_column="split")
    assert list(back) == ["train", "test"]
    for name in back:
        assert back[name].features == source[name].features
        assert back[name].to_list() == source[name].to_list()
    whole = dataset.to_hf()
    assert whole.features["label"].names == ["neg", "pos"] and whole.num_rows == 6
    assert [row["text"] for row in dataset.to_hf_iterable()] == [*source["train"]["text"], *source["test"]["text"]]
    one = publish(source["train"], store=tmp_path / "store", name="train", keystore=keystore)
    assert open_dataset(one.manifest_uri, keystore=keystore).to_hf().to_list() == source["train"].to_list()
    assert not any(files for _, _, files in os.walk(hf_cache))
    with pytest.raises(UsageError, match="no column"):
        dataset.to_hf(split_column="fold")


def test_sql_and_polars_over_a_purchased_dataset(tmp_path, keystore):
    table = pa.table({"label": ["cat", "dog", "cat", "cat"], "size": [3, 5, 7, 9]})
    result = publish(pa.Table.from_batches(table.to_batches(max_chunksize=1)), store=tmp_path, name="pets",
                     keystore=keystore, shard_size=16)
    dataset = open_dataset(result.manifest_uri, keystore=keystore)
    assert dataset.num_shards > 1  # the query streams over several shards
    answer = dataset.sql("SELECT label, count(*) AS n, sum(size) AS total FROM records GROUP BY ALL ORDER BY 1")
    assert answer.to_pylist() == [{"label": "cat", "n": 3, "total": 19}, {"label": "dog", "n": 1, "total": 5}]
    with pytest.raises(UsageError, match="query failed"):
        dataset.sql("SELECT nope FROM records")
    frame = dataset.to_polars()
    assert frame.shape == (4, 2) and frame["size"].sum() == 24


def test_notebook_html_escapes_what_the_owner_wrote(tmp_path, keystore):
    table = pa.table({"x": [1]})
    result = publish(table, store=tmp_path, name="<script>alert(1)</script>", description="a & b", keystore=keystore)
    dataset = open_dataset(result.manifest_uri, keystore=keystore)
    page = dataset._repr_html_()
    assert "<script>" not in page and "&lt;script&gt;" in page and "a &amp; b" in page
    assert result.manifest_hash in page and result.manifest._repr_html_().startswith("<div><strong>Manifest")
