"""Enrichment: each registered manifest fetched (under the fetch policy: registrants are untrusted) through
deai-data's storage registry, checked against its on-chain hash, its metadata kept in
`metadata/manifests.parquet`. A failure is a `status` and a reason in the indexer's own words (never what a
server answered), retried with backoff; nothing a registrant names can crash or stall the indexer.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from deai_data import (
    DeaiError,
    FetchRefusedError,
    IntegrityError,
    LimitError,
    Manifest,
    ManifestError,
    NotFoundError,
    check_storage,
    fetch_manifest,
    fetch_policy,
)

from .layout import events_dir, write_atomic

log = logging.getLogger("deai_indexer.enrich")

SCHEMA = pa.schema([
    ("manifest_hash", pa.string()), ("status", pa.string()), ("error", pa.string()), ("source_uri", pa.string()),
    ("name", pa.string()), ("description", pa.string()), ("license", pa.string()),
    ("manifest_version", pa.int64()), ("seal_id", pa.string()), ("content_root", pa.string()),
    ("key_commitment", pa.string()), ("author", pa.string()), ("signature_checked", pa.bool_()),
    ("records", pa.int64()), ("plaintext_size", pa.int64()), ("sealed_size", pa.int64()),
    ("shard_count", pa.int64()), ("segment_size", pa.int64()), ("compression", pa.string()),
    ("previous_manifest", pa.string()), ("schema_json", pa.string()), ("backends", pa.list_(pa.string())),
    ("metadata_json", pa.string()), ("shards_available", pa.int64()),
    ("inherited_shards", pa.int64()), ("inherited_size", pa.int64()), ("lineage_generations", pa.int64()),
    ("attempts", pa.int64()), ("next_try", pa.timestamp("s", tz="UTC")),
])
RETRY_BASE, RETRY_MAX = 60, 24 * 3600  # seconds before a failed manifest is fetched again: doubling


def manifests_path(root: Path) -> Path:
    return root / "metadata" / "manifests.parquet"


def _registered(root: Path) -> dict[str, list[str]]:
    folder = events_dir(root) / "dataset_registered"
    if not folder.is_dir():
        return {}
    table = ds.dataset(folder, format="parquet", partitioning="hive").to_table(
        columns=["manifest_hash", "manifest_uris"])
    found: dict[str, list[str]] = {}
    for h, uris in zip(table.column("manifest_hash").to_pylist(), table.column("manifest_uris").to_pylist(),
                       strict=True):
        known = found.setdefault(h, [])
        known.extend(u for u in uris or [] if u not in known)
    return found


def _shards_available(manifest: Manifest, source: str) -> int:
    """How many shards at least one locator serves with the size the manifest says (a stat, no download),
    under the fetch policy widened for where the manifest came from."""
    report = check_storage(manifest, policy=fetch_policy.configured().widened_for(source))
    return len(manifest.shards) - len(report.unfetchable_shards)


def _reason(exc: BaseException) -> tuple[str, str]:
    """(status, reason) in the indexer's words: what failed, never a server's text."""
    if isinstance(exc, FetchRefusedError):
        return "refused", "refused by the fetch policy (a non-public address, a local file or another scheme)"
    if isinstance(exc, IntegrityError):
        return "hash_mismatch", "the bytes served do not hash to the registered manifest hash"
    if isinstance(exc, NotFoundError):
        return "not_found", "no object at that URI"
    if isinstance(exc, LimitError):
        return "malformed", f"over the {exc.limit} limit"
    if isinstance(exc, ManifestError):
        return "malformed", f"not a valid manifest ({exc.field or 'document'})"
    if isinstance(exc, DeaiError):
        return "unreachable", f"the fetch failed ({type(exc).__name__})"
    return "failed", f"the fetch failed unexpectedly ({type(exc).__name__})"


def _signature_checked(manifest: Manifest) -> bool | None:
    """True when the manifest's author signature verifies offline, None when only the chain can check it
    (unsigned, or a contract wallet's signature); a forged one raises ManifestError (status `malformed`)."""
    return None if manifest.signed_author() is None else True


def _row(manifest_hash: str, uris: list[str], check_availability: bool) -> dict:
    errors: list[tuple[str, str]] = []
    for uri in uris:
        try:
            manifest, source = fetch_manifest(uri, manifest_hash=manifest_hash, trusted=False)
            signature_checked = _signature_checked(manifest)
        except Exception as exc:
            status, why = _reason(exc)
            errors.append((status, f"{uri[:300]}: {why}"))
            continue
        schemes = sorted({loc.split("://", 1)[0] for s in manifest.shards for loc in s.locators})
        return {"manifest_hash": manifest_hash, "status": "ok", "error": None, "source_uri": source,
                "name": manifest.name, "description": manifest.description, "license": manifest.license,
                "manifest_version": manifest.version, "seal_id": manifest.seal_id,
                "content_root": manifest.content_root, "key_commitment": manifest.key_commitment,
                "author": manifest.author, "signature_checked": signature_checked,
                "records": manifest.records,
                "plaintext_size": manifest.plaintext_size, "sealed_size": manifest.sealed_size,
                "shard_count": len(manifest.shards), "segment_size": manifest.segment_size,
                "compression": manifest.compression, "previous_manifest": manifest.previous_manifest,
                "schema_json": json.dumps(manifest.to_dict()["schema"]["fields"]), "backends": schemes,
                "metadata_json": json.dumps(dict(manifest.metadata), sort_keys=True),
                "shards_available": _shards_available(manifest, source) if check_availability else None,
                "inherited_shards": manifest.inherited_shards,
                "inherited_size": sum(s.sealed_size for s in manifest.shards if s.origin is not None),
                "lineage_generations": len(manifest.lineage.generations) if manifest.lineage else 0}
    status, error = errors[-1] if errors else ("no_uri", "the registration lists no manifest URI")
    for worst in ("hash_mismatch", "malformed", "refused"):
        if any(s == worst for s, _ in errors):
            status = worst
            break
    return {"manifest_hash": manifest_hash, "status": status,
            "error": "; ".join(e for _, e in errors)[:1000] or error}


def enrich_manifests(root: Path, *, check_availability: bool = False) -> int:
    """Fetch every registered manifest not yet fetched successfully and due for a try (a failure waits 1 minute,
    doubling up to a day); returns how many were tried. With `check_availability`, also count the shards their
    locators serve (`shards_available`)."""
    path = manifests_path(root)
    existing = {r["manifest_hash"]: r for r in (pq.read_table(path).to_pylist() if path.is_file() else [])}
    now = time.time()

    def due(manifest_hash: str) -> bool:
        row = existing.get(manifest_hash)
        return row is None or (row["status"] != "ok" and (row.get("next_try") is None or
                                                           row["next_try"].timestamp() <= now))

    todo = {h: uris for h, uris in _registered(root).items() if due(h)}
    if not todo:
        return 0
    for manifest_hash, uris in todo.items():
        row = _row(manifest_hash, uris, check_availability)
        attempts = (existing.get(manifest_hash) or {}).get("attempts") or 0
        if row["status"] != "ok":
            attempts += 1
            row["next_try"] = datetime.fromtimestamp(now + min(RETRY_MAX, RETRY_BASE * 2 ** (attempts - 1)),
                                                     tz=timezone.utc)
            log.warning("manifest %s: %s (attempt %d)", manifest_hash, row["error"], attempts)
        row["attempts"] = attempts
        existing[manifest_hash] = row
    write_atomic(path, pa.Table.from_pylist(list(existing.values()), schema=SCHEMA))
    return len(todo)
