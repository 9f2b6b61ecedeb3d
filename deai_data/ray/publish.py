"""Publishing on a Ray cluster: tasks pack, seal, hash and store shards in parallel; the driver cuts the rows
into shards, journals finished shards and writes the manifest (`dataset.publish`'s start and finish).

The same rows, key, seal id and settings give the manifest a single process gives (cuts and shard bytes depend on
the rows, not on the blocks); a restarted driver resumes from its journal without storing a shard twice.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import ray

from ..buffers import BufferPool, ReusableBuffers
from ..crypto.keystore import Keystore
from ..crypto.sealing import DEFAULT_SEGMENT_SIZE, ShardSealer
from ..dataset.inheritance import Inheritance
from ..dataset.journal import Journal
from ..dataset.publish import (
    ProgressCounter,
    PublishProgress,
    PublishResult,
    PublishSettings,
    describe_sealed,
    finish_publish,
    flush_stores,
    resolve_previous,
    start_publish,
    still_stored,
    store_sealed,
)
from ..errors import DeaiError, PublishError, SourceError, StorageError
from ..formats.manifest import ShardEntry
from ..formats.shard import DEFAULT_SHARD_SIZE, ShardCutter, encode_shard_into, one_batch
from ..storage.base import Store
from ..storage.registry import open_store
from .blocks import (
    block_row_profile,
    block_table,
    ordered_block_refs,
    parquet_files,
    parquet_row_groups,
    read_row_group,
)

_SIZES_AHEAD = 4  # blocks read (or sized) ahead of the cutting
_READ_CPUS = 0.25  # what a task reading a block, or its row sizes, reserves
# A worker process runs its tasks one after another: they reuse its plaintext and (page-aligned) sealed buffers.
_PLAINTEXT = ReusableBuffers()
_SEALED = BufferPool(1)


@dataclass(frozen=True)
class _Sealing:
    """What every shard task needs: where to store, and how to seal and encode."""

    stores: tuple[Any, ...]  # URIs (opened on the worker) or picklable Store objects
    data_key: bytes = field(repr=False)
    seal_id: bytes
    segment_size: int
    compression: str | None
    schema: pa.Schema
    inheritance: Any = None  # an object reference to the new version's Inheritance (None: a first version)


_INHERITANCE: dict[str, Inheritance] = {}  # per worker process: fetched from the object store once


def _seal_shard(sealing: _Sealing, index: int, finished: dict[str, ShardEntry], spans: list[tuple[int, int]],
                *blocks: Any) -> tuple[ShardEntry, str, str]:
    """A shard task: the rows `spans` of `blocks`, encoded, then inherited from the previous version when it has
    these rows; else, when the journal already has this shard (same salt) and it is still stored, its entry; else
    sealed, hashed and put in every store. -> (entry, salt, "inherited" | "reused" | "sealed")."""
    stores = [open_store(s) for s in sealing.stores]
    pieces = [batch for block, (start, stop) in zip(blocks, spans, strict=True)
              for batch in block_table(block).slice(start, stop - start).to_batches()]
    try:
        rows = one_batch(pieces, sealing.schema)
    except (pa.ArrowException, TypeError, ValueError) as exc:
        raise SourceError(f"shard {index}: the blocks' columns differ from the dataset's schema: {exc}") from None
    plaintext = encode_shard_into(rows, sealing.schema, sealing.compression,
                                  lambda size: _PLAINTEXT.get("plaintext", size))
    sealer = ShardSealer(sealing.data_key, sealing.seal_id, sealing.segment_size)
    buf = _SEALED.acquire(sealer.sealed_size(len(plaintext)))
    try:
        if sealing.inheritance is not None:
            key = sealing.inheritance.hex()
            if key not in _INHERITANCE:
                _INHERITANCE.clear()
                _INHERITANCE[key] = ray.get(sealing.inheritance)
            inherited = _INHERITANCE[key].match(index, sum(b.num_rows for b in rows), plaintext, memoryview(buf))
            if inherited is not None:
                return inherited, "", "inherited"
        return _seal_and_store(sealing, stores, sealer, index, rows, plaintext, memoryview(buf), finished)
    finally:
        _SEALED.release(buf)


def _seal_and_store(sealing: _Sealing, stores: list[Store], sealer: ShardSealer, index: int,
                    rows: list[pa.RecordBatch], plaintext: memoryview, out: memoryview,
                    finished: dict[str, ShardEntry]) -> tuple[ShardEntry, str, str]:
    salt = sealer.salt(index, plaintext, out)
    entry = finished.get(salt.hex())
    if entry is not None and still_stored(stores, entry):
        return entry, salt.hex(), "reused"
    sealed = sealer.seal_into(index, plaintext, salt, out)
    entry = describe_sealed(index, sum(b.num_rows for b in rows), len(plaintext), sealed)
    entry = store_sealed(stores, sealing.seal_id.hex(), entry, sealed)
    flush_stores(stores)
    return entry, salt.hex(), "sealed"


def _result(ref: Any, what: str) -> Any:
    """`ray.get(ref)`, raising the task's own DeaiError, a StorageError for an OSError, else a PublishError."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        cause: Any = exc.cause
        if isinstance(cause, DeaiError):
            raise cause from None
        hint = "fix the error and publish again: finished shards are kept and not redone"
        if isinstance(cause, OSError):
            raise StorageError(f"{what}: {cause}", hint=hint) from None
        raise PublishError(f"{what}: {cause!r}", hint=hint) from None
    except ray.exceptions.RayError as exc:  # a worker or node lost beyond Ray's retries
        raise PublishError(f"{what}: {exc}", hint="publish again: finished shards are kept and not redone") from None


