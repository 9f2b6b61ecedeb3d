"""The catalog's schema, in one place: its file, and the SQL of the analysts' views and derived tables over
the raw event views. The indexer creates them from this module; `Catalog` (and docs/catalog.md) read them.
The raw views (`raw.<event>`) follow the market's ABI (deai_indexer.events)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

CATALOG_FILE = "catalog.duckdb"
DEFAULT_ROOT = "deai-index"  # the index folder `Catalog()` opens when given none (or DEAI_CATALOG)
STATE_FILE = "state.json"  # the indexer's checkpoint, in the index folder


def catalog_path(root: str | Path) -> Path:
    """The catalog file of an index folder."""
    return Path(root) / CATALOG_FILE


def connect(path: str | Path, *, read_only: bool) -> Any:
    """A DuckDB connection to the catalog file `path` that finds the files its views name. The views name
    them relative to the index folder (the catalog moves with its folder: nothing inside names where it
    was built), so the folder becomes DuckDB's `file_search_path`, before the working directory (where an
    analyst's own `read_parquet('deai-index/...')` looks). Another DuckDB client does the same:
    `SET file_search_path = '/path/to/index'`, or runs in that folder."""
    import duckdb

    con = duckdb.connect(str(path), read_only=read_only)
    folder = str(Path(path).resolve().parent).replace("'", "''")
    con.execute(f"SET file_search_path = '{folder},.'")
    return con


# Views: always current (they read the Parquet files at query time). `{state}` is the checkpoint's path,
# relative to the index folder like every path in the views.
VIEWS = """
CREATE OR REPLACE VIEW indexer_state AS
    SELECT chain_id, market, start_block, next_block - 1 AS indexed_block, finalized_block, head_block
    FROM read_json_auto('{state}');

CREATE OR REPLACE VIEW versions AS
SELECT r.dataset_id, r.owner AS registered_owner, r.author, nullif(r.supersedes, 0) AS supersedes, r.manifest_hash,
       r.content_root, r.key_commitment, r.seal_id, r.shard_count, r.payment_token, r.price AS initial_price,
       r.delivery_window, r.challenge_period, r.manifest_uris, r.license_uri, r.registrar,
       r.block_number AS registered_block, r.block_time AS registered_at, r.tx_hash, r.finalized,
       m.status AS manifest_status, m.error AS manifest_error,
       m.status = 'ok' AND m.seal_id = r.seal_id AND m.content_root = r.content_root AND m.author = r.author
           AND m.key_commitment = r.key_commitment AND m.shard_count = r.shard_count AS manifest_matches,
       m.manifest_version, m.name, m.description, m.license, m.records, m.plaintext_size, m.sealed_size, m.backends,
       m.schema_json, m.metadata_json, m.shard_count AS manifest_shards, m.shards_available,
       m.inherited_shards, m.inherited_size, m.sealed_size - m.inherited_size AS stored_size
FROM raw.dataset_registered r LEFT JOIN manifests m USING (manifest_hash);

CREATE OR REPLACE VIEW storage_status AS
WITH latest AS (SELECT manifest_hash, max(probed_at) AS probed_at FROM storage_observations GROUP BY ALL)
SELECT manifest_hash, backend, probed_at, count(*) AS objects,
       count(*) FILTER (WHERE state = 'available') AS available, count(*) FILTER (WHERE state = 'pending') AS pending,
       count(*) FILTER (WHERE state = 'missing') AS missing,
       count(*) FILTER (WHERE state IN ('wrong_size', 'corrupt')) AS altered,
       count(*) FILTER (WHERE state IN ('unreachable', 'refused')) AS unchecked,
       count(*) FILTER (WHERE hashed AND state = 'available') AS hashed,
       min(confirmations) AS min_confirmations,
       CASE WHEN count(*) FILTER (WHERE state IN ('wrong_size', 'corrupt')) > 0 THEN 'altered'
            WHEN count(*) FILTER (WHERE state = 'missing') > 0 THEN 'missing'
            WHEN count(*) FILTER (WHERE state IN ('unreachable', 'refused')) > 0 THEN 'unreachable'
            WHEN count(*) FILTER (WHERE state = 'pending') > 0 THEN 'pending' ELSE 'ok' END AS status
