"""Crash and resume: a publish killed with SIGKILL at several points continues from its journal,
re-sealing no finished shard, and yields a complete, verifiable dataset."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest
from publish_child import source_table

from deai_data import Keystore, LocalStore, StorageError, open_dataset, publish

CHILD = Path(__file__).parent / "publish_child.py"
TOTAL_SHARDS = 11  # 6000 rows x 112 bytes at a 60 kB target, cut where their content says (docs/versions.md)


def run_child(tmp_path: Path, mode: str, n: int = 0) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(CHILD), str(tmp_path / "store"), str(tmp_path / "journals"), str(tmp_path / "ks"),
         mode, str(n)], capture_output=True, text=True, timeout=120)


def journal_shards(tmp_path: Path) -> dict[int, str]:
    files = list((tmp_path / "journals").glob("*.jsonl"))
    assert len(files) == 1, files
    done = {}
    for line in files[0].read_bytes().splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if doc.get("type") == "shard":
            assert doc["index"] not in done, "a shard was journaled twice"
            done[doc["index"]] = doc["sha256"]
    return done


@pytest.mark.slow
@pytest.mark.parametrize(("mode", "n"), [
    ("after-shards", 1), ("after-shards", 5), ("in-put", 1), ("in-put", 4), ("in-put", TOTAL_SHARDS + 1),
])
def test_killed_publish_resumes_without_resealing(tmp_path, mode, n):
    killed = run_child(tmp_path, mode, n)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    finished = journal_shards(tmp_path)
    assert len(finished) < TOTAL_SHARDS or mode == "in-put"
    left = list((tmp_path / "store" / "tmp").glob(".*.tmp"))

    resumed = run_child(tmp_path, "none")
    assert resumed.returncode == 0, resumed.stderr
    result = json.loads(resumed.stdout)
    assert len(result["shards"]) == TOTAL_SHARDS
    assert result["reused"] == len(finished)
    assert result["sealed"] == TOTAL_SHARDS - len(finished)
    for index, sha in finished.items():
        assert result["shards"][index] == sha  # the journaled shard is the one in the manifest

    keystore = Keystore(tmp_path / "ks")
    dataset = open_dataset(result["manifest_uri"], keystore=keystore)
    assert dataset.verify().ok
    assert dataset.to_arrow().equals(source_table())
    assert not list((tmp_path / "journals").glob("*.jsonl")), "the journal is removed once the publish is done"
    assert [e.kind for e in keystore.entries()] == ["data-key"]
    assert mode != "in-put" or left, "the kill mid-put leaves a staged file"
    assert not list((tmp_path / "store" / "tmp").glob(".*.tmp")), "the resumed publish swept the dead writer's files"


@pytest.mark.slow
def test_two_crashes_in_a_row(tmp_path):
    assert run_child(tmp_path, "after-shards", 2).returncode == -signal.SIGKILL
    first = journal_shards(tmp_path)
    assert run_child(tmp_path, "after-shards", 7).returncode == -signal.SIGKILL
    second = journal_shards(tmp_path)
    assert {i: second[i] for i in first} == first
    result = json.loads(run_child(tmp_path, "none").stdout)
    assert result["reused"] == len(second)
    assert open_dataset(result["manifest_uri"], keystore=Keystore(tmp_path / "ks")).verify().ok


class FailingStore(LocalStore):
    """A real LocalStore whose disk 'fills up' after `budget` writes."""

    def __init__(self, root, budget):
        super().__init__(root)
        self.budget = budget

    def put(self, data, *, sha256=None, labels=None):
        if self.budget <= 0:
            raise StorageError("no space left on device (injected)")
        self.budget -= 1
        return super().put(data, sha256=sha256, labels=labels)


def test_failing_store_then_resume(tmp_path, keystore):
    table = source_table()
    journals = tmp_path / "journals"
    with pytest.raises(StorageError, match="injected"):
        publish(table, store=FailingStore(tmp_path / "s", 3), name="r", shard_size=60_000, keystore=keystore,
                journal_dir=journals, workers=1)
    result = publish(table, store=LocalStore(tmp_path / "s"), name="r", shard_size=60_000, keystore=keystore,
                     journal_dir=journals, workers=1)
    assert (result.reused_shards, result.sealed_shards) == (3, TOTAL_SHARDS - 3)
    assert open_dataset(result.manifest_uri, keystore=keystore).to_arrow().equals(table)


def test_changed_source_reseals_only_changed_shards(tmp_path, keystore):
    table = source_table()
    journals = tmp_path / "journals"
    store = FailingStore(tmp_path / "s", 6)
    with pytest.raises(StorageError):
        publish(table, store=store, name="r", shard_size=60_000, keystore=keystore, journal_dir=journals, workers=1)
    blobs = table.column("blob").to_pylist()[:600] + [b"new"] * 5400
    changed = table.set_column(1, "blob", pa.array(blobs, pa.binary()))
    result = publish(changed, store=LocalStore(tmp_path / "s"), name="r", shard_size=60_000, keystore=keystore,
                     journal_dir=journals, workers=1)
    assert result.reused_shards == 1  # only the first shard (rows 0..~530) is unchanged
    assert open_dataset(result.manifest_uri, keystore=keystore).to_arrow().equals(changed)


def test_resume_with_a_different_key_is_refused(tmp_path, keystore):
    journals = tmp_path / "journals"
    with pytest.raises(StorageError):
        publish(source_table(), store=FailingStore(tmp_path / "s", 2), name="r", shard_size=60_000,
                key=bytes(32), keystore=False, journal_dir=journals, workers=1)
    from deai_data import PublishError

    with pytest.raises(PublishError, match="not the key of the interrupted publish"):
        publish(source_table(), store=LocalStore(tmp_path / "s"), name="r", shard_size=60_000,
                key=bytes([1]) * 32, keystore=False, journal_dir=journals)
    result = publish(source_table(), store=LocalStore(tmp_path / "s"), name="r", shard_size=60_000,
                     key=bytes(32), keystore=False, journal_dir=journals)
    assert result.reused_shards == 2
