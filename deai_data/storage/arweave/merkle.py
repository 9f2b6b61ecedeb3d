"""Arweave's chunk Merkle tree (transaction format 2): chunking, `data_root`, proofs, proof checks.

Chunks are cut exactly as arweave-js cuts them (256 KiB, the last two split evenly when the tail would
be under 32 KiB; an empty trailing leaf when the size is a multiple of 256 KiB), so the roots agree.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from ...errors import FormatError

MAX_CHUNK_SIZE = 256 * 1024
MIN_CHUNK_SIZE = 32 * 1024
NOTE_SIZE = 32
HASH_SIZE = 32

Buffer = bytes | bytearray | memoryview


def b64url(data: Buffer) -> str:
    """Base64url without padding, as Arweave writes every binary field."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    """Decode an Arweave base64url field; raises ValueError on anything else."""
    if not isinstance(text, str):
        raise FormatError(f"expected a base64url string, got {type(text).__name__}")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sha(*parts: Buffer) -> bytes:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part)
    return digest.digest()


def note(value: int) -> bytes:
    """A 32-byte big-endian offset note."""
    return value.to_bytes(NOTE_SIZE, "big")


@dataclass(frozen=True)
class Chunk:
    """One chunk of a transaction's data: its bytes are `data[start:end]`."""

    start: int
    end: int
    data_hash: bytes

    @property
    def size(self) -> int:
        return self.end - self.start


def chunk_bounds(size: int) -> list[tuple[int, int]]:
    """The `[start, end)` of every chunk arweave-js cuts from `size` bytes, the empty tail included."""
    bounds = []
    cursor = 0
    rest = size
    while rest >= MAX_CHUNK_SIZE:
        chunk = MAX_CHUNK_SIZE
        following = rest - MAX_CHUNK_SIZE
        if 0 < following < MIN_CHUNK_SIZE:
            chunk = -(-rest // 2)  # ceil: the last two chunks share the tail evenly
        bounds.append((cursor, cursor + chunk))
        cursor += chunk
        rest -= chunk
    bounds.append((cursor, cursor + rest))
    return bounds


def chunk_data(data: Buffer) -> list[Chunk]:
    view = memoryview(data)
    return [Chunk(start, end, _sha(view[start:end])) for start, end in chunk_bounds(len(view))]


@dataclass
class _Node:
    id: bytes
    max_byte_range: int
    byte_range: int = 0  # branches: the split offset
    left: _Node | None = None
    right: _Node | None = None
    chunk: Chunk | None = None


def _build(chunks: list[Chunk]) -> _Node:
    layer = [_Node(_sha(_sha(c.data_hash), _sha(note(c.end))), c.end, chunk=c) for c in chunks]
    while len(layer) > 1:
        nxt = []
        for i in range(0, len(layer), 2):
            if i + 1 == len(layer):
                nxt.append(layer[i])
                continue
            left, right = layer[i], layer[i + 1]
            nxt.append(_Node(_sha(_sha(left.id), _sha(right.id), _sha(note(left.max_byte_range))),
                             right.max_byte_range, left.max_byte_range, left, right))
        layer = nxt
    return layer[0]


def _proofs(node: _Node, prefix: bytes, out: list[bytes]) -> None:
    if node.chunk is not None:
        out.append(prefix + node.chunk.data_hash + note(node.max_byte_range))
        return
    assert node.left is not None and node.right is not None
    here = prefix + node.left.id + node.right.id + note(node.byte_range)
    _proofs(node.left, here, out)
    _proofs(node.right, here, out)


@dataclass(frozen=True)
class ChunkedData:
    """A payload's chunks, `data_root` and one proof (`data_path`) per non-empty chunk."""

    data_root: bytes
    data_size: int
    chunks: tuple[Chunk, ...]
    proofs: tuple[bytes, ...]

    def offset(self, index: int) -> int:
        """The offset a gateway expects with chunk `index`: its last byte."""
        return self.chunks[index].end - 1


def chunk_payload(data: Buffer) -> ChunkedData:
    """Chunks, root and proofs of `data`, as arweave-js's `generateTransactionChunks` computes them."""
    chunks = chunk_data(data)
    root = _build(chunks)
    proofs: list[bytes] = []
    _proofs(root, b"", proofs)
    if chunks[-1].size == 0:  # the empty tail counts in the root but is never uploaded
        chunks, proofs = chunks[:-1], proofs[:-1]
    return ChunkedData(root.id, len(data), tuple(chunks), tuple(proofs))


def data_root(data: Buffer) -> str:
    """The base64url `data_root` of `data`, identical to arweave-js's for any size."""
    return b64url(_build(chunk_data(data)).id)


def validate_path(root: bytes, offset: int, data_size: int, path: bytes) -> tuple[int, int, bytes] | None:
    """Check a chunk proof the way Arweave nodes do: returns the chunk's `(start, end, data_hash)` when
    `path` proves the chunk holding byte `offset` under `root`, else None."""
    if data_size <= 0:
        return None
    offset = min(max(offset, 0), data_size - 1)
    left_bound, right_bound, node_id = 0, data_size, root
    while True:
        if len(path) == HASH_SIZE + NOTE_SIZE:
            data_hash, end_note = path[:HASH_SIZE], path[HASH_SIZE:]
            if _sha(_sha(data_hash), _sha(end_note)) != node_id:
                return None
            if int.from_bytes(end_note, "big") != right_bound:
                return None
            return left_bound, right_bound, data_hash
        if len(path) < 2 * HASH_SIZE + NOTE_SIZE:
            return None
        left, right, split_note = path[:32], path[32:64], path[64:96]
        if _sha(_sha(left), _sha(right), _sha(split_note)) != node_id:
            return None
        split = int.from_bytes(split_note, "big")
        path = path[96:]
        if offset < split:
            node_id, right_bound = left, min(right_bound, split)
        else:
            node_id, left_bound = right, max(left_bound, split)