FROM storage_observations JOIN latest USING (manifest_hash, probed_at)
WHERE shard IS NOT NULL GROUP BY ALL;

CREATE OR REPLACE VIEW storage_health AS
WITH latest AS (SELECT manifest_hash, max(probed_at) AS probed_at FROM storage_observations GROUP BY ALL),
     seen AS (SELECT o.* FROM storage_observations o JOIN latest USING (manifest_hash, probed_at)),
     shards AS (SELECT manifest_hash, shard, bool_or(state IN ('available', 'pending')) AS fetchable,
                       bool_or(state IN ('wrong_size', 'corrupt')) AS altered
                FROM seen WHERE shard IS NOT NULL GROUP BY ALL),
     manifest AS (SELECT manifest_hash, probed_at, any_value(state) AS manifest_state
                  FROM seen WHERE shard IS NULL GROUP BY ALL)
SELECT m.manifest_hash, m.probed_at, m.manifest_state, count(s.shard) AS shards_checked,
       count(s.shard) FILTER (WHERE s.fetchable) AS shards_fetchable,
       count(s.shard) FILTER (WHERE s.altered) AS shards_altered,
       m.manifest_state <> 'available' OR count(s.shard) FILTER (WHERE NOT s.fetchable OR s.altered) > 0 AS flagged
FROM manifest m LEFT JOIN shards s USING (manifest_hash) GROUP BY m.manifest_hash, m.probed_at, m.manifest_state;

CREATE OR REPLACE VIEW purchases AS
SELECT p.purchase_id, p.dataset_id, p.buyer, p.seller, p.payment_token, p.amount,
       to_timestamp(p.deadline) AS delivery_deadline, p.block_time AS purchased_at,
       p.block_number AS purchased_block, p.tx_hash,
       CASE WHEN s.purchase_id IS NOT NULL THEN 'settled'
            WHEN r.purchase_id IS NOT NULL THEN 'refunded'
            WHEN d.purchase_id IS NOT NULL THEN 'delivered' ELSE 'pending' END AS status,
       d.block_time AS delivered_at, d.delivered_by, to_timestamp(d.challenge_ends) AS challenge_ends,
       x.purchase_id IS NOT NULL AS disputed, x.buyer_won AS dispute_buyer_won, x.block_time AS disputed_at,
       s.block_time AS settled_at, s.seller_amount, s.fee, f.referrer, f.amount AS referrer_fee,
       r.block_time AS refunded_at,
       CASE WHEN r.purchase_id IS NULL THEN NULL WHEN x.buyer_won THEN 'wrong_key' ELSE 'not_delivered' END
           AS refund_reason,
       date_diff('second', p.block_time, d.block_time) AS delivery_latency_s, c.subscription_id AS claimed_under,
       p.finalized AND coalesce(s.finalized, r.finalized, d.finalized, true) AS finalized
FROM raw.purchased p
LEFT JOIN raw.subscription_claimed c USING (purchase_id)
LEFT JOIN raw.key_delivered d USING (purchase_id)
LEFT JOIN raw.purchase_settled s USING (purchase_id)
LEFT JOIN raw.refunded r USING (purchase_id)
LEFT JOIN raw.dispute_resolved x USING (purchase_id)
LEFT JOIN raw.referrer_paid f USING (purchase_id);

CREATE OR REPLACE VIEW subscription_plans AS
SELECT * FROM (
    SELECT dataset_id, arg_max(price, (block_number, log_index)) AS price,
           arg_max(term, (block_number, log_index)) AS term_s, max(block_time) AS set_at
    FROM raw.subscription_plan_set GROUP BY ALL
) WHERE term_s > 0;

