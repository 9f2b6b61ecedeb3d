"""The peers' data for bench/loader.py, written in an environment with mosaicml-streaming and webdataset.

    PYTHON bench/loader_peers.py DIR

Reads the samples bench/loader.py wrote (DIR/files/<id>.bin) and writes them as MosaicML MDS shards
(DIR/mds: columns id and data) and WebDataset tar shards (DIR/wds: <id>.data members stamped with mtime 0,
since ShardWriter stamps fractional times), 64 MiB each, the size of ours.
"""

from __future__ import annotations

import io
import sys
import tarfile
from pathlib import Path

SHARD = 64 << 20


def write_tars(root: Path, files: list[Path]) -> None:
    root.mkdir(parents=True)
    tar, size, n = None, 0, 0
    for path in files:
        if tar is None or size >= SHARD:
            if tar is not None:
                tar.close()
            tar, size, n = tarfile.open(root / f"shard-{n:06d}.tar", "w"), 0, n + 1  # noqa: SIM115 - closed below
        payload = path.read_bytes()
        info = tarfile.TarInfo(f"{path.stem}.data")
        info.size, info.mtime = len(payload), 0
        tar.addfile(info, io.BytesIO(payload))
        size += len(payload) + 1024
    if tar is not None:
        tar.close()


def main() -> None:
    from streaming import MDSWriter

    root = Path(sys.argv[1])
    files = sorted((root / "files").iterdir())
    with MDSWriter(out=str(root / "mds"), columns={"id": "int", "data": "bytes"}, size_limit=SHARD) as out:
        for path in files:
            out.write({"id": int(path.stem), "data": path.read_bytes()})
    write_tars(root / "wds", files)


if __name__ == "__main__":
    main()
