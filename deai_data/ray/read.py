"""A published dataset as a `ray.data.Dataset`: one read task per group of shards, each fetching, verifying and
decrypting its shards on the worker (the data key checked on the driver first)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import ray
from ray.data.block import BlockMetadata
from ray.data.datasource import Datasource, ReadTask

from ..crypto.keystore import Keystore
from ..dataset.reader import Dataset, open_dataset
from ..errors import UsageError


class SealedDatasource(Datasource):
    """Ray Data's view of a deai-data dataset version: its shards as blocks, verified and decrypted in the tasks."""

    def __init__(self, dataset: Dataset, verify: str, shards: Sequence[int]) -> None:
        self.dataset = dataset
        self.verify = verify
        self.shards = list(shards)

    def estimate_inmemory_data_size(self) -> int:
        return sum(self.dataset.manifest.shards[i].plaintext_size for i in self.shards)

    def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None,
                       data_context: Any = None) -> list[ReadTask]:
        count = max(1, min(parallelism, len(self.shards))) if self.shards else 0
        groups = [self.shards[i::count] for i in range(count)]
        return [self._task(sorted(group), per_task_row_limit) for group in groups]

    def _task(self, group: list[int], row_limit: int | None) -> ReadTask:
        dataset, verify = self.dataset, self.verify
        entries = [dataset.manifest.shards[i] for i in group]

        def read() -> Iterator[pa.Table]:
            for index in group:
                yield dataset.read_shard(index, verify=verify)

        metadata = BlockMetadata(num_rows=sum(e.records for e in entries),
                                 size_bytes=sum(e.plaintext_size for e in entries), exec_stats=None)
        return ReadTask(read, metadata, schema=dataset.schema, per_task_row_limit=row_limit)


def read(
    source: str | Path | Dataset,
    *,
    key: bytes | str | None = None,
    keystore: Keystore | None = None,
    manifest_hash: str | None = None,
    verify: str = "full",
    shards: Sequence[int] | None = None,
    parallelism: int = -1,
    ray_remote_args: dict[str, Any] | None = None,
) -> Any:
    """A dataset version (a manifest URI, or a `Dataset` already opened) as a `ray.data.Dataset` of its records,
    in shard order within each read task. The key is checked against the manifest's commitment here, on the
    driver; tasks receive it with the manifest. `shards` reads a subset (say, one trainer's split)."""
    dataset = source if isinstance(source, Dataset) else open_dataset(
        source, key=key, keystore=keystore, manifest_hash=manifest_hash)
    dataset.unlock()  # a wrong or missing key fails here, not in every task
    chosen = list(range(dataset.num_shards)) if shards is None else list(shards)
    if any(not isinstance(i, int) or not 0 <= i < dataset.num_shards for i in chosen):
        raise UsageError(f"shards must be indexes below {dataset.num_shards}")
    return ray.data.read_datasource(SealedDatasource(dataset, verify, chosen), parallelism=parallelism,
                                    ray_remote_args=ray_remote_args)