CREATE OR REPLACE VIEW subscriptions AS
WITH claims AS (SELECT claimed_under AS subscription_id, count(*) AS claims,
                       count(*) FILTER (WHERE status IN ('pending', 'delivered')) AS open_claims,
                       list(dataset_id ORDER BY dataset_id) AS claimed_versions
                FROM purchases WHERE claimed_under IS NOT NULL GROUP BY ALL)
SELECT s.subscription_id, s.dataset_id, s.subscriber, s.seller, s.payment_token, s.price,
       s.block_time AS subscribed_at, s.block_number AS subscribed_block, to_timestamp(s.expires) AS expires_at,
       nullif(s.renews, 0) AS renews, coalesce(c.claims, 0) AS claims, coalesce(c.open_claims, 0) AS open_claims,
       c.claimed_versions,
       CASE WHEN st.purchase_id IS NOT NULL THEN 'settled' WHEN r.purchase_id IS NOT NULL THEN 'refunded'
            WHEN to_timestamp(s.expires) > now() THEN 'active' ELSE 'expired' END AS status,
       st.block_time AS settled_at, st.seller_amount, st.fee, r.block_time AS refunded_at, s.tx_hash,
       s.finalized AND coalesce(st.finalized, r.finalized, true) AS finalized
FROM raw.subscribed s
LEFT JOIN claims c USING (subscription_id)
LEFT JOIN raw.purchase_settled st ON st.purchase_id = s.subscription_id
LEFT JOIN raw.refunded r ON r.purchase_id = s.subscription_id;

CREATE OR REPLACE VIEW earnings AS
SELECT s.purchase_id, s.dataset_id, 'seller' AS role, s.seller AS account, s.payment_token,
       s.seller_amount AS amount, s.block_time AS settled_at, s.finalized
FROM raw.purchase_settled s ANTI JOIN raw.revenue_shared x USING (purchase_id)
UNION ALL
SELECT purchase_id, dataset_id, 'payee', payee, payment_token, amount, block_time, finalized FROM raw.revenue_shared
UNION ALL
SELECT purchase_id, dataset_id, 'referrer', referrer, payment_token, amount, block_time, finalized
FROM raw.referrer_paid
UNION ALL
SELECT purchase_id, dataset_id, 'protocol', NULL, payment_token, fee, block_time, finalized
FROM raw.purchase_settled WHERE fee > 0;

CREATE OR REPLACE VIEW revenue_splits AS
SELECT dataset_id, arg_max(split_id, (block_number, log_index)) AS split_id,
       arg_max(payees, (block_number, log_index)) AS payees,
       arg_max(shares_bps, (block_number, log_index)) AS shares_bps,
       arg_max(locked, (block_number, log_index)) AS locked, max(block_time) AS set_at
FROM raw.revenue_split_set GROUP BY ALL;

CREATE OR REPLACE VIEW royalties AS
SELECT dataset_id, arg_max(receiver, (block_number, log_index)) AS receiver,
       arg_max(royalty_bps, (block_number, log_index)) AS royalty_bps, max(block_time) AS set_at
FROM raw.royalty_set GROUP BY ALL;

CREATE OR REPLACE VIEW datasets AS
WITH owner AS (SELECT token_id AS dataset_id, arg_max("to", (block_number, log_index)) AS owner
               FROM raw.transfer GROUP BY ALL),
     price AS (SELECT dataset_id, arg_max(new_price, (block_number, log_index)) AS price
               FROM raw.price_changed GROUP BY ALL),
     paused AS (SELECT dataset_id, arg_max(paused, (block_number, log_index)) AS paused
                FROM raw.sales_paused GROUP BY ALL),
     sales AS (SELECT dataset_id, count(*) AS purchases,
                      count(*) FILTER (WHERE delivered_at IS NOT NULL) AS delivered,
                      count(*) FILTER (WHERE status = 'settled') AS settled,
                      count(*) FILTER (WHERE status = 'refunded') AS refunded,
                      count(*) FILTER (WHERE disputed) AS disputed,
                      count(*) FILTER (WHERE dispute_buyer_won) AS disputes_lost,
                      count(*) FILTER (WHERE status IN ('pending', 'delivered')) AS open,
                      count(DISTINCT buyer) AS buyers,
                      coalesce(sum(seller_amount), 0) AS owner_revenue, coalesce(sum(fee), 0) AS fees,
                      median(delivery_latency_s) AS median_delivery_s
               FROM purchases GROUP BY ALL),
     subscribed AS (SELECT dataset_id, count(*) AS subscriptions, sum(seller_amount) AS subscription_revenue
                    FROM subscriptions GROUP BY ALL)
