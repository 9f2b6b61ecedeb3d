"""Ray publish next to single-process publish on the same data in the same run (not a test).

    .venv/bin/python bench/ray_publish.py [--gib 2] [--record 1MiB] [--rounds 3] [--dir DIR] [--only single-0,ray-2]

The source is Parquet files on local disk (written once, uncompressed, 256 MiB each: every contender reads them
from the page cache). Each contender runs in a fresh process and publishes to a fresh LocalStore on the same disk
with the same settings (64 MiB shards, fsync on): `deai_data.publish(files)` with its default threads;
`deai_data.ray.publish(dir)` (row groups read by Ray tasks) with 1 and 2 shard tasks at a time on a local Ray
cluster of two CPUs started in that process (its start-up, and a small publish and read that start the job's worker
processes, are timed apart: a real cluster is already running, and a large job pays this once); the same from
`ray.data.read_parquet(dir)`; and from blocks Ray Data has already read into the object store (what the
distributed publish itself costs). The rounds interleave
the contenders; medians. Checks that every contender published the same records and plaintext bytes,
and that the Ray publish of the files has the single-process content root (Ray Data's reader decides its own row
order, so its shards differ).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

KEY, SEAL_ID = bytes(range(32)), bytes(range(32, 64))
FILE_BYTES = 256 << 20


def write_source(folder: Path, total: int, record: int) -> list[Path]:
    """`total` bytes of random records of `record` bytes in Parquet files of 256 MiB (no compression)."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    per_file = max(1, FILE_BYTES // record)
    rows, first, files = total // record, 0, []
    while first < rows:
        n = min(per_file, rows - first)
        body = pa.py_buffer(rng.integers(0, 256, size=n * record, dtype=np.uint8))
        offsets = pa.py_buffer(np.arange(0, n * record + 1, record, dtype=np.int32))
        table = pa.table({"id": np.arange(first, first + n, dtype=np.int64),
                          "bytes": pa.Array.from_buffers(pa.binary(), n, [None, offsets, body])})
        path = folder / f"part-{len(files):05d}.parquet"
        pq.write_table(table, path, compression="none", row_group_size=max(1, (64 << 20) // record))
        files.append(path)
        first += n
    return files


def contender(kind: str, source: Path, store: Path, workers: int) -> dict[str, Any]:
    """One run in this (fresh) process: "single" publishes the files in this process; "ray" gives
    `deai_data.ray.publish` the folder (row groups read by Ray tasks, in file order); "ray-data" gives it
    `ray.data.read_parquet(folder)` (Ray Data reads, in its own order); "ray-blocks" has Ray Data read the files
    into the object store first (untimed) and publishes those blocks."""
    settings = {"store": str(store), "name": "bench", "key": KEY, "seal_id": SEAL_ID, "keystore": False,
                "resume": False}
    if kind == "single":
        from deai_data import publish
        started = time.perf_counter()
        result = publish(sorted(str(p) for p in source.glob("*.parquet")), **settings)
        return {"seconds": time.perf_counter() - started, "root": result.content_root, "rows": _totals(result),
                "startup": 0.0}
    import ray

    from deai_data import ray as deai_ray
    started = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    # warm the workers (a job's worker processes start and import on first use): a small publish, untimed
    warm = pa.table({"id": np.arange(64), "bytes": [b"x" * 65536] * 64})
    deai_ray.publish(ray.data.from_arrow(warm).repartition(4), workers=workers, shard_size=1 << 20,
                     **{**settings, "store": str(store) + "-warm-up"})
    ray.data.read_parquet(str(source)).limit(1).materialize()
    startup = time.perf_counter() - started
    dataset: Any = source if kind == "ray" else ray.data.read_parquet(str(source))
    if kind == "ray-blocks":
        dataset = dataset.materialize()
    started = time.perf_counter()
    result = deai_ray.publish(dataset, workers=workers, **settings)
    seconds = time.perf_counter() - started
    ray.shutdown()
    return {"seconds": seconds, "root": result.content_root, "rows": _totals(result), "startup": startup}


def _totals(result: Any) -> str:
    return f"{result.manifest.records} records, {result.manifest.plaintext_size} bytes"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gib", type=float, default=2.0)
    parser.add_argument("--record", type=int, default=1 << 20, help="record size in bytes (default 1 MiB)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", type=Path, help="scratch folder on the disk to measure (default: a temp dir)")
    parser.add_argument("--only", help="a comma-separated subset of the contenders (single-0 is always run)")
    parser.add_argument("--run", nargs=4, metavar=("KIND", "SOURCE", "STORE", "WORKERS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        kind, source, store, workers = args.run
        print(json.dumps(contender(kind, Path(source), Path(store), int(workers))))
        return

    scratch = Path(tempfile.mkdtemp(prefix="deai-ray-bench-", dir=args.dir))
    try:
        total = int(args.gib * (1 << 30))
        write_source(scratch / "source", total, args.record)
        contenders = [("single", 0), ("ray", 1), ("ray", 2), ("ray-data", 2), ("ray-blocks", 2)]
        if args.only:
            chosen = {"single-0", *args.only.split(",")}
            contenders = [(k, w) for k, w in contenders if f"{k}-{w}" in chosen]
        seconds: dict[str, list[float]] = {f"{k}-{w}": [] for k, w in contenders}
        startups, totals, roots = [], set(), {}
        for _ in range(args.rounds):
            for kind, workers in contenders:
                store = scratch / "store"
                shutil.rmtree(store, ignore_errors=True)
                out = subprocess.run([sys.executable, __file__, "--run", kind, str(scratch / "source"), str(store),
                                      str(workers)], capture_output=True, text=True, check=True)
                doc = json.loads(out.stdout.strip().splitlines()[-1])
                seconds[f"{kind}-{workers}"].append(doc["seconds"])
                totals.add(doc["rows"])
                roots.setdefault(kind, set()).add(doc["root"])
                if kind != "single":
                    startups.append(doc["startup"])
        assert len(totals) == 1, f"contenders published different data: {totals}"
        assert roots["single"] == roots.get("ray", roots["single"]) and len(roots["single"]) == 1, \
            f"content roots differ: {roots}"
        base = statistics.median(seconds["single-0"])
        rows = {name: {"seconds": statistics.median(s), "gb_per_s": total / statistics.median(s) / 1e9,
                       "vs_single": base / statistics.median(s), "runs": [round(x, 2) for x in s]}
                for name, s in seconds.items()}
        report = {"gib": args.gib, "record": args.record, "cpus": os.cpu_count(), "rounds": args.rounds,
                  "ray_startup_s": statistics.median(startups), "contenders": rows}
        print(json.dumps(report, indent=2))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
