"""Enrichment: each registered manifest fetched through deai-data's storage registry (any backend),
checked against its on-chain hash, and its metadata kept in `metadata/manifests.parquet`.

Failures (unreachable, hash mismatch, malformed) become a `status` value, never a crash; they are
tried again on the next pass.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from deai_data.dataset.reader import fetch_manifest
from deai_data.errors import DeaiError, IntegrityError, ManifestError, NotFoundError
from deai_data.formats.manifest import Manifest
from deai_data.storage.registry import store_for

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
])


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


def _shards_available(manifest: Manifest) -> int:
    """How many shards at least one locator serves with the size the manifest says (a stat, no download)."""
    available = 0
    for shard in manifest.shards:
        for locator in shard.locators:
            try:
                if store_for(locator).stat(locator).size == shard.sealed_size:
                    available += 1
                    break
            except DeaiError:
                continue
    return available


def _signature_checked(manifest: Manifest) -> bool | None:
    """True when the manifest's author signature verifies offline, None when only the chain can check it
    (unsigned, or a contract wallet's signature); a forged one raises ManifestError (status `malformed`)."""
    return None if manifest.signed_author() is None else True


def _row(manifest_hash: str, uris: list[str], check_availability: bool) -> dict:
    errors = []
    for uri in uris:
        try:
            manifest, source = fetch_manifest(uri, manifest_hash=manifest_hash)
            signature_checked = _signature_checked(manifest)
        except DeaiError as exc:
            kind = ("hash_mismatch" if isinstance(exc, IntegrityError) else
                    "malformed" if isinstance(exc, ManifestError) else
                    "not_found" if isinstance(exc, NotFoundError) else "unreachable")
            errors.append((kind, f"{uri}: {exc}"))
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
                "shards_available": _shards_available(manifest) if check_availability else None}
    status, error = errors[-1] if errors else ("no_uri", "the registration lists no manifest URI")
    if any(s == "hash_mismatch" for s, _ in errors):
        status = "hash_mismatch"
    return {"manifest_hash": manifest_hash, "status": status, "error": "; ".join(e for _, e in errors) or error}


def enrich_manifests(root: Path, *, check_availability: bool = False) -> int:
    """Fetch every registered manifest not yet fetched successfully; returns how many were tried.
    With `check_availability`, also count the shards their locators serve (`shards_available`)."""
    path = manifests_path(root)
    existing = pq.read_table(path).to_pylist() if path.is_file() else []
    done = {r["manifest_hash"] for r in existing if r["status"] == "ok"}
    todo = {h: uris for h, uris in _registered(root).items() if h not in done}
    if not todo:
        return 0
    rows = [r for r in existing if r["manifest_hash"] not in todo]
    for manifest_hash, uris in todo.items():
        row = _row(manifest_hash, uris, check_availability)
        if row["status"] != "ok":
            log.warning("manifest %s: %s", manifest_hash, row["error"])
        rows.append(row)
    write_atomic(path, pa.Table.from_pylist(rows, schema=SCHEMA))
    return len(todo)
