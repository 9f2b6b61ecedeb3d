"""Publishing and reading on a local Ray cluster (two CPUs, started by the `ray_cluster` fixture): the same
manifest as a single-process publish, a driver killed mid-publish then restarted, a worker killed mid-task,
and reading back as a ray.data.Dataset (verified: a flipped byte fails the read)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest
import ray_publish_child as child
import ray_stores

import deai_data
from deai_data import IntegrityError, PublishError, SourceError, publish
from deai_data.storage.local import content_path

ray = pytest.importorskip("ray")  # the `ray` extra; installed by the dev lock, so CI always runs these
from deai_data import ray as deai_ray  # noqa: E402


@pytest.fixture
def single(tmp_path):
    """The single-process publish of the child's rows with the same key, seal id and settings."""
    store = tmp_path / "store"
    result = publish(child.source_table(), **child.settings(str(store), str(tmp_path / "single-journals")))
    assert len(result.manifest.shards) > 10
    return store, result


def stored_objects(store: Path) -> set[str]:
    return {p.name for p in store.rglob("*") if p.is_file()}


def test_ray_publish_is_byte_identical_to_a_single_process_publish(ray_cluster, single, tmp_path):
    store, expected = single
    blocks = ray.data.from_arrow(child.source_table()).repartition(5)  # block boundaries unlike the batches'
    seen = []
    result = deai_ray.publish(blocks, progress=seen.append, **child.settings(str(store), str(tmp_path / "j")))
    assert result.manifest.to_bytes() == expected.manifest.to_bytes()
    assert result.content_root == expected.content_root and result.manifest_hash == expected.manifest_hash
    assert [p.shards for p in seen] == list(range(1, len(expected.manifest.shards) + 1))
    assert seen[-1].plaintext_bytes == sum(e.plaintext_size for e in expected.manifest.shards)


def test_a_new_version_on_ray_inherits_the_shards_a_single_process_would(ray_cluster, single, tmp_path):
    store, first = single
    rows = child.source_table()
    grown = pa.concat_tables([rows, rows.slice(0, 30).set_column(0, "i", pa.array(range(3000, 3030)))])
    previous = deai_data.open_dataset(first.manifest_uri, key=child.KEY)
    newer = {**child.settings(str(store), str(tmp_path / "single-j2")), "key": bytes(range(32)), "previous": previous}
    expected = publish(grown, **newer)
    assert expected.inherited_shards >= len(first.manifest.shards) - 1 and expected.manifest.version == 3
    result = deai_ray.publish(ray.data.from_arrow(grown).repartition(4),
                              **{**newer, "journal_dir": str(tmp_path / "ray-j2")})
    assert result.manifest.to_bytes() == expected.manifest.to_bytes()  # the same shards inherited, the same lineage
    assert result.inherited_shards == expected.inherited_shards
    assert deai_data.open_dataset(result.manifest_uri, key=bytes(range(32))).to_arrow().equals(grown)


def test_a_driver_killed_mid_publish_resumes_to_the_same_manifest(ray_cluster, single, tmp_path):
    _, expected = single
    journals = tmp_path / "journals"
    fresh_store = tmp_path / "fresh"
    proc = subprocess.Popen([sys.executable, str(Path(child.__file__)), ray_cluster, str(fresh_store),
                             str(journals)], stdout=subprocess.PIPE, text=True)
    try:
        for line in proc.stdout:
            if line.strip() == "shard 3":
                break
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    stored_before = stored_objects(fresh_store)
    assert 3 <= len(stored_before) < len(expected.manifest.shards)

    result = deai_ray.publish(ray.data.from_arrow(child.source_table()).repartition(3),
                              **child.settings(str(fresh_store), str(journals)))
    assert result.reused_shards >= 3
    assert result.sealed_shards + result.reused_shards == len(expected.manifest.shards)
    assert result.content_root == expected.content_root
    assert [e.sha256 for e in result.manifest.shards] == [e.sha256 for e in expected.manifest.shards]
    assert not list(journals.iterdir())  # the finished publish removed its journal


def test_a_worker_killed_mid_task_is_retried_without_a_missing_or_extra_shard(ray_cluster, single, tmp_path):
    _, expected = single
    ray.cloudpickle.register_pickle_by_value(ray_stores)
    target = tmp_path / "retried"
    marker = tmp_path / "died"
    dying = ray_stores.DiesOnceStore(target, marker, index=2)
    settings = {**child.settings(str(target), str(tmp_path / "j")), "store": dying}
    result = deai_ray.publish(ray.data.from_arrow(child.source_table()), **settings)
    assert marker.exists()  # a worker did die in the middle of storing shard 2
    assert [e.sha256 for e in result.manifest.shards] == [e.sha256 for e in expected.manifest.shards]
    assert stored_objects(target) == {e.sha256 for e in expected.manifest.shards} | {result.manifest_hash}


def test_read_back_as_a_ray_dataset_and_a_tampered_shard_fails(ray_cluster, single):
    store, expected = single
    ds = deai_ray.read(expected.manifest_uri, key=child.KEY)
    assert ds.count() == 3000
    table = pa.concat_tables(ray.get(ds.to_arrow_refs())).sort_by("i")
    assert table.equals(child.source_table())
    part = deai_ray.read(expected.manifest_uri, key=child.KEY, shards=[1, 4])
    assert part.count() == expected.manifest.shards[1].records + expected.manifest.shards[4].records

    victim = store / content_path(expected.manifest.shards[4].sha256)
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 1
    victim.write_bytes(bytes(data))
    with pytest.raises(Exception) as failure:
        deai_ray.read(expected.manifest_uri, key=child.KEY).materialize()
    assert isinstance(failure.value, IntegrityError) or "IntegrityError" in str(failure.value)