SELECT v.dataset_id, v.name, owner.owner, v.author, coalesce(price.price, v.initial_price) AS price, v.payment_token,
       coalesce(paused.paused, false) AS paused, v.supersedes, v.manifest_hash, v.manifest_status,
       v.manifest_matches, v.license_uri, v.registered_at, v.records, v.sealed_size,
       coalesce(sales.purchases, 0) AS purchases, coalesce(sales.delivered, 0) AS delivered,
       coalesce(sales.settled, 0) AS settled, coalesce(sales.refunded, 0) AS refunded,
       coalesce(sales.disputed, 0) AS disputed, coalesce(sales.disputes_lost, 0) AS disputes_lost,
       coalesce(sales.open, 0) AS open, coalesce(sales.buyers, 0) AS buyers,
       coalesce(sales.owner_revenue, 0) AS owner_revenue, coalesce(sales.fees, 0) AS fees, sales.median_delivery_s,
       plan.price AS subscription_price, plan.term_s AS subscription_term_s,
       coalesce(subscribed.subscriptions, 0) AS subscriptions,
       coalesce(subscribed.subscription_revenue, 0) AS subscription_revenue,
       health.flagged AS storage_flagged, health.probed_at AS storage_probed_at
FROM versions v
LEFT JOIN owner USING (dataset_id) LEFT JOIN price USING (dataset_id)
LEFT JOIN paused USING (dataset_id) LEFT JOIN sales USING (dataset_id)
LEFT JOIN subscription_plans plan USING (dataset_id) LEFT JOIN subscribed USING (dataset_id)
LEFT JOIN storage_health health USING (manifest_hash);

CREATE OR REPLACE VIEW payouts AS
SELECT 'withdrawal' AS kind, account, "to", payment_token, TRY_CAST(amount AS DECIMAL(38, 0)) AS amount,
       amount AS amount_text, block_time, block_number, tx_hash, finalized
FROM raw.withdrawn
UNION ALL
SELECT 'protocol_fees', treasury, treasury, payment_token, TRY_CAST(amount AS DECIMAL(38, 0)), amount, block_time,
       block_number, tx_hash, finalized
FROM raw.fees_withdrawn;

CREATE OR REPLACE VIEW revenue_daily AS
SELECT date_trunc('day', settled_at) AS day, dataset_id, payment_token, count(*) AS sales,
       sum(amount) AS gross, sum(seller_amount) AS owner_revenue, sum(fee) AS fees
FROM (SELECT settled_at, dataset_id, payment_token, amount, seller_amount, fee
      FROM purchases WHERE status = 'settled' AND claimed_under IS NULL
      UNION ALL
      SELECT settled_at, dataset_id, payment_token, price, seller_amount, fee
      FROM subscriptions WHERE status = 'settled')
GROUP BY ALL;

CREATE OR REPLACE VIEW owners AS
WITH held AS (SELECT owner, count(*) AS datasets FROM datasets GROUP BY ALL),
     earned AS (SELECT account AS owner, payment_token, count(*) AS sales, sum(amount) AS earned
                FROM earnings WHERE role IN ('seller', 'payee') GROUP BY ALL),
     record AS (SELECT seller AS owner, count(*) AS deliveries FROM raw.key_delivered GROUP BY ALL),
     disputes AS (SELECT seller AS owner, count(*) AS disputes, count(*) FILTER (WHERE buyer_won) AS disputes_lost
                  FROM raw.dispute_resolved GROUP BY ALL),
     everyone AS (SELECT owner FROM held UNION SELECT owner FROM earned UNION SELECT owner FROM record)