def publish(
    dataset: Any,
    *,
    store: str | Path | Store | Sequence[str | Path | Store],
    name: str,
    description: str = "",
    license: str = "",
    metadata: dict[str, str] | None = None,
    shard_size: int = DEFAULT_SHARD_SIZE,
    segment_size: int = DEFAULT_SEGMENT_SIZE,
    compression: str | None = None,
    previous_manifest: str | None = None,
    previous: Any | None = None,
    author: Any | None = None,
    owner: str | None = None,
    key: bytes | None = None,
    seal_id: bytes | None = None,
    keystore: Keystore | bool | None = None,
    resume: bool = True,
    journal_dir: str | Path | None = None,
    source_id: str = "",
    workers: int | None = None,
    progress: Callable[[PublishProgress], None] | None = None,
) -> PublishResult:
    """Publish the rows of a `ray.data.Dataset` (in its row order), or of Parquet files (a file, a folder of them,
    or a list: read by Ray tasks row group by row group, in the order a single-process publish of the same files
    reads them), from the cluster `ray.init` connected to.

    Arguments as `deai_data.publish`. At most `workers` shard tasks run at a time (default: the cluster's CPUs;
    more than the CPUs share them); they receive the data key and the stores (URIs, or picklable Store objects),
    so every node must reach the stores (a LocalStore path must be shared). `source_id` names the source for
    resuming (default: the settings and stores alone).
    """
    if isinstance(dataset, ray.data.Dataset):
        kind = "ray"
    elif isinstance(dataset, (str, Path)) or (isinstance(dataset, (list, tuple)) and dataset and
                                               all(isinstance(p, (str, Path)) for p in dataset)):
        kind, dataset = "parquet", parquet_files(dataset)
    else:
        raise PublishError(f"deai_data.ray.publish takes a ray.data.Dataset or Parquet paths, not "
                           f"{type(dataset).__name__}",
                           hint="read it with ray.data.read_parquet(...), ray.data.from_arrow(...), ...")
    previous_dataset, previous_manifest = resolve_previous(previous, previous_manifest, keystore)
    settings = PublishSettings(name, description, license, dict(metadata or {}), shard_size, segment_size,
                               compression, previous_manifest, author, owner)
    fingerprint = source_id or ("|".join(dataset) if kind == "parquet" else "")
    job = start_publish(settings, store=store, source_kind=kind, source_fingerprint=fingerprint, key=key,
                        seal_id=seal_id, keystore=keystore, resume=resume, journal_dir=journal_dir)
    targets = [store] if isinstance(store, (str, Path, Store)) else list(store)
    cpus = max(1.0, float(ray.cluster_resources().get("CPU", 1)))
    limit = max(1, workers or int(cpus))
    run = _Run(job.journal, ProgressCounter(progress, job.started), limit)
    # reading and row sizes reserve a quarter CPU each, and the shard tasks leave room for them (no bubble while
    # the next blocks are read); more shard tasks than CPUs share them (one seals while another waits on a store)
    profile_task = ray.remote(num_cpus=_READ_CPUS)(block_row_profile)
    read_task = ray.remote(num_cpus=_READ_CPUS, num_returns=2)(read_row_group)
    seal_task = ray.remote(num_cpus=min(1.0, max(_READ_CPUS, cpus - 2 * _READ_CPUS) / limit),
                           max_retries=3)(_seal_shard)
    sent_stores = tuple(str(t) if isinstance(t, Path) else t for t in targets)

    inheritances: list[Inheritance] = []

    def sealing_for(schema: pa.Schema) -> _Sealing:
        if previous_dataset is not None:
            inheritances.append(Inheritance(previous_dataset, job.data_key, schema, segment_size, compression))
        return _Sealing(sent_stores, job.data_key, job.seal_id, job.settings.segment_size, job.settings.compression,
                        schema, ray.put(inheritances[0]) if inheritances else None)

    try:
        blocks = ((read_task.remote(unit) for unit in parquet_row_groups(dataset)) if kind == "parquet"
                  else ((ref, profile_task.remote(ref)) for ref in ordered_block_refs(dataset)))
        schema = run.cut_and_seal(dataset, blocks, seal_task, job.settings.shard_size, sealing_for)
    except BaseException:
        for ref in run.in_flight:
            ray.cancel(ref)
        raise
    entries = [run.entries[i] for i in range(len(run.entries))]
    return finish_publish(job, schema, entries, sealed=run.counter.sealed, reused=run.counter.reused,
                          lineage=inheritances[0].lineage(entries) if inheritances else None)