def test_wrong_key_and_wrong_input_fail_on_the_driver(ray_cluster, single):
    from deai_data import DecryptionError
    _, expected = single
    with pytest.raises(DecryptionError):
        deai_ray.read(expected.manifest_uri, key=bytes(32))
    with pytest.raises(PublishError, match=r"ray\.data\.Dataset"):
        deai_ray.publish(child.source_table(), store="/tmp/unused", name="x", keystore=False)


def _image_folder(root: Path) -> Path:
    for label in ("cat", "dog"):
        (root / label).mkdir(parents=True)
        for i in range(40):
            (root / label / f"{i:03d}.bin").write_bytes(os.urandom(100 + 37 * i))
    return root


def test_a_folder_read_by_ray_tasks_publishes_as_the_folder_source(ray_cluster, tmp_path):
    from deai_data import folder
    root = _image_folder(tmp_path / "images")
    settings = {"store": str(tmp_path / "store"), "name": "images", "key": child.KEY, "seal_id": child.SEAL_ID,
                "shard_size": 20_000, "keystore": False, "resume": False}
    expected = publish(folder(root), **settings)
    result = deai_ray.publish(deai_ray.folder_dataset(root), **settings)
    assert len(result.manifest.shards) > 3 and result.manifest.to_bytes() == expected.manifest.to_bytes()


def test_cli_publish_with_the_ray_engine(ray_cluster, tmp_path):
    root = _image_folder(tmp_path / "images")
    out = subprocess.run([sys.executable, "-m", "deai_data", "publish", str(root), "--json", "--store",
                          str(tmp_path / "store"), "--engine", "ray", "--ray-address", ray_cluster,
                          "--shard-size", "20KiB"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    import json

    from deai_data import open_dataset
    doc = json.loads(out.stdout)
    rows = open_dataset(doc["manifest_uri"]).to_arrow()  # the key from the keystore the CLI wrote
    assert doc["shards"] > 3 and rows.num_rows == 80
    assert sorted(rows.column("path").to_pylist()) == sorted(
        p.relative_to(root).as_posix() for p in root.rglob("*.bin"))


def test_ray_publish_to_s3_matches_and_reads_back(ray_cluster, s3, tmp_path):
    """Shard tasks on the workers write to the loopback S3 server (the endpoint in the store URI): the same
    manifest as a single-process publish to the same bucket, read back through Ray tasks."""
    uri = f"s3://{s3.bucket('ray-shards')}/sealed?endpoint={s3.endpoint}"
    settings = {**child.settings(uri, str(tmp_path / "j")), "resume": False}
    expected = publish(child.source_table(), **settings)
    result = deai_ray.publish(ray.data.from_arrow(child.source_table()).repartition(4), **settings)
    assert result.manifest.to_bytes() == expected.manifest.to_bytes()
    assert all(loc.startswith("s3://ray-shards/sealed/") for e in result.manifest.shards for loc in e.locators)
    rows = deai_ray.read(result.manifest_uri, key=child.KEY).take_all()
    assert sorted(r["i"] for r in rows) == list(range(3000))


def test_an_empty_dataset_publishes_as_in_one_process(ray_cluster, tmp_path):
    empty = child.source_table().slice(0, 0)
    settings = {**child.settings(str(tmp_path / "store"), str(tmp_path / "j")), "resume": False}
    expected = publish(empty, **settings)
    result = deai_ray.publish(ray.data.from_arrow(empty), **settings)
    assert result.manifest.records == 0 and result.manifest.to_bytes() == expected.manifest.to_bytes()


def test_parquet_files_read_by_ray_tasks_publish_as_in_one_process(ray_cluster, tmp_path):
    """Parquet row groups read by Ray tasks in file order: the manifest of a single-process publish of the same
    files, row groups and shard boundaries falling differently."""
    import pyarrow.parquet as pq
    table = child.source_table()
    folder = tmp_path / "parquet"
    folder.mkdir()
    for i, start in enumerate(range(0, 3000, 1100)):
        pq.write_table(table.slice(start, 1100), folder / f"part-{i}.parquet", row_group_size=300)
    settings = {**child.settings(str(tmp_path / "store"), str(tmp_path / "j")), "resume": False}
    expected = publish(sorted(str(p) for p in folder.glob("*.parquet")), **settings)
    result = deai_ray.publish(folder, workers=2, **settings)
    assert len(result.manifest.shards) > 10 and result.manifest.to_bytes() == expected.manifest.to_bytes()
    pq.write_table(table.slice(0, 0), tmp_path / "empty.parquet")  # no rows: the file's schema, no shard
    empty = publish(str(tmp_path / "empty.parquet"), **settings)
    assert deai_ray.publish(tmp_path / "empty.parquet", **settings).manifest.to_bytes() == empty.manifest.to_bytes()
    with pytest.raises(SourceError, match="neither"):
        deai_ray.publish(tmp_path / "missing", **settings)
