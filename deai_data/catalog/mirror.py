"""A catalog's index folder copied to object storage (`push`, by the indexer) and back (`pull`, by an analyst
on another machine), through pyarrow filesystems: `s3://` (any S3-compatible service), `gs://`, `hdfs://`, or
a local or shared folder.

`mirror.json` lists every file with its SHA-256 and is written last, so it commits a push; a pull fetches what
its copy lacks, checks every file against the listing, and retries when a push replaced files meanwhile.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pyarrow as pa
import pyarrow.fs as pafs

from ..errors import CatalogError, LimitError
from ..storage.base import sha256_file
from ..storage.s3 import ENDPOINT_ENV, REGION_ENV

LISTING = "mirror.json"
LISTING_VERSION = 1
MAX_LISTING_BYTES = 64 << 20
_HASH_CACHE = ".mirror-hashes.json"  # in the local folder: path -> [size, mtime_ns, sha256], to hash changes only


@dataclass(frozen=True)
class MirrorReport:
    """What one push or pull moved."""

    files: int
    copied: int
    deleted: int
    bytes_copied: int
    seconds: float


def open_target(uri: str) -> tuple[pafs.FileSystem, str]:
    """The pyarrow filesystem and base path of `uri`. For `s3://BUCKET/PREFIX` the endpoint and region come from
    `?endpoint=URL&region=R` or DEAI_S3_ENDPOINT / DEAI_S3_REGION (as for the S3 store); credentials from the
    environment as for every S3 client (AWS_ACCESS_KEY_ID, ...). A plain path is a local folder."""
    parts = urlsplit(uri)
    if parts.scheme in ("", "file"):
        return pafs.LocalFileSystem(), str(Path(parts.path if parts.scheme else uri).resolve())
    if parts.scheme == "s3":
        query = dict(parse_qsl(parts.query))
        endpoint = query.get("endpoint") or os.environ.get(ENDPOINT_ENV)
        options: dict[str, Any] = {"region": query.get("region") or os.environ.get(REGION_ENV) or "us-east-1"}
        if endpoint:
            where = urlsplit(endpoint)
            options.update(endpoint_override=where.netloc, scheme=where.scheme or "https")
        return pafs.S3FileSystem(**options), f"{parts.netloc}{parts.path}".rstrip("/")
    try:
        return pafs.FileSystem.from_uri(uri)
    except (pa.ArrowException, ValueError) as exc:
        raise CatalogError(f"cannot open {uri}: {exc}", hint="an s3:// URI, another pyarrow filesystem URI, or a "
                                                             "folder") from None


def _local_files(root: Path) -> list[str]:
    found = []
    for path in root.rglob("*"):
        rel = path.relative_to(root).as_posix()
        if path.is_file() and not path.name.startswith(".") and rel != LISTING and not rel.endswith(".wal"):
            found.append(rel)
    return sorted(found)


def _hashes(root: Path, files: list[str]) -> dict[str, str]:
    """SHA-256 of every file, recomputed only for files whose size or mtime changed since the last push."""
    cache_path = root / _HASH_CACHE
    try:
        cache = json.loads(cache_path.read_text())
    except (OSError, ValueError):
        cache = {}
    result, fresh = {}, {}
    for rel in files:
        st = (root / rel).stat()
        known = cache.get(rel)
        digest = known[2] if isinstance(known, list) and known[:2] == [st.st_size, st.st_mtime_ns] \
            else sha256_file(root / rel).hexdigest()
        result[rel], fresh[rel] = digest, [st.st_size, st.st_mtime_ns, digest]
    cache_path.write_text(json.dumps(fresh))
    return result


def _read_listing(fs: pafs.FileSystem, base: str) -> dict[str, str] | None:
    try:
        with fs.open_input_stream(f"{base}/{LISTING}") as fh:
            body = fh.read(MAX_LISTING_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CatalogError(f"cannot read {base}/{LISTING}: {exc}") from None
    if len(body) > MAX_LISTING_BYTES:
        raise LimitError(f"{LISTING} is longer than {MAX_LISTING_BYTES} bytes", limit="mirror_listing_bytes")
    try:
        doc = json.loads(body)
        files = doc["files"]
        if doc.get("version") != LISTING_VERSION or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
            raise ValueError("unexpected shape")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CatalogError(f"{base}/{LISTING} is not a catalog listing: {exc}") from None
    return files


def _safe(rel: str) -> bool:
    """A listed path stays inside the folder (a hostile listing cannot write elsewhere)."""
    parts = rel.split("/")
    return bool(rel) and not rel.startswith("/") and all(p not in ("", ".", "..") for p in parts) and "\\" not in rel


def push(root: str | Path, uri: str) -> MirrorReport:
    """Copy the index folder `root` to `uri`: new and changed files first, then the listing, then deletions of
    what the listing no longer names. Another machine reads it with `pull` (or `Catalog(uri)`)."""
    started = time.perf_counter()
    folder = Path(root).resolve()
    fs, base = open_target(uri)
    hashes = _hashes(folder, _local_files(folder))
    remote = _read_listing(fs, base) or {}
    changed = [rel for rel, digest in hashes.items() if remote.get(rel) != digest]
    moved = 0
    try:
        for rel in changed:
            fs.create_dir(f"{base}/{rel}".rsplit("/", 1)[0], recursive=True)
            with open(folder / rel, "rb") as src, fs.open_output_stream(f"{base}/{rel}") as dst:
                while chunk := src.read(8 << 20):
                    dst.write(chunk)
                    moved += len(chunk)
        with fs.open_output_stream(f"{base}/{LISTING}") as dst:
            dst.write(json.dumps({"version": LISTING_VERSION, "files": hashes}, sort_keys=True).encode())
        gone = [rel for rel in remote if rel not in hashes and _safe(rel)]
        for rel in gone:
            fs.delete_file(f"{base}/{rel}")
    except (OSError, pa.ArrowException) as exc:
        raise CatalogError(f"cannot copy the catalog to {uri}: {exc}",
                           hint="check the URI, the endpoint and the credentials; pushing again resumes") from None
    return MirrorReport(len(hashes), len(changed), len(gone), moved, time.perf_counter() - started)


def pull(uri: str, root: str | Path, *, attempts: int = 3) -> MirrorReport:
    """Make the folder `root` a copy of the catalog at `uri` (fetching only what changed), every file checked
    against the listing's SHA-256."""
    started = time.perf_counter()
    folder = Path(root).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    fs, base = open_target(uri)
    for attempt in range(attempts):
        listing = _read_listing(fs, base)
        if listing is None:
            raise CatalogError(f"no catalog at {uri} (no {LISTING})",
                               hint="copy one there with `deai-indexer push URI` (or --push-to)")
        bad = [rel for rel in listing if not _safe(rel)]
        if bad:
            raise CatalogError(f"the listing at {uri} names a path outside its folder: {bad[0]!r}")
        local = _hashes(folder, _local_files(folder))
        wanted = [rel for rel, digest in listing.items() if local.get(rel) != digest]
        try:
            moved = sum(_fetch(fs, f"{base}/{rel}", folder / rel, listing[rel]) for rel in wanted)
        except _Changed:
            if attempt == attempts - 1:
                raise CatalogError(f"the catalog at {uri} kept changing while it was copied, or a file there does "
                                   "not match its listing", hint="try again when the indexer's push has finished")\
                    from None
            continue
        except (OSError, pa.ArrowException) as exc:
            raise CatalogError(f"cannot copy the catalog from {uri}: {exc}") from None
        gone = [rel for rel in local if rel not in listing]
        for rel in gone:
            (folder / rel).unlink(missing_ok=True)
        _hashes(folder, sorted(listing))
        return MirrorReport(len(listing), len(wanted), len(gone), moved, time.perf_counter() - started)
    raise AssertionError("unreachable")


class _Changed(Exception):
    """A file no longer matches the listing read a moment ago (a push is under way)."""


def _fetch(fs: pafs.FileSystem, source: str, target: Path, sha256: str) -> int:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.part")
    digest = hashlib.sha256()
    size = 0
    try:
        with fs.open_input_stream(source) as src, open(partial, "wb") as dst:
            while chunk := src.read(8 << 20):
                digest.update(chunk)
                dst.write(chunk)
                size += len(chunk)
    except FileNotFoundError:
        partial.unlink(missing_ok=True)
        raise _Changed from None
    if digest.hexdigest() != sha256:
        partial.unlink(missing_ok=True)
        raise _Changed
    os.replace(partial, target)
    return size
