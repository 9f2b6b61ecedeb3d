"""Sealed shards: a segmented streaming AEAD (STREAM) with AES-256-GCM under a per-shard HKDF key.

Every segment can be fetched with one range request and opened alone; reordering, truncation,
duplication and swapping of segments or shards fail authentication. Byte layout: docs/formats.md.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..errors import IntegrityError, UsageError
from .keys import fingerprint_key, shard_key, shard_salt

MAGIC = b"DEAISEAL"
VERSION = 1
SUITE_AES256GCM_HKDF_SHA256 = 1
HEADER_SIZE = 64
TAG_SIZE = 16
DEFAULT_SEGMENT_SIZE = 1 << 20
MIN_SEGMENT_SIZE = 1 << 10
MAX_SEGMENT_SIZE = 1 << 26
_HEADER = struct.Struct(">8sBBHIQQ32s")  # magic, version, suite, header size, segment size, length, index, salt
_NONCE = struct.Struct(">7xIB")  # 7 zero bytes, segment counter, last-segment flag
_FINGERPRINT_NONCE = struct.Struct(">4xQ")  # 4 zero bytes, shard index


def segment_count(plaintext_size: int, segment_size: int) -> int:
    """Number of segments; an empty plaintext still has one (empty, final) segment."""
    return max(1, -(-plaintext_size // segment_size))


def sealed_size(plaintext_size: int, segment_size: int) -> int:
    """Total size of a sealed shard: header plus every segment with its tag."""
    return HEADER_SIZE + plaintext_size + TAG_SIZE * segment_count(plaintext_size, segment_size)


def segment_span(index: int, plaintext_size: int, segment_size: int) -> tuple[int, int]:
    """Byte range [start, end) of sealed segment `index` inside the sealed shard."""
    count = segment_count(plaintext_size, segment_size)
    if not 0 <= index < count:
        raise UsageError(f"segment {index} out of range (shard has {count})")
    start = HEADER_SIZE + index * (segment_size + TAG_SIZE)
    body = min(segment_size, plaintext_size - index * segment_size)
    return start, start + body + TAG_SIZE


def check_segment_size(segment_size: int) -> int:
    if not MIN_SEGMENT_SIZE <= segment_size <= MAX_SEGMENT_SIZE:
        raise UsageError(f"segment size must be between {MIN_SEGMENT_SIZE} and {MAX_SEGMENT_SIZE} bytes")
    return segment_size


def _nonce(counter: int, last: bool) -> bytes:
    return _NONCE.pack(counter, 1 if last else 0)


@dataclass(frozen=True)
class ShardHeader:
    """The 64-byte header at the start of every sealed shard (authenticated as associated data)."""

    segment_size: int
    plaintext_size: int
    shard_index: int
    salt: bytes

    def encode(self) -> bytes:
        return _HEADER.pack(
            MAGIC, VERSION, SUITE_AES256GCM_HKDF_SHA256, HEADER_SIZE,
            self.segment_size, self.plaintext_size, self.shard_index, self.salt,
        )

    @classmethod
    def decode(cls, data: bytes | bytearray | memoryview, *, dataset: str | None = None,
               shard: int | None = None) -> ShardHeader:
        def bad(why: str) -> IntegrityError:
            return IntegrityError(f"sealed shard header: {why}", dataset=dataset, shard=shard)

        if len(data) < HEADER_SIZE:
            raise bad(f"{len(data)} bytes, expected {HEADER_SIZE}")
        magic, version, suite, size, seg, length, index, salt = _HEADER.unpack_from(data)
        if magic != MAGIC:
            raise bad("bad magic: not a deai-data sealed shard")
        if version != VERSION or suite != SUITE_AES256GCM_HKDF_SHA256 or size != HEADER_SIZE:
            raise bad(f"unsupported version {version} / suite {suite} / header size {size}")
        if not MIN_SEGMENT_SIZE <= seg <= MAX_SEGMENT_SIZE:
            raise bad(f"segment size {seg} out of range")
        return cls(seg, length, index, salt)


class ShardCipher:
    """Seals or opens the segments of one shard; holds the derived per-shard AES key."""

    def __init__(self, data_key: bytes, seal_id: bytes, header: ShardHeader, *, dataset: str | None = None):
        self.header = header
        self.count = segment_count(header.plaintext_size, header.segment_size)
        self._aead = AESGCM(shard_key(data_key, seal_id, header.shard_index, header.salt))
        self._header = header.encode()
        self._ad = seal_id + self._header
        self._dataset = dataset

    def sealed_size(self) -> int:
        return sealed_size(self.header.plaintext_size, self.header.segment_size)

    def seal_into(self, plaintext: memoryview, out: memoryview) -> None:
        """Write header and all sealed segments of `plaintext` into `out` (exactly `sealed_size()`)."""
        seg = self.header.segment_size
        out[:HEADER_SIZE] = self._header
        pos = HEADER_SIZE
        for i in range(self.count):
            chunk = plaintext[i * seg:(i + 1) * seg]
            end = pos + len(chunk) + TAG_SIZE
            self._aead.encrypt_into(_nonce(i, i == self.count - 1), chunk, self._ad, out[pos:end])
            pos = end

    def open_segment_into(self, index: int, sealed_segment: memoryview, out: memoryview) -> None:
        """Authenticate and decrypt segment `index` into `out` (its plaintext length).

        Raises IntegrityError naming the segment; `out` then holds nothing usable.
        """
        if not 0 <= index < self.count:
            raise IntegrityError(f"segment index {index} out of range", dataset=self._dataset,
                                 shard=self.header.shard_index, segment=index)
        expected = segment_span(index, self.header.plaintext_size, self.header.segment_size)
        if len(sealed_segment) != expected[1] - expected[0]:
            raise IntegrityError(
                f"sealed segment is {len(sealed_segment)} bytes, expected {expected[1] - expected[0]}",
                dataset=self._dataset, shard=self.header.shard_index, segment=index)
        try:
            self._aead.decrypt_into(_nonce(index, index == self.count - 1), sealed_segment, self._ad, out)
        except InvalidTag:
            out[:] = bytes(len(out))
            raise IntegrityError("authentication tag does not verify", dataset=self._dataset,
                                 shard=self.header.shard_index, segment=index) from None

    def open_segment(self, index: int, sealed_segment: bytes | bytearray | memoryview) -> bytes:
        start, end = segment_span(index, self.header.plaintext_size, self.header.segment_size)
        out = bytearray(end - start - TAG_SIZE)
        self.open_segment_into(index, memoryview(sealed_segment), memoryview(out))
        return bytes(out)

    def open_into(self, sealed: memoryview, out: memoryview) -> None:
        """Open every segment of a whole sealed shard into `out` (plaintext_size bytes)."""
        expected = self.sealed_size()
        if len(sealed) != expected:
            raise IntegrityError(f"sealed shard is {len(sealed)} bytes, expected {expected}",
                                 dataset=self._dataset, shard=self.header.shard_index)
        seg = self.header.segment_size
        for i in range(self.count):
            start, end = segment_span(i, self.header.plaintext_size, seg)
            self.open_segment_into(i, sealed[start:end], out[i * seg:i * seg + end - start - TAG_SIZE])


class ShardSealer:
    """Seals the shards of one dataset version into caller-provided buffers (reusable across shards).

    Each shard's salt is synthetic: HMAC of a secret fingerprint of its plaintext, where the
    fingerprint is the AES-GCM tag of the plaintext under a key derived from the data key (GHASH
    runs at AES speed, several times faster than SHA-256). See docs/formats.md.
    """

    def __init__(self, data_key: bytes, seal_id: bytes, segment_size: int = DEFAULT_SEGMENT_SIZE) -> None:
        self.data_key = data_key
        self.seal_id = seal_id
        self.segment_size = check_segment_size(segment_size)
        self._fingerprint = AESGCM(fingerprint_key(data_key, seal_id))

    def fingerprint(self, shard_index: int, plaintext: memoryview, scratch: memoryview) -> bytes:
        """16-byte secret fingerprint of `plaintext`; `scratch` must hold len(plaintext) + 16 bytes."""
        out = scratch[:len(plaintext) + TAG_SIZE]
        self._fingerprint.encrypt_into(_FINGERPRINT_NONCE.pack(shard_index), plaintext, None, out)
        return bytes(out[-TAG_SIZE:])

    def sealed_size(self, plaintext_size: int) -> int:
        return sealed_size(plaintext_size, self.segment_size)

    def salt(self, shard_index: int, plaintext: memoryview, scratch: memoryview) -> bytes:
        """The synthetic salt of this shard's content (also its key in the publish journal)."""
        return shard_salt(self.data_key, self.seal_id, shard_index,
                          self.fingerprint(shard_index, plaintext, scratch))

    def seal_into(self, shard_index: int, plaintext: memoryview, salt: bytes, out: memoryview) -> memoryview:
        """Seal `plaintext` into the front of `out`; returns the sealed bytes (a view of `out`)."""
        header = ShardHeader(self.segment_size, len(plaintext), shard_index, salt)
        sealed = out[:self.sealed_size(len(plaintext))]
        ShardCipher(self.data_key, self.seal_id, header).seal_into(plaintext, sealed)
        return sealed


