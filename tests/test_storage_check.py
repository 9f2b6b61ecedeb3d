"""Is a dataset still stored? `check_storage` against local stores and the real services (the loopback S3 server,
arlocal, the js-ipfs node, the PDP double): states per backend, lost, truncated and altered copies, a hostile
manifest's local paths refused, a server that never answers cut off by the deadline."""

from __future__ import annotations

import json
import random
import socket
from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pytest
from pdp_double import PdpDouble

from deai_data import Keystore, StorageReport, check_storage, open_dataset, publish
from deai_data.storage import registry
from deai_data.storage.arweave.store import WALLET_KIND
from deai_data.storage.fetch_policy import OPEN, FetchPolicy
from deai_data.storage.local import path_from_locator
from deai_data.storage.probe import probe_object


def rows(n: int = 400, seed: int = 2) -> pa.Table:
    rng = random.Random(seed)
    return pa.table({"i": list(range(n)), "blob": [rng.randbytes(1000) for _ in range(n)]})


def states(report: StorageReport) -> list[tuple[int, str, str]]:
    return [(s.shard, s.observation.backend, s.observation.state) for s in report.observations]


@pytest.fixture
def registry_restored(monkeypatch):
    """`read_through` below points schemes at this test's services; the registry is put back afterwards."""
    monkeypatch.setattr(registry, "_factories", dict(registry._factories))
    monkeypatch.setattr(registry, "_readers", {})


def test_lost_truncated_and_altered_copies_in_two_stores(tmp_path):
    result = publish(rows(), store=[tmp_path / "a", tmp_path / "b"], name="two copies", shard_size=60_000)
    dataset = open_dataset(result.manifest_uri, manifest_hash=result.manifest_hash)
    shards = result.manifest.shards
    assert len(shards) >= 4 and all(len(s.locators) == 2 for s in shards)
    report = dataset.check_storage()
    assert report.ok and {s for _, _, s in states(report)} == {"available"}
    assert not any(s.observation.hashed for s in report.observations)
    sampled = check_storage(result.manifest, policy=OPEN, hash_shards=2, seed=7)
    assert sum(s.observation.hashed for s in sampled.observations) == 4     # 2 shards x 2 copies, read whole

    path_from_locator(shards[0].locators[0]).unlink()               # one copy of shard 0 lost: still fetchable
    for locator in shards[1].locators:                               # both copies of shard 1 lost
        path_from_locator(locator).unlink()
    with open(path_from_locator(shards[2].locators[0]), "r+b") as fh:  # a copy of shard 2 truncated
        fh.truncate(10)
    altered = path_from_locator(shards[3].locators[1])              # a copy of shard 3 altered, same size
    data = bytearray(altered.read_bytes())
    data[len(data) // 2] ^= 1
    altered.chmod(0o644)
    altered.write_bytes(bytes(data))

    cheap = dataset.check_storage()
    assert cheap.unfetchable_shards == [1] and cheap.corrupt_shards == [2]   # a stat cannot see a flipped bit
    full = dataset.check_storage(hash_shards=len(shards))
    assert full.unfetchable_shards == [1] and full.corrupt_shards == [2, 3] and not full.ok
    found = {(shard, locator_index): s.observation.state for s in full.observations
             for shard, locator_index in [(s.shard, shards[s.shard].locators.index(s.observation.locator))]}
    assert found[(0, 0)] == "missing" and found[(0, 1)] == "available"
    assert found[(2, 0)] == "wrong_size" and found[(3, 1)] == "corrupt" and found[(3, 0)] == "available"
    assert full.by_backend()["file"]["missing"] == 3


def test_a_hostile_manifest_cannot_make_the_check_read_local_files(tmp_path):
    result = publish(rows(50), store=tmp_path / "a", name="local")
    report = check_storage(result.manifest, policy=FetchPolicy())       # an untrusted manifest: public only
    assert {s for _, _, s in states(report)} == {"refused"}


def test_a_server_that_never_answers_is_cut_off_by_the_deadline(tmp_path):
    result = publish(rows(50), store=tmp_path / "a", name="silent")
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)                       # connections are accepted by the kernel and never answered
    port = silent.getsockname()[1]
    try:
        shards = tuple(replace(s, locators=(f"http://127.0.0.1:{port}/{s.sha256}",)) for s in result.manifest.shards)
        manifest = replace(result.manifest, shards=shards)
        report = check_storage(manifest, policy=OPEN, deadline=1.0)
        assert {s for _, _, s in states(report)} == {"unreachable"}
        assert all("timed out after 1 s" in s.observation.detail for s in report.observations)
    finally:
        silent.close()                      # the checks still waiting fail at once and their threads end


def test_each_network_backend_answers_in_its_own_way(tmp_path, s3, arlocal, funded_wallet, ipfs_node,
                                                    registry_restored):
    provider = PdpDouble()
    try:
        Keystore().put(WALLET_KIND, "owner", json.dumps(funded_wallet.to_jwk()).encode(),
                       {"address": funded_wallet.address})
        bucket = s3.bucket("probe-bucket")
        targets = [f"s3://{bucket}/sets?endpoint={s3.endpoint}",
                   f"ar://?gateway={arlocal.url}&wallet=keystore:owner",
                   f"ipfs://?api={ipfs_node.api}", f"piece://?provider={provider.url}"]
        result = publish(rows(200), store=targets, name="everywhere", shard_size=100_000)
        for target in targets:
            registry.read_through(target)
        shards = result.manifest.shards
        first = check_storage(result.manifest, policy=OPEN, hash_shards=1, seed=1)
        by = first.by_backend()
        assert by["ar"] == {"pending": len(shards)} and first.ok           # not yet mined: fetchable, not final
        assert by["s3"] == by["ipfs"] == by["piece"] == {"available": len(shards)}
        arlocal.mine(2)
        second = check_storage(result.manifest, policy=OPEN)
        ar = [s.observation for s in second.observations if s.observation.backend == "ar"]
        assert {o.state for o in ar} == {"available"} and {o.confirmations for o in ar} == {2}

        s3_locator = next(loc for loc in shards[0].locators if loc.startswith("s3://"))
        s3.client().delete_object(Bucket=bucket, Key=s3_locator.split("/", 3)[3])   # gone from the bucket
        piece = next(loc for loc in shards[0].locators if loc.startswith("piece://"))
        provider.pieces.pop(piece.removeprefix("piece://").split("?")[0])   # the provider dropped the piece
        third = check_storage(result.manifest, policy=OPEN)
        lost = {(s.shard, s.observation.backend): s.observation.state for s in third.observations}
        assert lost[(0, "s3")] == "missing" and lost[(0, "piece")] == "missing"
        assert lost[(0, "ar")] == lost[(0, "ipfs")] == "available" and third.ok    # two copies left
    finally:
        provider.close()


def test_probe_never_raises_for_a_strange_locator(tmp_path):
    for locator in ("nope://x", "ar://not-an-id", "http://[::1", "s3://"):
        seen = probe_object(locator, 10)
        assert seen.state in ("unreachable", "missing", "refused") and not seen.fetchable
    assert Path(tmp_path).is_dir()
