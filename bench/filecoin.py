"""CAR packing and PieceCID (commP) of 1 GiB, next to SHA-256 of the same bytes in the same run.

SHA-256 is the ceiling: CAR packing hashes every byte once (one SHA-256 per 256 KiB leaf) and writes it;
commP FR32-pads the bytes and hashes them about twice over (a binary tree of 64-byte SHA-256 nodes).

    .venv/bin/python bench/filecoin.py [--mib 1024] [--workers N] [--rounds 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import mmap
import os
import statistics
import tempfile
import time
from pathlib import Path

from deai_data.storage.filecoin import piece_of_file
from deai_data.storage.ipfs import file_blocks, write_car


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(8 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def pack_car(path: Path, out: Path) -> int:
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data, open(out, "wb") as car:
        view = memoryview(data)
        try:
            root, blocks = file_blocks(view)
            written = write_car(car, [root], blocks)
            del blocks
        finally:
            view.release()
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mib", type=int, default=1024)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-filecoin-"))
    source, car = work / "payload.bin", work / "payload.car"
    try:
        with open(source, "wb") as fh:
            for _ in range(args.mib):
                fh.write(os.urandom(1 << 20))
        size = source.stat().st_size
        times: dict[str, list[float]] = {"sha256": [], "car": [], "piece_cid": []}
        for _ in range(args.rounds):
            for name, run in (("sha256", lambda: sha256_file(source)), ("car", lambda: pack_car(source, car)),
                              ("piece_cid", lambda: piece_of_file(source, workers=args.workers))):
                started = time.perf_counter()
                result = run()
                times[name].append(time.perf_counter() - started)
            print("round: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in times.items()), flush=True)
        rate = {k: size / 1e6 / statistics.median(v) for k, v in times.items()}
        piece = result
        doc = {"bytes": size, "workers": args.workers, "cpus": os.cpu_count(), "seconds": times,
               "MB_per_s_median": rate, "car_over_sha256": rate["car"] / rate["sha256"],
               "piece_cid_over_sha256": rate["piece_cid"] / rate["sha256"], "piece_cid": str(piece.cid)}
        print(f"\n{args.mib} MiB, {args.rounds} rounds, medians ({args.workers} commP workers, {os.cpu_count()} CPUs):")
        print(f"  SHA-256 (hashlib, one thread)  {rate['sha256']:8.1f} MB/s")
        print(f"  CAR packing (UnixFS + write)   {rate['car']:8.1f} MB/s   {doc['car_over_sha256']:.2f}x SHA-256")
        print(f"  PieceCID (commP)               {rate['piece_cid']:8.1f} MB/s   "
              f"{doc['piece_cid_over_sha256']:.2f}x SHA-256")
        if args.json:
            Path(args.json).write_text(json.dumps(doc, indent=2))
    finally:
        for path in (source, car):
            path.unlink(missing_ok=True)
        work.rmdir()


if __name__ == "__main__":
    main()
