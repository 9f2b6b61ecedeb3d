"""The blocks to publish, in row order: a Ray Data dataset's, or Parquet row groups read by Ray tasks; as Arrow
tables, with their rows' sizes (for cutting shards)."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import ray

from ..errors import SourceError
from ..formats.shard import row_sizes


def block_table(block: Any) -> pa.Table:
    """A block as an Arrow table (Ray Data keeps blocks as Arrow tables or pandas DataFrames)."""
    if isinstance(block, pa.Table):
        return block
    try:
        return pa.Table.from_pandas(block, preserve_index=False)
    except (pa.ArrowException, TypeError, ValueError) as exc:
        raise SourceError(f"a Ray block cannot be converted to Arrow: {exc}") from exc


def block_row_sizes(block: Any) -> tuple[np.ndarray, pa.Schema]:
    """Every row's estimated size (`row_sizes`: from the row alone, so any blocking gives the same cuts)."""
    table = block_table(block)
    sizes = [row_sizes(batch) for batch in table.to_batches()]
    return (np.concatenate(sizes) if sizes else np.zeros(0, dtype=np.int64)), table.schema


def ordered_block_refs(dataset: Any) -> Iterator[Any]:
    """The dataset's block references in row order, as Ray Data's streaming executor produces them (nothing is
    materialised beyond what the caller holds). Uses `Dataset.iter_internal_ref_bundles` (a Ray DeveloperAPI)."""
    dataset.context.execution_options.preserve_order = True
    for bundle in dataset.iter_internal_ref_bundles():
        yield from bundle.block_refs


def parquet_files(source: str | Path | Sequence[str | Path]) -> list[str]:
    """The Parquet files of a file, a folder (its `*.parquet` files, sorted) or a list, as absolute paths."""
    items = [source] if isinstance(source, (str, Path)) else list(source)
    files: list[str] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            files += sorted(str(p.resolve()) for p in path.glob("*.parquet"))
        elif path.is_file():
            files.append(str(path.resolve()))
        else:
            raise SourceError(f"{path} is neither a Parquet file nor a folder of them")
    if not files:
        raise SourceError(f"no Parquet files in {source}")
    return files


def _row_group(path: str, index: int) -> pa.Table:
    return pq.ParquetFile(path).read_row_group(index)


def parquet_block_refs(files: list[str], ahead: int) -> Iterator[Any]:
    """The files' row groups as blocks, in file order then row-group order (the order `deai_data.parquet` reads
    them in one process), each read by a Ray task, at most `ahead` read ahead of the caller."""
    try:
        units = [(path, i) for path in files for i in range(pq.ParquetFile(path).num_row_groups)]
    except (OSError, pa.ArrowException) as exc:
        raise SourceError(f"cannot open the Parquet source: {exc}") from exc
    read = ray.remote(num_cpus=0.25)(_row_group)
    pending: deque[Any] = deque()
    for unit in units:
        pending.append(read.remote(*unit))
        if len(pending) > ahead:
            yield pending.popleft()
    yield from pending
