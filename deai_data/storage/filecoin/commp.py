"""Filecoin piece commitments: commP over FR32-padded data, PieceCID v1 (`baga...`) and v2 (`bafkzcib...`,
FRC-0069), padded piece sizes.

commP is the root of a binary SHA-256 tree (each digest's last byte masked to 254 bits) over the data
zero-filled to the unpadded piece size and FR32-padded (2 zero bits after every 254). Hashing runs in
blocks of 1 MiB of padded data: NumPy pads a block and its 32,767 nodes are hashed by the native
extension (_native_commp.c: SHA extensions when the CPU has them, GIL released, blocks on threads) or,
where it was not built, by hashlib on worker processes (64-byte hashes are too small for hashlib to
release the GIL); zero subtrees are never hashed.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ...errors import FormatError
from ..ipfs.cid import (
    CID,
    FIL_COMMITMENT_UNSEALED,
    FR32_SHA256_TRUNC254_PADBINTREE,
    RAW,
    SHA2_256_TRUNC254_PADDED,
)
from ..varint import Buffer, decode_varint, encode_varint

try:
    from . import _native_commp as native
except ImportError:  # built by `pip install` where a C compiler exists; optional
    native = None

MIN_PAYLOAD = 65
NODE = 32
BLOCK_OUT = 1 << 20  # padded bytes per hashing block
BLOCK_IN = BLOCK_OUT // 128 * 127
_LEVELS_PER_BLOCK = (BLOCK_OUT // NODE).bit_length() - 1  # 15


def padded_piece_size(payload_size: int) -> int:
    """The padded piece size holding `payload_size` bytes: a power of two, at least 128."""
    if payload_size < MIN_PAYLOAD:
        raise FormatError(f"a piece needs at least {MIN_PAYLOAD} bytes, got {payload_size}")
    quads = -(-payload_size // 127)
    return max(128, 1 << (quads * 128 - 1).bit_length())


def fr32_pad(data: Buffer) -> np.ndarray:
    """FR32-pad a multiple of 127 bytes: each 127 bytes become 128, with 2 zero bits after every 254."""
    src = np.frombuffer(data, dtype=np.uint8)
    if src.size % 127:
        raise FormatError("FR32 padding works on multiples of 127 bytes")
    inp = src.reshape(-1, 127)
    out = np.empty((inp.shape[0], 128), dtype=np.uint8)
    out[:, :32] = inp[:, :32]
    out[:, 31] &= 0x3F
    out[:, 32:64] = (inp[:, 31:63] >> 6) | (inp[:, 32:64] << 2)
    out[:, 63] &= 0x3F
    out[:, 64:96] = (inp[:, 63:95] >> 4) | (inp[:, 64:96] << 4)
    out[:, 95] &= 0x3F
    out[:, 96:127] = (inp[:, 95:126] >> 2) | (inp[:, 96:127] << 6)
    out[:, 127] = inp[:, 126] >> 2
    return out.reshape(-1)


_MASK_254 = bytes(b & 0x3F for b in range(256))


def _pair_hashes(level: bytes) -> bytes:
    """One tree level up in Python: SHA-256 of each 64-byte pair, masked to 254 bits (the fastest form
    measured here: about 0.65 us per node, nearly all of it Python's per-call cost, not SHA-256)."""
    sha = hashlib.sha256
    joined = bytearray(b"".join([sha(level[i:i + 64]).digest() for i in range(0, len(level), 64)]))
    joined[31::32] = joined[31::32].translate(_MASK_254)
    return bytes(joined)


def _subtree_root(padded: bytes) -> bytes:
    if native is not None:
        return native.tree_root(padded)
    return _subtree_root_python(padded)


def _subtree_root_python(padded: bytes) -> bytes:
    level = padded
    while len(level) > NODE:
        level = _pair_hashes(level)
    return level


@lru_cache(maxsize=1)
def zero_roots() -> tuple[bytes, ...]:
    """zero_roots()[h]: the root of a subtree of height h over zeros (64 levels)."""
    roots = [bytes(NODE)]
    for _ in range(64):
        roots.append(_pair_hashes(roots[-1] * 2))
    return tuple(roots)


def _block_root(chunk: bytes) -> bytes:
    """The commP subtree root of up to BLOCK_IN payload bytes (zero-filled to a whole block)."""
    if len(chunk) < BLOCK_IN:
        chunk = chunk + bytes(BLOCK_IN - len(chunk))
    return _subtree_root(fr32_pad(chunk).tobytes())


def _file_block(args: tuple[str, int]) -> bytes:
    path, index = args
    fd = os.open(path, os.O_RDONLY)
    try:
        return _block_root(os.pread(fd, BLOCK_IN, index * BLOCK_IN))
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Piece:
    """A piece: its commP root, payload size and padded size, and both PieceCID forms."""

    root: bytes
    payload_size: int
    padded_size: int

    @property
    def height(self) -> int:
        return (self.padded_size // NODE).bit_length() - 1

    @property
    def padding(self) -> int:
        """Zero bytes added to the payload to fill the unpadded piece (FRC-0069)."""
        return self.padded_size // 128 * 127 - self.payload_size

    @property
    def cid_v1(self) -> CID:
        return CID(1, FIL_COMMITMENT_UNSEALED, SHA2_256_TRUNC254_PADDED, self.root)

    @property
    def cid(self) -> CID:
        """PieceCID v2: raw codec, multihash fr32-sha256-trunc254-padbintree (padding, height, root)."""
        digest = encode_varint(self.padding) + bytes([self.height]) + self.root
        return CID(1, RAW, FR32_SHA256_TRUNC254_PADBINTREE, digest)

    @classmethod
    def from_cid(cls, cid: CID | str) -> Piece:
        """A piece from its v2 PieceCID (the only form that carries the payload size)."""
        cid = CID.parse(cid) if isinstance(cid, str) else cid
        if cid.codec != RAW or cid.hash_code != FR32_SHA256_TRUNC254_PADBINTREE:
            raise FormatError(f"{cid} is not a v2 PieceCID")
        padding, pos = decode_varint(cid.digest)
        if len(cid.digest) != pos + 1 + NODE:
            raise FormatError(f"{cid} has a malformed piece multihash")
        height, root = cid.digest[pos], cid.digest[pos + 1:]
        padded = NODE << height
        return cls(root, padded // 128 * 127 - padding, padded)


def _combine(block_roots: list[bytes], padded_size: int) -> bytes:
    """The piece root from the roots of its leading data blocks and zero blocks after them."""
    height_of_block = _LEVELS_PER_BLOCK
    total_height = (padded_size // NODE).bit_length() - 1
    if total_height <= height_of_block:
        return block_roots[0]  # never used: small pieces are hashed whole
    level = list(block_roots)
    zeros = zero_roots()
    for height in range(height_of_block, total_height):
        if len(level) % 2:
            level.append(zeros[height])
        level = [_pair_hashes(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


def _small_piece(data: bytes, padded_size: int) -> bytes:
    unpadded = padded_size // 128 * 127
    return _subtree_root(fr32_pad(data + bytes(unpadded - len(data))).tobytes())


def piece_of(data: Buffer, *, workers: int | None = None) -> Piece:
    """The piece (commP and sizes) of an in-memory payload."""
    view = memoryview(data).cast("B")
    padded = padded_piece_size(len(view))
    if padded <= BLOCK_OUT:
        return Piece(_small_piece(bytes(view), padded), len(view), padded)
    blocks = (bytes(view[i:i + BLOCK_IN]) for i in range(0, len(view), BLOCK_IN))
    return Piece(_combine(_run(_block_root, blocks, workers), padded), len(view), padded)


def piece_of_file(path: str | Path, *, workers: int | None = None) -> Piece:
    """The piece of a file; worker processes read their own blocks (nothing is copied between them)."""
    path = str(path)
    size = os.path.getsize(path)
    padded = padded_piece_size(size)
    if padded <= BLOCK_OUT:
        return Piece(_small_piece(Path(path).read_bytes(), padded), size, padded)
    jobs = ((path, i) for i in range(-(-size // BLOCK_IN)))
    return Piece(_combine(_run(_file_block, jobs, workers), padded), size, padded)


def _run(func: Callable, jobs: Iterator, workers: int | None) -> list[bytes]:
    workers = workers or os.cpu_count() or 1
    if workers == 1:
        return [func(job) for job in jobs]
    if native is not None:  # it releases the GIL: threads suffice, nothing is copied between processes
        with ThreadPoolExecutor(workers, thread_name_prefix="deai-commp") as pool:
            return list(pool.map(func, jobs))
    return list(_shared_pool(workers).map(func, jobs, chunksize=4))


_pools: dict[int, Executor] = {}


def _shared_pool(workers: int) -> Executor:
    """Worker processes kept for the life of the process. They start from a fork server (or are spawned),
    never forked from the caller: the publisher and the loader run threads, and forking a threaded
    process can deadlock the child."""
    pool = _pools.get(workers)
    if pool is None:
        import multiprocessing
        method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
        pool = _pools[workers] = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method))
    return pool
