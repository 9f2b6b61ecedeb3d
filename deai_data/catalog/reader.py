"""`Catalog`: read-only SQL over a deai-indexer catalog, results as Arrow (or pandas), plus the common questions.

Needs DuckDB (the `catalog` extra). The schema is documented in docs/catalog.md.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pyarrow as pa

from ..errors import CatalogError

DEFAULT_ROOT = "deai-index"


def _resolve(path: str | Path | None) -> Path:
    target = Path(path or os.environ.get("DEAI_CATALOG") or DEFAULT_ROOT)
    if target.is_dir():
        target = target / "catalog.duckdb"
    if not target.is_file():
        raise CatalogError(f"no catalog at {target}",
                           hint="build one with `deai-indexer backfill 0 --rpc URL --market ADDRESS --root DIR`")
    return target


class Catalog:
    """A read-only connection to a catalog file (or the index folder holding `catalog.duckdb`)."""

    def __init__(self, path: str | Path | None = None, *, attempts: int = 20) -> None:
        try:
            import duckdb
        except ImportError as exc:
            raise CatalogError("the catalog needs DuckDB", hint="pip install 'deai-data[catalog]'") from exc
        self.path = _resolve(path)
        for attempt in range(attempts):  # the indexer holds the file briefly while it refreshes views
            try:
                self._con = duckdb.connect(str(self.path), read_only=True)
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
            return relation.df() if pandas else _to_arrow(relation)
        except self._duckdb.Error as exc:
            raise CatalogError(f"query failed: {exc}", hint="the tables and columns are in docs/catalog.md") from exc

    def tables(self) -> list[str]:
        """The views an analyst queries (schema main), then the raw event views (schema raw)."""
        rows = self.sql("SELECT schema_name, view_name FROM duckdb_views() WHERE NOT internal "
                        "ORDER BY schema_name <> 'main', view_name").to_pylist()
        return [r["view_name"] if r["schema_name"] == "main" else f"raw.{r['view_name']}" for r in rows]

    # ------------------------------------------------------------------ common questions

    def top_datasets(self, n: int = 10, *, payment_token: str | None = None) -> pa.Table:
        """The n datasets with the highest delivered gross sales (optionally in one payment token)."""
        token = "" if payment_token is None else "WHERE payment_token = lower(?)"
        return self.sql(f"""
            WITH sales AS (SELECT dataset_id, payment_token, count(*) AS sales, sum(owner_amount + fee) AS gross,
                                  sum(owner_amount) AS owner_revenue
                           FROM raw.key_delivered {token} GROUP BY ALL ORDER BY gross DESC LIMIT {int(n)})
            SELECT s.dataset_id, v.name, s.payment_token, s.sales, s.gross, s.owner_revenue
            FROM sales s LEFT JOIN versions v USING (dataset_id) ORDER BY s.gross DESC, s.dataset_id""",
                        [] if payment_token is None else [payment_token])

    def dataset_history(self, dataset_id: int) -> pa.Table:
        """Every event of one dataset version, in chain order: registration, transfers, price changes,
        pauses, purchases, deliveries, refunds."""
        return self.sql("""
            SELECT block_number, log_index, block_time, 'registered' AS event, owner AS account,
                   price AS amount, tx_hash FROM raw.dataset_registered WHERE dataset_id = $1
            UNION ALL SELECT block_number, log_index, block_time, 'transfer', "to", NULL, tx_hash
                FROM raw.transfer WHERE token_id = $1 AND "from" <> '0x0000000000000000000000000000000000000000'
            UNION ALL SELECT block_number, log_index, block_time, 'price_changed', owner, new_price, tx_hash
                FROM raw.price_changed WHERE dataset_id = $1
            UNION ALL SELECT block_number, log_index, block_time,
                   CASE WHEN paused THEN 'paused' ELSE 'resumed' END, owner, NULL, tx_hash
                FROM raw.sales_paused WHERE dataset_id = $1
            UNION ALL SELECT block_number, log_index, block_time, 'purchased', buyer, amount, tx_hash
                FROM raw.purchased WHERE dataset_id = $1
            UNION ALL SELECT block_number, log_index, block_time, 'key_delivered', owner, owner_amount, tx_hash
                FROM raw.key_delivered WHERE dataset_id = $1
            UNION ALL SELECT block_number, log_index, block_time, 'refunded', buyer, amount, tx_hash
                FROM raw.refunded WHERE dataset_id = $1
            ORDER BY block_number, log_index""", [int(dataset_id)])

    def buyer_purchases(self, buyer: str) -> pa.Table:
        """A buyer's purchases with their status, newest first."""
        return self.sql("SELECT * FROM purchases WHERE buyer = lower($1) ORDER BY purchase_id DESC", [buyer])


def _to_arrow(relation: Any) -> pa.Table:
    """DuckDB 2 names it to_arrow_table; 1.x fetch_arrow_table."""
    convert = getattr(relation, "to_arrow_table", None) or relation.fetch_arrow_table
    return convert()
