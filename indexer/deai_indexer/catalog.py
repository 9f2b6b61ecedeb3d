"""The DuckDB catalog: views over the Parquet event files, the manifests table and the checkpoint,
plus derived views for analysts (datasets, versions, purchases, payouts, revenue_daily, owners).

Views read the Parquet files at query time, so a catalog stays current while the indexer writes;
`build_catalog` only needs re-running when a table gets its first file (and after `rebuild`).
Paths in the views are absolute: move the root folder, then run `deai-indexer rebuild`.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa

from .enrich import SCHEMA as MANIFEST_SCHEMA
from .enrich import manifests_path
from .events import event_specs
from .layout import events_dir, write_atomic

DERIVED = """
CREATE OR REPLACE VIEW indexer_state AS
    SELECT chain_id, market, start_block, next_block - 1 AS indexed_block, finalized_block, head_block
    FROM read_json_auto('{state}');

CREATE OR REPLACE VIEW versions AS
SELECT r.dataset_id, r.owner AS registered_owner, nullif(r.previous, 0) AS previous, r.manifest_hash,
       r.content_root, r.key_commitment, r.shard_count, r.payment_token, r.price AS initial_price,
       r.delivery_window, r.manifest_uris, r.license_uri, r.registrar, r.block_number AS registered_block,
       r.block_time AS registered_at, r.tx_hash, r.finalized,
       m.status AS manifest_status, m.error AS manifest_error, m.name, m.description, m.license,
       m.records, m.plaintext_size, m.sealed_size, m.backends, m.dataset_uid, m.schema_json, m.metadata_json,
       m.shard_count AS manifest_shards, m.shards_available
FROM raw.dataset_registered r LEFT JOIN manifests m USING (manifest_hash);

CREATE OR REPLACE VIEW purchases AS
SELECT p.purchase_id, p.dataset_id, p.buyer, p.payment_token, p.amount,
       to_timestamp(p.deadline) AS deadline, p.block_time AS purchased_at, p.block_number AS purchased_block,
       p.buyer_public_key, p.tx_hash,
       CASE WHEN d.purchase_id IS NOT NULL THEN 'delivered'
            WHEN r.purchase_id IS NOT NULL THEN 'refunded' ELSE 'pending' END AS status,
       d.block_time AS delivered_at, d.owner AS paid_to, d.delivered_by, d.owner_amount, d.fee,
       r.block_time AS refunded_at,
       date_diff('second', p.block_time, d.block_time) AS delivery_latency_s,
       p.finalized AND coalesce(d.finalized, r.finalized, true) AS finalized
FROM raw.purchased p
LEFT JOIN raw.key_delivered d USING (purchase_id)
LEFT JOIN raw.refunded r USING (purchase_id);

CREATE OR REPLACE VIEW datasets AS
WITH owner AS (SELECT token_id AS dataset_id, arg_max("to", (block_number, log_index)) AS owner
               FROM raw.transfer GROUP BY ALL),
     price AS (SELECT dataset_id, arg_max(new_price, (block_number, log_index)) AS price
               FROM raw.price_changed GROUP BY ALL),
     paused AS (SELECT dataset_id, arg_max(paused, (block_number, log_index)) AS paused
                FROM raw.sales_paused GROUP BY ALL),
     sales AS (SELECT dataset_id, count(*) AS purchases,
                      count(*) FILTER (WHERE status = 'delivered') AS delivered,
                      count(*) FILTER (WHERE status = 'refunded') AS refunded,
                      count(*) FILTER (WHERE status = 'pending') AS pending,
                      count(DISTINCT buyer) AS buyers,
                      coalesce(sum(owner_amount), 0) AS owner_revenue, coalesce(sum(fee), 0) AS fees,
                      median(delivery_latency_s) AS median_delivery_s
               FROM purchases GROUP BY ALL)
SELECT v.dataset_id, v.name, owner.owner, coalesce(price.price, v.initial_price) AS price, v.payment_token,
       coalesce(paused.paused, false) AS paused, v.previous, v.manifest_hash, v.manifest_status,
       v.registered_at, v.records, v.sealed_size,
       coalesce(sales.purchases, 0) AS purchases, coalesce(sales.delivered, 0) AS delivered,
       coalesce(sales.refunded, 0) AS refunded, coalesce(sales.pending, 0) AS pending,
       coalesce(sales.buyers, 0) AS buyers, coalesce(sales.owner_revenue, 0) AS owner_revenue,
       coalesce(sales.fees, 0) AS fees, sales.median_delivery_s
FROM versions v
LEFT JOIN owner USING (dataset_id) LEFT JOIN price USING (dataset_id)
LEFT JOIN paused USING (dataset_id) LEFT JOIN sales USING (dataset_id);

CREATE OR REPLACE VIEW payouts AS
SELECT 'withdrawal' AS kind, account, payment_token, amount, block_time, block_number, tx_hash, finalized
FROM raw.withdrawn
UNION ALL
SELECT 'protocol_fees', treasury, payment_token, amount, block_time, block_number, tx_hash, finalized
FROM raw.fees_withdrawn;

