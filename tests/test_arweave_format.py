"""Arweave formats against the reference implementations (arweave-js and arbundles, run through node):
data_root and chunking, chunk proofs under the nodes' rules, signatures, ANS-104 items and bundles."""

from __future__ import annotations

import json
import random

import pytest
from arweave_services import arweave_js
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from deai_data import IntegrityError, StorageError
from deai_data.storage.arweave import (
    Transaction,
    Wallet,
    build_bundle,
    chunk_payload,
    data_root,
    parse_bundle,
    sign_data_item,
    validate_path,
)
from deai_data.storage.arweave.ans104 import DataItem, decode_avro_tags, encode_avro_tags
from deai_data.storage.arweave.merkle import MAX_CHUNK_SIZE, b64url
from deai_data.storage.arweave.wallet import verify

K = MAX_CHUNK_SIZE
SIZES = [1, 100, 32 * 1024 - 1, K - 1, K, K + 1, K + 32 * 1024 - 1, K + 32 * 1024, K + 32 * 1024 + 1,
         2 * K - 1, 2 * K, 2 * K + 1, 3 * K + 1000, 4 * K + 31 * 1024, 4 << 20, (5 << 20) + 12345]


@pytest.fixture(scope="module")
def wallet() -> Wallet:
    return Wallet.generate()


def test_data_root_and_chunk_offsets_match_arweave_js(tmp_path):
    rng = random.Random(7)
    payloads = {size: rng.randbytes(size) for size in SIZES}
    files = []
    for size, data in payloads.items():
        files.append(tmp_path / f"{size}.bin")
        files[-1].write_bytes(data)
    reference = arweave_js("data-root", *files)
    for (size, data), ref in zip(payloads.items(), reference, strict=True):
        chunks = chunk_payload(data)
        assert data_root(data) == ref["data_root"], size
        assert [chunks.offset(i) for i in range(len(chunks.chunks))] == ref["offsets"], size


@pytest.mark.parametrize("size", [K - 1, K, 2 * K + 1, 3 * K + 1000, 4 * K + 31 * 1024, (1 << 20) + 7])
def test_proofs_satisfy_the_nodes_rules(size):
    """arlocal accepts any chunk: check ours as arweave.net would (path valid for every byte of its
    chunk, chunks at most 256 KiB and all full-size but the last two, no empty chunk uploaded)."""
    data = random.Random(size).randbytes(size)
    chunks = chunk_payload(data)
    sizes = [c.size for c in chunks.chunks]
    assert all(0 < s <= K for s in sizes) and all(s == K for s in sizes[:-2])
    assert sum(sizes) == size
    for chunk, proof in zip(chunks.chunks, chunks.proofs, strict=True):
        for offset in (chunk.start, chunk.end - 1, (chunk.start + chunk.end) // 2):
            assert validate_path(chunks.data_root, offset, size, proof) == (chunk.start, chunk.end, chunk.data_hash)
        bad = bytearray(proof)
        bad[len(bad) // 2] ^= 1
        assert validate_path(chunks.data_root, chunk.start, size, bytes(bad)) is None
    if len(chunks.chunks) > 1:  # a proof proves only its own chunk
        assert validate_path(chunks.data_root, chunks.chunks[1].start, size, chunks.proofs[0]) is None


def test_our_signature_is_accepted_by_arweave_js(tmp_path, wallet):
    data = random.Random(3).randbytes(3 * K + 17)
    chunks = chunk_payload(data)
    tx = Transaction(owner=wallet.owner, last_tx=b64url(bytes(48)), reward=123456,
                     data_root=chunks.data_root, data_size=len(data),
                     tags=(("App-Name", "deai-data"), ("Grüße", "naïve ✓ 数据"))).signed(wallet)
    assert tx.verify()
    doc = tmp_path / "tx.json"
    doc.write_text(json.dumps(tx.to_json(with_data=False)))
    assert arweave_js("verify-tx", doc)["valid"] is True
    tampered = tx.to_json(with_data=False)
    tampered["reward"] = "123457"
    doc.write_text(json.dumps(tampered))
    assert arweave_js("verify-tx", doc)["valid"] is False


def test_wallet_jwk_round_trip_and_salt_lengths(wallet):
    again = Wallet.from_jwk(json.dumps(wallet.to_jwk()))
    assert again.address == wallet.address and again.owner == wallet.owner
    assert wallet.to_jwk()["d"] not in repr(wallet) and wallet.address in repr(wallet)
    message = b"hello arweave"
    assert verify(wallet.owner, message, wallet.sign(message))
    # other clients sign with a 32-byte salt: accepted too
    salt32 = wallet._key.sign(message, padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256())
    assert verify(wallet.owner, message, salt32)
    assert not verify(wallet.owner, message + b"!", salt32)
    with pytest.raises(StorageError, match="not an Arweave JWK"):
        Wallet.from_jwk({"kty": "RSA", "n": "AQAB"})


def test_avro_tags_round_trip():
    tags = [("App-Name", "deai-data"), ("Grüße", "naïve ✓ 数据"), ("empty", ""), ("x" * 200, "y" * 3000)]
    assert decode_avro_tags(encode_avro_tags(tags)) == tags
    assert encode_avro_tags([]) == b""
    with pytest.raises(ValueError):
        decode_avro_tags(encode_avro_tags(tags)[:-3])


def test_data_items_both_ways_with_arbundles(tmp_path, wallet):
    payload = random.Random(5).randbytes(10_000)
    item = sign_data_item(wallet, payload, [("App-Name", "deai-data"), ("Grüße", "naïve ✓")])
    assert item.verify()
    (tmp_path / "ours.bin").write_bytes(item.raw)
    checked = arweave_js("verify-item", tmp_path / "ours.bin")
    assert checked["valid"] is True and checked["id"] == item.id
    assert checked["tags"] == [["App-Name", "deai-data"], ["Grüße", "naïve ✓"]]
    assert checked["data"] == b64url(payload)

    (tmp_path / "wallet.json").write_text(json.dumps(wallet.to_jwk()))
    (tmp_path / "payload.bin").write_bytes(payload)
    theirs = arweave_js("sign-item", tmp_path / "wallet.json", tmp_path / "payload.bin", tmp_path / "theirs.bin")
    foreign = DataItem((tmp_path / "theirs.bin").read_bytes())
    assert foreign.verify() and foreign.id == theirs["id"]
    fields = foreign.fields()
    assert fields.tags == [("App-Name", "arbundles-test"), ("Grüße", "naïve ✓")]
    assert bytes(fields.data) == payload

    tampered = bytearray(item.raw)
    tampered[-1] ^= 1
    assert not DataItem(bytes(tampered)).verify()
    (tmp_path / "bad.bin").write_bytes(tampered)
    assert arweave_js("verify-item", tmp_path / "bad.bin")["valid"] is False


def test_bundles_round_trip_and_reject_tampering(wallet):
    items = [sign_data_item(wallet, bytes([i]) * (100 + i), [("i", str(i))]) for i in range(5)]
    bundle = build_bundle(items)
    assert [i.id for i in parse_bundle(bundle)] == [i.id for i in items]
    tampered = bytearray(bundle)
    tampered[-1] ^= 1
    with pytest.raises(IntegrityError, match="item 4"):
        parse_bundle(bytes(tampered))
    with pytest.raises(IntegrityError, match="bundle"):
        parse_bundle(bundle[:-10])
