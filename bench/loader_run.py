"""One loader, one configuration, in a fresh process: the child of bench/loader.py (not a test).

    PYTHON bench/loader_run.py DIR LOADER WORKERS   -> prints one JSON object

DIR holds what bench/loader.py prepared (meta.json, digests.npy, and each loader's data). The first epoch
is a warm-up that checks every sample: each id exactly once and each value's BLAKE2b equal to the
digest of the published bytes. Then two timed epochs, each checking that every id came exactly once;
the result is their median. Loaders with workers keep them between epochs (persistent_workers), as
their best settings would.
"""

from __future__ import annotations

import hashlib
import json
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

BATCH = 32
Batch = tuple[list[int], Iterable[Any]]  # ids and values of one batch


def plain_loop(root: Path, meta: dict[str, Any], workers: int) -> Iterable[Batch]:
    paths = sorted((root / "files").iterdir())
    for start in range(0, len(paths), BATCH):
        part = paths[start:start + BATCH]
        values = []
        for path in part:
            with open(path, "rb") as fh:
                values.append(fh.read())
        yield [int(p.stem) for p in part], values


def deai(root: Path, meta: dict[str, Any], workers: int, *, batched: bool, verify: str = "full",
         http: bool = False) -> Callable[[], Iterator[Batch]]:
    from deai_data.torch import StreamingDataLoader, StreamingDataset

    uri, mirrors = meta["manifest_uri"], []
    if http:
        uri, mirrors = meta["http_manifest_uri"], [meta["http_base"]]
    dataset = StreamingDataset(uri, key=bytes.fromhex(meta["key"]), batch_size=BATCH, batched=batched, seed=1,
                               verify=verify, mirrors=mirrors)
    if http:  # every shard through the HTTP mirror
        source = dataset.source
        source.manifest = source.manifest.with_locators({i: () for i in range(source.num_shards)})
    loader = StreamingDataLoader(dataset, num_workers=workers, persistent_workers=workers > 0)
    return lambda: ((batch["id"].tolist(), batch["data"]) for batch in loader)


def mosaic(root: Path, meta: dict[str, Any], workers: int) -> Callable[[], Iterator[Batch]]:
    from streaming import StreamingDataset
    from streaming.base.util import clean_stale_shared_memory
    from torch.utils.data import DataLoader

    clean_stale_shared_memory()
    dataset = StreamingDataset(local=str(root / "mds"), batch_size=BATCH, shuffle=True, shuffle_seed=1)
    loader = DataLoader(dataset, batch_size=BATCH, num_workers=workers, persistent_workers=workers > 0)
    return lambda: ((batch["id"].tolist(), batch["data"]) for batch in loader)


def webdataset(root: Path, meta: dict[str, Any], workers: int) -> Callable[[], Iterator[Batch]]:
    import webdataset as wds
    from torch.utils.data import DataLoader

    urls = sorted(str(p) for p in (root / "wds").glob("*.tar"))
    dataset = (wds.WebDataset(urls, shardshuffle=True, empty_check=False).shuffle(1000)
               .to_tuple("__key__", "data").batched(BATCH))
    loader = DataLoader(dataset, batch_size=None, num_workers=workers, persistent_workers=workers > 0)
    return lambda: (([int(k) for k in keys], values) for keys, values in loader)


LOADERS: dict[str, Callable[..., Any]] = {
    "plain file loop": lambda root, meta, workers: lambda: plain_loop(root, meta, workers),
    "deai-data batched": lambda root, meta, workers: deai(root, meta, workers, batched=True),
    "deai-data per sample": lambda root, meta, workers: deai(root, meta, workers, batched=False),
    "deai-data batched, verify=sha256": lambda root, meta, workers: deai(root, meta, workers, batched=True,
                                                                         verify="sha256"),
    "deai-data batched, verify=aead": lambda root, meta, workers: deai(root, meta, workers, batched=True,
                                                                       verify="aead"),
    "deai-data batched, loopback HTTP": lambda root, meta, workers: deai(root, meta, workers, batched=True,
                                                                         http=True),
    "MosaicML Streaming (MDS)": mosaic,
    "WebDataset (tar)": webdataset,
}


def epoch(batches: Iterable[Batch], count: int, digests: np.ndarray | None) -> float:
    """One epoch; every id exactly once (and, given digests, every value's bytes as published)."""
    seen = np.zeros(count, np.int64)
    started = time.perf_counter()
    for ids, values in batches:
        seen[ids] += 1
        if digests is not None:
            for i, value in zip(ids, values, strict=True):
                assert hashlib.blake2b(value, digest_size=16).digest() == digests[i].tobytes(), f"sample {i} differs"
    seconds = time.perf_counter() - started
    missing, repeated = int((seen == 0).sum()), int((seen > 1).sum())
    assert missing == repeated == 0, f"ids not exactly once: {missing} missing, {repeated} repeated"
    return seconds


def main() -> None:
    root, name, workers = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    torch.set_num_threads(1)
    meta = json.loads((root / "meta.json").read_text())
    digests = np.load(root / "digests.npy")
    count = meta["count"]
    run = LOADERS[name](root, meta, workers)
    epoch(run(), count, digests)  # warm-up: page cache, thread pools, workers; and every byte checked
    seconds = statistics.median(epoch(run(), count, None) for _ in range(2))
    print(json.dumps({"loader": name, "workers": workers, "samples_per_s": count / seconds,
                      "gb_per_s": count * meta["size"] / seconds / 1e9, "seconds": seconds}))


if __name__ == "__main__":
    main()
