"""A dataset's records in the tools analysts and trainers already use: Polars, DuckDB SQL and Hugging Face
`datasets`. Plaintext stays in memory (Arrow buffers); nothing is written to disk.

Each tool is an optional dependency, imported when first used (a UsageError names the package to install).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa

from ..errors import UsageError

RECORDS_TABLE = "records"  # the name a dataset's records have in `sql`


def optional(module: str, package: str) -> Any:
    """Import an optional dependency, or raise a UsageError that says how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise UsageError(f"this needs {package}", hint=f"pip install {package}") from None


def to_polars(table: pa.Table) -> Any:
    return optional("polars", "polars").from_arrow(table)


def sql(batches: Callable[[], Iterator[pa.RecordBatch]], schema: pa.Schema, query: str) -> pa.Table:
    """Run `query` with DuckDB over the records, which it scans as a stream of record batches (the table
    `records`); the result as an Arrow table."""
    duckdb = optional("duckdb", "duckdb")
    con = duckdb.connect()
    try:
        con.register(RECORDS_TABLE, pa.RecordBatchReader.from_batches(schema, batches()))
        relation = con.sql(query)
        if relation is None:
            raise UsageError("the query returned nothing: use a SELECT over `records`")
        return duckdb_arrow(relation)
    except duckdb.Error as exc:
        raise UsageError(f"query failed: {exc}", hint=f"the records are the table `{RECORDS_TABLE}`") from None
    finally:
        con.close()


def duckdb_arrow(relation: Any) -> pa.Table:
    """A DuckDB relation's result as an Arrow table (DuckDB 2 names it to_arrow_table; 1.x fetch_arrow_table)."""
    convert = getattr(relation, "to_arrow_table", None) or relation.fetch_arrow_table
    return convert()


def to_hf(table: pa.Table, split_column: str | None = None) -> Any:
    """The records as a Hugging Face `datasets.Dataset` held in memory (its features come back from the schema's
    `huggingface` metadata when the dataset was published from one); with `split_column`, a `DatasetDict` of one
    split per value of that column (the column itself left out)."""
    datasets = optional("datasets", "datasets")
    if split_column is None:
        return datasets.Dataset(datasets.table.InMemoryTable(table))
    if split_column not in table.column_names:
        raise UsageError(f"no column {split_column!r} to split by", hint=f"the columns: {table.column_names}")
    import pyarrow.compute as pc
    column = table.column(split_column)
    rest = table.drop_columns([split_column])
    return datasets.DatasetDict({
        str(name): datasets.Dataset(datasets.table.InMemoryTable(rest.filter(pc.equal(column, name))))
        for name in column.unique().to_pylist()})


def to_hf_iterable(batches: Callable[[], Iterator[pa.RecordBatch]]) -> Any:
    """The records as a streaming Hugging Face `datasets.IterableDataset` (shards fetched as it iterates)."""
    datasets = optional("datasets", "datasets")

    def rows() -> Iterator[dict[str, Any]]:
        for batch in batches():
            yield from batch.to_pylist()

    return datasets.IterableDataset.from_generator(rows)
