"""The quarantine: events the indexer could not decode, recorded with the reason and skipped for good (never
a response body: reasons are the indexer's own words). `metadata/quarantine.parquet`; the catalog's
`quarantine` view joins it with the manifests that failed."""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from .hexcols import quantity
from .layout import write_atomic

log = logging.getLogger("deai_indexer.quarantine")

SCHEMA = pa.schema([("block_number", pa.int64()), ("log_index", pa.int64()), ("tx_hash", pa.string()),
                    ("topic", pa.string()), ("reason", pa.string()), ("quarantined_at", pa.timestamp("s", "UTC"))])


def quarantine_path(root: Path) -> Path:
    return root / "metadata" / "quarantine.parquet"


class Quarantine:
    """Collects quarantined events during a chunk; `flush()` adds them to the file (once per log)."""

    def __init__(self, root: Path) -> None:
        self.path = quarantine_path(root)
        self._pending: list[dict[str, Any]] = []

    def event(self, entry: Any, reason: str) -> None:
        fields = entry if isinstance(entry, dict) else {}
        topics = fields.get("topics") if isinstance(fields.get("topics"), list) else []
        row = {"block_number": quantity(fields.get("blockNumber")), "log_index": quantity(fields.get("logIndex")),
               "tx_hash": str(fields.get("transactionHash"))[:66] if fields.get("transactionHash") else None,
               "topic": str(topics[0])[:66] if topics else None, "reason": reason[:300],
               "quarantined_at": datetime.now(timezone.utc).replace(microsecond=0)}
        log.warning("quarantined the log at block %s index %s: %s", row["block_number"], row["log_index"], reason)
        self._pending.append(row)

    def flush(self) -> None:
        if not self._pending:
            return
        rows = pq.read_table(self.path).to_pylist() if self.path.is_file() else []
        seen = {(r["block_number"], r["log_index"]) for r in rows}
        rows += [r for r in self._pending if (r["block_number"], r["log_index"]) not in seen]
        write_atomic(self.path, pa.Table.from_pylist(rows, schema=SCHEMA))
        self._pending.clear()
