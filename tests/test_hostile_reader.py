"""Hostile manifests and stores against the reader: a shard declared far larger than its object, locators that
point where the manifest's origin may not send the reader, and staged files that dead writers left behind.
Typed errors, bounded memory and time; nothing of a live writer is touched."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pyarrow as pa
from conftest import sample_table
from hostile import bounded
from httpfaults import StaticServer

from deai_data import IntegrityError, LimitError, StorageError, open_dataset, publish
from deai_data.formats import canonical
from deai_data.formats.manifest import Manifest
from deai_data.storage.cache import ShardCache
from deai_data.storage.local import LocalStore
from deai_data.storage.staging import FOREIGN_AGE, staged_name


def _rewrite(result, store_dir, change) -> str:
    """Store a modified copy of a published manifest in the same store; returns its URI."""
    doc = json.loads(result.manifest.to_bytes())
    change(doc)
    data = canonical.encode(doc)
    return LocalStore(store_dir).put(data)


def _declare(doc: dict, shard: int, plaintext: int) -> None:
    entry = doc["shards"][shard]
    seg = doc["encryption"]["segment_size"]
    old_plain, old_sealed = entry["plaintext_size"], entry["sealed_size"]
    entry["plaintext_size"] = plaintext
    entry["sealed_size"] = 64 + plaintext + 16 * max(1, -(-plaintext // seg))
    doc["plaintext_size"] += plaintext - old_plain
    doc["sealed_size"] += entry["sealed_size"] - old_sealed


def test_a_shard_declared_at_4_gib_is_refused_without_allocating_it(tmp_path, keystore):
    """The attack: a manifest declaring a 4 GiB shard for an 8.5 KB object (4.7 GiB of memory and 11 s before
    the integrity error, once). The real size is looked at first: nothing is allocated from the declaration."""
    store_dir = tmp_path / "store"
    result = publish(sample_table(300), store=store_dir, name="small", keystore=keystore, shard_size=8 << 10)
    uri = _rewrite(result, store_dir, lambda doc: _declare(doc, 0, 4_000_000_000))
    dataset = open_dataset(uri, key=result.key)
    error = bounded(lambda: dataset.read_shard(0), IntegrityError, mib=32, seconds=5)
    assert "the manifest says" in str(error) and "shard 0" in str(error)
    report = dataset.verify(strict=False)
    assert report.errors and all(isinstance(e, IntegrityError) for e in report.errors)
    with StaticServer(store_dir) as server:
        over_http = open_dataset(uri.replace(store_dir.absolute().as_uri(), server.url), key=result.key,
                                 mirrors=[server.url])
        bounded(lambda: over_http.read_shard(0), IntegrityError, mib=32, seconds=10)


def test_sizes_over_the_limits_are_refused_at_open(tmp_path, keystore):
    store_dir = tmp_path / "store"
    result = publish(sample_table(100), store=store_dir, name="small", keystore=keystore)
    uri = _rewrite(result, store_dir, lambda doc: _declare(doc, 0, 2**62))
    error = bounded(lambda: open_dataset(uri, key=result.key), LimitError, mib=16)
    assert error.limit == "shard_bytes"


def test_a_manifest_from_a_server_cannot_point_the_reader_at_local_files(tmp_path, keystore, monkeypatch):
    """A manifest fetched over HTTP names `file:///dev/zero` (and the real shard's path) as locators: its
    origin is a network host, so local files are refused and the caller's own mirror serves the shard."""
    monkeypatch.delenv("DEAI_FETCH_ALLOW", raising=False)
    store_dir = tmp_path / "store"
    result = publish(sample_table(200), store=store_dir, name="x", keystore=keystore)

    def poison(doc: dict) -> None:
        for shard in doc["shards"]:
            shard["locators"] = ["file:///dev/zero", *shard["locators"]]

    uri = _rewrite(result, store_dir, poison)
    with StaticServer(store_dir) as server:
        remote = uri.replace(store_dir.absolute().as_uri(), server.url)
        dataset = open_dataset(remote, key=result.key)
        error = bounded(lambda: dataset.read_shard(0), StorageError, mib=32)
        assert "refused to fetch local files" in str(error)
        mirrored = open_dataset(remote, key=result.key, mirrors=[server.url])
        assert mirrored.to_arrow().equals(sample_table(200))
    local = open_dataset(uri, key=result.key)  # the same manifest read from a local file may use local files
    assert local.to_arrow().equals(sample_table(200))


def test_stale_staged_files_are_swept_but_never_a_live_writers(tmp_path):
    store = LocalStore(tmp_path / "store")
    store.put(b"first")
    tmp = tmp_path / "store" / "tmp"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    abandoned = tmp / staged_name("put", pid=dead.pid)
    live = tmp / staged_name("put")
    foreign_old = tmp / staged_name("put", pid=1, host="other-host")
    foreign_new = tmp / staged_name("put", pid=2, host="other-host")
    for path in (abandoned, live, foreign_old, foreign_new):
        path.write_bytes(b"half an object")
    old = time.time() - FOREIGN_AGE - 60
    os.utime(foreign_old, (old, old))
    LocalStore(tmp_path / "store").put(b"second")  # a new writer sweeps first
    assert not abandoned.exists() and not foreign_old.exists()
    assert live.exists() and foreign_new.exists()

    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    left = cache_dir / staged_name("a" * 64, pid=dead.pid)
    left.write_bytes(b"x")
    cache = ShardCache(cache_dir)
    assert not left.exists()
    cache.put("b" * 64, b"data")
    assert cache.get("b" * 64, size=4) == b"data" and cache.get("b" * 64, size=5) is None


def test_v1_manifests_still_open(tmp_path, keystore):
    """A dataset published by the first release (manifest version 1, unsigned) still opens and verifies."""
    store_dir = tmp_path / "store"
    result = publish(sample_table(50), store=store_dir, name="old", keystore=keystore)
    doc = json.loads(result.manifest.to_bytes())
    v1 = {k: v for k, v in doc.items() if k not in ("seal_id", "previous_manifest", "authorship")}
    v1.update(version=1, dataset_id=doc["seal_id"], previous=None)
    for shard in v1["shards"]:
        del shard["blake3"]
    uri = LocalStore(store_dir).put(canonical.encode(v1))
    dataset = open_dataset(uri, key=result.key)
    assert dataset.manifest.version == 1 and dataset.manifest.authorship is None
    assert dataset.verify().ok and dataset.to_arrow().equals(sample_table(50))
    assert Manifest.from_bytes(canonical.encode(v1)).to_bytes() == canonical.encode(v1)
    assert pa.table({"x": [1]}).num_rows == 1
