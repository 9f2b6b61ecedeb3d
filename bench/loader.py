"""Loader throughput: our StreamingDataset against a plain file loop, MosaicML Streaming and WebDataset, on
the same samples in the same run, every loader in a fresh process (not a test).

    .venv/bin/python bench/loader.py [--small 200000] [--large 2000] [--peers-python PYTHON] [--http] [--rounds N]

Data: `--small` samples of 4 KiB and `--large` samples of 1 MiB of random bytes, each with its id. For each
size this writes one file per sample (the plain loop's input), publishes them (encrypted, 64 MiB shards)
to a LocalStore, and has the Python given by --peers-python (an environment with mosaicml-streaming and
webdataset, which need torchvision: see docs/benchmarks.md) write MDS and tar shards of the same bytes.
Then every loader runs in its own fresh process (bench/loader_run.py): batch 32, DataLoader workers 0
and 2 (persistent), a warm-up epoch that checks every sample's bytes and id, and the median of two timed
epochs that check every id came exactly once. With --rounds N every loader runs N times, the rounds
interleaved, and its median run counts. Ratios are against the fastest peer configuration and the plain
loop of the same run, and for workers against the same loader without workers, round by round (median).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from deai_data import publish
from deai_data.storage import content_path

HERE = Path(__file__).resolve().parent
OURS = ("deai-data batched", "deai-data per sample")
PEERS = ("MosaicML Streaming (MDS)", "WebDataset (tar)")
EXTRAS = ("deai-data batched, verify=sha256", "deai-data batched, verify=aead")


def prepare(root: Path, count: int, size: int, peers_python: str | None) -> dict:
    """The samples as files, our published dataset, the peers' shards, and every sample's digest."""
    rng = np.random.default_rng(0)
    (root / "files").mkdir(parents=True)
    digests = np.zeros((count, 16), np.uint8)
    values = []
    for i in range(count):
        value = rng.bytes(size)
        (root / "files" / f"{i:07d}.bin").write_bytes(value)
        digests[i] = np.frombuffer(hashlib.blake2b(value, digest_size=16).digest(), np.uint8)
        values.append(value)
    np.save(root / "digests.npy", digests)
    key = bytes(range(32))
    table = pa.table({"id": np.arange(count, dtype=np.int64), "data": pa.array(values, pa.binary())})
    del values
    result = publish(table, store=root / "store", name="bench", key=key, keystore=False, journal_dir=root / "journal")
    del table
    if peers_python:
        subprocess.run([peers_python, str(HERE / "loader_peers.py"), str(root)], check=True)
    os.sync()  # no writeback of the files just written while anything is timed
    return {"count": count, "size": size, "key": key.hex(), "manifest_uri": result.manifest_uri,
            "manifest_hash": result.manifest_hash}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_one(python: str, root: Path, loader: str, workers: int) -> dict:
    out = subprocess.run([python, str(HERE / "loader_run.py"), str(root), loader, str(workers)],
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{loader} (workers {workers}) failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_size(label: str, count: int, size: int, root: Path, peers_python: str | None, http: bool,
             rounds: int) -> list[dict]:
    meta = prepare(root, count, size, peers_python)
    server = None
    if http:
        port = free_port()
        server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                                   "--directory", str(root / "store")], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        time.sleep(1.0)
        os.environ["DEAI_FETCH_ALLOW"] = "private"  # the children may fetch from loopback
        meta["http_base"] = f"http://127.0.0.1:{port}"
        meta["http_manifest_uri"] = f"{meta['http_base']}/{content_path(meta['manifest_hash'])}"
    (root / "meta.json").write_text(json.dumps(meta))
    plan = [(sys.executable, "plain file loop", 0)]
    plan += [(sys.executable, name, w) for w in (0, 2) for name in OURS]
    plan += [(sys.executable, name, 0) for name in EXTRAS]
    if http:
        plan.append((sys.executable, "deai-data batched, loopback HTTP", 0))
    if peers_python:
        plan += [(peers_python, name, w) for w in (0, 2) for name in PEERS]
    runs: dict[tuple[str, int], list[dict]] = {}
    try:
        for _ in range(rounds):  # rounds interleaved: a slow spell of the machine hits every loader alike
            for python, name, workers in plan:
                row = run_one(python, root, name, workers)
                runs.setdefault((name, workers), []).append(row)
                print(f"  {label}  {name:<36} workers {workers}: {row['samples_per_s']:>10,.0f} samples/s",
                      flush=True)
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            server.wait()
    rows = []
    for done in runs.values():  # the median run of each loader
        row = sorted(done, key=lambda r: r["samples_per_s"])[len(done) // 2]
        rows.append({**row, "samples": label, "runs": [round(r["samples_per_s"]) for r in done]})
    own = {(r["loader"], r["workers"]): r for r in rows}
    for r in rows:  # workers against no workers, round by round (the goal: at least 1.0x)
        if r["workers"] and (r["loader"], 0) in own:
            ratios = sorted(a / b for a, b in zip(r["runs"], own[r["loader"], 0]["runs"], strict=True))
            r["vs_workers_0"] = ratios[len(ratios) // 2]
    fastest_peer = max((r["samples_per_s"] for r in rows if r["loader"] in PEERS), default=None)
    plain = next(r["samples_per_s"] for r in rows if r["loader"] == "plain file loop")
    for row in rows:
        row["vs_plain"] = row["samples_per_s"] / plain
        row["vs_fastest_peer"] = row["samples_per_s"] / fastest_peer if fastest_peer else None
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", type=int, default=200_000, help="samples of 4 KiB (0: skip)")
    parser.add_argument("--large", type=int, default=2_000, help="samples of 1 MiB (0: skip)")
    parser.add_argument("--peers-python", help="a Python with mosaicml-streaming and webdataset")
    parser.add_argument("--http", action="store_true", help="also ours over loopback HTTP (python -m http.server)")
    parser.add_argument("--dir", help="scratch directory")
    parser.add_argument("--rounds", type=int, default=1, help="runs of every loader, interleaved; the median counts")
    args = parser.parse_args()
    rows = []
    for label, count, size in ((f"{args.small:,} x 4 KiB", args.small, 4096),
                               (f"{args.large:,} x 1 MiB", args.large, 1 << 20)):
        if not count:
            continue
        root = Path(tempfile.mkdtemp(prefix="deai-loader-bench-", dir=args.dir))
        try:
            rows += run_size(label, count, size, root, args.peers_python, args.http, args.rounds)
        finally:
            shutil.rmtree(root, ignore_errors=True)
    print(f"batch 32, cores {os.cpu_count()}, every loader in a fresh process")
    print(f"{'samples':>16}  {'loader':<36} {'workers':>7} {'samples/s':>10} {'GB/s':>6} {'x peer':>7} {'x plain':>7} "
          f"{'x w0':>6}")
    for r in rows:
        peer = f"{r['vs_fastest_peer']:.2f}" if r["vs_fastest_peer"] else "-"
        own = f"{r['vs_workers_0']:.2f}" if r.get("vs_workers_0") else "-"
        print(f"{r['samples']:>16}  {r['loader']:<36} {r['workers']:>7} {r['samples_per_s']:>10,.0f} "
              f"{r['gb_per_s']:>6.2f} {peer:>7} {r['vs_plain']:>7.2f} {own:>6}")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
