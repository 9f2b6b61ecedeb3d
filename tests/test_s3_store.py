"""The `s3://` store against a real S3 API server (moto's standalone server on loopback, tests/s3_services.py):
content-addressed writes, multipart uploads, exact ranged reads, typed errors, publish and verified reads,
tampering caught, and an endpoint that a manifest cannot choose."""

from __future__ import annotations

import json
import os
import subprocess

import numpy as np
import pytest
from conftest import sample_table
from test_cli import CLI

from deai_data import IntegrityError, NotFoundError, UsageError, open_dataset, publish, store_for
from deai_data.storage import S3Store, StoreReader, open_store

MiB = 1 << 20


def test_put_get_ranges_stat_and_missing_objects(s3):
    bucket = s3.bucket("small-objects")
    store = open_store(f"s3://{bucket}/data?endpoint={s3.endpoint}")
    assert isinstance(store, S3Store) and store.uri == f"s3://{bucket}/data?endpoint={s3.endpoint}"
    data = bytes(range(256)) * 40
    locator = store.put(memoryview(data), labels={"Object-Type": "shard", "Shard-Index": "3"})
    assert locator.startswith(f"s3://{bucket}/data/objects/sha256/")
    assert store.get(locator) == data
    assert store.get(locator, 100, 356) == data[100:356]
    assert store.get(locator, len(data) - 10) == data[-10:]
    assert store.get(locator, 5, 5) == b"" and store.get(locator, len(data) + 5, len(data) + 10) == b""
    assert store.get(locator, 0, len(data) + 1000) == data  # a short object comes back short: callers check
    assert store.stat(locator).size == len(data) and store.exists(locator)
    head = s3.client().head_object(Bucket=bucket, Key=locator.split("/", 3)[3])
    assert head["Metadata"] == {"object-type": "shard", "shard-index": "3"}
    modified = head["LastModified"]
    assert store.put(data) == locator  # content-addressed: already there, not sent again
    assert s3.client().head_object(Bucket=bucket, Key=locator.split("/", 3)[3])["LastModified"] == modified

    missing = f"s3://{bucket}/data/objects/sha256/00/{'0' * 64}"
    assert not store.exists(missing)
    with pytest.raises(NotFoundError):
        store.get(missing)
    with pytest.raises(NotFoundError):
        store.stat(missing)
    assert isinstance(store_for(locator), StoreReader) and store_for(locator).get(locator, 0, 4) == data[:4]


def test_large_objects_go_up_in_parts_and_read_back_exactly(s3, tmp_path):
    bucket = s3.bucket("large-objects")
    store = S3Store(bucket, "big", endpoint=s3.endpoint, part_size=5 * MiB, threads=3)
    data = np.random.default_rng(7).integers(0, 256, 12 * MiB + 123, dtype=np.uint8).tobytes()
    locator = store.put(data)
    key = locator.split("/", 3)[3]
    assert s3.client().head_object(Bucket=bucket, Key=key)["ETag"].strip('"').endswith("-3")  # three parts
    assert store.get(locator) == data
    assert store.get(locator, 5 * MiB - 7, 10 * MiB + 9) == data[5 * MiB - 7:10 * MiB + 9]
    path = tmp_path / "file.bin"
    path.write_bytes(data[:11 * MiB])
    from_file = store.put_file(path)
    assert store.get(from_file) == data[:11 * MiB] and store.stat(from_file).size == 11 * MiB


def test_publish_to_s3_read_verified_and_tampering_is_caught(s3, keystore):
    bucket = s3.bucket("datasets")
    table = sample_table(3000)
    result = publish(table, store=f"s3://{bucket}/team-a?endpoint={s3.endpoint}", name="on-s3",
                     keystore=keystore, shard_size=32 << 10)
    assert result.manifest_uri.startswith(f"s3://{bucket}/team-a/objects/sha256/")
    assert all(loc.startswith("s3://") for s in result.manifest.shards for loc in s.locators)
    dataset = open_dataset(result.manifest_uri, keystore=keystore)
    assert dataset.to_arrow().equals(table) and dataset.verify().ok

    # An operator of the bucket alters one shard (same size): the reader refuses it, naming the shard.
    shard = result.manifest.shards[1]
    key = shard.locators[0].split("/", 3)[3]
    sealed = bytearray(s3.client().get_object(Bucket=bucket, Key=key)["Body"].read())
    sealed[len(sealed) // 2] ^= 1
    s3.client().put_object(Bucket=bucket, Key=key, Body=bytes(sealed))
    with pytest.raises(IntegrityError) as info:
        open_dataset(result.manifest_uri, keystore=keystore).read_shard(1)
    assert info.value.shard == 1


def test_a_manifest_cannot_choose_the_endpoint(s3):
    """A locator is a bucket and a key: a query naming another endpoint is ignored, the reader's own serves."""
    bucket = s3.bucket("endpoint-pinned")
    locator = S3Store(bucket, endpoint=s3.endpoint).put(b"payload")
    hostile = locator + "?endpoint=http://169.254.169.254/"
    assert store_for(hostile).get(hostile) == b"payload"


def test_settings_are_checked_and_a_reader_does_not_write(s3):
    with pytest.raises(UsageError):
        S3Store("bucket", part_size=1 * MiB)
    with pytest.raises(UsageError):
        store_for("s3://any/key").put(b"x")  # the shared reader has no bucket to write to


def test_cli_publishes_to_and_verifies_from_s3(s3, tmp_path):
    bucket = s3.bucket("cli-datasets")
    source = tmp_path / "photos"
    for i in range(12):
        (source / ("cat" if i % 2 else "dog")).mkdir(parents=True, exist_ok=True)
        (source / ("cat" if i % 2 else "dog") / f"{i}.raw").write_bytes(os.urandom(3000))
    env = dict(os.environ)
    published = subprocess.run([CLI, "publish", str(source), "--store", f"s3://{bucket}/photos", "--json",
                                "--shard-size", "16KiB"], capture_output=True, text=True, env=env, timeout=120)
    assert published.returncode == 0, published.stderr
    uri = json.loads(published.stdout)["manifest_uri"]
    verified = subprocess.run([CLI, "verify", uri, "--json"], capture_output=True, text=True, env=env, timeout=120)
    assert verified.returncode == 0, verified.stderr
    assert json.loads(verified.stdout)["records"] == 12
