"""`Catalog`: read-only SQL over a deai-indexer catalog, results as Arrow (or pandas), plus the common questions.

Needs DuckDB (the `catalog` extra). The schema is defined in schema.py and documented in docs/catalog.md.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any

import pyarrow as pa

from ..dataset.ecosystem import duckdb_arrow
from ..errors import CatalogError
from ..home import deai_home
from . import mirror
from .schema import CATALOG_FILE, DEFAULT_ROOT, connect


def _resolve(path: str | Path | None) -> Path:
    where = str(path or os.environ.get("DEAI_CATALOG") or DEFAULT_ROOT)
    if "://" in where and not where.startswith("file://"):
        return pulled_copy(where) / CATALOG_FILE
    target = Path(where.removeprefix("file://"))
    if target.is_dir():
        target = target / CATALOG_FILE
    if not target.is_file():
        raise CatalogError(f"no catalog at {target}",
                           hint="build one with `deai-indexer backfill 0 --rpc URL --market ADDRESS --root DIR`")
    return target


def pulled_copy(uri: str) -> Path:
    """A local copy of the catalog at `uri` (object storage: `deai-indexer push`), brought up to date now; kept
    under DEAI_HOME/catalogs so that the next open fetches only what changed."""
    folder = deai_home() / "catalogs" / hashlib.sha256(uri.encode()).hexdigest()[:24]
    mirror.pull(uri, folder)
    return folder


class Catalog:
    """A read-only connection to a catalog: a catalog file, the index folder holding `catalog.duckdb`, or the URI
    of a copy in object storage (`s3://bucket/prefix`, pulled to a local cache first)."""

    def __init__(self, path: str | Path | None = None, *, attempts: int = 20) -> None:
        try:
            import duckdb
        except ImportError as exc:
            raise CatalogError("the catalog needs DuckDB", hint="pip install 'deai-data[catalog]'") from exc
        self.path = _resolve(path)
        for attempt in range(attempts):  # the indexer holds the file briefly while it refreshes views
            try:
                self._con = connect(self.path, read_only=True)
                break
            except duckdb.IOException as exc:
                if attempt == attempts - 1:
                    raise CatalogError(f"cannot open {self.path}: {exc}",
                                       hint="the indexer may be refreshing it; retry") from exc
                time.sleep(0.05 * (attempt + 1))
        self._duckdb = duckdb

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._con.close()

    def sql(self, query: str, params: list[Any] | None = None, *, pandas: bool = False) -> Any:
        """Run one SQL statement; an Arrow table (a pandas DataFrame with `pandas=True`)."""
        try:
            relation = self._con.sql(query, params=params or None)
            if relation is None:  # a statement without a result
                return None
            return relation.df() if pandas else duckdb_arrow(relation)
        except self._duckdb.Error as exc:
            raise CatalogError(f"query failed: {exc}", hint="the tables and columns are in docs/catalog.md") from exc

    def tables(self) -> list[str]:
        """The views an analyst queries (schema main), then the raw event views (schema raw)."""
        rows = self.sql("SELECT schema_name, view_name FROM duckdb_views() WHERE NOT internal "
                        "ORDER BY schema_name <> 'main', view_name").to_pylist()
        return [r["view_name"] if r["schema_name"] == "main" else f"raw.{r['view_name']}" for r in rows]

    # ------------------------------------------------------------------ common questions

    def top_datasets(self, n: int = 10, *, payment_token: str | None = None) -> pa.Table:
        """The n datasets with the highest delivered gross sales (optionally in one payment token), from the
        derived table `dataset_sales` (current to `derived_state.derived_block`)."""
        token = "" if payment_token is None else "WHERE payment_token = lower($1)"
        return self.sql(f"""
            WITH top AS (SELECT * FROM dataset_sales {token} ORDER BY gross DESC, dataset_id LIMIT {int(n)})
            SELECT t.dataset_id, v.name, t.payment_token, t.sales, t.gross, t.owner_revenue, t.fees
            FROM top t LEFT JOIN versions v USING (dataset_id) ORDER BY t.gross DESC, t.dataset_id""",
                        [] if payment_token is None else [payment_token])

    def dataset_history(self, dataset_id: int) -> pa.Table:
        """Every event of one dataset version in chain order (registration, transfers, price changes, pauses,
        purchases, deliveries, refunds), from the derived table `dataset_events`."""
        return self.sql("SELECT block_number, log_index, block_time, event, account, amount, tx_hash "
                        "FROM dataset_events WHERE dataset_id = $1 ORDER BY block_number, log_index",
                        [int(dataset_id)])

    def buyer_purchases(self, buyer: str) -> pa.Table:
        """A buyer's purchases with their status, newest first."""
        return self.sql("SELECT * FROM purchases WHERE buyer = lower($1) ORDER BY purchase_id DESC", [buyer])
