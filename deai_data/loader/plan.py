"""The epoch plan: which samples, in which order, go to which rank and DataLoader worker.

Global order for (seed, epoch): a shuffled shard order, then rows permuted inside windows of
`window` consecutive shards (a bounded shuffle). Each rank takes a contiguous block of that stream,
cut into `lanes` contiguous spans; the rank's batch j comes from lane j % lanes. DataLoader worker
w of W produces the rank's batches j = skip + w, skip + w + W, ...: the order a training loop sees
is the same for every worker count, and with W dividing `lanes` no two workers read the same shard.
Everything is computed in closed form, so resuming at batch `skip` replays nothing.

Resuming with another world size: the ranks of the old world consumed their first k batches each
(training steps in lockstep); what they left (per rank and lane, an interval of the stream) is joined,
in order, into a shorter stream that the new world partitions the same way. `resumed` lists these
(world size, batches) steps, so a job may change its world size more than once in an epoch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..errors import UsageError

TAILS = ("none", "drop", "pad")


@dataclass(frozen=True)
class PlanConfig:
    """What fixes the order. Changing any field changes the order (and invalidates resume states)."""

    batch_size: int = 1
    seed: int = 0
    shuffle: bool = True
    window: int = 2
    lanes: int = 4
    tail: str = "none"

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.window < 1 or self.lanes < 1:
            raise UsageError("batch_size, window and lanes must be at least 1")
        if self.tail not in TAILS:
            raise UsageError(f"tail must be one of {TAILS}")


class EpochPlan:
    """The order of one epoch for one rank. Positions are indices into the epoch's sample stream."""

    def __init__(self, records: Sequence[int], config: PlanConfig, epoch: int, *, world_size: int = 1,
                 rank: int = 0, resumed: Sequence[tuple[int, int]] = ()) -> None:
        if not 0 <= rank < world_size:
            raise UsageError(f"rank {rank} is not in a world of {world_size}")
        self.config = config
        self.epoch = epoch
        counts = np.asarray(records, dtype=np.int64)
        rng = np.random.default_rng([config.seed, epoch])
        self.shard_order = rng.permutation(len(counts)) if config.shuffle else np.arange(len(counts))
        ordered = counts[self.shard_order]
        self.shard_starts = np.concatenate([[0], np.cumsum(ordered)])  # stream start of each ordered shard
        self.total = int(self.shard_starts[-1])
        self.window_starts = self.shard_starts[::config.window]
        if self.window_starts[-1] != self.total:
            self.window_starts = np.append(self.window_starts, self.total)
        # the stream this plan partitions: pieces (start in this stream, start in the epoch's stream)
        self.length = self.total
        self._piece_starts = np.zeros(1, dtype=np.int64)
        self._piece_bases = np.zeros(1, dtype=np.int64)
        for old_world, old_batches in resumed:
            self._keep_remainder(old_world, old_batches)
        self.rank_start, self.rank_size = _rank_block(self.length, world_size, rank, config.tail)
        self.num_batches, self.lane_starts, self.lane_lengths, self.last_len = _lanes(
            self.rank_size, config.batch_size, config.lanes)

    # ---- resuming in another world --------------------------------------------------------------
    def _keep_remainder(self, world: int, batches: int) -> None:
        """Shrink the stream to what `world` ranks left after `batches` batches each, in order."""
        b, c, tail = self.config.batch_size, self.config.lanes, self.config.tail
        cuts = [*self._piece_starts.tolist(), self.length]
        starts: list[int] = []
        bases: list[int] = []
        position = 0
        for rank in range(world):
            start, size = _rank_block(self.length, world, rank, tail)
            count, lane_starts, lane_lengths, _ = _lanes(size, b, c)
            k = min(batches, count)
            for lane in range(c):
                taken = min(max(0, (k - lane + c - 1) // c) * b, int(lane_lengths[lane]))
                lo, hi = start + int(lane_starts[lane]) + taken, start + int(lane_starts[lane] + lane_lengths[lane])
                while hi > lo:  # one piece at a time: padded positions wrap, old pieces end
                    at = lo % self.length
                    piece = int(np.searchsorted(self._piece_starts, at, side="right") - 1)
                    step = min(hi - lo, cuts[piece + 1] - at, self.length - at)
                    starts.append(position)
                    bases.append(int(self._piece_bases[piece]) + at - cuts[piece])
                    position += step
                    lo += step
        self._piece_starts = np.array(starts or [0], dtype=np.int64)
        self._piece_bases = np.array(bases or [0], dtype=np.int64)
        self.length = position

    def _to_stream(self, positions: np.ndarray) -> np.ndarray:
        """Positions in the (possibly shrunk) stream -> positions in the epoch's stream."""
        if self.length == self.total and len(self._piece_starts) == 1:  # never shrunk
            return positions
        piece = np.searchsorted(self._piece_starts, positions, side="right") - 1
        return self._piece_bases[piece] + positions - self._piece_starts[piece]

    # ---- batches --------------------------------------------------------------------------------
    def worker_batches(self, worker: int = 0, num_workers: int = 1, skip: int = 0) -> range:
        """The rank-local batch numbers that DataLoader worker `worker` of `num_workers` produces."""
        return range(skip + worker, self.num_batches, num_workers)

    def batch_positions(self, j: int) -> np.ndarray:
        """Stream positions of the samples of rank-local batch `j`, in batch order."""
        b, c = self.config.batch_size, self.config.lanes
        length = self.last_len if j == self.num_batches - 1 else b
        start = self.rank_start + self.lane_starts[j % c] + (j // c) * b
        positions = np.arange(start, start + length, dtype=np.int64)
        if self.config.tail == "pad" and self.length:
            positions %= self.length
        return self._to_stream(positions)

    def locate(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(shard index, row within shard) for each stream position."""
        windows = np.searchsorted(self.window_starts, positions, side="right") - 1
        permuted = np.empty_like(positions)
        for w in np.unique(windows):
            mask = windows == w
            start = int(self.window_starts[w])
            perm = self._window_permutation(int(w), int(self.window_starts[w + 1]) - start)
            permuted[mask] = start + perm[positions[mask] - start]
        ordered = np.searchsorted(self.shard_starts, permuted, side="right") - 1
        return self.shard_order[ordered], permuted - self.shard_starts[ordered]

    def _window_permutation(self, window: int, length: int) -> np.ndarray:
        return _permutation(self.config.seed, self.epoch, window, length, self.config.shuffle)

    def batches(self, worker: int = 0, num_workers: int = 1, skip: int = 0
                ) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """(batch number, shards, rows) for each batch this worker produces, in order."""
        for j in self.worker_batches(worker, num_workers, skip):
            shards, rows = self.locate(self.batch_positions(j))
            yield j, shards, rows


def _rank_block(n: int, world: int, rank: int, tail: str) -> tuple[int, int]:
    """(start, size) of `rank`'s contiguous block of a stream of `n` samples."""
    base, extra = divmod(n, world)
    if tail == "pad" and n:
        size = base + (1 if extra else 0)
        return rank * size, size
    if tail == "drop":
        return rank * base, base
    return rank * base + min(rank, extra), base + (1 if rank < extra else 0)


def _lanes(size: int, b: int, c: int) -> tuple[int, np.ndarray, np.ndarray, int]:
    """(batches, lane starts, lane lengths, last batch's length) of a block of `size` samples cut into
    `c` lanes that take batches of `b` in turn."""
    num_batches = -(-size // b)
    last_len = size - (num_batches - 1) * b if num_batches else 0
    lengths = np.array([(num_batches - lane + c - 1) // c for lane in range(c)], dtype=np.int64) * b
    if num_batches:
        lengths[(num_batches - 1) % c] -= b - last_len
    return num_batches, np.concatenate([[0], np.cumsum(lengths)])[:-1], lengths, last_len


@lru_cache(maxsize=64)
def _permutation(seed: int, epoch: int, window: int, length: int, shuffle: bool) -> np.ndarray:
    if not shuffle:
        return np.arange(length, dtype=np.int64)
    return np.random.default_rng([seed, epoch, window, 1]).permutation(length)
