"""Dataset owner: publish a folder of files sealed to a store (a local folder, Arweave or IPFS), then
open, verify and read it back through the same store.

    python examples/publish_folder.py [FOLDER] [--store STORE]

    --store ./store                                              a local store (the default: a temporary one)
    --store 'ar://?gateway=http://127.0.0.1:1984&wallet=keystore:owner'   Arweave (a wallet in the keystore:
                                                                 `deai-data arweave wallet new --name owner`)
    --store 'ipfs://?api=http://127.0.0.1:5001'                  an IPFS node's RPC API

Without FOLDER it makes a small folder of files in a temporary directory. The data key (and the
Arweave wallet) live in the keystore ($DEAI_KEYSTORE, passphrase from $DEAI_KEYSTORE_PASSWORD or a prompt).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import deai_data
from deai_data.storage import Store, read_through


def make_sample_folder(root: Path) -> Path:
    for label in ("cats", "dogs"):
        for i in range(50):
            path = root / "sample" / label / f"{i:03d}.bin"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(bytes([i]) * (1000 + i))
    return root / "sample"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", nargs="?", help="folder to publish (one subfolder per label)")
    parser.add_argument("--store", help="store URI or folder (default: a temporary local store)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="deai-example-") as scratch:
        folder = Path(args.folder) if args.folder else make_sample_folder(Path(scratch))
        # reads go through the same store (gateway, node)
        publish_and_read_back(folder, read_through(args.store or Path(scratch) / "store"))


def publish_and_read_back(folder: Path, store: Store) -> None:
    result = deai_data.publish(folder, store=store, name=folder.name, license="CC0-1.0", shard_size=32 << 10)
    print(f"published {result.manifest.records} files in {len(result.manifest.shards)} shards")
    print(f"manifest hash {result.manifest_hash}")
    print(f"manifest uri  {result.manifest_uri}")

    dataset = deai_data.open_dataset(result.manifest_uri, manifest_hash=result.manifest_hash)
    report = dataset.verify()
    print(f"verified {report.shards} shards, {report.records} records")
    for batch in dataset.iter_batches():
        labels = batch.column("label").value_counts().to_pylist()
        print("first batch labels:", {c["values"]: c["counts"] for c in labels})
        break

if __name__ == "__main__":
    main()
