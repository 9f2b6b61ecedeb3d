"""Loader throughput: our StreamingDataset against a plain file loop, MosaicML Streaming and
WebDataset, on the same samples in the same run (not a test).

    .venv/bin/python bench/loader.py [--small 200000] [--large 2000] [--peers-python PYTHON]

Data: (a) `--small` samples of 4 KiB and (b) `--large` samples of 1 MiB, random bytes plus an int
label, from one seed. Every loader yields batches of 32 through a torch DataLoader (workers 0 and 2),
after one untimed warm-up epoch (data in the page cache); the plain loop and the SHA-256 ceiling (what
checking every byte's hash alone costs here) report the median of three epochs. Ours reads encrypted shards from a
LocalStore, checks SHA-256 and AEAD tags and decrypts; also over loopback HTTP. The peers (MosaicML
MDS and WebDataset tar shards, unencrypted) run in the Python given by --peers-python, an environment
with mosaicml-streaming and webdataset (they need torchvision, which does not load beside the
project's torch build: see docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from deai_data import publish
from deai_data.storage import content_path
from deai_data.torch import StreamingDataLoader, StreamingDataset

BATCH = 32
HERE = Path(__file__).resolve().parent


def samples(count: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(count, size), dtype=np.uint8), rng.integers(0, 1000, size=count)


def write_files(root: Path, data: np.ndarray) -> list[Path]:
    root.mkdir(parents=True)
    paths = []
    for i in range(len(data)):
        path = root / f"{i:07d}.bin"
        path.write_bytes(data[i].tobytes())
        paths.append(path)
    return paths


def plain_loop(paths: list[Path]) -> int:
    batch, n = [], 0
    for path in paths:
        with open(path, "rb") as fh:
            batch.append(fh.read())
        if len(batch) == BATCH:
            n += len(batch)
            batch = []
    return n + len(batch)


def sha256_all(data: np.ndarray, threads: int) -> int:
    """SHA-256 of every sample in memory on `threads` threads (hashlib releases the GIL): the most any
    loader that checks every byte's hash can do here, before reading, decrypting or handing over."""
    parts = np.array_split(np.arange(len(data)), threads)
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda rows: [hashlib.sha256(data[i]).digest() for i in rows], parts))
    return len(data)


def timed(run, nbytes: int, items: int, repeats: int = 1) -> dict[str, float]:
    """One untimed warm-up epoch (page cache, thread pools), then the median of `repeats` timed epochs."""
    run()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        got = run()
        times.append(time.perf_counter() - started)
        assert got == items, (got, items)
    seconds = statistics.median(times)
    return {"samples_per_s": items / seconds, "gb_per_s": nbytes / seconds / 1e9, "seconds": seconds}


def count(loader) -> int:
    total = 0
    for batch in loader:
        total += len(batch["label"])
    return total


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ours(uri: str, key: bytes, workers: int, batched: bool, verify: str = "full") -> int:
    dataset = StreamingDataset(uri, key=key, batch_size=BATCH, batched=batched, seed=1, verify=verify)
    return count(StreamingDataLoader(dataset, num_workers=workers))


def run_size(name: str, count_: int, size: int, root: Path, peers_python: str | None) -> list[dict]:
    data, labels = samples(count_, size)
    nbytes = data.nbytes
    rows = []
    paths = write_files(root / f"files-{name}", data)
    table = pa.table({"data": pa.array(list(map(bytes, data)), pa.binary()), "label": labels})
    key = bytes(range(32))
    result = publish(table, store=root / f"store-{name}", name=name, key=key, keystore=False,
                     journal_dir=root / "journals")
    del table
    os.sync()  # no writeback of the files just written while anything is timed
    # The baseline is the noisiest figure (page cache, writeback): the median of three epochs.
    rows.append({"loader": "plain file loop", "workers": 0, **timed(lambda: plain_loop(paths), nbytes, count_, 3)})
    for threads in (1, os.cpu_count() or 1):
        rows.append({"loader": f"ceiling: SHA-256 in memory, {threads} thread(s)", "workers": 0,
                     **timed(lambda t=threads: sha256_all(data, t), nbytes, count_, 3)})
    for workers in (0, 2):
        for batched in (False, True):
            label = "deai-data " + ("batched" if batched else "per-sample") + ", local store"
            rows.append({"loader": label, "workers": workers,
                         **timed(lambda w=workers, b=batched: ours(result.manifest_uri, key, w, b), nbytes, count_)})
    rows.append({"loader": "deai-data batched, local, verify=aead", "workers": 0,
                 **timed(lambda: ours(result.manifest_uri, key, 0, True, "aead"), nbytes, count_)})

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                               "--directory", str(root / f"store-{name}")], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.0)
        base = f"http://127.0.0.1:{port}"
        uri = f"{base}/{content_path(result.manifest_hash)}"

        def over_http() -> int:
            dataset = StreamingDataset(uri, key=key, batch_size=BATCH, batched=True, seed=1, mirrors=[base])
            dataset.source.manifest = dataset.source.manifest.with_locators(
                {i: () for i in range(dataset.source.num_shards)})
            return count(StreamingDataLoader(dataset, num_workers=0))

        rows.append({"loader": "deai-data batched, loopback HTTP", "workers": 0, **timed(over_http, nbytes, count_)})
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait()

    if peers_python:
        out = subprocess.run([peers_python, str(HERE / "loader_peers.py"), str(root / f"peers-{name}"),
                              str(count_), str(size)], capture_output=True, text=True, check=True)
        rows.extend(json.loads(out.stdout.strip().splitlines()[-1]))
    for row in rows:
        row["samples"] = f"{count_} x {size // 1024} KiB"
    shutil.rmtree(root / f"files-{name}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", type=int, default=200_000)
    parser.add_argument("--large", type=int, default=2_000)
    parser.add_argument("--peers-python", help="a Python with mosaicml-streaming and webdataset")
    parser.add_argument("--dir", help="scratch directory")
    args = parser.parse_args()
    torch.set_num_threads(1)
    root = Path(tempfile.mkdtemp(prefix="deai-loader-bench-", dir=args.dir))
    try:
        rows = run_size("small", args.small, 4096, root, args.peers_python) if args.small else []
        rows += run_size("large", args.large, 1 << 20, root, args.peers_python) if args.large else []
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"batch {BATCH}, cores {os.cpu_count()}, torch {torch.__version__}")
    print(f"{'samples':>14}  {'loader':<44} {'workers':>7} {'samples/s':>10} {'GB/s':>6}")
    for r in rows:
        print(f"{r['samples']:>14}  {r['loader']:<44} {r['workers']:>7} {r['samples_per_s']:>10.0f} "
              f"{r['gb_per_s']:>6.2f}")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
