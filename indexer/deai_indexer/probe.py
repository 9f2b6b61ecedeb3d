"""`deai-indexer probe`: is every registered dataset still stored? Each manifest fetched again (hash-checked)
and each shard locator checked where the manifest says it lives (deai_data.check_storage: no download but for a
few shards hashed whole); one Parquet file of observations per pass under `metadata/probes/`, older passes merged
into one file once there are more than `COMPACT_AFTER`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from deai_data import (
    FetchRefusedError,
    IntegrityError,
    NotFoundError,
    check_storage,
    fetch_manifest,
    fetch_policy,
)

from .enrich import manifests_path
from .layout import write_atomic

log = logging.getLogger("deai_indexer.probe")

SCHEMA = pa.schema([
    ("probed_at", pa.timestamp("s", tz="UTC")), ("manifest_hash", pa.string()), ("shard", pa.int64()),
    ("backend", pa.string()), ("locator", pa.string()), ("state", pa.string()), ("size", pa.int64()),
    ("confirmations", pa.int64()), ("hashed", pa.bool_()), ("seconds", pa.float64()), ("detail", pa.string()),
])
"""One row per object checked; `shard` is null for the manifest itself."""
COMPACT_AFTER = 32  # pass files kept apart before the older ones are merged (a catalog view reads every file)


def probes_dir(root: Path) -> Path:
    return root / "metadata" / "probes"


@dataclass(frozen=True)
class ProbePass:
    """What one pass found: how many manifests and objects were checked, which manifests are flagged (the
    manifest or a shard can no longer be fetched, or a copy is altered), and the file written."""

    manifests: int
    objects: int
    flagged: list[str]
    path: Path | None


def _manifest_state(exc: BaseException) -> str:
    if isinstance(exc, FetchRefusedError):
        return "refused"
    if isinstance(exc, NotFoundError):
        return "missing"
    if isinstance(exc, IntegrityError):
        return "corrupt"
    return "unreachable"


def _probe_one(manifest_hash: str, source: str, when: datetime, *, concurrency: int, hash_shards: int,
               deadline: float) -> tuple[list[dict], bool]:
    """Rows for one manifest and whether it is flagged."""
    base = {"probed_at": when, "manifest_hash": manifest_hash}
    backend = source.split("://", 1)[0] if "://" in source else "file"
    try:
        manifest, uri = fetch_manifest(source, manifest_hash=manifest_hash, trusted=False)
    except Exception as exc:  # whatever a registrant's URI serves is an observation
        return [{**base, "shard": None, "backend": backend, "locator": source[:1000], "state": _manifest_state(exc),
                 "detail": type(exc).__name__}], True
    rows = [{**base, "shard": None, "backend": backend, "locator": uri[:1000], "state": "available",
             "size": len(manifest.to_bytes()), "hashed": True, "detail": ""}]
    report = check_storage(manifest, policy=fetch_policy.configured().widened_for(uri), concurrency=concurrency,
                           hash_shards=hash_shards, deadline=deadline)
    for seen in report.observations:
        o = seen.observation
        rows.append({**base, "shard": seen.shard, "backend": o.backend, "locator": o.locator[:1000], "state": o.state,
                     "size": o.size, "confirmations": o.confirmations, "hashed": o.hashed, "seconds": o.seconds,
                     "detail": o.detail[:300]})
    return rows, not report.ok


def probe_storage(root: str | Path, *, concurrency: int = 8, hash_shards: int = 1, deadline: float = 300.0,
                  now: datetime | None = None) -> ProbePass:
    """Check every manifest enrichment fetched successfully, and its shards; write the observations to
    `metadata/probes/<time>.parquet`. Registered URIs are untrusted: the configured fetch policy applies."""
    root = Path(root)
    path = manifests_path(root)
    known = pq.read_table(path, columns=["manifest_hash", "status", "source_uri"]).to_pylist() if path.is_file() else []
    when = (now or datetime.now(timezone.utc)).replace(microsecond=0)
    rows: list[dict] = []
    flagged: list[str] = []
    checked = [r for r in known if r["status"] == "ok" and r["source_uri"]]
    for row in checked:
        found, bad = _probe_one(row["manifest_hash"], row["source_uri"], when, concurrency=concurrency,
                                hash_shards=hash_shards, deadline=deadline)
        rows += found
        if bad:
            flagged.append(row["manifest_hash"])
            log.warning("manifest %s: storage flagged (%s)", row["manifest_hash"],
                        ", ".join(sorted({r["state"] for r in found if r["state"] != "available"})))
    if not rows:
        return ProbePass(0, 0, [], None)
    target = probes_dir(root) / f"{when:%Y%m%dT%H%M%SZ}.parquet"
    write_atomic(target, pa.Table.from_pylist(rows, schema=SCHEMA))
    compact_probes(root)
    return ProbePass(len(checked), len(rows), flagged, target)


def compact_probes(root: str | Path, *, keep: int = COMPACT_AFTER) -> Path | None:
    """With more than `keep` files under `metadata/probes/`, merge all but the newest into one file named by the
    first and last pass it holds (`<first>-<last>.parquet`); returns it. Rows are merged without duplicates, so
    a merge cut off between writing the new file and removing the old ones is repaired by the next."""
    files = sorted(probes_dir(Path(root)).glob("*.parquet"))
    if len(files) <= keep:
        return None
    older = files[:-1]
    merged = pa.concat_tables([pq.read_table(f, schema=SCHEMA) for f in older])
    merged = merged.group_by(merged.column_names, use_threads=False).aggregate([])
    merged = merged.select(SCHEMA.names).sort_by([("probed_at", "ascending"), ("manifest_hash", "ascending")])
    target = older[0].with_name(f"{older[0].stem[:16]}-{older[-1].stem[-16:]}.parquet")
    write_atomic(target, merged)
    for f in older:
        if f != target:
            f.unlink()
    return target
