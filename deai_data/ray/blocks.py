"""The blocks to publish, in row order: a Ray Data dataset's (object references), or Parquet row groups (named by
file and index, each read by one task into the object store); as Arrow tables, with their rows' sizes and content
traces (for cutting shards)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import SourceError
from ..formats.shard import row_profile

RowGroup = tuple[str, int]  # (Parquet file, row group index)


def read_row_group(unit: RowGroup) -> tuple[pa.Table, tuple[np.ndarray, np.ndarray, pa.Schema]]:
    """A row group as a table and its rows' profile (two results: the shard tasks take the table from the object
    store, the driver only the profile)."""
    try:
        table = pq.ParquetFile(unit[0]).read_row_group(unit[1])
    except (OSError, pa.ArrowException) as exc:
        raise SourceError(f"cannot read row group {unit[1]} of {unit[0]}: {exc}") from exc
    return table, block_row_profile(table)


def block_table(block: Any) -> pa.Table:
    """A block as an Arrow table (a Ray Data block is an Arrow table or a pandas DataFrame)."""
    if isinstance(block, pa.Table):
        return block
    try:
        return pa.Table.from_pandas(block, preserve_index=False)
    except (pa.ArrowException, TypeError, ValueError) as exc:
        raise SourceError(f"a Ray block cannot be converted to Arrow: {exc}") from exc


def block_row_profile(block: Any) -> tuple[np.ndarray, np.ndarray, pa.Schema]:
    """Every row's estimated size and content trace (`row_profile`: from the row alone, so any blocking gives the
    same cuts)."""
    table = block_table(block)
    profiles = [row_profile(batch) for batch in table.to_batches()]
    if not profiles:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.uint64), table.schema
    return np.concatenate([p[0] for p in profiles]), np.concatenate([p[1] for p in profiles]), table.schema


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


def parquet_row_groups(files: list[str]) -> Iterator[RowGroup]:
    """The files' row groups in file order then row-group order (the order `deai_data.parquet` reads them in one
    process)."""
    try:
        counts = [(path, pq.ParquetFile(path).num_row_groups) for path in files]
    except (OSError, pa.ArrowException) as exc:
        raise SourceError(f"cannot open the Parquet source: {exc}") from exc
    for path, count in counts:
        for index in range(count):
            yield path, index