def seal_shard(
    plaintext: bytes | bytearray | memoryview,
    *,
    data_key: bytes,
    seal_id: bytes,
    shard_index: int,
    segment_size: int = DEFAULT_SEGMENT_SIZE,
) -> bytearray:
    """Seal one shard into a new buffer (convenience; the publisher reuses buffers instead)."""
    view = memoryview(plaintext).cast("B")
    sealer = ShardSealer(data_key, seal_id, segment_size)
    out = bytearray(sealer.sealed_size(len(view)))
    salt = sealer.salt(shard_index, view, memoryview(out))  # the sealed buffer doubles as scratch
    sealer.seal_into(shard_index, view, salt, memoryview(out))
    return out


def open_shard(
    sealed: bytes | bytearray | memoryview,
    *,
    data_key: bytes,
    seal_id: bytes,
    shard_index: int,
    dataset: str | None = None,
    plaintext_size: int | None = None,
    out: memoryview | None = None,
) -> bytearray | memoryview:
    """Open a whole sealed shard, checking it is shard `shard_index` of this dataset; the plaintext
    goes into `out` (exactly the plaintext size) when given, else into a new bytearray."""
    view = memoryview(sealed).cast("B")
    header = ShardHeader.decode(view[:HEADER_SIZE], dataset=dataset, shard=shard_index)
    if header.shard_index != shard_index:
        raise IntegrityError(f"header says shard {header.shard_index}", dataset=dataset, shard=shard_index)
    if plaintext_size is not None and header.plaintext_size != plaintext_size:
        raise IntegrityError(f"header says {header.plaintext_size} plaintext bytes, manifest {plaintext_size}",
                             dataset=dataset, shard=shard_index)
    cipher = ShardCipher(data_key, seal_id, header, dataset=dataset)
    target = out if out is not None else bytearray(header.plaintext_size)
    if len(target) != header.plaintext_size:
        raise UsageError(f"output buffer holds {len(target)} bytes, the plaintext is {header.plaintext_size}")
    cipher.open_into(view, memoryview(target))
    return target
