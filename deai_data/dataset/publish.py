"""Publishing: source -> Arrow shards -> sealed -> stored -> manifest stored -> key in the keystore.

Shards are sealed and stored on worker threads with a bound on shards in flight (bounded memory);
the journal makes an interrupted publish resumable without re-sealing finished shards.
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
from ..formats.manifest import Manifest, ShardEntry, is_hex_digest
from ..formats.merkle import merkle_root
from ..formats.shard import COMPRESSIONS, DEFAULT_SHARD_SIZE, cut_into_shards, encode_shard_into
from ..home import deai_home
from ..storage.base import Batching, Located, Store
from ..storage.registry import open_store
from .journal import Journal, JournalHeader
from .sources import read_source


@dataclass(frozen=True)
class PublishProgress:
    """Passed to the `progress` callback after every shard."""

    shards: int
    records: int
    plaintext_bytes: int
    reused_shards: int
    elapsed: float


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


def default_journal_dir() -> Path:
    return deai_home() / "journals"


def _store_identity(store: Store) -> str:
    return store.uri if isinstance(store, Located) else repr(store)


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
    author: Any | None = None,
    owner: str | None = None,
    key: bytes | None = None,
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
    registers only signed manifests.
    """
    started = time.perf_counter()
    if compression not in COMPRESSIONS:
        raise PublishError(f"compression must be one of {COMPRESSIONS}, got {compression!r}")
    if shard_size <= 0:
        raise PublishError("shard_size must be positive")
    try:
        check_segment_size(segment_size)
    except ValueError as exc:
        raise PublishError(str(exc)) from None
    for label, text in (("name", name), ("description", description), ("license", license)):
        if not isinstance(text, str):
            raise PublishError(f"{label} must be a string")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in (metadata or {}).items()):
        raise PublishError("metadata keys and values must be strings")
    if previous_manifest is not None and not is_hex_digest(previous_manifest):
        raise PublishError("previous_manifest must be the manifest hash (64 lowercase hex digits) of the earlier "
                           "version")
    if owner is not None and author is None:
        raise PublishError("owner= names who is to own the listing in the author's signature: pass author= too")
    if key is not None:
        try:
            key = check_key(key)
        except ValueError as exc:
            raise PublishError(str(exc)) from None
    targets = [store] if isinstance(store, (str, Path, Store)) else list(store)
    if not targets:
        raise PublishError("no store given")
    stores = [open_store(t) for t in targets]
    records = read_source(source)
    ks = None if keystore is False else (keystore if isinstance(keystore, Keystore) else Keystore())

    params = {
        "name": name, "description": description, "license": license, "metadata": dict(metadata or {}),
        "shard_size": shard_size, "segment_size": segment_size, "compression": compression,
        "previous": previous_manifest, "stores": [_store_identity(s) for s in stores],
        "source": [records.kind, records.fingerprint],
    }
    publish_id = canonical.sha256_hex(canonical.encode(params))[:32]
    journal = Journal(Path(journal_dir or default_journal_dir()) / f"{publish_id}.jsonl")
    data_key, seal_id = _start_or_resume(journal, publish_id, key, ks, resume)

    pipeline = _ShardPipeline(stores, journal, data_key, seal_id, records.schema, segment_size,
                              compression, workers, progress, started)
    entries = pipeline.run(cut_into_shards(records.batches, shard_size))
    _flush(stores)

    manifest = Manifest(
        seal_id=seal_id.hex(), name=name, description=description, license=license,
        metadata=dict(metadata or {}), schema=records.schema, records=sum(e.records for e in entries),
        segment_size=segment_size, key_commitment=key_commitment(data_key, seal_id).hex(),
        shards=tuple(entries), content_root=merkle_root([bytes.fromhex(e.sha256) for e in entries]).hex(),
        compression=compression, previous_manifest=previous_manifest,
    )
    if author is not None:
        manifest = replace(manifest, authorship=sign_authorship(
            author, manifest.seal_id, manifest.content_root, manifest.key_commitment, len(manifest.shards), owner))
    try:
        body = manifest.to_bytes()
        Manifest.from_bytes(body)  # never store a manifest that a reader would refuse
    except canonical.CanonicalError as exc:
        raise PublishError(f"invalid publish parameter: {exc}") from None
    except (ManifestError, LimitError) as exc:
        raise PublishError(f"invalid publish parameter: {exc.message}") from None
    manifest_hash = canonical.sha256_hex(body)
    labels = {"Object-Type": "manifest", "Seal-Id": seal_id.hex(), "Manifest-Hash": manifest_hash,
              "Dataset-Name": name}
    uris = tuple(s.put(body, sha256=manifest_hash, labels=labels) for s in stores)
    _flush(stores)
    if ks is not None:
        ks.put(DATA_KEY, manifest_hash, data_key, {"name": name, "seal_id": seal_id.hex(),
                                                     "manifest_uri": uris[0], "created": int(time.time())})
        ks.delete(PENDING_DATA_KEY, publish_id)
    journal.close()
    return PublishResult(manifest, uris[0], manifest_hash, manifest.content_root, data_key,
                         pipeline.sealed, pipeline.reused, time.perf_counter() - started, uris)


