"""`StreamingDataset`: a purchased dataset streamed into a PyTorch DataLoader, every sample from
shards whose SHA-256 and AEAD tags checked out, in a deterministic order that survives a change of
worker count, with exact mid-epoch resume through `StreamingDataLoader.state_dict()`.
"""

from __future__ import annotations

import functools
import os
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import pyarrow as pa
import torch
from torch.utils.data import DataLoader, IterableDataset, default_convert, get_worker_info

from ..crypto.keystore import Keystore
from ..dataset.reader import VERIFY_MODES, Dataset, open_dataset
from ..errors import UsageError
from ..loader.plan import EpochPlan, PlanConfig
from ..storage.cache import ShardCache
from . import shared
from .blobs import Blobs, Buffer, collate
from .travel import parcel

STATE_VERSION = 1
_BUNDLE_BYTES, _BUNDLE_MAX = 4 << 20, 16  # what a worker's message to the main process holds at most
_MAX_RESUMED = 16  # changes of world size a state can record


def to_torch(table: pa.Table) -> dict[str, Any]:
    """Columns of a batch as tensors where the type allows (numbers, fixed-shape tensors), binary columns as
    `Blobs` (views, no copy), else lists. Tensors own writable memory (Arrow's buffers are read-only)."""
    out: dict[str, Any] = {}
    for name, column in zip(table.column_names, table.columns, strict=True):
        typ = column.type
        if isinstance(typ, pa.FixedShapeTensorType):
            out[name] = torch.from_numpy(_writable(column.combine_chunks().to_numpy_ndarray()))
        elif (pa.types.is_integer(typ) or pa.types.is_floating(typ) or pa.types.is_boolean(typ)) \
                and column.null_count == 0:
            out[name] = torch.from_numpy(_writable(column.to_numpy()))
        elif _viewable(column):
            out[name] = _blobs([_Layout.of(column)], np.zeros(len(column), np.int64), np.arange(len(column)))
        else:
            out[name] = column.to_pylist()
    return out


def _viewable(column: pa.ChunkedArray) -> bool:
    """A binary column without nulls: its values can be handed out as views of the shard's buffer."""
    return (pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type)) and column.null_count == 0


_Source = tuple[Buffer, int, np.ndarray]  # a binary array's values: (buffer, where they start in it, offsets)


def _source(array: pa.Array, backing: shared.SharedBuffer | None = None) -> _Source:
    """Where the values of a binary array lie: in `backing` (the shard's plaintext in shared memory, when the
    array's data lies in it) or in the array's own data buffer."""
    width = np.int64 if pa.types.is_large_binary(array.type) else np.int32
    offsets = np.frombuffer(array.buffers()[1], width)[array.offset:array.offset + len(array) + 1]
    data = array.buffers()[2]
    if data is None:
        return memoryview(b""), 0, offsets
    if backing is not None:
        start = data.address - backing.data().ctypes.data
        if 0 <= start <= backing.size - data.size:
            return backing, start, offsets
    # Arrow exports its buffers as signed chars ("b"), which compare unequal to bytes: view them as "B".
    return memoryview(data).cast("B"), 0, offsets


@dataclass(frozen=True)
class _Layout:
    """Where every value of a binary column of a shard lies: row r is buffers[which[r]][starts[r]:ends[r]]."""

    buffers: list[Buffer]
    which: np.ndarray
    starts: np.ndarray
    ends: np.ndarray

    @classmethod
    def of(cls, column: pa.ChunkedArray, backing: shared.SharedBuffer | None = None) -> _Layout:
        buffers: list[Buffer] = []
        which, starts, ends = [], [], []
        for chunk in column.chunks:
            buffer, base, offsets = _source(chunk, backing)
            if not buffers or buffer is not buffers[-1]:
                buffers.append(buffer)
            which.append(np.full(len(chunk), len(buffers) - 1, np.int64))
            starts.append(offsets[:-1] + base)
            ends.append(offsets[1:] + base)
        if not buffers:
            return cls([], np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64))
        return cls(buffers, np.concatenate(which), np.concatenate(starts).astype(np.int64),
                   np.concatenate(ends).astype(np.int64))


