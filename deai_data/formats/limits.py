"""Caps on untrusted input, checked before any allocation or parse that depends on it (docs/security.md).

`Limits()` holds the defaults; `Limits(...)` raises one within its hard cap; `limits.configure(...)` changes
the process-wide defaults (for an operator reading unusually large datasets).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from ..errors import LimitError

KiB, MiB, GiB, TiB = 1 << 10, 1 << 20, 1 << 30, 1 << 40


@dataclass(frozen=True)
class Limits:
    """What a manifest, a shard or a response may declare. Each default is far above what deai-data writes;
    each hard cap (HARD_CAPS) is what a configuration may raise it to."""

    manifest_bytes: int = 64 * MiB      # a manifest of 150,000 shards with two locators each is ~60 MiB
    json_depth: int = 16                # a manifest nests 5 deep
    string_bytes: int = 64 * KiB        # names, descriptions, locators, metadata values
    metadata_entries: int = 1_000
    shards: int = 200_000
    locators_per_shard: int = 16
    shard_bytes: int = 4 * GiB          # sealed size of one shard (a reader holds one shard in memory)
    dataset_bytes: int = 1024 * TiB     # sum of the sealed sizes
    response_bytes: int = 64 * MiB      # any HTTP body whose size is not known in advance (JSON, manifests)
    lineage_generations: int = 10_000   # earlier versions a version inherits shards of (a reader hashes once each)

    def __post_init__(self) -> None:
        for f in fields(self):
            value, cap = getattr(self, f.name), HARD_CAPS[f.name]
            if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= cap:
                raise LimitError(f"must be an integer in [1, {cap}], got {value!r}", limit=f.name)


HARD_CAPS = {
    "manifest_bytes": 1 * GiB, "json_depth": 64, "string_bytes": 16 * MiB, "metadata_entries": 100_000,
    "shards": 10_000_000, "locators_per_shard": 256, "shard_bytes": 64 * GiB, "dataset_bytes": 1 << 62,
    "response_bytes": 1 * GiB, "lineage_generations": 1_000_000,
}


_current = Limits()


def current() -> Limits:
    """The process-wide limits (defaults unless `configure` changed them)."""
    return _current


def configure(**changes: int) -> Limits:
    """Change process-wide limits (each within its hard cap); returns the new limits."""
    global _current
    _current = replace(_current, **changes)
    return _current
