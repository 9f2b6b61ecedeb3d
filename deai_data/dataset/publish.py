"""Publishing: source -> Arrow shards -> sealed -> stored -> manifest stored -> key in the keystore.

Shards are sealed and stored on worker threads with a bound on shards in flight (bounded memory);
the journal makes an interrupted publish resumable without re-sealing finished shards; a new version
inherits the previous version's unchanged shards instead of sealing and storing them again.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import blake3
import pyarrow as pa

from ..buffers import BufferPool, ReusableBuffers
from ..crypto.authorship import sign_authorship
from ..crypto.keys import check_key, key_commitment, new_data_key, new_seal_id
from ..crypto.keystore import DATA_KEY, PENDING_DATA_KEY, Keystore
from ..crypto.sealing import DEFAULT_SEGMENT_SIZE, ShardSealer, check_segment_size
from ..errors import LimitError, ManifestError, PublishError, StorageError
from ..formats import canonical
from ..formats.license import canonical_license
from ..formats.manifest import LINEAGE_VERSION, VERSION, Lineage, Manifest, ShardEntry, is_hex_digest
from ..formats.merkle import merkle_root
from ..formats.shard import COMPRESSIONS, DEFAULT_SHARD_SIZE, cut_into_shards, encode_shard_into, one_batch
from ..home import deai_home
from ..storage.base import Batching, Located, Store
from ..storage.registry import open_store
from .inheritance import Inheritance
from .journal import Journal, JournalHeader
from .reader import Dataset, open_dataset
from .sources import read_source


@dataclass(frozen=True)
class PublishProgress:
    """Passed to the `progress` callback after every shard."""

    shards: int
    records: int
    plaintext_bytes: int
    reused_shards: int
    elapsed: float
    inherited_shards: int = 0


@dataclass(frozen=True)
class PublishResult:
    """What a publish produced. `key` is the data key: keep it secret (it is in the keystore)."""

    manifest: Manifest
    manifest_uri: str
    manifest_hash: str
    content_root: str
    key: bytes = field(repr=False)
    sealed_shards: int
    reused_shards: int
    seconds: float
    manifest_uris: tuple[str, ...] = ()
    inherited_shards: int = 0
    """Shards the previous version had sealed and stored already: named again, not uploaded."""


def default_journal_dir() -> Path:
    return deai_home() / "journals"


def _store_identity(store: Store) -> str:
    return store.uri if isinstance(store, Located) else repr(store)


@dataclass(frozen=True)
class PublishSettings:
    """What the manifest says besides its shards, and how shards are cut, encoded and sealed."""

    name: str
    description: str
    license: str
    metadata: dict[str, str]
    shard_size: int
    segment_size: int
    compression: str | None
    previous_manifest: str | None
    author: Any | None
    owner: str | None

    def __post_init__(self) -> None:
        if self.compression not in COMPRESSIONS:
            raise PublishError(f"compression must be one of {COMPRESSIONS}, got {self.compression!r}")
        if self.shard_size <= 0:
            raise PublishError("shard_size must be positive")
        try:
            check_segment_size(self.segment_size)
        except ValueError as exc:
            raise PublishError(str(exc)) from None
        for label, text in (("name", self.name), ("description", self.description), ("license", self.license)):
            if not isinstance(text, str):
                raise PublishError(f"{label} must be a string")
        # "" publishes without a licence; anything else must be machine-readable
        object.__setattr__(self, "license", canonical_license(self.license, field="license", error=PublishError))
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in self.metadata.items()):
            raise PublishError("metadata keys and values must be strings")
        if self.previous_manifest is not None and not is_hex_digest(self.previous_manifest):
            raise PublishError("previous_manifest must be the manifest hash (64 lowercase hex digits) of the "
                               "earlier version")
        if self.owner is not None and self.author is None:
            raise PublishError("owner= names who is to own the listing in the author's signature: pass author= too")

    def identity(self) -> dict[str, Any]:
        """The settings that name a publish for resuming (with the stores and the source)."""
        return {"name": self.name, "description": self.description, "license": self.license,
                "metadata": self.metadata, "shard_size": self.shard_size, "segment_size": self.segment_size,
                "compression": self.compression, "previous": self.previous_manifest}


@dataclass
class PublishJob:
    """A publish under way: its checked settings, open stores, journal and key (`start_publish`), finished by
    `finish_publish` with the shard entries. One process (`publish`) or a cluster (`deai_data.ray`) seals the
    shards in between."""

    stores: list[Store]
    keystore: Keystore | None
    journal: Journal
    publish_id: str
    data_key: bytes = field(repr=False)
    seal_id: bytes
    settings: PublishSettings
    started: float


def start_publish(
    settings: PublishSettings,
    *,
    store: str | Path | Store | Sequence[str | Path | Store],
    source_kind: str,
    source_fingerprint: str,
    key: bytes | None = None,
    seal_id: bytes | None = None,
    keystore: Keystore | bool | None = None,
    resume: bool = True,
    journal_dir: str | Path | None = None,
) -> PublishJob:
    """Open the stores and the journal, and choose (or recover) the key and seal id."""
    started = time.perf_counter()
    if key is not None:
        try:
            key = check_key(key)
        except ValueError as exc:
            raise PublishError(str(exc)) from None
    if seal_id is not None and (not isinstance(seal_id, bytes) or len(seal_id) != len(new_seal_id())):
        raise PublishError(f"seal_id must be {len(new_seal_id())} bytes")
    if seal_id is not None and key is None:
        raise PublishError("seal_id= makes a publish reproducible with a given key: pass key= too")
    targets = [store] if isinstance(store, (str, Path, Store)) else list(store)
    if not targets:
        raise PublishError("no store given")
    stores = [open_store(t) for t in targets]
    ks = None if keystore is False else (keystore if isinstance(keystore, Keystore) else Keystore())

    identity = {**settings.identity(), "stores": [_store_identity(s) for s in stores],
                "source": [source_kind, source_fingerprint]}
    publish_id = canonical.sha256_hex(canonical.encode(identity))[:32]
    journal = Journal(Path(journal_dir or default_journal_dir()) / f"{publish_id}.jsonl")
    data_key, chosen_seal_id = _start_or_resume(journal, publish_id, key, seal_id, ks, resume)
    return PublishJob(stores, ks, journal, publish_id, data_key, chosen_seal_id, settings, started)


def finish_publish(job: PublishJob, schema: pa.Schema, entries: list[ShardEntry], *, sealed: int,
                   reused: int, lineage: Lineage | None = None) -> PublishResult:
    """Describe the stored shards in a manifest (signed when an author was given), store it, keep the key."""
    flush_stores(job.stores)
    settings = job.settings
    data_key, seal_id = job.data_key, job.seal_id
    manifest = Manifest(
        seal_id=seal_id.hex(), name=settings.name, description=settings.description, license=settings.license,
        metadata=settings.metadata, schema=schema, records=sum(e.records for e in entries),
        segment_size=settings.segment_size, key_commitment=key_commitment(data_key, seal_id).hex(),
        shards=tuple(entries), content_root=merkle_root([bytes.fromhex(e.sha256) for e in entries]).hex(),
        compression=settings.compression, previous_manifest=settings.previous_manifest,
        lineage=lineage, version=LINEAGE_VERSION if lineage else VERSION,
    )
    if settings.author is not None:
        manifest = replace(manifest, authorship=sign_authorship(
            settings.author, manifest.seal_id, manifest.content_root, manifest.key_commitment,
            len(manifest.shards), settings.owner))
    try:
        body = manifest.to_bytes()
        Manifest.from_bytes(body)  # never store a manifest that a reader would refuse
    except canonical.CanonicalError as exc:
        raise PublishError(f"invalid publish parameter: {exc}") from None
    except (ManifestError, LimitError) as exc:
        raise PublishError(f"invalid publish parameter: {exc.message}") from None
    manifest_hash = canonical.sha256_hex(body)
    labels = {"Object-Type": "manifest", "Seal-Id": seal_id.hex(), "Manifest-Hash": manifest_hash,
              "Dataset-Name": settings.name}
    uris = tuple(s.put(body, sha256=manifest_hash, labels=labels) for s in job.stores)
    flush_stores(job.stores)
    if job.keystore is not None:
        job.keystore.put(DATA_KEY, manifest_hash, data_key, {
            "name": settings.name, "seal_id": seal_id.hex(), "manifest_uri": uris[0], "created": int(time.time())})
        job.keystore.delete(PENDING_DATA_KEY, job.publish_id)
    job.journal.close()
    return PublishResult(manifest, uris[0], manifest_hash, manifest.content_root, data_key, sealed, reused,
                         time.perf_counter() - job.started, uris, manifest.inherited_shards)


def publish(
    source: Any,
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
    previous: Dataset | str | None = None,
    author: Any | None = None,
    owner: str | None = None,
    key: bytes | None = None,
    seal_id: bytes | None = None,
    keystore: Keystore | bool | None = None,
    resume: bool = True,
    journal_dir: str | Path | None = None,
    workers: int | None = None,
    progress: Callable[[PublishProgress], None] | None = None,
) -> PublishResult:
    """Pack, seal, store and describe a dataset version; returns its manifest URI, hash and key.

    `store` is one store or several (mirrors: every shard goes to each). The data key is stored in
    the keystore under the manifest hash unless `keystore=False`. With `resume=True` an interrupted
    publish with the same parameters continues from its journal. `author` (an eth-account account) signs the
    manifest (version 2 authorship) for the listing to be owned by `owner` (default: the author); a market
    registers only signed manifests. The same rows with the same `key`, `seal_id` and settings give the same
    manifest byte for byte (however the rows are batched, and on a Ray cluster too: `deai_data.ray.publish`).

    `previous` (the earlier version, opened with its key, or its manifest hash with the key in the keystore)
    makes this a new version of it: shards whose rows are unchanged are inherited (named, not sealed or
    stored again) and the manifest's lineage lets this version's key open them (docs/versions.md).
    Appending rows keeps every earlier full shard; a changed row re-seals the shards from it to the next
    unchanged boundary.
    """
    previous_dataset, previous_manifest = resolve_previous(previous, previous_manifest, keystore)
    settings = PublishSettings(name, description, license, dict(metadata or {}), shard_size, segment_size,
                               compression, previous_manifest, author, owner)
    records = read_source(source)
    job = start_publish(settings, store=store, source_kind=records.kind, source_fingerprint=records.fingerprint,
                        key=key, seal_id=seal_id, keystore=keystore, resume=resume, journal_dir=journal_dir)
    inheritance = None if previous_dataset is None else \
        Inheritance(previous_dataset, job.data_key, records.schema, segment_size, compression)
    pipeline = _ShardPipeline(job, records.schema, workers, progress, inheritance)
    entries = pipeline.run(cut_into_shards(records.batches, settings.shard_size))
    return finish_publish(job, records.schema, entries, sealed=pipeline.sealed, reused=pipeline.reused,
                          lineage=inheritance.lineage(entries) if inheritance else None)


def resolve_previous(previous: Dataset | str | None, previous_manifest: str | None,
                     keystore: Keystore | bool | None) -> tuple[Dataset | None, str | None]:
    """`previous=` opened with its key, and the previous manifest hash the new manifest names."""
    if previous is None:
        return None, previous_manifest
    dataset = _open_previous(previous, keystore)
    if previous_manifest not in (None, dataset.manifest_hash):
        raise PublishError("previous= and previous_manifest= name different versions")
    return dataset, dataset.manifest_hash


def _open_previous(previous: Dataset | str, keystore: Keystore | bool | None) -> Dataset:
    """The earlier version a new one follows, opened with its key (checked against its commitment)."""
    if isinstance(previous, Dataset):
        previous.unlock()
        return previous
    if not isinstance(previous, str) or not is_hex_digest(previous):
        raise PublishError("previous= takes the earlier version (an opened Dataset) or its manifest hash")
    ks = keystore if isinstance(keystore, Keystore) else Keystore()
    entry = ks.entry(DATA_KEY, previous)
    if entry is None or "manifest_uri" not in entry.meta:
        raise PublishError(f"the keystore at {ks.path} has no published version {previous}",
                           hint="publish the earlier version with this keystore, or from Python pass "
                                "previous=open_dataset(manifest_uri, key=...)")
    dataset = open_dataset(entry.meta["manifest_uri"], manifest_hash=previous, keystore=ks)
    dataset.unlock()
    return dataset


def flush_stores(stores: list[Store]) -> None:
    """Send what stores batched (ANS-104 bundles) before anything refers to it."""
    for store in stores:
        if isinstance(store, Batching):
            store.flush()


def _start_or_resume(journal: Journal, publish_id: str, key: bytes | None, seal_id: bytes | None,
                     ks: Keystore | None, resume: bool) -> tuple[bytes, bytes]:
    """The (data key, seal id) to publish with: the journal's when resuming, else the given or fresh ones."""
    header = journal.header if resume else None
    if header is not None and seal_id in (None, bytes.fromhex(header.seal_id)):
        journal_seal_id = bytes.fromhex(header.seal_id)
        candidate = key
        if candidate is None and ks is not None and ks.has(PENDING_DATA_KEY, publish_id):
            candidate = ks.get(PENDING_DATA_KEY, publish_id)
        if candidate is not None:
            if key_commitment(candidate, journal_seal_id).hex() == header.key_commitment:
                return candidate, journal_seal_id
            if key is not None:
                raise PublishError("the key given is not the key of the interrupted publish in the journal",
                                   hint=f"pass the same key, resume=False, or delete {journal.path}")
    data_key = key if key is not None else new_data_key()
    seal_id = seal_id if seal_id is not None else new_seal_id()
    if ks is not None:
        ks.put(PENDING_DATA_KEY, publish_id, data_key, {"journal": str(journal.path)})
    journal.start(JournalHeader(publish_id, seal_id.hex(), key_commitment(data_key, seal_id).hex()))
    return data_key, seal_id