def _flush(stores: list[Store]) -> None:
    """Send what stores batched (ANS-104 bundles) before anything refers to it."""
    for store in stores:
        if isinstance(store, Batching):
            store.flush()


def _start_or_resume(journal: Journal, publish_id: str, key: bytes | None, ks: Keystore | None,
                     resume: bool) -> tuple[bytes, bytes]:
    """The (data key, seal id) to publish with: the journal's when resuming, else fresh ones."""
    header = journal.header if resume else None
    if header is not None:
        seal_id = bytes.fromhex(header.seal_id)
        candidate = key
        if candidate is None and ks is not None and ks.has(PENDING_DATA_KEY, publish_id):
            candidate = ks.get(PENDING_DATA_KEY, publish_id)
        if candidate is not None:
            if key_commitment(candidate, seal_id).hex() == header.key_commitment:
                return candidate, seal_id
            if key is not None:
                raise PublishError("the key given is not the key of the interrupted publish in the journal",
                                   hint=f"pass the same key, resume=False, or delete {journal.path}")
    data_key = key if key is not None else new_data_key()
    seal_id = new_seal_id()
    if ks is not None:
        ks.put(PENDING_DATA_KEY, publish_id, data_key, {"journal": str(journal.path)})
    journal.start(JournalHeader(publish_id, seal_id.hex(), key_commitment(data_key, seal_id).hex()))
    return data_key, seal_id


class _ShardPipeline:
    """Two stages on threads: `workers` threads encode, fingerprint, seal and hash (CPU); `io_threads`
    more write to the stores, so no core waits on a disk or a network. Memory is bounded: each CPU
    thread reuses one plaintext buffer, and sealed shards wait for the stores in a pool of
    `workers + io_threads` buffers (sealing pauses while all are queued for writing)."""

    def __init__(self, stores: list[Store], journal: Journal, data_key: bytes, seal_id: bytes,
                 schema: pa.Schema, segment_size: int, compression: str | None, workers: int | None,
                 progress: Callable[[PublishProgress], None] | None, started: float) -> None:
        self.stores = stores
        self.journal = journal
        self.schema = schema
        self.sealer = ShardSealer(data_key, seal_id, segment_size)
        self.seal_id_hex = seal_id.hex()
        self.compression = compression
        self.workers = workers or min(8, os.cpu_count() or 1)
        self.io_threads = 2
        self.plaintexts = ReusableBuffers()
        self.sealed_buffers = BufferPool(self.workers + self.io_threads)
        self.progress = progress
        self.started = started
        self.sealed = 0
        self.reused = 0
        self._records = 0
        self._bytes = 0
        self._done = 0
        self._lock = threading.Lock()
        self._failed = threading.Event()

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
            plaintext = encode_shard_into(batches, self.schema, self.compression,
                                          lambda size: self.plaintexts.get("plaintext", size))
            rows = sum(b.num_rows for b in batches)
            buf = self.sealed_buffers.acquire(self.sealer.sealed_size(len(plaintext)))
            out = memoryview(buf)
            # the fingerprint's by-product ciphertext lands in the sealed buffer, overwritten just after
            salt = self.sealer.salt(index, plaintext, out)
            entry = self.journal.finished(index, salt.hex())
            if entry is not None and all(self._still_stored(loc, entry.sealed_size) for loc in entry.locators):
                self._report(entry, reused=True)
                done.set_result(entry)
                return
            sealed = self.sealer.seal_into(index, plaintext, salt, out)
            sha = hashlib.sha256(sealed).hexdigest()
            digest = blake3.blake3(sealed).hexdigest()
            io.submit(self._store, ShardEntry(index, rows, len(plaintext), len(sealed), sha, (), digest), salt,
                      sealed, buf, done)
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
            labels = {"Object-Type": "shard", "Seal-Id": self.seal_id_hex, "Shard-Index": str(entry.index)}
            entry = replace(entry, locators=tuple(s.put(sealed, sha256=entry.sha256, labels=labels)
                                                  for s in self.stores))
            self.journal.record(entry, salt.hex())
            self._report(entry, reused=False)
            done.set_result(entry)
        except BaseException as exc:
            done.set_exception(exc)
        finally:
            del sealed
            self.sealed_buffers.release(buf)

    def _still_stored(self, locator: str, size: int) -> bool:
        store = next((s for s in self.stores if any(locator.startswith(f"{x}:") for x in s.schemes)), None)
        try:
            return store is not None and store.stat(locator).size == size
        except StorageError:
            return False

    def _report(self, entry: ShardEntry, *, reused: bool) -> None:
        with self._lock:
            if reused:
                self.reused += 1
            else:
                self.sealed += 1
            self._done += 1
            self._records += entry.records
            self._bytes += entry.plaintext_size
            snapshot = PublishProgress(self._done, self._records, self._bytes, self.reused,
                                       time.perf_counter() - self.started)
        if self.progress is not None:
            self.progress(snapshot)