SELECT o.owner, coalesce(h.datasets, 0) AS datasets_held, e.payment_token, coalesce(e.sales, 0) AS sales,
       coalesce(e.earned, 0) AS earned, coalesce(r.deliveries, 0) AS deliveries,
       coalesce(d.disputes, 0) AS disputes, coalesce(d.disputes_lost, 0) AS disputes_lost
FROM everyone o LEFT JOIN held h USING (owner) LEFT JOIN earned e USING (owner)
LEFT JOIN record r USING (owner) LEFT JOIN disputes d USING (owner);
"""


DERIVED_TABLES = """
CREATE OR REPLACE TABLE dataset_sales AS
SELECT dataset_id, payment_token, count(*) AS sales, sum(seller_amount + fee) AS gross,
       sum(seller_amount) AS owner_revenue, sum(fee) AS fees
FROM raw.purchase_settled ANTI JOIN raw.subscription_claimed USING (purchase_id) GROUP BY ALL;

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
    UNION ALL SELECT dataset_id, block_number, log_index, block_time, 'key_delivered', seller, NULL, tx_hash
        FROM raw.key_delivered
    UNION ALL SELECT dataset_id, block_number, log_index, block_time,
           CASE WHEN buyer_won THEN 'dispute_won_by_buyer' ELSE 'dispute_lost_by_buyer' END, buyer, NULL, tx_hash
        FROM raw.dispute_resolved
    UNION ALL SELECT dataset_id, block_number, log_index, block_time, 'settled', seller, seller_amount, tx_hash
        FROM raw.purchase_settled
    UNION ALL SELECT dataset_id, block_number, log_index, block_time, 'refunded', buyer, amount, tx_hash
        FROM raw.refunded
    UNION ALL SELECT dataset_id, block_number, log_index, block_time, 'subscribed', subscriber, price, tx_hash
        FROM raw.subscribed
    UNION ALL SELECT dataset_id, block_number, log_index, block_time, 'subscription_plan', owner, price, tx_hash
        FROM raw.subscription_plan_set
) ORDER BY dataset_id, block_number, log_index;

CREATE OR REPLACE TABLE dataset_record AS
SELECT dataset_id, count(*) FILTER (WHERE event = 'purchased') AS purchases,
       count(*) FILTER (WHERE event = 'key_delivered') AS delivered,
       count(*) FILTER (WHERE event = 'settled') AS settled, count(*) FILTER (WHERE event = 'refunded') AS refunded,
       count(*) FILTER (WHERE event LIKE 'dispute%') AS disputed,
       count(*) FILTER (WHERE event = 'dispute_won_by_buyer') AS disputes_lost,
       count(DISTINCT account) FILTER (WHERE event = 'purchased') AS buyers
FROM dataset_events GROUP BY ALL ORDER BY dataset_id;

CREATE OR REPLACE TABLE dataset_buyers AS
SELECT dataset_id, buyer, count(*) AS purchases, sum(amount) AS paid
FROM raw.purchased GROUP BY ALL ORDER BY dataset_id, purchases DESC, buyer;

CREATE OR REPLACE TABLE dataset_daily AS
SELECT dataset_id, date_trunc('day', block_time) AS day, count(*) AS sales, sum(seller_amount + fee) AS gross
FROM raw.purchase_settled ANTI JOIN raw.subscription_claimed USING (purchase_id) GROUP BY ALL ORDER BY dataset_id, day;

CREATE OR REPLACE TABLE market_daily AS
SELECT date_trunc('day', block_time) AS day, payment_token, count(*) AS sales, sum(seller_amount + fee) AS gross
FROM raw.purchase_settled ANTI JOIN raw.subscription_claimed USING (purchase_id) GROUP BY ALL ORDER BY day;

CREATE OR REPLACE TABLE derived_state AS
SELECT (SELECT next_block - 1 FROM read_json_auto('{state}')) AS derived_block, now() AS derived_at;
"""
