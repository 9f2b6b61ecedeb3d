"""StreamingDataset in a real PyTorch DataLoader: order, exact resume, verification, cache, HTTP."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pyarrow as pa
import pytest

torch = pytest.importorskip("torch") if os.environ.get("CI") != "true" else __import__("torch")

from httpfaults import Fault, FaultProxy, StaticServer  # noqa: E402

from deai_data import HttpStore, IntegrityError, publish, register_store  # noqa: E402
from deai_data.storage import ShardCache, content_path, path_from_locator  # noqa: E402
from deai_data.torch import Blobs, StreamingDataLoader, StreamingDataset  # noqa: E402

ROWS = 3000


@pytest.fixture
def published(store_dir, keystore):
    rng = np.random.default_rng(5)
    table = pa.table({
        "id": np.arange(ROWS, dtype=np.int64),
        "x": rng.random(ROWS).astype(np.float32),
        "image": pa.FixedShapeTensorArray.from_numpy_ndarray(rng.integers(0, 255, (ROWS, 4, 4), dtype=np.uint8)),
        "blob": [bytes([i % 251]) * (i % 50) for i in range(ROWS)],
    })
    result = publish(table, store=store_dir, name="train", keystore=keystore, shard_size=8_000, segment_size=4096)
    assert len(result.manifest.shards) >= 10
    return result, table


def ids(loader) -> list[int]:
    return [int(i) for batch in loader for i in batch["id"]]


def make(result, keystore, **kw):
    return StreamingDataset(result.manifest_uri, keystore=keystore, batch_size=kw.pop("batch_size", 16), **kw)


def test_every_sample_once_same_order_for_0_1_2_workers(published, keystore):
    result, _ = published
    orders = []
    for workers in (0, 1, 2):
        loader = StreamingDataLoader(make(result, keystore, seed=7), num_workers=workers)
        orders.append(ids(loader))
    assert orders[0] == orders[1] == orders[2]
    assert sorted(orders[0]) == list(range(ROWS))
    assert orders[0] != list(range(ROWS))


def test_samples_are_the_published_records(published, keystore):
    result, table = published
    loader = StreamingDataLoader(make(result, keystore, batch_size=32), num_workers=0)
    images = table.column("image").combine_chunks().to_numpy_ndarray()
    xs = table.column("x").to_numpy()
    blobs = table.column("blob").to_pylist()
    for batch in loader:
        idx = batch["id"].numpy()
        assert np.array_equal(batch["image"].numpy(), images[idx])
        assert np.array_equal(batch["x"].numpy(), xs[idx])
        assert list(batch["blob"]) == [blobs[i] for i in idx]


@pytest.mark.parametrize(("k", "workers_before", "workers_after"), [(0, 0, 2), (1, 0, 0), (7, 2, 0), (50, 1, 2),
                                                                    (93, 2, 1), (187, 0, 0)])
def test_exact_resume_after_k_batches_with_other_worker_counts(published, keystore, k, workers_before, workers_after):
    result, _ = published
    full = ids(StreamingDataLoader(make(result, keystore, seed=3), num_workers=0))
    loader = StreamingDataLoader(make(result, keystore, seed=3), num_workers=workers_before)
    seen = []
    for _, batch in zip(range(k), loader, strict=False):  # the loop takes k batches, then the job dies
        seen.extend(int(i) for i in batch["id"])
    state = json.loads(json.dumps(loader.state_dict()))
    assert state["batches"] == k and len(json.dumps(state)) < 400

    restarted = StreamingDataLoader(make(result, keystore, seed=3), num_workers=workers_after)
    restarted.load_state_dict(state)
    rest = ids(restarted)
    assert seen + rest == full  # none lost, none repeated, same order


@pytest.mark.parametrize(("before", "after", "k"), [(2, 3, 5), (3, 1, 12), (4, 2, 0), (1, 4, 40)])
def test_resume_with_another_world_size(published, keystore, before, after, k):
    """A job of `before` ranks takes k batches on every rank, checkpoints (rank 0's state) and restarts
    with `after` ranks: together they see every sample exactly once; a second change works too."""
    result, _ = published
    seen = []
    state = None
    for rank in range(before):
        loader = StreamingDataLoader(make(result, keystore, seed=3, world_size=before, rank=rank), num_workers=0)
        for _, batch in zip(range(k), loader, strict=False):
            seen.extend(int(i) for i in batch["id"])
        state = state or json.loads(json.dumps(loader.state_dict()))
    for rank in range(after):
        loader = StreamingDataLoader(make(result, keystore, seed=3, world_size=after, rank=rank), num_workers=rank % 2)
        loader.load_state_dict(state)
        seen.extend(ids(loader))
    assert sorted(seen) == list(range(ROWS))

    resumed = StreamingDataLoader(make(result, keystore, seed=3, world_size=after, rank=0))
    resumed.load_state_dict(state)
    batches = iter(resumed)
    next(batches)
    again = json.loads(json.dumps(resumed.state_dict()))
    assert again["resumed"] == [[before, k]] and again["batches"] == 1 and again["world_size"] == after


def test_resume_refuses_a_different_order(published, keystore):
    result, _ = published
    state = StreamingDataLoader(make(result, keystore, seed=3)).state_dict()
    other = StreamingDataLoader(make(result, keystore, seed=4))
    with pytest.raises(ValueError, match="seed"):
        other.load_state_dict(state)


def test_epochs_advance_and_differ(published, keystore):
    result, _ = published
    loader = StreamingDataLoader(make(result, keystore, seed=3))
    first, second = ids(loader), ids(loader)
    assert sorted(first) == sorted(second) == list(range(ROWS)) and first != second
    assert loader.dataset.epoch == 2


def test_batched_mode_and_transforms(published, keystore):
    result, _ = published
    dataset = make(result, keystore, batch_size=100, batched=True, columns=["id", "x"],
                   batch_transform=lambda b: {**b, "x2": b["x"] * 2})
    batches = list(StreamingDataLoader(dataset, num_workers=2))
    assert len(batches) == 30 and set(batches[0]) == {"id", "x", "x2"}
    assert torch.allclose(batches[0]["x2"], batches[0]["x"] * 2)
    # without a batch_transform the batches arrive as the dataset made them; with one, torch's default
    # conversion applies to what it returns (a NumPy array becomes a tensor)
    plain = make(result, keystore, batch_size=100, batched=True, columns=["id", "x"])
    assert next(iter(StreamingDataLoader(plain))).keys() == {"id", "x"}
    as_numpy = make(result, keystore, batch_size=100, batched=True, columns=["id"],
                    batch_transform=lambda b: {"id": b["id"].numpy()})
    assert isinstance(next(iter(StreamingDataLoader(as_numpy)))["id"], torch.Tensor)
    samples = make(result, keystore, batch_size=4, transform=lambda s: int(s["id"]) * 10)
    assert sorted(StreamingDataLoader(samples, batch_size=4).dataset.__iter__())[:3] == [0, 10, 20]
    with pytest.raises(ValueError, match="batch_size must be"):
        StreamingDataLoader(make(result, keystore, batch_size=4), batch_size=8)


def _mark_worker(worker: int) -> None:
    torch.utils.data.get_worker_info().dataset.transform = lambda sample: {**sample, "worker": worker}


def _tag(samples: list) -> dict:
    return {"id": torch.tensor([int(s["id"]) for s in samples]), "size": len(samples),
            "workers": {s["worker"] for s in samples}}


@pytest.mark.parametrize("drop_last", [False, True])
def test_workers_send_bundles_and_keep_the_dataloader_contract(published, keystore, drop_last):
    """With workers, batches travel in bundles (16 of these small batches per message) and are collated in
    the worker, yet the loop sees what a DataLoader gives: the same batches in the same order as without
    workers, the loader's collate_fn and worker_init_fn applied, drop_last honoured, len() the batch count."""
    result, _ = published
    single = [b["id"].tolist() for b in StreamingDataLoader(make(result, keystore, batch_size=7, seed=2),
                                                            drop_last=drop_last)]
    loader = StreamingDataLoader(make(result, keystore, batch_size=7, seed=2), num_workers=2, drop_last=drop_last,
                                 collate_fn=_tag, worker_init_fn=_mark_worker)
    batches = list(loader)
    assert [b["id"].tolist() for b in batches] == single
    assert all(b["size"] == 7 for b in batches[:-1]) and len(batches) == len(loader)
    assert set().union(*(b["workers"] for b in batches)) == {0, 1}
    assert len(batches) == (ROWS // 7 if drop_last else -(-ROWS // 7))
    batched = StreamingDataLoader(make(result, keystore, batch_size=7, seed=2, batched=True), num_workers=2)
    assert [b["id"].tolist() for b in batched][:len(single)] == single


def test_ranks_split_the_epoch(published, keystore):
    result, _ = published
    parts = [ids(StreamingDataLoader(make(result, keystore, world_size=3, rank=r), num_workers=1)) for r in range(3)]
    assert sorted(parts[0] + parts[1] + parts[2]) == list(range(ROWS))
    assert len(parts[0]) == len(parts[1]) == len(parts[2]) == ROWS // 3


def test_tampered_shard_mid_epoch_surfaces_and_nothing_corrupt_gets_through(published, keystore):
    result, table = published
    victim = result.manifest.shards[5]
    path = path_from_locator(victim.locators[0])
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 1
    path.write_bytes(bytes(blob))
    xs = table.column("x").to_numpy()
    seen = 0
    with pytest.raises(IntegrityError) as info:
        for batch in StreamingDataLoader(make(result, keystore, shuffle=False, lanes=1), num_workers=0):
            idx = batch["id"].numpy()
            assert np.array_equal(batch["x"].numpy(), xs[idx])
            seen += len(idx)
    assert info.value.shard == 5
    assert 0 < seen < ROWS


def test_cache_smaller_than_a_shard_and_shared_by_two_processes(published, keystore, tmp_path):
    result, _ = published
    tiny = make(result, keystore, cache_dir=tmp_path / "c1", cache_limit=100)
    assert sorted(ids(StreamingDataLoader(tiny))) == list(range(ROWS))
    assert ShardCache(tmp_path / "c1").size() == 0

    limit = 3 * result.manifest.shards[0].sealed_size
    bounded = make(result, keystore, cache_dir=tmp_path / "c2", cache_limit=limit)
    assert sorted(ids(StreamingDataLoader(bounded))) == list(range(ROWS))
    assert 0 < ShardCache(tmp_path / "c2").size() <= limit

    script = textwrap.dedent(f"""
        import sys
        from deai_data import Keystore
        from deai_data.torch import StreamingDataLoader, StreamingDataset
        ks = Keystore({str(keystore.path)!r}, passphrase="test passphrase")
        ds = StreamingDataset({result.manifest_uri!r}, keystore=ks, batch_size=16,
                              cache_dir={str(tmp_path / 'shared')!r}, cache_limit={limit})
        got = sorted(int(i) for b in StreamingDataLoader(ds) for i in b["id"])
        sys.exit(0 if got == list(range({ROWS})) else 1)
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script]) for _ in range(2)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    assert ShardCache(tmp_path / "shared").size() <= limit


def test_streams_over_http_through_500s_and_stalls(published, keystore, store_dir):
    result, _ = published
    register_store("http", lambda: HttpStore(backoff=0.01, timeout=0.5), replace=True)
    try:
        with StaticServer(store_dir) as origin, FaultProxy(origin.url) as proxy:
            a, b, c = (shard.sha256 for shard in result.manifest.shards[:3])
            proxy.add(Fault("status", status=500, match=a, times=3), Fault("stall", match=b, delay=1.0),
                      Fault("truncate", at=100, match=c, times=2), Fault("status", status=503, match=c))
            dataset = StreamingDataset(f"{proxy.url}/{content_path(result.manifest_hash)}", keystore=keystore,
                                       batch_size=16, mirrors=[proxy.url])
            dataset.source.manifest = dataset.source.manifest.with_locators(
                {i: () for i in range(dataset.source.num_shards)})  # every shard through the proxy
            assert sorted(ids(StreamingDataLoader(dataset))) == list(range(ROWS))
            assert sum(h.fault is not None for h in proxy.hits) == 7  # every fault met, and recovered from
            assert sum(h.path.endswith(s.sha256) for s in result.manifest.shards for h in proxy.hits) >= 10
    finally:
        register_store("http", HttpStore, replace=True)


@pytest.mark.slow
def test_two_process_torchrun_gloo(published, keystore, tmp_path):
    result, _ = published
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(f"""
        import json, os, torch.distributed as dist
        from deai_data import Keystore
        from deai_data.torch import StreamingDataLoader, StreamingDataset
        dist.init_process_group("gloo")
        ks = Keystore({str(keystore.path)!r}, passphrase="test passphrase")
        ds = StreamingDataset({result.manifest_uri!r}, keystore=ks, batch_size=16, tail="drop")
        got = [int(i) for b in StreamingDataLoader(ds, num_workers=1) for i in b["id"]]
        everything = [None] * dist.get_world_size()
        dist.all_gather_object(everything, got)
        if dist.get_rank() == 0:
            with open({str(tmp_path / 'out.json')!r}, "w") as fh:
                json.dump(everything, fh)
        dist.destroy_process_group()
    """))
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE")}
    env["GLOO_SOCKET_IFNAME"] = "lo"  # the two ranks talk over loopback only
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                             "--master_addr=127.0.0.1", f"--master_port={port}", str(script)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    try:
        _, stderr = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # torchrun and the ranks it started, by our PID's group
            proc.wait()
    assert proc.returncode == 0, stderr[-3000:]
    parts = json.loads((tmp_path / "out.json").read_text())
    assert len(parts) == 2 and len(parts[0]) == len(parts[1]) == ROWS // 2
    assert sorted(parts[0] + parts[1]) == list(range(ROWS))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_pinned_non_blocking(published, keystore):
    result, _ = published
    loader = StreamingDataLoader(make(result, keystore, batch_size=64, batched=True), pin_memory=True)
    total = 0
    for batch in loader:
        x = batch["x"].to("cuda", non_blocking=True)
        total += int(x.shape[0])
    torch.cuda.synchronize()
    assert total == ROWS


def test_verify_modes_and_what_each_guarantees(published, keystore):
    """aead mode still refuses bytes altered by anyone without the key; only full mode refuses a
    shard re-sealed by a key holder (it no longer matches the manifest's SHA-256)."""
    from deai_data.crypto.sealing import ShardSealer
    from deai_data.formats.shard import encode_shard

    result, _ = published
    entry = result.manifest.shards[2]
    path = path_from_locator(entry.locators[0])
    original = path.read_bytes()
    genuine = make(result, keystore).source.read_shard(2)

    flipped = bytearray(original)
    flipped[200] ^= 1
    path.write_bytes(bytes(flipped))
    for verify in ("full", "aead"):
        with pytest.raises(IntegrityError):
            ids(StreamingDataLoader(make(result, keystore, verify=verify)))

    # a key holder re-seals different records of the same size under the same index
    forged_rows = genuine.set_column(1, "x", pa.array(np.zeros(genuine.num_rows, np.float32)))
    plain = memoryview(encode_shard(forged_rows.to_batches(), forged_rows.schema)).cast("B")
    sealer = ShardSealer(result.key, bytes.fromhex(result.manifest.seal_id), result.manifest.segment_size)
    out = memoryview(bytearray(sealer.sealed_size(len(plain))))
    forged = sealer.seal_into(2, plain, sealer.salt(2, plain, out), out)
    assert len(forged) == entry.sealed_size
    path.write_bytes(bytes(forged))
    with pytest.raises(IntegrityError) as info:
        ids(StreamingDataLoader(make(result, keystore, verify="full")))
    assert info.value.shard == 2
    xs = [float(x) for b in StreamingDataLoader(make(result, keystore, verify="aead")) for x in b["x"]]
    assert xs.count(0.0) == forged_rows.num_rows  # accepted: the documented limit of "aead"


@pytest.mark.slow
def test_dataset_pickles_for_spawned_workers(published, keystore):
    import pickle

    result, _ = published
    dataset = make(result, keystore, seed=9)
    clone = pickle.loads(pickle.dumps(dataset))
    assert ids(StreamingDataLoader(clone)) == ids(StreamingDataLoader(dataset))
    spawned = StreamingDataLoader(make(result, keystore, seed=9), num_workers=2, multiprocessing_context="spawn")
    assert ids(spawned) == ids(StreamingDataLoader(make(result, keystore, seed=9)))


def test_large_binary_and_text_values_arrive_intact(store_dir, keystore):
    rng = np.random.default_rng(1)
    blobs = [rng.bytes(100_000 + i) for i in range(60)]
    texts = ["é" * (40_000 + i) for i in range(60)]
    table = pa.table({"id": np.arange(60), "blob": pa.array(blobs, pa.binary()), "text": texts})
    result = publish(table, store=store_dir, name="big", keystore=keystore, shard_size=1 << 20)
    for batched in (False, True):
        loader = StreamingDataLoader(StreamingDataset(result.manifest_uri, keystore=keystore, batch_size=8,
                                                      batched=batched, seed=2))
        seen = 0
        for batch in loader:
            for i, blob, text in zip(batch["id"].tolist(), batch["blob"], batch["text"], strict=True):
                assert blob == blobs[i] and text == texts[i]
                seen += 1
        assert seen == 60


def test_images_decoded_in_a_transform(store_dir, keystore):
    import io

    from PIL import Image

    from deai_data.torch import decode_image

    pixels = np.random.default_rng(3).integers(0, 255, (10, 6, 5, 3), dtype=np.uint8)
    encoded = []
    for array in pixels:
        out = io.BytesIO()
        Image.fromarray(array).save(out, format="PNG")
        encoded.append(out.getvalue())
    table = pa.table({"id": np.arange(10), "png": pa.array(encoded, pa.binary())})
    result = publish(table, store=store_dir, name="pngs", keystore=keystore)
    dataset = StreamingDataset(result.manifest_uri, keystore=keystore, batch_size=5,
                               transform=lambda s: (int(s["id"]), np.asarray(decode_image(s["png"]))))
    decoded = dict(sample for sample in dataset)
    assert sorted(decoded) == list(range(10))
    assert all(np.array_equal(decoded[i], pixels[i]) for i in range(10))


@pytest.fixture
def blobs_published(store_dir, keystore):
    """Binary values of mixed sizes (some batches under, some over the size that goes inline) in shards of
    about 300 KB: enough shards that a worker's shared buffers are reused within an epoch."""
    rng = np.random.default_rng(8)
    sizes = [int(s) for s in rng.choice([0, 7, 4096, 40_000, 150_000], size=240)]
    values = [rng.bytes(n) for n in sizes]
    table = pa.table({"id": np.arange(240, dtype=np.int64), "blob": pa.array(values, pa.binary())})
    result = publish(table, store=store_dir, name="blobs", keystore=keystore, shard_size=300_000)
    assert len(result.manifest.shards) >= 12
    return result, values


@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("persistent", [True, False])
def test_workers_hand_over_views_that_stay_right_while_buffers_are_reused(blobs_published, keystore, batched,
                                                                         persistent):
    """Batches from two workers equal the published values; views kept from earlier batches (whole batches,
    and single values whose batch is gone) still hold their bytes after the workers have reused their
    buffers for later shards, over two epochs."""
    result, values = blobs_published
    dataset = StreamingDataset(result.manifest_uri, keystore=keystore, batch_size=8, batched=batched, seed=4,
                               max_shards=2, prefetch=1)
    loader = StreamingDataLoader(dataset, num_workers=2, persistent_workers=persistent)
    reference = [ids(StreamingDataLoader(StreamingDataset(result.manifest_uri, keystore=keystore, batch_size=8,
                                                          batched=batched, seed=4), num_workers=0))
                 for _ in range(1)]
    kept_batches, kept_values = [], []
    for epoch in range(2):
        order = []
        for n, batch in enumerate(loader):
            assert isinstance(batch["blob"], Blobs)
            batch_ids = batch["id"].tolist()
            order += batch_ids
            assert [bytes(v) for v in batch["blob"]] == [values[i] for i in batch_ids]
            if n % 5 == 0:
                kept_batches.append((batch_ids, batch["blob"]))
            elif n % 5 == 1 and len(batch_ids):
                kept_values.append((batch_ids[0], batch["blob"][0]))
        assert sorted(order) == list(range(240))
        if epoch == 0:
            assert order == reference[0]  # the same order as in one process
    for batch_ids, blobs in kept_batches:
        assert blobs.tolist() == [values[i] for i in batch_ids]
    for i, view in kept_values:
        assert view == values[i]


def test_persistent_workers_follow_the_epochs(published, keystore):
    result, _ = published
    single = StreamingDataLoader(make(result, keystore, seed=6))
    persistent = StreamingDataLoader(make(result, keystore, seed=6), num_workers=2, persistent_workers=True)
    for _ in range(3):
        assert ids(persistent) == ids(single)
    state_loader = StreamingDataLoader(make(result, keystore, seed=6), num_workers=2, persistent_workers=True)
    ids(state_loader)
    assert state_loader.dataset.epoch == 1


def test_blobs_behave_as_bytes_and_pickle_whole(store_dir, keystore):
    import copy
    import pickle

    from deai_data import UsageError

    values = [b"abc", b"", b"\xff" * 3]
    blobs = Blobs.of(values)
    assert len(blobs) == 3 and list(blobs) == values and blobs[-1] == b"\xff\xff\xff" and blobs[1:] == values[1:]
    assert blobs.tolist() == values and blobs.nbytes == 6 and "3 values" in repr(blobs)
    assert bytes(blobs[0]) == b"abc" and np.frombuffer(blobs[2], np.uint8).tolist() == [255] * 3
    with pytest.raises(IndexError):
        blobs[3]
    with pytest.raises(TypeError):
        blobs[0][0] = 1  # read-only: a view must not let one consumer change what another sees
    for clone in (pickle.loads(pickle.dumps(blobs)), copy.deepcopy(blobs), copy.copy(blobs)):
        assert clone.tolist() == values
    with pytest.raises(UsageError, match="differ in length"):
        blobs.as_tensor()
    square = Blobs.of([b"ab", b"cd"]).as_tensor()
    assert square.tolist() == [[97, 98], [99, 100]]


def test_a_shared_buffer_is_reused_only_when_no_view_remains():
    """The recycling protocol in one process: the worker's own use, its leases, and the views another
    process holds (here the same process plays both sides) each keep a buffer from reuse."""
    from deai_data.torch import shared

    arena = shared.Arena()
    buffer = arena.take(1000)
    buffer.data(3)[:] = [1, 2, 3]
    lease = buffer.lease()
    arena.give_back(buffer)
    assert not buffer.reusable() and arena.take(1000) is not buffer  # a lease is alive here
    key, tensor, size, _ = arena.send(buffer)
    del lease
    remote = shared.received(key, tensor, size, [])
    assert not buffer.reusable()  # the receiving side still views it
    again = shared.received(*arena.send(buffer)[:3], [])  # a second send names the buffer by key alone
    assert arena.send(buffer)[1] is None
    del remote
    assert not buffer.reusable()
    del again
    assert not buffer.reusable()  # one send was never received: that lease counts as alive, forever
    fresh = arena.take(10)
    fresh.lease()  # dropped at once
    arena.give_back(fresh)
    assert fresh.reusable() and arena.take(10) is fresh
    with pytest.raises(Exception, match="never received"):
        shared.received((1, 2, 3), None, 10, [])
