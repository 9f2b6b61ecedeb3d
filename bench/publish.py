"""Publish throughput against two baselines measured in the same run (not a test).

    .venv/bin/python bench/publish.py [--gib 2] [--dir DIR] [--no-fsync]

For 4 KiB and 1 MiB records: publish GiB of records to a LocalStore, and, interleaved with it in
the same run, (1) write the same number of bytes as the sealed shards to the same disk, one file per
shard, with the same fsync policy, buffered as most programs write (and, when fsyncing, also with
O_DIRECT as LocalStore writes large objects), and (2) AES-256-GCM + SHA-256 of the same bytes in memory.
Prints medians in GB/s, the ratios, and a per-stage breakdown of one shard (where the time goes).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from deai_data import LocalStore, publish
from deai_data.buffers import page_aligned
from deai_data.crypto.sealing import ShardSealer
from deai_data.formats.shard import DEFAULT_SHARD_SIZE, cut_into_shards, encode_shard
from deai_data.storage.local import _write_direct

GB = 1e9


def make_table(total: int, record: int) -> tuple[pa.Table, memoryview]:
    """`total` bytes of random records of `record` bytes each (chunks of 256 MiB, no per-record copies),
    and the raw bytes behind them (the plain-write baseline writes those)."""
    rows = total // record
    data = np.random.default_rng(0).integers(0, 256, size=rows * record, dtype=np.uint8)
    per_chunk = max(1, (256 << 20) // record)
    chunks = []
    for first in range(0, rows, per_chunk):
        n = min(per_chunk, rows - first)
        offsets = np.arange(0, n * record + 1, record, dtype=np.int32)
        body = pa.py_buffer(data[first * record:(first + n) * record])
        chunks.append(pa.Array.from_buffers(pa.binary(), n, [None, pa.py_buffer(offsets), body]))
    table = pa.table({"id": np.arange(rows, dtype=np.int64), "bytes": pa.chunked_array(chunks, pa.binary())})
    return table, memoryview(data)


def plain_write(directory: Path, sizes: list[int], payload: memoryview, fsync: bool, direct: bool = False) -> float:
    """Write files of the given sizes (same bytes as the sealed shards) to the same disk: buffered
    `open().write()` as most programs do, or (direct=True) O_DIRECT from a page-aligned buffer as
    LocalStore does for large objects when it fsyncs."""
    directory.mkdir(parents=True)
    aligned = page_aligned(max(sizes, default=0)) if direct else None
    started = time.perf_counter()
    pos = 0
    for i, size in enumerate(sizes):
        chunk = payload[pos:pos + size] if pos + size <= len(payload) else payload[:size]
        if aligned is not None:
            aligned[:size] = chunk
            chunk = memoryview(aligned)[:size]
            fd = os.open(directory / f"{i:06d}", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            done = _write_direct(fd, chunk)
            while done < size:
                done += os.write(fd, chunk[done:])
            if fsync:
                os.fsync(fd)
            os.close(fd)
        else:
            with open(directory / f"{i:06d}", "wb") as fh:
                fh.write(chunk)
                if fsync:
                    fh.flush()
                    os.fsync(fh.fileno())
        pos = (pos + size) % max(1, len(payload) - size)
    return time.perf_counter() - started


def crypto_in_memory(payload: memoryview, chunk: int) -> float:
    """AES-256-GCM (1 MiB segments, preallocated output) + SHA-256 over the same bytes, one thread."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    aead = AESGCM(bytes(32))
    out = bytearray(chunk + 16)
    started = time.perf_counter()
    for start in range(0, len(payload), chunk):
        piece = payload[start:start + chunk]
        aead.encrypt_into(bytes(12), piece, None, memoryview(out)[:len(piece) + 16])
        hashlib.sha256(out).digest()
    return time.perf_counter() - started


def stage_breakdown(table: pa.Table) -> dict[str, float]:
    """Seconds per stage for one default-size shard, single-threaded."""
    batches = next(cut_into_shards(table.to_batches(), DEFAULT_SHARD_SIZE))
    t = {}
    s = time.perf_counter()
    plain = encode_shard(batches, table.schema)
    t["arrow_ipc_encode"] = time.perf_counter() - s
    view = memoryview(plain).cast("B")
    sealer = ShardSealer(bytes(32), bytes(32))
    scratch = memoryview(bytearray(len(view) + 16))
    out = memoryview(bytearray(sealer.sealed_size(len(view))))
    sealer.seal_into(0, view, bytes(32), out)  # touch the buffers once, as the reused ones are
    s = time.perf_counter()
    salt = sealer.salt(0, view, scratch)
    t["content_fingerprint"] = time.perf_counter() - s
    s = time.perf_counter()
    sealed = sealer.seal_into(0, view, salt, out)
    t["seal_aes_gcm"] = time.perf_counter() - s
    s = time.perf_counter()
    hashlib.sha256(sealed).digest()
    t["sha256_sealed"] = time.perf_counter() - s
    t["shard_bytes"] = plain.size
    return t


