"""Publish sources on Ray: a folder of files as a Ray dataset (the rows `deai_data.folder` gives, read on the
workers); Parquet files are passed to `publish` as paths. Every node must see the paths (a shared filesystem)."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import pyarrow as pa
import ray

from ..dataset.sources import FOLDER_SCHEMA, folder_files, folder_rows
from ..errors import SourceError

_FILES_PER_TASK = 256


def _read_files(root: str, batch: pa.Table) -> pa.Table:
    return pa.Table.from_batches([folder_rows(Path(root), batch.column("path").to_pylist())], FOLDER_SCHEMA)


def folder_dataset(path: str | Path) -> Any:
    """One row per regular file under `path`, as `deai_data.folder` gives them (sorted walk: path, bytes, label),
    the files read by Ray tasks."""
    root = Path(path).resolve()
    files = folder_files(root)
    blocks = max(1, len(files) // _FILES_PER_TASK)
    listing = ray.data.from_arrow(pa.table({"path": pa.array(files, pa.string())})).repartition(blocks)
    return listing.map_batches(partial(_read_files, str(root)), batch_format="pyarrow", batch_size=None,
                               zero_copy_batch=True)


def ray_source(path: str | Path, kind: str = "auto") -> Any:
    """What `deai_data.ray.publish` takes for a folder of files (a Ray dataset) or Parquet (a file, or a folder of
    them with kind="parquet": the path itself)."""
    target = Path(path)
    if kind == "parquet" or (kind == "auto" and target.suffix.lower() in (".parquet", ".pq")):
        return str(target)  # `publish` reads Parquet row groups in Ray tasks, in file order
    if kind == "folder" or (kind == "auto" and target.is_dir()):
        return folder_dataset(target)
    raise SourceError(f"{target} is neither a folder nor a Parquet file",
                      hint="pass a folder of files or Parquet (--format parquet for a folder of Parquet files)")
