"""Opening a published dataset: fetch and check the manifest, then fetch, verify, decrypt and decode
shards. No byte from a store is used before its SHA-256 (or AEAD tag) has been checked.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import blake3
import numpy as np
import pyarrow as pa

from ..buffers import ReusableBuffers
from ..crypto.keys import check_key, key_commitment, linked_key
from ..crypto.keystore import DATA_KEY, Keystore
from ..crypto.sealing import HEADER_SIZE, ShardCipher, ShardHeader, open_shard, segment_span
from ..errors import DeaiError, DecryptionError, IntegrityError, KeystoreError, LimitError, StorageError, UsageError
from ..formats import limits
from ..formats.manifest import Manifest, ShardEntry
from ..formats.shard import decode_shard
from ..storage import fetch_policy
from ..storage.base import Buffer, ReadsInto, StoreReader, content_path
from ..storage.cache import ShardCache
from ..storage.failover import first_answer
from ..storage.fetch_policy import FetchPolicy
from ..storage.local import locator_from_path
from ..storage.registry import store_for
from . import ecosystem
from .records import RecordIndex
from .storage_check import StorageReport, check_storage

_HEX64 = re.compile(r"([0-9a-f]{64})$")
_MIN_RANGE = 1 << 20  # ranged reads never split an object into parts smaller than this
T = TypeVar("T")


def _normalise(uri: str | Path) -> str:
    text = str(uri)
    return text if "://" in text else locator_from_path(text)


def _implied_hash(locator: str) -> str | None:
    """Content-addressed locators (LocalStore layout, or a mirror of it) end in their SHA-256."""
    match = _HEX64.search(locator.split("?")[0].split("#")[0])
    return match.group(1) if match and "/objects/sha256/" in locator else None


@dataclass
class VerifyReport:
    """Outcome of `Dataset.verify()`: shards and bytes checked, and every failure found."""

    shards: int = 0
    records: int = 0
    sealed_bytes: int = 0
    seconds: float = 0.0
    errors: list[DeaiError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


class _WrongSize(Exception):
    """An object's real size differs from the manifest's (found before reading or allocating it)."""

    def __init__(self, actual: int) -> None:
        self.actual = actual


class Dataset:
    """A dataset version opened from its manifest. Shards are fetched on demand and verified.

    The manifest's locators are fetched under `policy` (default: the configured fetch policy widened for
    where the manifest came from: a manifest from a public host cannot point the reader at a private one);
    `mirrors` are the caller's own and trusted."""

    def __init__(self, manifest: Manifest, manifest_uri: str, *, key: bytes | str | None = None,
                 keystore: Keystore | None = None, mirrors: Sequence[str] = (), workers: int = 2,
                 cache: ShardCache | None = None, range_parts: int = 1, policy: FetchPolicy | None = None) -> None:
        self.manifest = manifest
        self.policy = policy or fetch_policy.configured().widened_for(manifest_uri)
        self.range_parts = max(1, range_parts)
        self.manifest_uri = manifest_uri
        self.manifest_hash = manifest.hash
        self.mirrors = [m.rstrip("/") for m in mirrors]
        self.workers = max(1, workers)
        self.cache = cache
        self._buffers = ReusableBuffers()
        self._key_given = key
        self._keystore = keystore
        self._key: bytes | None = None
        self._generation_keys: list[bytes] = []
        self._records: RecordIndex | None = None

    def __repr__(self) -> str:
        return (f"Dataset({self.manifest.name!r}, records={self.manifest.records}, "
                f"shards={len(self.manifest.shards)}, manifest_hash={self.manifest_hash[:16]}...)")

    def __len__(self) -> int:
        return self.manifest.records

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        del state["_buffers"]  # per-thread scratch memory: each process makes its own
        state["_records"] = None  # opened segments stay in this process
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._buffers = ReusableBuffers()

    @property
    def schema(self) -> pa.Schema:
        return self.manifest.schema

    @property
    def num_shards(self) -> int:
        return len(self.manifest.shards)

    @property
    def label(self) -> str:
        return f"{self.manifest.name} ({self.manifest_hash[:12]})"

    # ---- key ------------------------------------------------------------------------------------
    @property
    def key(self) -> bytes:
        """The data key, checked against the manifest's key commitment."""
        if self._key is None:
            given = self._key_given
            if given is None:
                store = self._keystore or Keystore()
                if not store.has(DATA_KEY, self.manifest_hash):
                    raise KeystoreError(f"no key for dataset {self.label} in the keystore at {store.path}",
                                        hint="import the key with `deai-data keys import` (or, from Python, pass key=)")
                given = store.get(DATA_KEY, self.manifest_hash)
            try:
                raw = check_key(bytes.fromhex(given) if isinstance(given, str) else given)
            except ValueError as exc:
                raise DecryptionError(f"dataset {self.label}: {exc}") from None
            if key_commitment(raw, bytes.fromhex(self.manifest.seal_id)).hex() != self.manifest.key_commitment:
                raise DecryptionError(f"dataset {self.label}: the key does not match the dataset's key commitment",
                                      hint="this is not the key of this dataset version; use the key you "
                                           "were given for this manifest hash")
            self._key = raw
        return self._key

    def opening(self, entry: ShardEntry) -> tuple[bytes, bytes, int]:
        """(data key, seal id, index) the shard was sealed under: this version's, or for an inherited shard those of
        the earlier version it comes from, whose key this version's key opens through the lineage's key links."""
        if entry.origin is None:
            return self.key, bytes.fromhex(self.manifest.seal_id), entry.index
        generation, index = entry.origin
        assert self.manifest.lineage is not None  # a manifest with origins has a lineage (checked when parsed)
        seal_id = self.manifest.lineage.generations[generation - 1].seal_id
        return self.generation_key(generation), bytes.fromhex(seal_id), index

    def generation_key(self, generation: int) -> bytes:
        """The key of lineage generation `generation` (1: the previous version), each link checked against the
        generation's key commitment on the way down (computed once; threads that race compute the same keys)."""
        lineage = self.manifest.lineage
        if lineage is None or not 1 <= generation <= len(lineage.generations):
            raise UsageError(f"dataset {self.label} has no lineage generation {generation}")
        keys = self._generation_keys
        if len(keys) < generation:
            keys = list(keys)
            while len(keys) < generation:
                link = lineage.key_link if not keys else lineage.generations[len(keys) - 1].key_link
                g = lineage.generations[len(keys)]
                key = None if link is None else linked_key(keys[-1] if keys else self.key, bytes.fromhex(link))
                if key is None or key_commitment(key, bytes.fromhex(g.seal_id)).hex() != g.key_commitment:
                    raise DecryptionError(
                        f"dataset {self.label}: the key does not open generation {len(keys) + 1} of its lineage "
                        "(the shards it inherits from there)", hint="the owner linked a wrong key: a buyer "
                        "disputes the purchase (`deai-data market dispute`), which checks every generation the "
                        "manifest uses")
                keys.append(key)
            self._generation_keys = keys
        return keys[generation - 1]

    def unlock(self) -> None:
        """Resolve and check the key now, then forget the keystore (only the key is kept)."""
        self.key  # noqa: B018
        self._keystore = None

    # ---- fetching -------------------------------------------------------------------------------
    def locators(self, entry: ShardEntry) -> list[str]:
        """The shard's own locators, then its address in every content-addressed mirror."""
        return list(entry.locators) + [f"{m}/{content_path(entry.sha256)}" for m in self.mirrors]

    def sources(self, entry: ShardEntry) -> list[tuple[str, FetchPolicy]]:
        """Each locator with the policy it is fetched under: the manifest's under this dataset's policy, the
        caller's mirrors trusted."""
        return [(loc, self.policy) for loc in entry.locators] + \
            [(f"{m}/{content_path(entry.sha256)}", fetch_policy.OPEN) for m in self.mirrors]

    def fetch_sealed(self, index: int, *, verify: str = "full") -> bytes:
        """The sealed bytes of shard `index`, checked against the manifest as `verify` says (see read_shard;
        with "aead" only their size is checked here).

        Tries every locator in turn; raises the integrity error if any mirror served altered bytes,
        else the last storage error.
        """
        return bytes(self._fetch_sealed(index, _check_verify(verify)))

    def fetch_range(self, entry: ShardEntry, start: int, end: int) -> bytes:
        """Sealed bytes [start, end) of a shard from the first locator that serves exactly that many (unchecked:
        the caller authenticates them, as every opened segment is)."""
        def fetch(source: tuple[str, FetchPolicy]) -> bytes:
            locator, policy = source
            policy.check(locator)
            with fetch_policy.applied(policy):
                data = store_for(locator).get(locator, start, end)
            if len(data) != end - start:
                raise StorageError(f"bytes {start}-{end} came back as {len(data)} bytes", locator=locator,
                                   hint="the object is shorter than the manifest says, or the server cut it")
            return data

        return first_answer(self.sources(entry), fetch, what=f"dataset {self.label}: shard {entry.index}",
                            kind="locator")

    def _get(self, locator: str, size: int) -> Buffer:
        """The object at `locator`, never more than `size + 1` bytes of it (one more reveals an object that is
        too long; nothing is allocated from the declared size before the real size is known): read into this
        thread's reused buffer where the store can (no fresh allocation per shard), else as new bytes. A view
        stays valid until this thread's next read."""
        store = store_for(locator)
        if not isinstance(store, ReadsInto) and self.range_parts > 1 and size >= 2 * _MIN_RANGE:
            return self._get_ranges(store, locator, size)
        if not isinstance(store, ReadsInto) or self.cache is not None:
            return store.get(locator, 0, size + 1)
        actual = store.stat(locator).size  # a local stat costs nothing: refuse a wrong size unread
        if actual != size:
            raise _WrongSize(actual)
        buf = self._buffers.get("sealed", size + 1)
        return buf[:store.read_into(locator, buf)]

    def _get_ranges(self, store: StoreReader, locator: str, size: int) -> Buffer:
        """A remote object as `range_parts` byte ranges fetched at once (each retried by its store) into
        this thread's reused buffer, after its size was checked; the caller verifies the whole as always."""
        actual = store.stat(locator).size
        if actual != size:
            raise _WrongSize(actual)
        parts = min(self.range_parts, size // _MIN_RANGE)
        bounds = [(i * size // parts, (i + 1) * size // parts) for i in range(parts)]
        view = memoryview(self._buffers.get("sealed", size))[:size]
        policy = fetch_policy.current()

        def fetch(span: tuple[int, int]) -> None:
            start, end = span
            with fetch_policy.applied(policy):
                data = store.get(locator, start, end)
            if len(data) != end - start:
                raise StorageError(f"bytes {start}-{end} came back as {len(data)} bytes", locator=locator,
                                   hint="the object is shorter than the manifest says, or the server cut it")
            view[start:end] = data

        with ThreadPoolExecutor(parts, thread_name_prefix="deai-range") as pool:
            for future in [pool.submit(fetch, span) for span in bounds]:
                future.result()
        return view

    def _fetch_sealed(self, index: int, verify: str) -> Buffer:
        entry = self.manifest.shards[index]
        if self.cache is not None:
            cached = self.cache.get(entry.sha256, size=entry.sealed_size)
            if cached is not None and _matches(entry, cached, verify):
                return cached
            if cached is not None:
                self.cache.discard(entry.sha256)

        def fetch(source: tuple[str, FetchPolicy]) -> Buffer:
            locator, policy = source
            policy.check(locator)
            try:
                with fetch_policy.applied(policy):
                    data = self._get(locator, entry.sealed_size)
            except _WrongSize as wrong:
                raise IntegrityError(_wrong_size(wrong.actual, entry.sealed_size), dataset=self.label,
                                     shard=index, locator=locator) from None
            if not _matches(entry, data, verify):
                raise self._diagnose(entry, data, locator)
            return data

        data = first_answer(self.sources(entry), fetch, what=f"dataset {self.label}: shard {index}",
                            kind="locator")
        if self.cache is not None:
            self.cache.put(entry.sha256, bytes(data))
        return data

    def _diagnose(self, entry: ShardEntry, data: Buffer, locator: str) -> IntegrityError:
        """Name the first bad segment of a shard whose hash did not match (when the key is at hand)."""
        def error(why: str, segment: int | None = None) -> IntegrityError:
            return IntegrityError(why, dataset=self.label, shard=entry.index, segment=segment, locator=locator)

        if len(data) != entry.sealed_size:  # the size is the diagnosis: no segment is to blame
            return error(_wrong_size(len(data), entry.sealed_size))
        what = "SHA-256 of the sealed shard does not match the manifest"
        try:
            key, seal_id, sealed_index = self.opening(entry)
            header = ShardHeader.decode(data[:HEADER_SIZE], dataset=self.label, shard=entry.index)
            cipher = ShardCipher(key, seal_id, ShardHeader(self.manifest.segment_size, entry.plaintext_size,
                                                           sealed_index, header.salt), dataset=self.label)
        except (DeaiError, ValueError):
            return error(what + "; the header is damaged", None)
        if header != cipher.header:
            return error(what + "; the header does not match the manifest", None)
        bad = []
        for i in range(cipher.count):
            start, end = segment_span(i, entry.plaintext_size, self.manifest.segment_size)
            try:
                cipher.open_segment(i, data[start:end])
            except IntegrityError:
                bad.append(i)
        if bad and len(bad) == cipher.count > 1:
            return error(what + "; no segment authenticates: the header (salt) is damaged", None)
        if bad:
            return error(what, bad[0])
        return error(what + "; every segment authenticates (the manifest names other bytes)", None)

    def read_shard(self, index: int, *, verify: str = "full",
                   allocate: Callable[[int], Buffer] | None = None) -> pa.Table:
        """Shard `index` as an Arrow table: fetched, checked, decrypted, decoded.

        verify="full": the sealed bytes must hash to the manifest's digest (BLAKE3 in a version-2 manifest,
        SHA-256 in a version-1 one), so the shard is the one its author published, whoever serves it, and
        every AEAD tag must verify.
        verify="sha256": the same with SHA-256, the hash the content root (and so the chain) commits to.
        verify="aead": only the AEAD tags (and sizes). That stops anyone who lacks the data key (stores,
        gateways, the network) but not a key holder who re-seals other content.
        The plaintext lives in Arrow-pool memory (recycled, no fresh page faults per shard) that the
        returned table references, or in the writable buffer `allocate(size)` returns (shared memory, say).
        """
        _check_verify(verify)
        entry = self.manifest.shards[index]
        sealed = self._fetch_sealed(index, verify)  # checked before the plaintext is allocated
        try:
            plaintext = pa.py_buffer(allocate(entry.plaintext_size)) if allocate is not None \
                else pa.allocate_buffer(entry.plaintext_size)
        except (MemoryError, pa.ArrowMemoryError, RuntimeError):
            raise LimitError(f"dataset {self.label}: shard {index} needs {entry.plaintext_size} bytes of memory, "
                             "more than this machine can give", limit="shard_bytes") from None
        key, seal_id, sealed_index = self.opening(entry)
        open_shard(sealed, data_key=key, seal_id=seal_id, shard_index=sealed_index, dataset=self.label,
                   plaintext_size=entry.plaintext_size, out=memoryview(plaintext).cast("B"))
        try:
            table = decode_shard(plaintext)
        except pa.ArrowException as exc:
            raise IntegrityError(f"authenticated shard is not valid Arrow IPC: {exc}", dataset=self.label,
                                 shard=index, hint="the owner published a broken shard") from None
        if table.num_rows != entry.records or not table.schema.equals(self.schema):
            raise IntegrityError("shard rows or schema differ from the manifest", dataset=self.label, shard=index,
                                 hint="the owner published an inconsistent dataset")
        return table

    def _map(self, func: Callable[[int], T], indices: Sequence[int]) -> Iterator[T]:
        """`func` over shard indices, in order, a few shards ahead on threads."""
        if self.workers == 1 or len(indices) <= 1:
            yield from map(func, indices)
            return
        with ThreadPoolExecutor(self.workers, thread_name_prefix="deai-read") as pool:
            pending = [pool.submit(func, i) for i in indices[:self.workers]]
            for position in range(len(indices)):
                result = pending.pop(0).result()
                if position + self.workers < len(indices):
                    pending.append(pool.submit(func, indices[position + self.workers]))
                yield result

    # ---- reading --------------------------------------------------------------------------------
    def iter_batches(self) -> Iterator[pa.RecordBatch]:
        """Every record batch of every shard, in order."""
        for table in self._map(self.read_shard, range(self.num_shards)):
            yield from table.to_batches()

    def __iter__(self) -> Iterator[dict[str, Any]]:
        """Every record as a dict (convenient; use `iter_batches` for speed)."""
        for batch in self.iter_batches():
            yield from batch.to_pylist()

    def to_arrow(self) -> pa.Table:
        """The whole dataset as one Arrow table."""
        tables = list(self._map(self.read_shard, range(self.num_shards)))
        return pa.concat_tables(tables) if tables else self.schema.empty_table()

    def to_pandas(self) -> Any:
        return self.to_arrow().to_pandas()

    def take(self, indices: Sequence[int]) -> pa.Table:
        """The records at `indices` (positions in the whole dataset; negative from the end), in that order.

        Only the segments that hold them are fetched (byte ranges) and opened, each authenticated by its AES-GCM
        tag (as verify="aead": the whole-shard hash needs the whole shard); a shard with compressed buffers,
        dictionary or nested columns is read whole and fully verified (docs/loader.md, "Random access")."""
        if self._records is None:
            self._records = RecordIndex(self)
        return self._records.take(indices)

    def __getitem__(self, index: int) -> dict[str, Any]:
        """Record `index` as a dict (see `take`)."""
        if not isinstance(index, (int, np.integer)) or isinstance(index, bool):
            raise TypeError(f"records are indexed by an integer, not {type(index).__name__}; use take([...])")
        if not -len(self) <= index < len(self):
            raise IndexError(f"record {index} out of range: the dataset has {len(self)} records")
        return self.take([int(index)]).to_pylist()[0]

    def to_polars(self) -> Any:
        """The whole dataset as a Polars DataFrame (needs `polars`)."""
        return ecosystem.to_polars(self.to_arrow())

    def sql(self, query: str) -> pa.Table:
        """Run DuckDB SQL over the records (the table `records`), streamed shard by shard: plaintext stays in
        memory (`SELECT label, count(*) FROM records GROUP BY ALL`). Needs `duckdb` (the `catalog` extra)."""
        return ecosystem.sql(self.iter_batches, self.schema, query)

    def to_hf(self, split_column: str | None = None) -> Any:
        """The records as a Hugging Face `datasets.Dataset` in memory (a `DatasetDict` by `split_column`)."""
        return ecosystem.to_hf(self.to_arrow(), split_column)

    def to_hf_iterable(self) -> Any:
        """The records as a streaming Hugging Face `datasets.IterableDataset`."""
        return ecosystem.to_hf_iterable(self.iter_batches)

    def _repr_html_(self) -> str:
        return self.manifest._repr_html_("Dataset")

    def check_storage(self, *, hash_shards: int = 0, concurrency: int = 8, deadline: float = 300.0) -> StorageReport:
        """Whether every shard is still stored where the manifest says, without downloading it (see
        `storage_check.check_storage`); no key needed."""
        return check_storage(self.manifest, policy=self.policy, concurrency=concurrency, hash_shards=hash_shards,
                             deadline=deadline)

    def verify(self, *, strict: bool = True,
               progress: Callable[[VerifyReport, int], None] | None = None) -> VerifyReport:
        """Fetch every shard, check hash, tags and decoding. `strict` raises the first failure;
        `progress(report so far, shards checked)` runs after each shard."""
        report = VerifyReport()
        started = time.perf_counter()
        self.unlock()  # a wrong key is one error for the whole dataset, raised at once

        def check(index: int) -> DeaiError | None:
            try:
                self.read_shard(index)
            except DeaiError as exc:
                if strict:
                    raise
                return exc
            return None

        for index, failure in zip(range(self.num_shards), self._map(check, range(self.num_shards)), strict=False):
            entry = self.manifest.shards[index]
            if failure is not None:
                report.errors.append(failure)
            else:
                report.shards += 1
                report.records += entry.records
                report.sealed_bytes += entry.sealed_size
            if progress is not None:
                progress(report, index + 1)
        report.seconds = time.perf_counter() - started
        return report


VERIFY_MODES = ("full", "sha256", "aead")


def _check_verify(verify: str) -> str:
    if verify not in VERIFY_MODES:
        raise UsageError(f"verify must be one of {', '.join(VERIFY_MODES)}, not {verify!r}")
    return verify


def _matches(entry: ShardEntry, data: Buffer, verify: str = "full") -> bool:
    """Whether `data` is the shard `entry` describes: its size, then its digest as `verify` says."""
    if len(data) != entry.sealed_size:
        return False
    if verify == "aead":
        return True
    if verify == "full" and entry.blake3 is not None:
        return blake3.blake3(data).hexdigest() == entry.blake3  # about 6 GB/s a core here; SHA-256 1.7
    return hashlib.sha256(data).hexdigest() == entry.sha256


def _wrong_size(actual: int, expected: int) -> str:
    how = "truncated" if actual < expected else "too long"
    return f"the stored object is {how}: {actual} bytes, the manifest says {expected}"


def fetch_manifest(manifest_uri: str | Path, *, manifest_hash: str | None = None,
                   trusted: bool = True) -> tuple[Manifest, str]:
    """Fetch, hash-check and parse a manifest. The expected hash comes from `manifest_hash` (e.g. from
    the chain) or from a content-addressed locator; without either the manifest is taken as given.

    `trusted=False` for a URI an untrusted party named (a registration on the chain): it must pass the
    configured fetch policy. At most the `manifest_bytes` limit is read."""
    uri = _normalise(manifest_uri)
    policy = fetch_policy.OPEN if trusted else fetch_policy.configured()
    policy.check(uri)
    cap = limits.current().manifest_bytes
    with fetch_policy.applied(policy):
        data = store_for(uri).get(uri, 0, cap + 1)
    if len(data) > cap:
        raise LimitError(f"the manifest at {uri} is longer than {cap} bytes", limit="manifest_bytes")
    actual = hashlib.sha256(data).hexdigest()
    expected = (manifest_hash or _implied_hash(uri) or actual).lower()
    if actual != expected:
        raise IntegrityError(f"manifest hash is {actual}, expected {expected}", locator=uri,
                             hint="the store returned a different or altered manifest")
    return Manifest.from_bytes(data), uri


def open_dataset(manifest_uri: str | Path, *, key: bytes | str | None = None, keystore: Keystore | None = None,
                 manifest_hash: str | None = None, mirrors: Sequence[str] = (), workers: int = 2,
                 cache: ShardCache | None = None, range_parts: int = 1) -> Dataset:
    """Open a dataset version from its manifest URI.

    The key comes from `key` (bytes or hex) or from the keystore by manifest hash; it is checked
    against the manifest's key commitment before any shard is decrypted. `mirrors` are base URIs of
    content-addressed copies of the store (LocalStore layout), tried after each shard's own locators.
    `cache` keeps fetched ciphertext on local disk (checked again on every read). `range_parts` > 1
    fetches each remote shard as that many byte ranges at once (parts of at least 1 MiB), for gateways
    that serve one connection slowly; local stores are always read whole.
    """
    manifest, uri = fetch_manifest(manifest_uri, manifest_hash=manifest_hash)
    return Dataset(manifest, uri, key=key, keystore=keystore, mirrors=mirrors, workers=workers, cache=cache,
                   range_parts=range_parts)
