"""The peers' side of bench/loader.py, run in an environment with mosaicml-streaming and webdataset.

    PYTHON bench/loader_peers.py DIR COUNT SIZE   -> prints one JSON list of result rows

Regenerates the same samples as bench/loader.py (same seed), writes MosaicML MDS shards and
WebDataset tar shards (64 MiB, members stamped with mtime 0: see docs/benchmarks.md), and times one
epoch of each after a warm-up epoch, batch 32, DataLoader workers 0 and 2, shuffling on.
"""

from __future__ import annotations

import io
import json
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

BATCH = 32
SHARD = 64 << 20


def samples(count: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(count, size), dtype=np.uint8), rng.integers(0, 1000, size=count)


def write_tars(root: Path, data: np.ndarray, labels: np.ndarray) -> list[str]:
    """WebDataset shards written with tarfile directly, mtime 0 (ShardWriter stamps fractional times)."""
    root.mkdir(parents=True)
    urls, tar, size, n = [], None, 0, 0
    for i in range(len(data)):
        if tar is None or size >= SHARD:
            if tar is not None:
                tar.close()
            urls.append(str(root / f"shard-{n:06d}.tar"))
            tar, size, n = tarfile.open(urls[-1], "w"), 0, n + 1  # noqa: SIM115 - closed at the next shard
        for ext, payload in (("data", data[i].tobytes()), ("cls", str(int(labels[i])).encode())):
            info = tarfile.TarInfo(f"{i:07d}.{ext}")
            info.size, info.mtime = len(payload), 0
            tar.addfile(info, io.BytesIO(payload))
            size += len(payload) + 1024
    tar.close()
    return urls


def timed(run, nbytes: int, items: int) -> dict[str, float]:
    run()
    started = time.perf_counter()
    got = run()
    seconds = time.perf_counter() - started
    assert got == items, (got, items)
    return {"samples_per_s": items / seconds, "gb_per_s": nbytes / seconds / 1e9, "seconds": seconds}


def main() -> None:
    root, count, size = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    data, labels = samples(count, size)
    rows = []

    from streaming import MDSWriter, StreamingDataset
    from streaming.base.util import clean_stale_shared_memory

    with MDSWriter(out=str(root / "mds"), columns={"data": "bytes", "label": "int"}, size_limit=SHARD) as out:
        for i in range(count):
            out.write({"data": data[i].tobytes(), "label": int(labels[i])})

    def mosaic(workers: int) -> int:
        clean_stale_shared_memory()
        dataset = StreamingDataset(local=str(root / "mds"), batch_size=BATCH, shuffle=True, shuffle_seed=1)
        total = sum(len(b["label"]) for b in DataLoader(dataset, batch_size=BATCH, num_workers=workers))
        del dataset
        return total

    import webdataset as wds

    urls = write_tars(root / "wds", data, labels)

    def webdataset(workers: int) -> int:
        dataset = (wds.WebDataset(urls, shardshuffle=True, empty_check=False).shuffle(1000)
                   .to_tuple("data", "cls").batched(BATCH))
        return sum(len(b[1]) for b in DataLoader(dataset, batch_size=None, num_workers=workers))

    for workers in (0, 2):
        rows.append({"loader": "MosaicML Streaming (MDS)", "workers": workers,
                     **timed(lambda w=workers: mosaic(w), data.nbytes, count)})
        rows.append({"loader": "WebDataset (tar)", "workers": workers,
                     **timed(lambda w=workers: webdataset(w), data.nbytes, count)})
    print(json.dumps(rows))


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
