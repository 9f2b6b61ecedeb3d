"""A new version's inheritance: the shards an earlier version already sealed and stored, found by their content,
and the lineage through which the new version's key opens them (docs/versions.md).
"""

from __future__ import annotations

import threading
from dataclasses import replace

import pyarrow as pa

from ..crypto.keys import key_link
from ..crypto.sealing import HEADER_SIZE, ShardHeader, ShardSealer
from ..errors import DeaiError
from ..formats.manifest import Generation, Lineage, ShardEntry
from .reader import Dataset

_CANDIDATES = 3  # earlier shards of the same shape tried per new shard, nearest position first


class Inheritance:
    """Matches new shards against the previous version's. A shard matches when its plaintext gives exactly
    the synthetic salt the earlier sealing stored in its header (an HMAC of a secret fingerprint of the
    content, under the earlier key): the new manifest then names the earlier sealed shard instead of sealing
    and uploading it again. Nothing is inherited when the schema, segment size or compression differ."""

    def __init__(self, previous: Dataset, data_key: bytes, schema: pa.Schema, segment_size: int,
                 compression: str | None) -> None:
        self.previous = previous
        earlier = previous.manifest
        self.compatible = earlier.schema.equals(schema) and earlier.segment_size == segment_size and \
            earlier.compression == compression
        self.key_link = key_link(data_key, previous.key).hex()
        before = earlier.lineage
        first = Generation(earlier.seal_id, earlier.key_commitment, before.key_link if before else None)
        self.generations = (first, *(before.generations if before else ()))
        self._by_shape: dict[tuple[int, int], list[int]] = {}
        for position, entry in enumerate(earlier.shards):
            self._by_shape.setdefault((entry.records, entry.plaintext_size), []).append(position)
        self._salts: dict[int, bytes | None] = {}
        self._sealers: dict[tuple[bytes, bytes], ShardSealer] = {}
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, object]:
        """What a shard task on another process needs (its caches and lock are its own)."""
        state = dict(self.__dict__)
        state.update(_salts={}, _sealers={}, _lock=None)
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def match(self, position: int, records: int, plaintext: memoryview, scratch: memoryview) -> ShardEntry | None:
        """The earlier shard holding exactly this plaintext, as shard `position` of the new version (None: none
        does). `scratch` must hold len(plaintext) + 16 bytes."""
        if not self.compatible:
            return None
        shape = self._by_shape.get((records, len(plaintext)), [])
        for earlier in sorted(shape, key=lambda j: abs(j - position))[:_CANDIDATES]:
            entry = self.previous.manifest.shards[earlier]
            key, seal_id, sealed_index = self.previous.opening(entry)
            stored = self._stored_salt(earlier)
            if stored is not None and self._sealer(key, seal_id).salt(sealed_index, plaintext, scratch) == stored:
                origin = (entry.origin[0] + 1, entry.origin[1]) if entry.origin else (1, earlier)
                return replace(entry, index=position, origin=origin)
        return None

    def lineage(self, entries: list[ShardEntry]) -> Lineage | None:
        """The lineage the new manifest needs: down to the deepest generation it inherits from (None: none)."""
        deepest = max((e.origin[0] for e in entries if e.origin is not None), default=0)
        return Lineage(self.key_link, self.generations[:deepest]) if deepest else None

    def _sealer(self, key: bytes, seal_id: bytes) -> ShardSealer:
        with self._lock:
            sealer = self._sealers.get((key, seal_id))
            if sealer is None:
                sealer = self._sealers[(key, seal_id)] = ShardSealer(key, seal_id, self.previous.manifest.segment_size)
            return sealer

    def _stored_salt(self, position: int) -> bytes | None:
        """The salt in the earlier sealed shard's header (fetched once; None when it cannot be read, and the
        shard is then sealed anew: a stale or altered copy is never inherited by mistake, since only the
        earlier key's holder can compute a matching salt)."""
        with self._lock:
            if position in self._salts:
                return self._salts[position]
        entry = self.previous.manifest.shards[position]
        try:
            header = ShardHeader.decode(self.previous.fetch_range(entry, 0, HEADER_SIZE), shard=entry.index)
            salt = header.salt if header.plaintext_size == entry.plaintext_size else None
        except DeaiError:
            salt = None
        with self._lock:
            self._salts[position] = salt
        return salt
