"""Where the indexer keeps things under its root folder, and atomic file writes.

```
<root>/state.json                                   checkpoint (see docs/indexer.md)
<root>/events/<table>/bucket=<n>/<from>-<to>.parquet one file per event type and indexed block range;
                                                    bucket = from // 1,000,000 (a hive partition)
<root>/metadata/manifests.parquet                   enrichment: one row per registered manifest
<root>/catalog.duckdb                               views over the Parquet + derived views
```
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from deai_data import staging

BUCKET = 1_000_000
_RANGE = re.compile(r"^(\d{12})-(\d{12})\.parquet$")


def events_dir(root: Path) -> Path:
    return root / "events"


def range_file(root: Path, table: str, start: int, end: int) -> Path:
    return events_dir(root) / table / f"bucket={start // BUCKET}" / f"{start:012d}-{end:012d}.parquet"


def range_files(root: Path) -> Iterator[tuple[Path, int, int]]:
    """Every event file with its (from, to) block range."""
    base = events_dir(root)
    if not base.is_dir():
        return
    for path in base.glob("*/bucket=*/*.parquet"):
        match = _RANGE.match(path.name)
        if match:
            yield path, int(match.group(1)), int(match.group(2))


def abandoned_temp_files(root: Path) -> Iterator[Path]:
    """Temporary files whose writing process is gone (it was killed between write and rename)."""
    return staging.abandoned(root)


def write_atomic(path: Path, table: pa.Table) -> None:
    """Write a Parquet file under a temporary name, fsync, then rename into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = staging.staged_path(path)
    pq.write_table(table, tmp, compression="zstd")
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = staging.staged_path(path)
    with open(tmp, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
