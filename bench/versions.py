"""What a new version uploads when it inherits the previous version's unchanged shards (not a test).

    .venv/bin/python bench/versions.py [--mib 400] [--shard-size 1MiB] [--dir DIR]

Publishes a version of `--mib` MiB of variable-length records, then, each from that version, new versions with
1 % of the records changed in different ways, each published twice in the same run: with `previous=` (inherits
unchanged shards) and without it (stores every shard anew, the baseline). Prints, per change, the bytes stored
anew as a share of the version's sealed size, that share against the share of records changed, and the publish
time against the baseline's. Results go to bench/results/versions.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from deai_data import Keystore, publish
from deai_data.cli.sizes import parse_size

CHANGED = 0.01


def make_table(rows: int, seed: int = 0) -> pa.Table:
    """Records of a crawl: an id, a score, a text of 200 to 1,800 bytes."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(200, 1800, rows)
    body = rng.integers(97, 123, int(lengths.sum()), dtype=np.uint8).tobytes()
    offsets = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
    text = pa.Array.from_buffers(pa.large_string(), rows, [None, pa.py_buffer(offsets), pa.py_buffer(body)])
    return pa.table({"id": np.arange(rows, dtype=np.int64), "score": rng.random(rows), "text": text})


def changes(table: pa.Table) -> dict[str, pa.Table]:
    """New versions of `table` with 1 % of its records changed, each a different way."""
    rows = table.num_rows
    n = int(rows * CHANGED)
    rng = np.random.default_rng(1)
    middle = rows // 2
    edited = make_table(n, seed=2).set_column(0, "id", table.column("id").slice(middle, n))
    appended = make_table(n, seed=3).set_column(0, "id", pa.array(np.arange(rows, rows + n, dtype=np.int64)))
    scattered = np.sort(rng.choice(rows, n, replace=False))
    scores = table.column("score").to_numpy().copy()
    scores[scattered] += 1.0
    return {
        "append 1 %": pa.concat_tables([table, appended]),
        "rewrite a 1 % block": pa.concat_tables(
            [table.slice(0, middle), edited, table.slice(middle + n)]),
        "insert 1 % midway": pa.concat_tables([table.slice(0, middle), appended, table.slice(middle)]),
        "delete a 1 % block": pa.concat_tables([table.slice(0, middle), table.slice(middle + n)]),
        "change 1 % scattered": table.set_column(1, "score", pa.array(scores)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mib", type=int, default=400)
    parser.add_argument("--shard-size", type=parse_size, default=parse_size("1MiB"))
    parser.add_argument("--dir", type=Path, help="scratch folder on the disk to measure (default: a temp dir)")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="deai-versions-", dir=args.dir))
    try:
        keystore = Keystore(scratch / "keys", passphrase="bench", scrypt_n=2**10)
        table = make_table(args.mib * (1 << 20) // 1000)
        common = {"name": "crawl", "shard_size": args.shard_size, "keystore": keystore,
                  "journal_dir": scratch / "journals", "resume": False}
        base = publish(table, store=scratch / "store", **common)
        print(f"version 1: {table.num_rows:,} records, {len(base.manifest.shards)} shards, "
              f"{base.manifest.sealed_size / 2**20:.0f} MiB sealed")
        results = []
        for name, rows in changes(table).items():
            started = time.perf_counter()
            new = publish(rows, store=scratch / "store", previous=base.manifest_hash, **common)
            inherit_s = time.perf_counter() - started
            started = time.perf_counter()
            publish(rows, store=scratch / "full", **common)
            full_s = time.perf_counter() - started
            stored = sum(e.sealed_size for e in new.manifest.shards if e.origin is None) + len(new.manifest.to_bytes())
            share = stored / new.manifest.sealed_size
            results.append({"change": name, "shards": len(new.manifest.shards), "sealed": new.sealed_shards,
                            "inherited": new.inherited_shards, "stored_bytes": stored,
                            "version_bytes": new.manifest.sealed_size, "stored_share": share,
                            "stored_over_changed": share / CHANGED, "publish_s": inherit_s,
                            "full_publish_s": full_s, "time_ratio": inherit_s / full_s})
            shutil.rmtree(scratch / "full")
        print("| change | shards sealed / inherited | stored anew | of the version | x the 1 % changed | "
              "publish time vs. storing all |")
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        for r in results:
            print(f"| {r['change']} | {r['sealed']} / {r['inherited']} | {r['stored_bytes'] / 2**20:.1f} MiB | "
                  f"{100 * r['stored_share']:.2f} % | {r['stored_over_changed']:.2f} | {r['time_ratio']:.2f} |")
        out = Path(__file__).with_name("results") / "versions.json"
        shares = {"storing every shard": 100.0}
        shares.update({f"deai-data, {r['change']}": round(100 * r["stored_share"], 2) for r in results})
        timing = {}
        for r in results:
            timing[f"deai-data, {r['change']}"] = round(r["publish_s"], 2)
            timing[f"storing all, {r['change']}"] = round(r["full_publish_s"], 2)
        out.write_text(json.dumps({
            "benchmark": f"A new version, 1 % of its records changed ({args.mib} MiB, "
                         f"{args.shard_size // 2**20} MiB shards)",
            "command": f".venv/bin/python bench/versions.py --mib {args.mib}",
            "measured": time.strftime("%Y-%m-%d"),
            "machine": "2 cores, 24 GiB, Python 3.11, local virtio disk",
            "panels": [{"title": "stored anew, % of the version", "unit": "%", "bars": shares},
                       {"title": "publish time, same run", "unit": "s", "bars": timing}],
            "rows": table.num_rows, "results": results}, indent=2) + "\n")
        print(f"wrote {out}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