CREATE OR REPLACE VIEW revenue_daily AS
SELECT date_trunc('day', delivered_at) AS day, dataset_id, payment_token, count(*) AS sales,
       sum(amount) AS gross, sum(owner_amount) AS owner_revenue, sum(fee) AS fees
FROM purchases WHERE status = 'delivered' GROUP BY ALL;

CREATE OR REPLACE VIEW owners AS
WITH held AS (SELECT owner, count(*) AS datasets FROM datasets GROUP BY ALL),
     earned AS (SELECT owner, payment_token, count(*) AS sales, sum(owner_amount) AS earned
                FROM raw.key_delivered GROUP BY ALL),
     taken AS (SELECT account AS owner, payment_token, sum(amount) AS withdrawn FROM raw.withdrawn GROUP BY ALL)
SELECT coalesce(e.owner, h.owner) AS owner, coalesce(h.datasets, 0) AS datasets_held, e.payment_token,
       coalesce(e.sales, 0) AS sales, coalesce(e.earned, 0) AS earned
FROM earned e FULL JOIN held h ON e.owner = h.owner;
"""


DERIVED_TABLES = """
CREATE OR REPLACE TABLE dataset_sales AS
SELECT dataset_id, payment_token, count(*) AS sales, sum(owner_amount + fee) AS gross,
       sum(owner_amount) AS owner_revenue, sum(fee) AS fees
FROM raw.key_delivered GROUP BY ALL;

CREATE OR REPLACE TABLE dataset_events AS
SELECT * FROM (
    SELECT dataset_id, block_number, log_index, block_time, 'registered' AS event, owner AS account,
           price AS amount, tx_hash FROM raw.dataset_registered
    UNION ALL SELECT token_id, block_number, log_index, block_time, 'transfer', "to", NULL, tx_hash
        FROM raw.transfer WHERE "from" <> '0x0000000000000000000000000000000000000000'
    UNION ALL SELECT dataset_id, block_number, log_index, block_time, 'price_changed', owner, new_price, tx_hash
        FROM raw.price_changed
    UNION ALL SELECT dataset_id, block_number, log_index, block_time,
           CASE WHEN paused THEN 'paused' ELSE 'resumed' END, owner, NULL, tx_hash FROM raw.sales_paused
    UNION ALL SELECT dataset_id, block_number, log_index, block_time, 'purchased', buyer, amount, tx_hash
        FROM raw.purchased
    UNION ALL SELECT dataset_id, block_number, log_index, block_time, 'key_delivered', owner, owner_amount, tx_hash
        FROM raw.key_delivered
    UNION ALL SELECT dataset_id, block_number, log_index, block_time, 'refunded', buyer, amount, tx_hash
        FROM raw.refunded
) ORDER BY dataset_id, block_number, log_index;

CREATE OR REPLACE TABLE derived_state AS
SELECT (SELECT next_block - 1 FROM read_json_auto('{state}')) AS derived_block, now() AS derived_at;
"""


def refresh_derived(root: str | Path) -> None:
    """Recompute the derived tables (dataset_sales, dataset_events) from the Parquet files.

    They make the common questions fast on big catalogs (DuckDB's own storage, sorted by dataset);
    `derived_state.derived_block` says which block they are current to. The views are always current."""
    root = Path(root).resolve()
    con = duckdb.connect(str(catalog_path(root)))
    try:
        con.execute(DERIVED_TABLES.format(state=root / "state.json"))
    finally:
        con.close()


def catalog_path(root: Path) -> Path:
    return root / "catalog.duckdb"


def _empty_file(root: Path, name: str, schema: pa.Schema) -> Path:
    path = root / "metadata" / "empty" / f"{name}.parquet"
    if not path.is_file():
        write_atomic(path, schema.empty_table())
    return path


def build_catalog(root: str | Path) -> Path:
    """(Re)create the catalog's views; safe to run at any time (the data stays in Parquet)."""
    root = Path(root).resolve()
    path = catalog_path(root)
    con = duckdb.connect(str(path))
    try:
        con.execute("CREATE SCHEMA IF NOT EXISTS raw")
        for spec in event_specs().values():
            folder = events_dir(root) / spec.table
            if any(folder.glob("bucket=*/*.parquet")):
                source = (f"(SELECT * EXCLUDE (bucket) FROM "
                          f"read_parquet('{folder}/bucket=*/*.parquet', hive_partitioning = true))")
            else:
                source = f"read_parquet('{_empty_file(root, spec.table, spec.schema)}')"
            con.execute(f"""CREATE OR REPLACE VIEW raw.{spec.table} AS
                SELECT *, block_number <= (SELECT finalized_block FROM read_json_auto('{root}/state.json'))
                          AS finalized
                FROM {source}""")
        manifests = manifests_path(root)
        source = manifests if manifests.is_file() else _empty_file(root, "manifests", MANIFEST_SCHEMA)
        con.execute(f"CREATE OR REPLACE VIEW manifests AS SELECT * FROM read_parquet('{source}')")
        con.execute(DERIVED.format(state=root / "state.json"))
        con.execute(DERIVED_TABLES.format(state=root / "state.json"))
    finally:
        con.close()
    return path
