"""Write valid seed inputs for every fuzz target into fuzz/corpus/<target>/ (the fuzzer starts from them):
`python fuzz/seeds.py`. Seeds are named seed-*; what the fuzzer adds is named by its hash."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import pyarrow as pa

from deai_data.crypto.keystore import Keystore
from deai_data.crypto.sealing import HEADER_SIZE, seal_shard
from deai_data.formats import canonical
from deai_data.formats.manifest import LINEAGE_VERSION, Generation, Lineage, Manifest, ShardEntry
from deai_data.formats.merkle import merkle_root
from deai_data.storage.arweave.ans104 import build_bundle, sign_data_item
from deai_data.storage.arweave.wallet import Wallet
from deai_data.storage.ipfs import dag_cbor
from deai_data.storage.ipfs.car import car_bytes
from deai_data.storage.ipfs.unixfs import file_blocks

CORPUS = Path(__file__).resolve().parent / "corpus"


def seeds() -> dict[str, list[bytes]]:
    root, blocks = file_blocks(os.urandom(3000), chunk_size=1024)
    shards = tuple(ShardEntry(i, 3, 100, 64 + 100 + 16, f"{i + 1:064x}", (f"file:///s/{i}",), f"{i + 9:064x}")
                   for i in range(2))
    manifest = Manifest(seal_id="ab" * 32, name="seed", schema=pa.schema([("x", pa.int64())]), records=6,
                        segment_size=1 << 20, key_commitment="cd" * 32, shards=shards,
                        content_root=merkle_root([bytes.fromhex(s.sha256) for s in shards]).hex())
    inheriting = replace(manifest, version=LINEAGE_VERSION, previous_manifest="ef" * 32,
                         shards=(replace(shards[0], origin=(2, 5)), shards[1]),
                         lineage=Lineage("01" * 32, (Generation("02" * 32, "03" * 32, "04" * 32),
                                                     Generation("05" * 32, "06" * 32, None))))
    wallet = Wallet.generate()
    bundle = build_bundle([sign_data_item(wallet, b"item", [("App-Name", "deai-data")])])
    keystore = Keystore(CORPUS.parent / ".seed-ks", passphrase="fuzz", scrypt_n=2**10)
    keystore.put("data-key", "a" * 64, bytes(32), {"name": "seed"})
    return {
        "manifest": [manifest.to_bytes(), inheriting.to_bytes()],
        "canonical": [canonical.encode({"a": [1, {"b": "c"}], "d": None})],
        "car": [car_bytes([root], blocks)],
        "dag_cbor": [dag_cbor.encode({"a": [1, b"x", root], "b": "t"})],
        "dag_pb": [next(b.data for b in blocks if b.cid == root)],
        "cid": [root.to_bytes()],
        "ans104_bundle": [bundle],
        "shard_header": [bytes(seal_shard(b"x" * 10, data_key=bytes(32), seal_id=bytes(32), shard_index=0))[
            :HEADER_SIZE]],
        "json_answer": [json.dumps({"Version": "0.1", "list": [1, 2, {"x": None}]}).encode()],
        "arweave_tx": [json.dumps({"format": 2, "id": "x" * 43, "tags": [{"name": "YQ", "value": "Yg"}]}).encode()],
        "locator": [b"bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy", b"x" * 43],
        "key_import": [keystore.export("data-key", "a" * 64, "fuzz")],
    }


def main() -> None:
    for target, inputs in seeds().items():
        folder = CORPUS / target
        folder.mkdir(parents=True, exist_ok=True)
        for i, data in enumerate(inputs):
            (folder / f"seed-{i}").write_bytes(data)
    print(f"seeds written under {CORPUS}")


if __name__ == "__main__":
    main()