class _Run:
    """The driver's loop: row sizes of the next blocks ahead, cuts, shard tasks (at most `limit` in flight)."""

    def __init__(self, journal: Journal, counter: ProgressCounter, limit: int) -> None:
        self.journal = journal
        self.finished: dict[int, dict[str, ShardEntry]] = {}  # what the journal has, by index then salt
        for (index, salt), entry in journal.shards.items():
            self.finished.setdefault(index, {})[salt] = entry
        self.counter = counter
        self.limit = limit
        self.in_flight: dict[Any, int] = {}
        self.entries: dict[int, ShardEntry] = {}

    def cut_and_seal(self, dataset: Any, blocks: Iterator[Any], seal_task: Any, shard_size: int,
                     sealing_for: Callable[[pa.Schema], _Sealing]) -> pa.Schema:
        """`blocks` gives (block, row sizes) object references in row order; at most `_SIZES_AHEAD` are pending."""
        cutter = ShardCutter(shard_size)
        sealing: _Sealing | None = None
        pieces: list[tuple[Any, int, int]] = []
        index = 0
        ahead: deque[tuple[Any, Any]] = deque()
        while True:
            while len(ahead) < _SIZES_AHEAD and (pair := next(blocks, None)) is not None:
                ahead.append(pair)
            if not ahead:
                break
            ref, profile_ref = ahead.popleft()
            sizes, signals, schema = _result(profile_ref, "reading a block's row profile")
            if sealing is None:
                sealing = sealing_for(schema)
            elif not schema.equals(sealing.schema):
                raise SourceError(f"the dataset's blocks have different schemas: {schema} and {sealing.schema}",
                                  hint="cast the dataset to one schema before publishing")
            for start, stop, closes in cutter.cut(np.asarray(sizes), np.asarray(signals)):
                pieces.append((ref, start, stop))
                if closes:
                    self._submit(seal_task, sealing, index, pieces)
                    index, pieces = index + 1, []
        if pieces and sealing is not None:
            self._submit(seal_task, sealing, index, pieces)
        while self.in_flight:
            self._collect()
        if sealing is None:  # no rows at all
            return _empty_schema(dataset)
        return sealing.schema

    def _submit(self, seal_task: Any, sealing: _Sealing, index: int, pieces: list[tuple[Any, int, int]]) -> None:
        while len(self.in_flight) >= self.limit:
            self._collect()
        task = seal_task.remote(sealing, index, self.finished.get(index, {}), [(a, b) for _, a, b in pieces],
                                *[ref for ref, _, _ in pieces])
        self.in_flight[task] = index

    def _collect(self) -> None:
        ready, _ = ray.wait(list(self.in_flight), num_returns=1)
        for ref in ready:
            index = self.in_flight.pop(ref)
            entry, salt, how = _result(ref, f"sealing shard {index}")
            if how == "sealed":
                self.journal.record(entry, salt)
            self.counter.add(entry, reused=how == "reused", inherited=how == "inherited")
            self.entries[index] = entry


def _empty_schema(dataset: Any) -> pa.Schema:
    """The schema of a dataset without rows (Parquet files' own; Ray's schema wraps Arrow's)."""
    if isinstance(dataset, list):
        return pq.read_schema(dataset[0])
    schema = dataset.schema()
    base = getattr(schema, "base_schema", schema)
    return base if isinstance(base, pa.Schema) else pa.schema([])
