"""The DuckDB catalog: views over the Parquet event files, the manifests table and the checkpoint,
plus derived views for analysts (datasets, versions, purchases, payouts, revenue_daily, owners).

Views read the Parquet files at query time, so a catalog stays current while the indexer writes;
`build_catalog` only needs re-running when a table gets its first file (and after `rebuild`).
Paths in the views are relative to the root folder (`catalog_schema.connect` finds them): the folder can be
moved or copied to another machine as it is.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from deai_data import catalog_schema

from .enrich import SCHEMA as MANIFEST_SCHEMA
from .enrich import manifests_path
from .events import event_specs
from .layout import events_dir, write_atomic
from .probe import SCHEMA as PROBE_SCHEMA
from .probe import probes_dir
from .quarantine import SCHEMA as QUARANTINE_SCHEMA
from .quarantine import quarantine_path


def refresh_derived(root: str | Path) -> None:
    """Recompute the derived tables (dataset_sales, dataset_events) from the Parquet files.

    They make the common questions fast on big catalogs (DuckDB's own storage, sorted by dataset);
    `derived_state.derived_block` says which block they are current to. The views are always current."""
    root = Path(root).resolve()
    con = catalog_schema.connect(catalog_schema.catalog_path(root), read_only=False)
    try:
        con.execute(catalog_schema.DERIVED_TABLES.format(state=catalog_schema.STATE_FILE))
    finally:
        con.close()


def _empty_file(root: Path, name: str, schema: pa.Schema) -> Path:
    """An empty Parquet file of `schema` (for a view whose table has no file yet), relative to `root`."""
    path = root / "metadata" / "empty" / f"{name}.parquet"
    if not path.is_file():
        write_atomic(path, schema.empty_table())
    return path.relative_to(root)


def build_catalog(root: str | Path) -> Path:
    """(Re)create the catalog's views; safe to run at any time (the data stays in Parquet)."""
    root = Path(root).resolve()
    path = catalog_schema.catalog_path(root)
    con = catalog_schema.connect(path, read_only=False)
    try:
        con.execute("CREATE SCHEMA IF NOT EXISTS raw")
        for spec in event_specs().values():
            folder = events_dir(root) / spec.table
            relative = folder.relative_to(root)
            if any(folder.glob("bucket=*/*.parquet")):
                source = (f"(SELECT * EXCLUDE (bucket) FROM "
                          f"read_parquet('{relative}/bucket=*/*.parquet', hive_partitioning = true))")
            else:
                source = f"read_parquet('{_empty_file(root, spec.table, spec.schema)}')"
            con.execute(f"""CREATE OR REPLACE VIEW raw.{spec.table} AS
                SELECT *, block_number <= (SELECT finalized_block FROM read_json_auto('{catalog_schema.STATE_FILE}'))
                          AS finalized
                FROM {source}""")
        manifests = manifests_path(root)
        table = manifests.relative_to(root) if manifests.is_file() else _empty_file(root, "manifests", MANIFEST_SCHEMA)
        con.execute(f"CREATE OR REPLACE VIEW manifests AS SELECT * FROM read_parquet('{table}')")
        probes = probes_dir(root)
        observed = (f"{probes.relative_to(root)}/*.parquet" if any(probes.glob("*.parquet"))
                    else _empty_file(root, "probes", PROBE_SCHEMA))
        con.execute(f"CREATE OR REPLACE VIEW storage_observations AS SELECT * FROM read_parquet('{observed}')")
        held = quarantine_path(root)
        table = held.relative_to(root) if held.is_file() else _empty_file(root, "quarantine", QUARANTINE_SCHEMA)
        con.execute(f"""CREATE OR REPLACE VIEW quarantine AS
            SELECT 'event' AS kind, block_number, log_index, tx_hash, topic, NULL AS manifest_hash, reason,
                   quarantined_at AS since
            FROM read_parquet('{table}')
            UNION ALL
            SELECT 'manifest', NULL, NULL, NULL, NULL, manifest_hash, status || ': ' || error, NULL
            FROM manifests WHERE status <> 'ok'""")
        con.execute(catalog_schema.VIEWS.format(state=catalog_schema.STATE_FILE))
        con.execute(catalog_schema.DERIVED_TABLES.format(state=catalog_schema.STATE_FILE))
    finally:
        con.close()
    return path
