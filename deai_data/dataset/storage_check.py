"""Is a dataset version still stored? Every locator of every shard checked where its manifest says it lives,
with bounded concurrency and an overall deadline; a few shards, picked at random, read whole and hashed.
"""

from __future__ import annotations

import html
import random
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from ..errors import UsageError
from ..formats.manifest import Manifest
from ..storage import fetch_policy
from ..storage.fetch_policy import FetchPolicy
from ..storage.probe import Observation, backend_of, probe_object


@dataclass(frozen=True)
class ShardObservation:
    """One check of one locator of shard `shard`."""

    shard: int
    observation: Observation


@dataclass
class StorageReport:
    """Every observation of one check, and what they mean for the dataset: a shard is fetchable when at least
    one of its locators is (`available` or `pending`), and none of them served altered bytes."""

    manifest: Manifest
    observations: list[ShardObservation] = field(default_factory=list)

    def _by_shard(self) -> dict[int, list[Observation]]:
        found: dict[int, list[Observation]] = {s.index: [] for s in self.manifest.shards}
        for seen in self.observations:
            found[seen.shard].append(seen.observation)
        return found

    @property
    def unfetchable_shards(self) -> list[int]:
        """Shards no locator serves: the dataset cannot be read whole any more."""
        return [i for i, seen in self._by_shard().items() if not any(o.fetchable for o in seen)]

    @property
    def corrupt_shards(self) -> list[int]:
        """Shards some locator serves altered (a wrong size or hash): a reader skips that copy."""
        return [i for i, seen in self._by_shard().items() if any(o.state in ("corrupt", "wrong_size") for o in seen)]

    @property
    def ok(self) -> bool:
        return not self.unfetchable_shards and not self.corrupt_shards

    def _repr_html_(self) -> str:
        """For notebooks: the verdict and a row per backend with its count of objects in each state."""
        counts = self.by_backend()
        states = sorted({state for found in counts.values() for state in found})
        head = "".join(f"<th>{html.escape(s)}</th>" for s in ["backend", *states])
        rows = "".join(f"<tr><td>{html.escape(b)}</td>" + "".join(f"<td>{found.get(s, 0)}</td>" for s in states)
                       + "</tr>" for b, found in sorted(counts.items()))
        verdict = ("every shard fetchable" if self.ok else f"{len(self.unfetchable_shards)} shards not fetchable, "
                   f"{len(self.corrupt_shards)} with an altered copy")
        return (f"<div><strong>Storage of {html.escape(self.manifest.name)}: {verdict}</strong>"
                f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></div>")

    def by_backend(self) -> dict[str, dict[str, int]]:
        """{backend: {state: count}}."""
        counts: dict[str, dict[str, int]] = {}
        for seen in self.observations:
            states = counts.setdefault(seen.observation.backend, {})
            states[seen.observation.state] = states.get(seen.observation.state, 0) + 1
        return counts


def _jobs(manifest: Manifest, hashed: set[int]) -> Iterator[tuple[int, str, int, str | None]]:
    for shard in manifest.shards:
        for locator in shard.locators:
            yield shard.index, locator, shard.sealed_size, shard.sha256 if shard.index in hashed else None


def check_storage(manifest: Manifest, *, policy: FetchPolicy | None = None, concurrency: int = 8,
                  hash_shards: int = 0, deadline: float = 300.0, seed: int | None = None) -> StorageReport:
    """Check every locator of every shard of `manifest` (a stat, a HEAD, Arweave's confirmations: no
    download), `concurrency` at a time; `hash_shards` shards picked at random are read whole (in 8 MiB ranges)
    and their SHA-256 compared. Checks not finished `deadline` seconds after the start are `unreachable`
    ("timed out"). Locators must pass `policy` (default: the configured fetch policy; for a manifest an
    untrusted party named, `fetch_policy.configured().widened_for(where the manifest came from)`)."""
    if concurrency < 1 or hash_shards < 0 or deadline <= 0:
        raise UsageError("concurrency must be at least 1, hash_shards at least 0 and deadline positive")
    checked_by = policy or fetch_policy.configured()
    indices = [s.index for s in manifest.shards]
    hashed = set(random.Random(seed).sample(indices, min(hash_shards, len(indices))))

    def run(locator: str, size: int, sha256: str | None) -> Observation:
        with fetch_policy.applied(checked_by):
            return probe_object(locator, size, sha256=sha256)

    report = StorageReport(manifest)
    jobs = list(_jobs(manifest, hashed))
    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="deai-probe")
    futures: dict[Future[Observation], tuple[int, str]] = {
        pool.submit(run, locator, size, sha256): (shard, locator) for shard, locator, size, sha256 in jobs}
    ends_at = time.monotonic() + deadline
    pending = set(futures)
    try:
        while pending:
            done, pending = wait(pending, timeout=max(0.0, ends_at - time.monotonic()), return_when=FIRST_COMPLETED)
            if not done:
                break
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    for future, (shard, locator) in futures.items():
        seen = future.result() if future.done() and not future.cancelled() else Observation(
            locator, backend_of(locator), "unreachable", seconds=deadline, detail=f"timed out after {deadline:g} s")
        report.observations.append(ShardObservation(shard, seen))
    return report
