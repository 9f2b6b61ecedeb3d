"""Publish sources -> Arrow record batches: a folder of files, Parquet files, Arrow tables or readers,
pandas DataFrames, Hugging Face datasets, NumPy arrays (or a dict of them), and iterables of dicts.

Every source becomes a `RecordSource`: a schema plus an iterator of record batches, read lazily.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import SourceError

FOLDER_SCHEMA = pa.schema([
    pa.field("path", pa.string(), nullable=False),
    pa.field("bytes", pa.binary(), nullable=False),
    pa.field("label", pa.string()),
])
_ROWS_PER_BATCH = 8192
_FOLDER_BATCH_BYTES = 16 << 20
_PARQUET_SUFFIXES = (".parquet", ".pq")


@dataclass
class RecordSource:
    """A schema, the batches, and what identifies the source for resuming (`fingerprint`)."""

    schema: pa.Schema
    batches: Iterator[pa.RecordBatch]
    kind: str
    fingerprint: str = ""


def folder(path: str | Path) -> RecordSource:
    """One record per regular file under `path` (sorted walk): path, bytes, label (parent folder)."""
    root = Path(path)
    return RecordSource(FOLDER_SCHEMA, _folder_batches(root, folder_files(root)), "folder", str(root.resolve()))


def folder_files(root: Path) -> list[str]:
    """The regular files under `root`, as paths relative to it with '/', in sorted-walk order."""
    if not root.is_dir():
        raise SourceError(f"{root} is not a directory")
    return sorted(_walk(root))


def _walk(root: Path) -> Iterator[str]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in filenames:
            full = os.path.join(dirpath, name)
            if os.path.isfile(full):
                yield os.path.relpath(full, root).replace(os.sep, "/")


def _folder_batches(root: Path, files: list[str]) -> Iterator[pa.RecordBatch]:
    chunk: list[str] = []
    size = 0
    for rel in files:
        try:
            size += (root / rel).stat().st_size
        except OSError as exc:
            raise SourceError(f"cannot read {root / rel}: {exc}") from exc
        chunk.append(rel)
        if size >= _FOLDER_BATCH_BYTES or len(chunk) >= _ROWS_PER_BATCH:
            yield folder_rows(root, chunk)
            chunk, size = [], 0
    if chunk:
        yield folder_rows(root, chunk)


def folder_rows(root: Path, paths: list[str]) -> pa.RecordBatch:
    """The records of the files `paths` (relative to `root`): path, bytes, label (the parent folder's name)."""
    blobs = []
    for rel in paths:
        try:
            blobs.append((root / rel).read_bytes())
        except OSError as exc:
            raise SourceError(f"cannot read {root / rel}: {exc}") from exc
    labels = [p.rsplit("/", 2)[-2] if "/" in p else None for p in paths]
    return pa.record_batch([pa.array(paths, pa.string()), pa.array(blobs, pa.binary()),
                            pa.array(labels, pa.string())], schema=FOLDER_SCHEMA)


def parquet(paths: str | Path | Iterable[str | Path]) -> RecordSource:
    """Records of one or more Parquet files (all with the same schema), read batch by batch."""
    files = [Path(paths)] if isinstance(paths, (str, Path)) else [Path(p) for p in paths]
    if not files:
        raise SourceError("no Parquet files given")
    try:
        readers = [pq.ParquetFile(f) for f in files]
    except (OSError, pa.ArrowException) as exc:
        raise SourceError(f"cannot open Parquet source: {exc}") from exc
    schema = readers[0].schema_arrow
    for f, r in zip(files, readers, strict=False):
        if not r.schema_arrow.equals(schema):
            raise SourceError(f"{f} has a different schema from {files[0]}",
                              hint="publish Parquet files with one schema together")
    batches = itertools.chain.from_iterable(r.iter_batches(batch_size=_ROWS_PER_BATCH) for r in readers)
    return RecordSource(schema, batches, "parquet", "|".join(str(f.resolve()) for f in files))


def _arrays(columns: Mapping[str, Any]) -> RecordSource:
    try:
        table = pa.table({name: _column(value) for name, value in columns.items()})
    except (pa.ArrowException, ValueError, TypeError) as exc:
        raise SourceError(f"cannot build Arrow columns from the arrays: {exc}") from exc
    return _table(table, "arrays")


def _column(value: Any) -> Any:
    """An array as an Arrow column: N-d NumPy arrays as fixed-shape tensors (rows of shape `shape[1:]`), even
    with no rows."""
    arr = np.asarray(value) if not isinstance(value, (pa.Array, pa.ChunkedArray)) else value
    if not isinstance(arr, np.ndarray) or arr.ndim < 2:
        return arr
    if len(arr):
        return pa.FixedShapeTensorArray.from_numpy_ndarray(np.ascontiguousarray(arr))
    tensor = pa.fixed_shape_tensor(pa.from_numpy_dtype(arr.dtype), list(arr.shape[1:]))
    return pa.ExtensionArray.from_storage(tensor, pa.array([], type=tensor.storage_type))


def _table(table: pa.Table, kind: str) -> RecordSource:
    return RecordSource(table.schema, iter(table.to_batches(max_chunksize=_ROWS_PER_BATCH)), kind)


def _dicts(records: Iterable[Mapping[str, Any]]) -> RecordSource:
    it = iter(records)
    first = list(itertools.islice(it, _ROWS_PER_BATCH))
    if not first:
        return RecordSource(pa.schema([]), iter(()), "records")
    try:
        head = pa.RecordBatch.from_pylist(first)
    except (pa.ArrowException, TypeError, ValueError) as exc:
        raise SourceError(f"cannot convert records to Arrow: {exc}") from exc
    schema = head.schema

    def batches() -> Iterator[pa.RecordBatch]:
        yield head
        while chunk := list(itertools.islice(it, _ROWS_PER_BATCH)):
            try:
                yield pa.RecordBatch.from_pylist(chunk, schema=schema)
            except (pa.ArrowException, TypeError, ValueError) as exc:
                raise SourceError(f"records do not match the schema of the first records ({schema}): {exc}",
                                  hint="give every record the same keys and value types") from exc

    return RecordSource(schema, batches(), "records")


def _hf_table(dataset: Any) -> pa.Table:
    """A Hugging Face `datasets.Dataset`'s rows as Arrow, its features in the schema's metadata (no copy unless
    the dataset has an index mapping, as after `shuffle` or `select`)."""
    table = dataset.with_format("arrow")[:]
    return table.replace_schema_metadata(dataset.features.arrow_schema.metadata)


def _huggingface(source: Any) -> RecordSource:
    """A `datasets.Dataset`, or a `DatasetDict` (every split's rows, in split order, with a `split` column)."""
    try:
        if hasattr(source, "features"):
            return _table(_hf_table(source), "huggingface")
        import datasets
        parts = []
        for name, split in source.items():
            features = datasets.Features({**split.features, "split": datasets.Value("string")})
            table = _hf_table(split)
            parts.append(table.append_column("split", pa.array([name] * table.num_rows, pa.string()))
                         .replace_schema_metadata(features.arrow_schema.metadata))
        if not parts:
            raise SourceError("the DatasetDict has no splits")
        return _table(pa.concat_tables(parts), "huggingface")
    except (pa.ArrowException, TypeError, ValueError, KeyError) as exc:
        raise SourceError(f"cannot read the Hugging Face dataset: {exc}",
                          hint="the splits of a DatasetDict must have the same features") from None


def read_source(source: Any) -> RecordSource:
    """Turn any supported source into a `RecordSource` (see the module docstring for the kinds)."""
    if isinstance(source, RecordSource):
        return source
    if isinstance(source, (str, Path)):
        path = Path(source)
        if path.is_dir():
            return folder(path)
        if path.suffix.lower() in _PARQUET_SUFFIXES and path.is_file():
            return parquet(path)
        raise SourceError(f"{path} is neither a folder nor a Parquet file",
                          hint="pass a folder of files, a .parquet file, or an in-memory source")
    if isinstance(source, pa.Table):
        return _table(source, "table")
    if isinstance(source, pa.RecordBatch):
        return _table(pa.Table.from_batches([source]), "table")
    if isinstance(source, pa.RecordBatchReader):
        return RecordSource(source.schema, iter(source), "reader")
    if type(source).__module__.split(".")[0] == "datasets":
        return _huggingface(source)
    if type(source).__module__.split(".")[0] == "pandas" and hasattr(source, "columns"):
        try:
            return _table(pa.Table.from_pandas(source, preserve_index=False), "pandas")
        except (pa.ArrowException, TypeError, ValueError) as exc:
            raise SourceError(f"cannot convert the DataFrame to Arrow: {exc}") from exc
    if isinstance(source, np.ndarray):
        return _arrays({"data": source})
    if isinstance(source, Mapping):
        return _arrays(source)
    if isinstance(source, (list, tuple)) and source and all(isinstance(p, (str, Path)) for p in source):
        return parquet(source)
    if isinstance(source, Iterable):
        return _dicts(source)
    raise SourceError(f"unsupported source type {type(source).__name__}",
                      hint="see docs/publishing.md for the supported sources")