def _blobs(layouts: list[_Layout], which: np.ndarray, rows: np.ndarray) -> Blobs:
    """Blobs whose item i is row rows[i] of the column laid out by layouts[which[i]], viewed where it lies."""
    if len(layouts) == 1:
        layout = layouts[0]
        return Blobs(layout.buffers, layout.which[rows], layout.starts[rows], layout.ends[rows])
    buffers: list[Buffer] = []
    source = np.empty(len(rows), np.int64)
    starts, ends = np.empty(len(rows), np.int64), np.empty(len(rows), np.int64)
    for i, layout in enumerate(layouts):
        mine = which == i
        picked = rows[mine]
        source[mine] = layout.which[picked] + len(buffers)
        starts[mine], ends[mine] = layout.starts[picked], layout.ends[picked]
        buffers.extend(layout.buffers)
    return Blobs(buffers, source, starts, ends)


def _large_values(column: pa.ChunkedArray, threshold: int = 64 << 10) -> bool:
    """A single-chunk string column without nulls whose values average `threshold` bytes or more:
    cheaper to copy value by value than to `take` (a copy) and then convert (a second one)."""
    if not pa.types.is_string(column.type):
        return False
    if column.num_chunks != 1 or column.null_count or not len(column):
        return False
    array = column.chunk(0)
    return array.buffers()[2].size >= threshold * len(array)


def _as_is(batch: Any) -> Any:
    """The collate function of batched mode: the dataset's batches are already tensors and lists, and
    torch's default conversion would walk every value of every batch to find that out."""
    return batch


def _writable(array: np.ndarray) -> np.ndarray:
    return array if array.flags.writeable else array.copy()


def decode_image(data: bytes) -> Any:
    """bytes -> a PIL image (needs Pillow); use in a `transform`."""
    from io import BytesIO

    from PIL import Image

    return Image.open(BytesIO(data))


def _distributed() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size(), torch.distributed.get_rank()
    return int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("RANK", 0))