def shard_labels(seal_id_hex: str, index: int) -> dict[str, str]:
    return {"Object-Type": "shard", "Seal-Id": seal_id_hex, "Shard-Index": str(index)}


def describe_sealed(index: int, records: int, plaintext_size: int, sealed: memoryview) -> ShardEntry:
    """A sealed shard's manifest entry, before it is stored (no locators yet): sizes and both digests."""
    return ShardEntry(index, records, plaintext_size, len(sealed), hashlib.sha256(sealed).hexdigest(), (),
                      blake3.blake3(sealed).hexdigest())


def store_sealed(stores: list[Store], seal_id_hex: str, entry: ShardEntry, sealed: memoryview) -> ShardEntry:
    """Put a sealed shard in every store; its entry with the locators."""
    labels = shard_labels(seal_id_hex, entry.index)
    return replace(entry, locators=tuple(s.put(sealed, sha256=entry.sha256, labels=labels) for s in stores))


def still_stored(stores: list[Store], entry: ShardEntry) -> bool:
    """Whether every locator of a journaled shard still holds an object of the sealed size."""
    for locator in entry.locators:
        store = next((s for s in stores if any(locator.startswith(f"{x}:") for x in s.schemes)), None)
        try:
            if store is None or store.stat(locator).size != entry.sealed_size:
                return False
        except StorageError:
            return False
    return True