def run(record: int, total: int, root: Path, fsync: bool, repeats: int) -> dict[str, float]:
    """Interleave publish and plain-write runs `repeats` times; medians of each."""
    table, payload = make_table(total, record)
    publish_s, write_s, direct_s, crypto_s = [], [], [], []
    # warm-up (untimed) of both paths: thread buffers, allocator, the disk's first-touch costs
    warm = table.slice(0, table.num_rows // 8)
    publish(warm, store=LocalStore(root / "warm", fsync=fsync), name="warm", keystore=False,
            journal_dir=root / "journals")
    plain_write(root / "warm-plain", [64 << 20] * 4, payload, fsync)
    shutil.rmtree(root / "warm")
    shutil.rmtree(root / "warm-plain")
    for rep in range(repeats):
        store_dir = root / f"store-{record}-{rep}"
        started = time.perf_counter()
        result = publish(table, store=LocalStore(store_dir, fsync=fsync), name=f"bench-{record}", keystore=False,
                         journal_dir=root / "journals")
        publish_s.append(time.perf_counter() - started)
        sizes = [s.sealed_size for s in result.manifest.shards]
        shutil.rmtree(store_dir)
        write_s.append(plain_write(root / f"plain-{record}-{rep}", sizes, payload, fsync))
        shutil.rmtree(root / f"plain-{record}-{rep}")
        if fsync:
            direct_s.append(plain_write(root / f"direct-{record}-{rep}", sizes, payload, fsync, direct=True))
            shutil.rmtree(root / f"direct-{record}-{rep}")
        crypto_s.append(crypto_in_memory(payload, 1 << 20) * (sum(sizes) / len(payload)))
    sealed = sum(sizes)
    p, w, c = statistics.median(publish_s), statistics.median(write_s), statistics.median(crypto_s)
    d = statistics.median(direct_s) if direct_s else float("nan")
    return {
        "record_bytes": record, "records": table.num_rows, "sealed_gb": sealed / GB, "shards": len(sizes),
        "repeats": repeats, "publish_gbps": sealed / p / GB, "plain_write_gbps": sealed / w / GB,
        "aes_sha_in_memory_gbps": sealed / c / GB, "ratio_to_plain_write": w / p, "ratio_to_crypto": c / p,
        "direct_write_gbps": sealed / d / GB, "ratio_to_direct_write": d / p,
        "publish_s": publish_s, "plain_write_s": write_s, "direct_write_s": direct_s,
        **{f"stage_{k}": v for k, v in stage_breakdown(table).items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gib", type=float, default=2.0)
    parser.add_argument("--dir", help="scratch directory on the disk to measure (default: a temp dir)")
    parser.add_argument("--no-fsync", action="store_true", help="neither publish nor baseline fsync")
    parser.add_argument("--records", default="4096,1048576", help="record sizes in bytes, comma separated")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs per size (medians reported)")
    args = parser.parse_args()
    total = int(args.gib * (1 << 30))
    root = Path(tempfile.mkdtemp(prefix="deai-bench-", dir=args.dir))
    try:
        rows = [run(int(r), total, root, not args.no_fsync, args.repeats) for r in args.records.split(",")]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"publish {args.gib} GiB, fsync={not args.no_fsync}, cores={os.cpu_count()}, python {sys.version.split()[0]}")
    print(f"{'record':>8} {'shards':>6} {'publish':>9} {'plain write':>12} {'direct write':>13} "
          f"{'aes+sha mem':>12} {'vs write':>9} {'vs direct':>10} {'vs crypto':>10}")
    for r in rows:
        print(f"{r['record_bytes']:>8} {r['shards']:>6} {r['publish_gbps']:>7.2f}GB/s "
              f"{r['plain_write_gbps']:>10.2f}GB/s {r['direct_write_gbps']:>11.2f}GB/s "
              f"{r['aes_sha_in_memory_gbps']:>10.2f}GB/s {r['ratio_to_plain_write']:>8.2f}x "
              f"{r['ratio_to_direct_write']:>9.2f}x {r['ratio_to_crypto']:>9.2f}x")
    for r in rows:
        mb = r["stage_shard_bytes"] / 1e6
        parts = ", ".join(f"{k[6:]} {mb / r[k] / 1e3:.2f} GB/s" for k in r if k.startswith("stage_")
                          and k != "stage_shard_bytes")
        print(f"one {mb:.0f} MB shard of {r['record_bytes']}-byte records, single thread: {parts}")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