class StreamingDataset(IterableDataset):
    """Stream a published dataset: fetched ahead on threads, verified, decrypted, in plan order.

    manifest_uri: a manifest URI, or with `market` a dataset id (int) or a URI registered there; with a
        market (a `deai_data.Market`) the manifest is checked against the hash registered on-chain and
        the key comes from the market's keystore unless given.

    batch_size: the DataLoader's batch size (sample mode), or the size of the batches this dataset
        yields itself with `batched=True` (then use `DataLoader(batch_size=None)`).
    batched: yield whole batches as dicts of tensors/lists: no per-sample Python objects.
    shuffle, seed, shuffle_window (shards mixed together), lanes: the order; see
        `deai_data.loader.plan`. Workers counts dividing `lanes` read disjoint shards.
    tail: "none" (every sample once; ranks may differ by a batch), "drop" or "pad" (equal ranks).
    prefetch: shards loaded ahead beyond those in use; threads: fetch/decrypt threads per worker;
        max_shards: decrypted shards held per worker (default: lanes per worker x (shuffle_window + 1)
        + prefetch). Memory per worker is about max_shards x the shard size.
    cache_dir, cache_limit: keep fetched ciphertext on local disk (LRU, bytes).
    range_parts: fetch each remote shard as this many byte ranges at once (see open_dataset).
    verify: "full" (every shard's digest against the manifest: BLAKE3 in a version-2 manifest, SHA-256 in
        a version-1 one; and AEAD tags), "sha256" (the hash the content root commits to) or "aead" (tags
        only: still stops anyone without the key; see Dataset.read_shard).
    """

    def __init__(
        self,
        manifest_uri: str | Path | int,
        *,
        market: Any = None,
        key: bytes | str | None = None,
        keystore: Keystore | None = None,
        manifest_hash: str | None = None,
        mirrors: Sequence[str] = (),
        batch_size: int = 1,
        batched: bool = False,
        shuffle: bool = True,
        seed: int = 0,
        shuffle_window: int = 2,
        lanes: int = 2,
        tail: str = "none",
        columns: Sequence[str] | None = None,
        transform: Callable[[dict[str, Any]], Any] | None = None,
        batch_transform: Callable[[dict[str, Any]], Any] | None = None,
        prefetch: int = 2,
        threads: int = 2,
        max_shards: int | None = None,
        verify: str = "full",
        cache_dir: str | Path | None = None,
        cache_limit: int | None = None,
        range_parts: int = 1,
        world_size: int | None = None,
        rank: int | None = None,
    ) -> None:
        super().__init__()
        if verify not in VERIFY_MODES:
            raise UsageError(f"verify must be one of {', '.join(VERIFY_MODES)}")
        self.config = PlanConfig(batch_size=batch_size, seed=seed, shuffle=shuffle, window=shuffle_window,
                                 lanes=lanes, tail=tail)
        cache = ShardCache(cache_dir, cache_limit) if cache_dir is not None else None
        if market is not None:  # a deai_data.Market: the manifest is checked against the chain
            manifest, uri = market.checked_manifest(manifest_uri if isinstance(manifest_uri, int) else
                                                    str(manifest_uri))
            self.source: Dataset = Dataset(manifest, uri, key=key, keystore=keystore or market.keystore,
                                           mirrors=mirrors, cache=cache, range_parts=range_parts)
        elif isinstance(manifest_uri, int):
            raise UsageError("a dataset token id needs market=: pass the Market that sells it",
                             hint="or pass the manifest's URI instead")
        else:
            self.source = open_dataset(manifest_uri, key=key, keystore=keystore, manifest_hash=manifest_hash,
                                       mirrors=mirrors, cache=cache, range_parts=range_parts)
        self.source.unlock()  # the key is checked now, in the main process; workers get only the key
        self.records = [s.records for s in self.source.manifest.shards]
        self.batched = batched
        self.columns = list(columns) if columns is not None else None
        self.transform = transform
        self.batch_transform = batch_transform
        self.prefetch = max(1, prefetch)
        self.threads = max(1, threads)
        self.max_shards = max_shards
        self.verify = verify
        self.world_size, self.rank = world_size, rank
        # Where the next iteration starts: epoch, batches to skip, then (world size, batches) before each
        # change of world. In shared memory, so that persistent DataLoader workers follow the main process.
        self._position = torch.zeros(3 + 2 * _MAX_RESUMED, dtype=torch.int64).share_memory_()
        self.bundling: _Bundling | None = None  # set in a StreamingDataLoader's workers only

    def __repr__(self) -> str:
        return f"StreamingDataset({self.source.label}, epoch={self.epoch}, {self.config})"

    @property
    def epoch(self) -> int:
        return int(self._position[0])

    @property
    def skip(self) -> int:
        return int(self._position[1])

    @property
    def resumed(self) -> list[tuple[int, int]]:
        pairs = self._position[3:3 + 2 * int(self._position[2])].tolist()
        return list(zip(pairs[::2], pairs[1::2], strict=True))

    def _move(self, epoch: int, skip: int, resumed: Sequence[tuple[int, int]]) -> None:
        if len(resumed) > _MAX_RESUMED:
            raise UsageError(f"cannot resume: the state changed world size more than {_MAX_RESUMED} times")
        flat = [v for pair in resumed for v in pair]
        self._position[:3 + len(flat)] = torch.tensor([epoch, skip, len(resumed), *flat], dtype=torch.int64)

    def _world(self) -> tuple[int, int]:
        world, rank = _distributed()
        return (self.world_size or world, self.rank if self.rank is not None else rank)

    def plan(self, epoch: int | None = None) -> EpochPlan:
        world, rank = self._world()
        return EpochPlan(self.records, self.config, self.epoch if epoch is None else epoch,
                         world_size=world, rank=rank, resumed=self.resumed if epoch in (None, self.epoch) else ())

    def __len__(self) -> int:
        """Samples this rank yields in a full epoch."""
        return self.plan().rank_size

    # ---- order and resume -----------------------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        self._move(epoch, 0, [])

    def state_dict(self, batches_consumed: int) -> dict[str, Any]:
        """A small JSON-able state: resuming from it yields exactly the batches after the first
        `batches_consumed` of this epoch (on every rank, with any number of workers). Resumed with
        another world size, the new ranks share what the old ranks left, each old rank having taken
        `batches_consumed` batches (ranks step in lockstep)."""
        c = self.config
        return {"version": STATE_VERSION, "manifest_hash": self.source.manifest_hash, "epoch": self.epoch,
                "batches": batches_consumed, "world_size": self._world()[0], "resumed": [list(r) for r in self.resumed],
                "batch_size": c.batch_size, "seed": c.seed, "shuffle": c.shuffle, "shuffle_window": c.window,
                "lanes": c.lanes, "tail": c.tail}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        mine = self.state_dict(0)
        for field in ("version", "manifest_hash", "batch_size", "seed", "shuffle", "shuffle_window", "lanes",
                      "tail"):
            if state.get(field) != mine[field]:
                raise UsageError(f"cannot resume: the state's {field} is {state.get(field)!r}, this dataset's "
                                 f"is {mine[field]!r} (the order would differ)")
        resumed = [(int(w), int(k)) for w, k in state.get("resumed", [])]
        if int(state["world_size"]) == mine["world_size"]:
            self._move(int(state["epoch"]), int(state["batches"]), resumed)
        else:  # another world: the new ranks share what the old ones left
            self._move(int(state["epoch"]), 0, [*resumed, (int(state["world_size"]), int(state["batches"]))])

    # ---- iteration ------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Any]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        plan = self.plan()
        lanes_here = -(-self.config.lanes // workers)
        budget = self.max_shards or lanes_here * (self.config.window + 1) + self.prefetch
        with _ShardReader(self.source, budget, self.threads, self.verify) as reader:
            batches = ((j, reader.gather(shards, rows, self.columns))
                       for j, shards, rows in reader.ahead(plan.batches(worker, workers, self.skip)))
            if self.bundling is not None:
                yield from self._bundles(batches, self.bundling)
                return
            for _, batch in batches:
                yield from self._emit(batch)

    def _bundles(self, batches: Iterator[tuple[int, dict[str, Any]]], bundling: _Bundling) -> Iterator[Bundle]:
        """In a StreamingDataLoader's worker: batches (collated here in per-sample mode), numbered, in bundles."""
        bundle = Bundle()
        for j, batch in batches:
            if self.batched:
                bundle.extend((j, bundling.collate(out)) for out in self._emit(batch))
            else:
                samples = list(self._emit(batch))
                if bundling.drop_last and len(samples) < self.config.batch_size:
                    continue
                bundle.append((j, parcel(bundling.collate(samples))))
            if len(bundle) >= bundling.size:
                yield bundle
                bundle = Bundle()
        if bundle:
            yield bundle

    def _emit(self, batch: dict[str, Any]) -> Iterator[Any]:
        if self.batched:
            out = self.batch_transform(batch) if self.batch_transform else batch
            yield parcel(out) if get_worker_info() is not None else out
            return
        names = list(batch)
        values = [v.numpy() if isinstance(v, torch.Tensor) else v for v in batch.values()]
        for i in range(len(values[0]) if values else 0):
            sample = {name: column[i] for name, column in zip(names, values, strict=True)}
            yield self.transform(sample) if self.transform else sample


class _ShardReader:
    """Loads shards on threads ahead of need and keeps exactly those the coming batches use.

    It looks ahead over the coming batches until they name `budget` distinct shards: those are
    loaded (in order of first use, `threads` at a time) and everything else is dropped, so memory
    stays at about `budget` decrypted shards.
    """

    def __init__(self, source: Dataset, budget: int, threads: int, verify: str) -> None:
        self.source = source
        self.verify = verify
        self.budget = max(1, budget)
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="deai-load")
        # a shard's table, and the shared buffer holding its plaintext when in a DataLoader worker
        self.loaded: dict[int, Future[tuple[pa.Table, shared.SharedBuffer | None]]] = {}
        self.shared = get_worker_info() is not None
        self.layouts: dict[tuple[int, str], _Layout] = {}  # (shard, binary column) -> where its values lie

    def __enter__(self) -> _ShardReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        for shard in list(self.loaded):
            self._drop(shard)

    def _load(self, shard: int) -> tuple[pa.Table, shared.SharedBuffer | None]:
        # In a worker the plaintext goes to shared memory: batches viewing it reach the main process uncopied.
        backing: list[shared.SharedBuffer] = []

        def allocate(size: int) -> memoryview:
            backing.append(shared.arena().take(size))
            return backing[0].data(size).data

        try:
            table = self.source.read_shard(shard, verify=self.verify, allocate=allocate if self.shared else None)
        except BaseException:
            for buffer in backing:
                shared.arena().give_back(buffer)
            raise
        # One chunk per column, so that taking a batch's rows costs O(batch), not O(shard); binary columns
        # stay as they are (their values are viewed where they lie, whatever the chunk).
        if any(c.num_chunks > 1 and not _viewable(c) for c in table.columns):
            table = pa.table({n: c if _viewable(c) else c.combine_chunks()
                              for n, c in zip(table.column_names, table.columns, strict=True)})
        return table, (backing[0] if backing else None)

    def _drop(self, shard: int) -> None:
        """Forget a shard; its shared buffer (if any) goes back to the arena once its load has finished."""
        for key in [k for k in self.layouts if k[0] == shard]:
            del self.layouts[key]
        future = self.loaded.pop(shard)
        if not future.cancel():
            future.add_done_callback(_give_back)

    def _want(self, shard: int) -> None:
        if shard not in self.loaded:
            self.loaded[shard] = self.pool.submit(self._load, shard)

    def ahead(self, batches: Iterator[tuple[int, np.ndarray, np.ndarray]]
              ) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """Pass the batches through, keeping the shards of the look-ahead loaded or loading."""
        window: deque[tuple[int, np.ndarray, np.ndarray, list[int]]] = deque()
        counts: Counter[int] = Counter()  # shard -> batches in the look-ahead that use it
        pending: Iterator[tuple[int, np.ndarray, np.ndarray]] | None = batches
        while True:
            while pending is not None and (not window or len(counts) < self.budget):
                nxt = next(pending, None)
                if nxt is None:
                    pending = None
                    break
                used = np.unique(nxt[1]).tolist()
                window.append((nxt[0], nxt[1], nxt[2], used))
                for shard in used:
                    if counts[shard] == 0:
                        self._want(shard)
                    counts[shard] += 1
            if not window:
                return
            j, shards, rows, used = window.popleft()
            yield j, shards, rows
            for shard in used:
                counts[shard] -= 1
                if counts[shard] == 0:
                    del counts[shard]
                    self._drop(shard)

    def gather(self, shards: np.ndarray, rows: np.ndarray, columns: list[str] | None) -> dict[str, Any]:
        """The columns of one batch, in batch order, from the loaded shards: numbers and tensors as torch
        tensors (see `to_torch`), binary values as `Blobs` viewing the shards (no copy), large strings copied
        once straight out of the shards, the rest taken."""
        unique = np.unique(shards).tolist()
        tables = {s: self._table(s)[0] for s in unique}
        names = columns if columns is not None else tables[unique[0]].column_names
        views = [n for n in names if all(_viewable(t.column(n)) for t in tables.values())]
        direct = [n for n in names if n not in views and all(_large_values(t.column(n)) for t in tables.values())]
        taken = [n for n in names if n not in views and n not in direct]
        out = to_torch(self._take(tables, shards, rows, taken)) if taken else {}
        if views:
            which = np.searchsorted(np.asarray(unique), shards)  # position of each row's shard in `tables`
            for name in views:
                out[name] = _blobs([self._layout(s, name) for s in unique], which, rows)
        for name in direct:
            out[name] = self._values(tables, shards, rows, name)
        return {name: out[name] for name in names}

    @staticmethod
    def _take(tables: dict[int, pa.Table], shards: np.ndarray, rows: np.ndarray, columns: list[str]) -> pa.Table:
        if len(tables) == 1:
            return next(iter(tables.values())).select(columns).take(pa.array(rows))
        order = np.argsort(shards, kind="stable")  # the batch's rows grouped by shard, in shard order
        by_shard = np.split(rows[order], np.flatnonzero(np.diff(shards[order])) + 1)
        parts = [tables[s].select(columns).take(pa.array(part)) for s, part in zip(tables, by_shard, strict=True)]
        inverse = np.empty_like(order)
        inverse[order] = np.arange(len(order))
        return pa.concat_tables(parts).take(pa.array(inverse))

    @staticmethod
    def _values(tables: dict[int, pa.Table], shards: np.ndarray, rows: np.ndarray, name: str) -> list[str]:
        views = {s: _source(table.column(name).chunk(0)) for s, table in tables.items()}  # no backing: own data
        out = []
        for s, r in zip(shards.tolist(), rows.tolist(), strict=True):
            data, _, offsets = views[s]
            out.append(str(cast(memoryview, data)[offsets[r]:offsets[r + 1]], "utf-8"))
        return out

    def _table(self, shard: int) -> tuple[pa.Table, shared.SharedBuffer | None]:
        self._want(shard)
        return self.loaded[shard].result()

    def _layout(self, shard: int, name: str) -> _Layout:
        layout = self.layouts.get((shard, name))
        if layout is None:
            table, backing = self._table(shard)
            layout = self.layouts[shard, name] = _Layout.of(table.column(name), backing)
        return layout


