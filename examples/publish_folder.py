"""Dataset owner: publish a folder of files to a local store, then open, verify and read it back.

    python examples/publish_folder.py [FOLDER] [STORE]

Without arguments it makes a small folder of files in a temporary directory. The data key goes to
the keystore ($DEAI_KEYSTORE, passphrase from $DEAI_KEYSTORE_PASSWORD or a prompt).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import deai_data


def make_sample_folder(root: Path) -> Path:
    for label in ("cats", "dogs"):
        for i in range(50):
            path = root / "sample" / label / f"{i:03d}.bin"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(bytes([i]) * (1000 + i))
    return root / "sample"


def main(argv: list[str]) -> None:
    scratch = Path(tempfile.mkdtemp(prefix="deai-example-"))
    folder = Path(argv[1]) if len(argv) > 1 else make_sample_folder(scratch)
    store = Path(argv[2]) if len(argv) > 2 else scratch / "store"

    result = deai_data.publish(folder, store=store, name=folder.name, license="CC0-1.0",
                               shard_size=32 << 10)
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
    main(sys.argv)
