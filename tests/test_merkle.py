"""The content root equals RFC 9162's recursive Merkle Tree Hash; proofs verify and forgeries fail."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deai_data.formats.merkle import EMPTY_ROOT, inclusion_proof, merkle_root, verify_inclusion


def rfc9162_mth(leaves: list[bytes]) -> bytes:
    """Independent reference: MTH(D[n]) as written in RFC 9162 section 2.1.1 (recursive split)."""
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1 << ((n - 1).bit_length() - 1)
    return hashlib.sha256(b"\x01" + rfc9162_mth(leaves[:k]) + rfc9162_mth(leaves[k:])).digest()


def hashes(n: int) -> list[bytes]:
    return [hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(n)]


@pytest.mark.parametrize("n", [*list(range(0, 34)), 100, 257])
def test_root_matches_rfc9162(n):
    assert merkle_root(hashes(n)) == rfc9162_mth(hashes(n))


def test_empty_root_is_sha256_of_nothing():
    assert merkle_root([]) == EMPTY_ROOT == hashlib.sha256(b"").digest()


@pytest.mark.parametrize("n", [1, 2, 3, 5, 7, 8, 9, 31, 33])
def test_every_inclusion_proof_verifies(n):
    leaves = hashes(n)
    root = merkle_root(leaves)
    for i in range(n):
        proof = inclusion_proof(leaves, i)
        assert verify_inclusion(leaves[i], i, n, proof, root)
        assert not verify_inclusion(leaves[(i + 1) % n], i, n, proof, root) or n == 1
        if proof:
            assert not verify_inclusion(leaves[i], i, n, proof[:-1], root)
            assert not verify_inclusion(leaves[i], i, n, [*proof, proof[0]], root)


@given(st.integers(2, 64), st.data())
def test_a_changed_leaf_changes_the_root(n, data):
    leaves = hashes(n)
    i = data.draw(st.integers(0, n - 1))
    altered = list(leaves)
    altered[i] = hashlib.sha256(b"other").digest()
    assert merkle_root(altered) != merkle_root(leaves)
    swapped = list(leaves)
    j = (i + 1) % n
    swapped[i], swapped[j] = swapped[j], swapped[i]
    assert merkle_root(swapped) != merkle_root(leaves)


def test_leaf_and_node_domains_are_separated():
    # a two-leaf tree's root must not equal the leaf hash of the concatenated children
    a, b = hashes(2)
    assert merkle_root([a, b]) != hashlib.sha256(b"\x00" + a + b).digest()