class _ShardPipeline:
    """Two stages on threads: `workers` threads encode, fingerprint, seal and hash (CPU); `io_threads`
    more write to the stores, so no core waits on a disk or a network. Memory is bounded: each CPU
    thread reuses one plaintext buffer, and sealed shards wait for the stores in a pool of
    `workers + io_threads` buffers (sealing pauses while all are queued for writing)."""

    def __init__(self, job: PublishJob, schema: pa.Schema, workers: int | None,
                 progress: Callable[[PublishProgress], None] | None, inheritance: Inheritance | None = None) -> None:
        self.stores = job.stores
        self.journal = job.journal
        self.schema = schema
        self.sealer = ShardSealer(job.data_key, job.seal_id, job.settings.segment_size)
        self.seal_id_hex = job.seal_id.hex()
        self.compression = job.settings.compression
        self.workers = workers or min(8, os.cpu_count() or 1)
        self.io_threads = 2
        self.plaintexts = ReusableBuffers()
        self.sealed_buffers = BufferPool(self.workers + self.io_threads)
        self.progress = ProgressCounter(progress, job.started)
        self._failed = threading.Event()
        self.inheritance = inheritance

    def run(self, shards: Iterable[list[pa.RecordBatch]]) -> list[ShardEntry]:
        in_flight = threading.BoundedSemaphore(self.workers + self.io_threads + 1)
        results: list[Future[ShardEntry]] = []

        def finished(future: Future[ShardEntry]) -> None:
            if future.cancelled() or future.exception() is not None:
                self._failed.set()
            in_flight.release()

        with ThreadPoolExecutor(self.io_threads, thread_name_prefix="deai-store") as io, \
                ThreadPoolExecutor(self.workers, thread_name_prefix="deai-seal") as cpu:
            try:
                for index, batches in enumerate(shards):
                    in_flight.acquire()
                    if self._failed.is_set():
                        in_flight.release()
                        break
                    done: Future[ShardEntry] = Future()
                    done.add_done_callback(finished)
                    results.append(done)
                    cpu.submit(self._seal, index, batches, done, io)
            except BaseException:
                self._failed.set()
                raise
        errors = [e for f in results if not f.cancelled() and (e := f.exception()) is not None]
        if errors:
            if not isinstance(errors[0], OSError):
                raise errors[0]
            raise StorageError(f"publishing failed: {errors[0]}", hint="fix the error and publish again: "
                               "finished shards are kept and will not be redone") from errors[0]
        return [f.result() for f in results]

    def _seal(self, index: int, batches: list[pa.RecordBatch], done: Future[ShardEntry],
              io: ThreadPoolExecutor) -> None:
        """CPU stage: encode, fingerprint, seal and hash one shard, then queue it for the stores."""
        if self._failed.is_set() or not done.set_running_or_notify_cancel():
            done.cancel()
            return
        buf = None
        try:
            plaintext = encode_shard_into(one_batch(batches, self.schema), self.schema, self.compression,
                                          lambda size: self.plaintexts.get("plaintext", size))
            rows = sum(b.num_rows for b in batches)
            buf = self.sealed_buffers.acquire(self.sealer.sealed_size(len(plaintext)))
            out = memoryview(buf)
            inherited = self.inheritance.match(index, rows, plaintext, out) if self.inheritance else None
            if inherited is not None:
                self.progress.add(inherited, inherited=True)
                done.set_result(inherited)
                return
            # the fingerprint's by-product ciphertext lands in the sealed buffer, overwritten just after
            salt = self.sealer.salt(index, plaintext, out)
            entry = self.journal.finished(index, salt.hex())
            if entry is not None and still_stored(self.stores, entry):
                self.progress.add(entry, reused=True)
                done.set_result(entry)
                return
            sealed = self.sealer.seal_into(index, plaintext, salt, out)
            io.submit(self._store, describe_sealed(index, rows, len(plaintext), sealed), salt, sealed, buf, done)
            buf = None  # now owned by the store stage
        except BaseException as exc:
            done.set_exception(exc)
        finally:
            if buf is not None:
                self.sealed_buffers.release(buf)

    def _store(self, entry: ShardEntry, salt: bytes, sealed: memoryview, buf: mmap.mmap,
               done: Future[ShardEntry]) -> None:
        """I/O stage: put the sealed shard in every store, then journal it as finished."""
        try:
            entry = store_sealed(self.stores, self.seal_id_hex, entry, sealed)
            self.journal.record(entry, salt.hex())
            self.progress.add(entry, reused=False)
            done.set_result(entry)
        except BaseException as exc:
            done.set_exception(exc)
        finally:
            del sealed
            self.sealed_buffers.release(buf)

    @property
    def sealed(self) -> int:
        return self.progress.sealed

    @property
    def reused(self) -> int:
        return self.progress.reused


class ProgressCounter:
    """Counts finished shards (thread-safe) and passes a `PublishProgress` to the callback after each."""

    def __init__(self, callback: Callable[[PublishProgress], None] | None, started: float) -> None:
        self.callback = callback
        self.started = started
        self.sealed = 0
        self.reused = 0
        self.inherited = 0
        self._records = 0
        self._bytes = 0
        self._lock = threading.Lock()

    def add(self, entry: ShardEntry, *, reused: bool = False, inherited: bool = False) -> None:
        with self._lock:
            if inherited:
                self.inherited += 1
            elif reused:
                self.reused += 1
            else:
                self.sealed += 1
            self._records += entry.records
            self._bytes += entry.plaintext_size
            snapshot = PublishProgress(self.sealed + self.reused + self.inherited, self._records, self._bytes,
                                       self.reused, time.perf_counter() - self.started, self.inherited)
        if self.callback is not None:
            self.callback(snapshot)
