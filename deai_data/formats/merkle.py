"""The content root: an RFC 9162 Merkle Tree Hash (SHA-256) over the shards' ciphertext hashes.

Leaves are `SHA-256(0x00 || shard_sha256)`, nodes `SHA-256(0x01 || left || right)`; a lone node at the
end of a level moves up unchanged. Inclusion proofs follow RFC 9162 section 2.1.3 (index, tree size).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from ..errors import UsageError

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(shard_hash: bytes) -> bytes:
    """Domain-separated hash of one leaf (a shard's 32-byte ciphertext hash)."""
    return hashlib.sha256(LEAF_PREFIX + shard_hash).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Domain-separated hash of an inner node."""
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def _levels(shard_hashes: Sequence[bytes]) -> list[list[bytes]]:
    level = [leaf_hash(h) for h in shard_hashes]
    levels = [level]
    while len(level) > 1:
        nxt = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        levels.append(nxt)
        level = nxt
    return levels


def merkle_root(shard_hashes: Sequence[bytes]) -> bytes:
    """Root over the shard hashes in index order; the SHA-256 of the empty string for no shards."""
    for h in shard_hashes:
        if len(h) != 32:
            raise UsageError("every shard hash must be 32 bytes")
    if not shard_hashes:
        return EMPTY_ROOT
    return _levels(shard_hashes)[-1][0]


def inclusion_proof(shard_hashes: Sequence[bytes], index: int) -> list[bytes]:
    """Sibling hashes from leaf `index` up to the root (the audit path)."""
    if not 0 <= index < len(shard_hashes):
        raise UsageError(f"leaf {index} out of range for {len(shard_hashes)} leaves")
    proof = []
    for level in _levels(shard_hashes)[:-1]:
        sibling = index ^ 1
        if sibling < len(level):
            proof.append(level[sibling])
        index //= 2
    return proof


def verify_inclusion(shard_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> bool:
    """True when `shard_hash` is leaf `index` of a tree of `size` leaves with this `root`."""
    if not 0 <= index < size:
        return False
    node = leaf_hash(shard_hash)
    steps = iter(proof)
    width = size
    while width > 1:
        if index % 2 == 1:
            sibling = next(steps, None)
            if sibling is None:
                return False
            node = node_hash(sibling, node)
        elif index + 1 < width:
            sibling = next(steps, None)
            if sibling is None:
                return False
            node = node_hash(node, sibling)
        index //= 2
        width = (width + 1) // 2
    return next(steps, None) is None and node == root
