"""A Ray Data dataset's blocks in row order, as Arrow tables, with their rows' sizes (for cutting shards)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa

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
