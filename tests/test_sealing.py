"""The segmented streaming AEAD: round trips, single-segment opening, and every rearrangement caught."""

from __future__ import annotations

import hashlib
import secrets

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deai_data.crypto.keys import key_commitment, shard_key, shard_salt
from deai_data.crypto.sealing import (
    HEADER_SIZE,
    MIN_SEGMENT_SIZE,
    TAG_SIZE,
    ShardCipher,
    ShardHeader,
    open_shard,
    seal_shard,
    sealed_size,
    segment_count,
    segment_span,
)
from deai_data.errors import IntegrityError

KEY = bytes(range(32))
DATASET = hashlib.sha256(b"dataset").digest()
SEG = MIN_SEGMENT_SIZE


def seal(data: bytes, index: int = 0, key: bytes = KEY, dataset: bytes = DATASET, seg: int = SEG) -> bytearray:
    return seal_shard(data, data_key=key, seal_id=dataset, shard_index=index, segment_size=seg)


def unseal(sealed: bytes, index: int = 0, key: bytes = KEY, dataset: bytes = DATASET) -> bytearray:
    return open_shard(sealed, data_key=key, seal_id=dataset, shard_index=index)


@settings(max_examples=60)
@given(st.binary(max_size=6 * SEG + 7), st.integers(0, 2**40), st.sampled_from([SEG, 2 * SEG + 3, 4096]))
def test_round_trip_any_size(data, index, seg):
    sealed = seal(data, index, seg=seg)
    assert len(sealed) == sealed_size(len(data), seg)
    assert bytes(unseal(sealed, index)) == data


@settings(max_examples=30)
@given(st.binary(min_size=1, max_size=5 * SEG), st.data())
def test_any_segment_opens_alone_with_one_range(data, draw):
    sealed = bytes(seal(data))
    header = ShardHeader.decode(sealed[:HEADER_SIZE])
    cipher = ShardCipher(KEY, DATASET, header)
    i = draw.draw(st.integers(0, segment_count(len(data), SEG) - 1))
    start, end = segment_span(i, len(data), SEG)
    assert cipher.open_segment(i, sealed[start:end]) == data[i * SEG:(i + 1) * SEG]


def test_sealing_is_deterministic_per_content_and_differs_per_index():
    data = secrets.token_bytes(3 * SEG)
    assert seal(data) == seal(data)
    assert seal(data, index=1)[HEADER_SIZE:] != seal(data, index=0)[HEADER_SIZE:]
    other = bytearray(data)
    other[0] ^= 1
    # changed content at the same index gets a different salt, hence a different key: no nonce reuse
    assert seal(bytes(other))[32:64] != seal(data)[32:64]


def test_keys_differ_per_shard_and_salt():
    salt = shard_salt(KEY, DATASET, 0, b"\x00" * 32)
    assert shard_key(KEY, DATASET, 0, salt) != shard_key(KEY, DATASET, 1, salt)
    assert shard_key(KEY, DATASET, 0, salt) != shard_key(KEY, DATASET, 0, b"\x01" * 32)
    assert key_commitment(KEY, DATASET) != key_commitment(bytes(32), DATASET)


DATA = bytes(range(256)) * (4 * SEG // 256) + b"tail"  # 5 segments, the last one short


def segments(sealed: bytes) -> list[bytes]:
    return [sealed[s:e] for s, e in (segment_span(i, len(DATA), SEG) for i in range(segment_count(len(DATA), SEG)))]


def reassemble(header: bytes, parts: list[bytes]) -> bytes:
    return header + b"".join(parts)


@pytest.fixture
def sealed() -> bytes:
    return bytes(seal(DATA))


def expect_failure(blob: bytes, index: int = 0, **kw) -> IntegrityError:
    with pytest.raises(IntegrityError) as info:
        unseal(blob, index, **kw)
    return info.value


def test_flipped_bit_names_the_segment(sealed):
    for segment in range(5):
        start, end = segment_span(segment, len(DATA), SEG)
        for offset in (start, (start + end) // 2, end - 1):
            blob = bytearray(sealed)
            blob[offset] ^= 0x40
            assert expect_failure(bytes(blob)).segment == segment


def test_swapped_segments_fail(sealed):
    parts = segments(sealed)
    parts[1], parts[2] = parts[2], parts[1]
    assert expect_failure(reassemble(sealed[:HEADER_SIZE], parts)).segment == 1


def test_duplicated_segment_fails(sealed):
    parts = segments(sealed)
    parts[2] = parts[1]
    assert expect_failure(reassemble(sealed[:HEADER_SIZE], parts)).segment == 2


def test_truncation_at_a_segment_boundary_fails(sealed):
    # dropping the final segment and claiming fewer bytes: the new last segment lacks the final flag
    parts = segments(sealed)[:3]
    header = ShardHeader.decode(sealed[:HEADER_SIZE])
    forged = ShardHeader(header.segment_size, 3 * SEG, header.shard_index, header.salt).encode()
    expect_failure(reassemble(forged, parts))
    expect_failure(sealed[:-10])
    expect_failure(sealed[: segment_span(3, len(DATA), SEG)[1]])


def test_segment_from_another_shard_or_dataset_fails(sealed):
    other_shard = bytes(seal(DATA, index=1))
    other_dataset = bytes(seal(DATA, dataset=hashlib.sha256(b"other").digest()))
    for donor in (other_shard, other_dataset):
        parts = segments(sealed)
        parts[3] = segments(donor)[3]
        assert expect_failure(reassemble(sealed[:HEADER_SIZE], parts)).segment == 3


def test_shard_presented_under_another_index_fails(sealed):
    err = expect_failure(sealed, index=4)
    assert err.shard == 4
    header = ShardHeader.decode(sealed[:HEADER_SIZE])
    relabelled = ShardHeader(header.segment_size, header.plaintext_size, 4, header.salt).encode()
    assert expect_failure(relabelled + sealed[HEADER_SIZE:], index=4).segment == 0


def test_wrong_key_or_dataset_fails(sealed):
    expect_failure(sealed, key=bytes(32))
    expect_failure(sealed, dataset=bytes(32))


def test_damaged_header_is_reported(sealed):
    for offset in (0, 8, 9):
        blob = bytearray(sealed)
        blob[offset] ^= 0xFF
        err = expect_failure(bytes(blob))
        assert "header" in str(err)


def test_empty_plaintext_has_one_authenticated_segment():
    sealed = seal(b"")
    assert len(sealed) == HEADER_SIZE + TAG_SIZE
    assert unseal(sealed) == b""
    expect_failure(bytes(sealed[:HEADER_SIZE]))
