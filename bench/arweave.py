"""Arweave upload and download of 64 MiB through arlocal: our client next to arweave-js, same run.

Each upload gets a fresh arlocal (its uploads slow down as its database grows: the second upload into
one database took 2.5x as long as the first, whichever client made it). In each round each client
uploads a distinct random payload (the order alternates between rounds), and each payload is then
downloaded by both clients. Ours sends one chunk at a time like arweave-js (arlocal files chunks in arrival order) and
checks the downloaded bytes against the signed data_root; arweave-js's `GET /{id}` checks nothing.

    .venv/bin/python bench/arweave.py [--mib 64] [--rounds 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from arweave_services import Arlocal, arweave_js  # noqa: E402

from deai_data.storage.arweave import ArweaveStore, Wallet  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mib", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    size = args.mib << 20
    wallet = Wallet.generate()
    work = Path(tempfile.mkdtemp(prefix="bench-arweave-"))
    jwk = work / "wallet.json"
    jwk.write_text(json.dumps(wallet.to_jwk()))  # a throwaway key for a local gateway, deleted below
    times: dict[str, list[float]] = {k: [] for k in ("ours_up", "js_up", "ours_down", "js_down", "ours_down_unchecked")}
    try:
        for round_ in range(args.rounds):
            for who in (("ours", "js") if round_ % 2 == 0 else ("js", "ours")):
                gateway = Arlocal()  # a fresh gateway per upload: arlocal slows down as its database grows
                try:
                    gateway.mint(wallet.address)
                    data = os.urandom(size)
                    if who == "ours":
                        store = ArweaveStore([gateway.url], wallet, chunk_concurrency=1, state_dir=work / "state")
                        started = time.perf_counter()
                        tx_id = store.put(data).removeprefix("ar://")
                        times["ours_up"].append(time.perf_counter() - started)
                    else:
                        (work / "js.bin").write_bytes(data)
                        done = arweave_js("upload", gateway.url, jwk, work / "js.bin", timeout=1200)
                        tx_id = done["id"]
                        times["js_up"].append(done["seconds"])
                    reader = ArweaveStore([gateway.url])
                    unchecked = ArweaveStore([gateway.url], verify_data_root=False)
                    started = time.perf_counter()
                    assert reader.get(f"ar://{tx_id}") == data
                    times["ours_down"].append(time.perf_counter() - started)
                    started = time.perf_counter()
                    unchecked.get(f"ar://{tx_id}")
                    times["ours_down_unchecked"].append(time.perf_counter() - started)
                    got = arweave_js("download", gateway.url, tx_id, work / "out.bin", timeout=1200)
                    assert (work / "out.bin").read_bytes() == data
                    times["js_down"].append(got["seconds"])
                finally:
                    gateway.stop()
            print(f"round {round_ + 1}: " + ", ".join(f"{k} " + " ".join(f"{x:.2f}" for x in v[-2:]) + "s"
                                                     for k, v in times.items()), flush=True)
    finally:
        for name in ("wallet.json", "js.bin", "out.bin"):
            (work / name).unlink(missing_ok=True)

    mb = size / 1e6
    rate = {k: mb / statistics.median(v) for k, v in times.items()}
    result = {"bytes": size, "rounds": args.rounds, "seconds": times, "MB_per_s_median": rate,
              "ratio_upload_ours_over_js": rate["ours_up"] / rate["js_up"],
              "ratio_download_ours_over_js": rate["ours_down"] / rate["js_down"]}
    print(f"\n{args.mib} MiB through arlocal, {args.rounds} rounds, medians:")
    print(f"  upload    ours {rate['ours_up']:7.1f} MB/s   arweave-js {rate['js_up']:7.1f} MB/s   "
          f"ratio {result['ratio_upload_ours_over_js']:.2f}x")
    print(f"  download  ours {rate['ours_down']:7.1f} MB/s   arweave-js {rate['js_down']:7.1f} MB/s   "
          f"ratio {result['ratio_download_ours_over_js']:.2f}x  "
          f"(ours without the data_root check {rate['ours_down_unchecked']:.1f} MB/s)")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