def _give_back(loaded: Future[tuple[pa.Table, shared.SharedBuffer | None]]) -> None:
    if not loaded.cancelled() and loaded.exception() is None:
        backing = loaded.result()[1]
        if backing is not None:
            shared.arena().give_back(backing)


class Bundle(list):
    """Batches a worker sends together, each with its number in the epoch: one message through the worker's
    queue for several batches (a message costs about 0.4 ms here, more than a batch of 32 small samples takes
    to load). StreamingDataLoader puts them back in order."""


@dataclass(frozen=True)
class _Bundling:
    size: int  # batches per bundle
    collate: Callable[[Any], Any]  # the loader's collate_fn, run in the worker (on the samples in sample mode)
    drop_last: bool


def _bundle_size(dataset: StreamingDataset, bundle_bytes: int) -> int:
    """Batches per bundle: as many as hold about `bundle_bytes` of values (at least 1, at most 16)."""
    shards = dataset.source.manifest.shards
    per_batch = sum(s.plaintext_size for s in shards) / max(1, sum(s.records for s in shards)) \
        * dataset.config.batch_size
    return int(max(1, min(_BUNDLE_MAX, bundle_bytes // max(1.0, per_batch))))


def _start_worker(bundling: _Bundling, user_init: Callable[[int], None] | None, worker: int) -> None:
    """A StreamingDataLoader worker's init: its copy of the dataset sends bundles; then the user's init."""
    info = get_worker_info()
    if info is not None and isinstance(info.dataset, StreamingDataset):
        info.dataset.bundling = bundling
    if user_init is not None:
        user_init(worker)


class StreamingDataLoader(DataLoader):
    """A DataLoader that counts the batches the training loop has taken, for `state_dict()`;
    at the end of an epoch the dataset moves to the next epoch.

    With workers, each sends its batches in bundles of about `bundle_bytes` of values (1 to 16 batches per
    message, collated in the worker) and the loader yields them in the order one process would."""

    def __init__(self, dataset: StreamingDataset, *, bundle_bytes: int = _BUNDLE_BYTES, **kwargs: Any) -> None:
        expected = None if dataset.batched else dataset.config.batch_size
        kwargs.setdefault("batch_size", expected)
        if dataset.batched and dataset.batch_transform is None:
            kwargs.setdefault("collate_fn", _as_is)
        elif not dataset.batched:
            kwargs.setdefault("collate_fn", collate)  # binary values as Blobs: shared memory from workers
        if kwargs["batch_size"] != expected:
            raise UsageError(f"DataLoader batch_size must be {expected} for this dataset "
                             f"(batched={dataset.batched}, batch_size={dataset.config.batch_size})")
        self.worker_batching: _Bundling | None = None  # per-sample mode with workers: they collate
        if kwargs.get("num_workers", 0) > 0:  # workers send bundles of batches, collated where they are made
            bundling = _Bundling(_bundle_size(dataset, bundle_bytes), kwargs.get("collate_fn") or default_convert,
                                 bool(kwargs.get("drop_last", False)))
            kwargs["worker_init_fn"] = functools.partial(_start_worker, bundling, kwargs.get("worker_init_fn"))
            kwargs["collate_fn"] = _as_is
            if not dataset.batched:
                self.worker_batching = bundling
                kwargs.update(batch_size=None, drop_last=False)
        super().__init__(dataset, **kwargs)
        self.batches_consumed = dataset.skip

    def __len__(self) -> int:
        if self.worker_batching is None:
            return super().__len__()
        samples, size = len(self.streaming), self.streaming.config.batch_size
        return samples // size if self.worker_batching.drop_last else -(-samples // size)

    @property
    def streaming(self) -> StreamingDataset:
        return self.dataset  # type: ignore[return-value]

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        dataset = self.streaming
        self.batches_consumed = dataset.skip
        waiting: dict[int, Any] = {}  # batches of bundles that arrived before their turn
        for item in super().__iter__():
            if type(item) is not Bundle:
                self.batches_consumed += 1
                yield item
                continue
            waiting.update(item)
            while self.batches_consumed in waiting:
                batch = waiting.pop(self.batches_consumed)
                self.batches_consumed += 1
                yield batch
        for j in sorted(waiting):
            self.batches_consumed += 1
            yield waiting.pop(j)
        dataset.set_epoch(dataset.epoch + 1)
        self.batches_consumed = 0
        if not self.persistent_workers:
            shared.forget_ended_workers()

    def state_dict(self) -> dict[str, Any]:
        return self.streaming.state_dict(self.batches_consumed)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.streaming.load_state_dict(state)
        self.batches_consumed = self.streaming.skip
