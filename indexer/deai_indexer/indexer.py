"""The indexer: the market's logs, block range by block range, into Parquet; resumable, idempotent, reorg-safe.

The indexed range is always contiguous, [start_block, next_block - 1], and every file covers exactly
one indexed chunk. The checkpoint is written after a chunk's files, so a crash leaves at most files
of an unrecorded chunk, which are deleted on the next start (nothing is ever duplicated or lost).
Hashes of the unfinalized blocks seen are kept; a hash mismatch means a reorg: files above the
common ancestor are deleted and the blocks re-indexed.
"""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from deai_data import ChainError, catalog_schema

from .catalog import build_catalog, refresh_derived
from .enrich import enrich_manifests, manifests_path
from .events import EventSpec, event_specs
from .hexcols import hex_ints, quantity
from .layout import abandoned_temp_files, range_file, range_files, write_atomic, write_text_atomic
from .logtable import table_from_body, table_from_logs, well_formed
from .quarantine import Quarantine, quarantine_path
from .rpc import RangeTooLarge, RpcClient

log = logging.getLogger("deai_indexer")
STATE_VERSION = 2  # 2: the market with verifiable key delivery (its events differ from the first contract's)


@dataclass
class Part:
    """One getLogs request's events, decoded: tables per topic, the hashes of the blocks whose headers were
    read, and whether every log's block was still the node's (False: read the chunk again)."""

    count: int
    tables: dict[str, list[pa.Table]]
    hashes: dict[int, str]
    unchanged: bool = True


@dataclass
class Progress:
    """Reported after every chunk: where the indexer is and how fast it goes."""

    next_block: int
    target: int
    events: int
    seconds: float


class Indexer:
    """Indexes one market contract on one chain into `root`.

    confirmations: blocks below head - confirmations are final (no reorg handling needed there);
        None uses the node's `finalized` block tag.
    chunk: the first getLogs range; it halves when the node refuses a range and grows when results
        are sparse, between 1 and max_chunk blocks.
    parts, parallel: a chunk's getLogs is split by block range into up to `parts` requests, `parallel` in
        flight at once (the node answers the next while this process decodes the last).
    check_availability: with enrichment, count the shards each manifest's locators serve (a stat each).
    derive_interval: least seconds between recomputations of the derived tables (0: after every sync
        that changed something); set it to a minute or more when following a big market.
    """

    def __init__(self, rpc: str | RpcClient | Any, market: str, root: str | Path, *, confirmations: int | None = 12,
                 chunk: int = 2_000, max_chunk: int = 100_000, max_logs: int = 50_000,
                 enrich: bool = True, check_availability: bool = False, parallel: int = 2, parts: int = 8,
                 derive_interval: float = 0.0) -> None:
        self.rpc = rpc if isinstance(rpc, RpcClient) else RpcClient(rpc)
        self.market = market.lower()
        self.root = Path(root)
        self.confirmations = confirmations
        self.chunk = chunk
        self.max_chunk = max_chunk
        self.max_logs = max_logs
        self.enrich = enrich
        self.check_availability = check_availability
        self.parallel = parallel
        self.parts = parts
        self.derive_interval = derive_interval
        self.timings: dict[str, float] = {}  # seconds of the last sync: ingest, enrich, catalog
        self._pool = ThreadPoolExecutor(max(1, parallel), thread_name_prefix="getlogs")
        self.specs: dict[str, EventSpec] = event_specs()
        self.chain_id = int(self.rpc.call("eth_chainId"), 16)
        self.state = self._load_state()
        self.quarantine = Quarantine(self.root)
        self._drop_orphans()

    # ------------------------------------------------------------------ state

    @property
    def state_path(self) -> Path:
        return self.root / catalog_schema.STATE_FILE

    def _load_state(self) -> dict[str, Any]:
        if self.state_path.is_file():
            try:
                state = json.loads(self.state_path.read_text())
                chain_id, market, version = state["chain_id"], state["market"], state.get("version")
            except (ValueError, KeyError, TypeError) as exc:
                raise ChainError(f"{self.state_path} is damaged ({str(exc)[:100]})",
                                 hint="move the root away and index again: it is rebuilt from the chain") from None
            if chain_id != self.chain_id or market != self.market:
                raise ChainError(f"{self.root} indexes market {market} on chain {chain_id}, "
                                 f"not {self.market} on chain {self.chain_id}", hint="use another --root")
            if version != STATE_VERSION:
                raise ChainError(f"{self.root} was built by an indexer for the first market contract (state "
                                 f"version {version})", hint="index the current market into a new --root")
            return state
        return {"format": "deai-indexer/state", "version": STATE_VERSION, "chain_id": self.chain_id,
                "market": self.market, "start_block": None, "next_block": None, "finalized_block": -1,
                "head_block": -1, "hashes": {}}

    def _save_state(self) -> None:
        write_text_atomic(self.state_path, json.dumps(self.state, sort_keys=True, indent=1))

    def _drop_orphans(self) -> None:
        """Delete files of chunks the checkpoint does not record (a crash between file and checkpoint) and
        temporary files of writers that died before renaming them."""
        for path in abandoned_temp_files(self.root):
            log.info("removing abandoned temporary file %s", path)
            path.unlink(missing_ok=True)
        start, nxt = self.state["start_block"], self.state["next_block"]
        for path, first, last in range_files(self.root):
            if start is None or first >= nxt or last < start:
                log.info("removing unrecorded file %s", path)
                path.unlink()

    # ------------------------------------------------------------------ chain reads

    def head(self) -> tuple[int, int]:
        """(head block, finalized block) as the node reports them now."""
        if self.confirmations is None:
            head_hex, finalized = self.rpc.batch([("eth_blockNumber", []),
                                                   ("eth_getBlockByNumber", ["finalized", False])])
            return int(head_hex, 16), int(finalized["number"], 16)
        head = int(self.rpc.call("eth_blockNumber"), 16)
        return head, max(-1, head - self.confirmations)

    def _headers(self, numbers: list[int]) -> dict[int, dict[str, Any]]:
        found: dict[int, dict[str, Any]] = {}
        for i in range(0, len(numbers), 200):
            part = numbers[i:i + 200]
            replies = self.rpc.batch([("eth_getBlockByNumber", [hex(n), False]) for n in part])
            for n, block in zip(part, replies, strict=True):
                if block is not None:
                    found[n] = block
        return found

    def _parts(self, start: int, end: int, finalized: int) -> Iterator[Part]:
        """The market's events in [start, end], in order, as parts: a wide range is split into up to
        `parts` requests, `parallel` of them read and decoded at once on threads (the node answers one while
        another is decoded), each handed over as soon as it and those before it are done."""
        width = end - start + 1
        count = min(self.parts, width)
        if self.parallel <= 1 or count <= 1:
            yield self._read_part(start, end, finalized)
            return
        step = -(-width // count)
        ranges = [(a, min(end, a + step - 1), finalized) for a in range(start, end + 1, step)]
        pending = deque(self._pool.submit(self._read_part, *r) for r in ranges[:self.parallel])
        following = iter(ranges[self.parallel:])
        try:
            while pending:
                part = pending.popleft().result()
                nxt = next(following, None)
                if nxt is not None:
                    pending.append(self._pool.submit(self._read_part, *nxt))
                yield part
        finally:
            for future in pending:
                future.cancel()

    def _read_part(self, start: int, end: int, finalized: int) -> Part:
        logs = self._logs_range(start, end)
        part = Part(len(logs), defaultdict(list), {})
        part.unchanged = self._decode_part(logs, finalized, part.hashes, part.tables)
        return part

    def _logs_range(self, start: int, end: int) -> pa.Table | list[Any]:
        """The logs of [start, end]: a table when the reply is in the usual layout, else the parsed list."""
        body = self.rpc.call_body("eth_getLogs", {"address": self.market, "fromBlock": hex(start),
                                                  "toBlock": hex(end)})
        table = table_from_body(body)
        if table is not None:
            return table
        logs = self.rpc.result(body, "eth_getLogs")
        if not isinstance(logs, list):
            raise ChainError(f"{self.rpc.url}: eth_getLogs did not answer a list")
        return logs

    # ------------------------------------------------------------------ reorgs

    def check_reorg(self, head: int) -> int | None:
        """Compare stored hashes of unfinalized blocks with the node's; on a mismatch roll back to the
        highest block that still matches and return it (None when nothing changed)."""
        stored = {int(k): v for k, v in self.state["hashes"].items()}
        if not stored:
            return None
        numbers = sorted(stored, reverse=True)
        headers = self._headers([n for n in numbers if n <= head])
        ancestor = None
        for n in numbers:
            block = headers.get(n)
            if block is not None and block["hash"].lower() == stored[n]:
                ancestor = n
                break
        if ancestor == numbers[0]:
            return None
        if ancestor is None:
            ancestor = self.state["finalized_block"]
            if ancestor < (self.state["start_block"] or 0) - 1:
                ancestor = (self.state["start_block"] or 0) - 1
        log.warning("reorg: blocks after %d changed; re-indexing them", ancestor)
        self.rollback(ancestor)
        return ancestor

    def rollback(self, ancestor: int) -> None:
        """Forget everything above block `ancestor` (files, hashes) and continue from the first
        block of the earliest deleted chunk."""
        files = list(range_files(self.root))
        resume = min([ancestor + 1] + [first for _, first, last in files if last > ancestor])
        for path, _, last in files:
            if last >= resume:
                path.unlink()
        self.state["next_block"] = max(resume, self.state["start_block"] or 0)
        self.state["hashes"] = {k: v for k, v in self.state["hashes"].items() if int(k) < self.state["next_block"]}
        self._save_state()

    # ------------------------------------------------------------------ indexing

    def sync(self, target: int | None = None, *, start_block: int = 0,
             progress: Callable[[Progress], None] | None = None) -> int:
        """Index up to `target` (default: the node's head), first checking for reorgs; returns the
        number of events written."""
        head, finalized = self.head()
        self.state["head_block"] = head
        if self.state["start_block"] is None:
            self.state["start_block"] = self.state["next_block"] = start_block
        elif start_block < self.state["start_block"]:
            self._prepend(start_block, finalized)
        rolled_back = self.check_reorg(head) is not None
        end = head if target is None else min(target, head)
        written = 0
        began = time.perf_counter()
        while self.state["next_block"] <= end:
            written += self._index_chunk(self.state["next_block"], end, finalized)
            if progress:
                progress(Progress(self.state["next_block"], end, written, time.perf_counter() - began))
        self.state["finalized_block"] = max(self.state["finalized_block"], finalized)
        self.state["hashes"] = {k: v for k, v in self.state["hashes"].items() if int(k) > finalized}
        self._save_state()
        t = time.perf_counter()
        self.timings["ingest"] = t - began  # logs to typed Parquet and the checkpoint, nothing after
        if self.enrich and written:
            enrich_manifests(self.root, check_availability=self.check_availability)
        self.timings["enrich"] = time.perf_counter() - t
        t = time.perf_counter()
        self.refresh_catalog()
        self.timings["catalog"] = time.perf_counter() - t
        t = time.perf_counter()
        self.refresh_derived(changed=bool(written) or rolled_back)
        self.timings["derive"] = time.perf_counter() - t
        log.info("synced to block %d: %d events, ingest %.3f s, enrichment %.3f s, catalog %.3f s",
                 self.state["next_block"] - 1, written, self.timings["ingest"], self.timings["enrich"],
                 self.timings["catalog"])
        return written

    def refresh_derived(self, *, changed: bool) -> None:
        """Recompute the derived tables after changes, at most every `derive_interval` seconds."""
        due = time.time() - self.state.get("derived_at", 0) >= self.derive_interval
        if not (changed or self.state.get("derived_dirty")) or not due:
            self.state["derived_dirty"] = bool(changed or self.state.get("derived_dirty"))
            self._save_state()
            return
        try:
            refresh_derived(self.root)
        except duckdb.IOException as exc:
            log.warning("catalog busy, derived tables not refreshed this pass: %s", exc)
            self.state["derived_dirty"] = True
        else:
            self.state["derived_at"] = time.time()
            self.state["derived_dirty"] = False
        self._save_state()

    def refresh_catalog(self) -> None:
        """Recreate the catalog's views when they would change: a table got its first file, or the manifests
        table changed (views read the Parquet files at query time, so new files need nothing). Skipped,
        with a warning, while a reader holds the catalog open."""
        manifests, held = manifests_path(self.root), quarantine_path(self.root)
        signature = json.dumps([sorted({p.parent.parent.name for p, _, _ in range_files(self.root)}),
                                manifests.stat().st_mtime_ns if manifests.is_file() else None, held.is_file()])
        if signature == self.state.get("catalog_signature") and catalog_schema.catalog_path(self.root).is_file():
            return
        try:
            build_catalog(self.root)
        except duckdb.IOException as exc:
            log.warning("catalog busy, views not refreshed this pass: %s", exc)
            return
        self.state["catalog_signature"] = signature
        self._save_state()

    def _prepend(self, start_block: int, finalized: int) -> None:
        """Index [start_block, old start - 1] below an existing index (files do not overlap)."""
        old_start, old_next = self.state["start_block"], self.state["next_block"]
        self.state["start_block"] = self.state["next_block"] = start_block
        while self.state["next_block"] < old_start:
            self._index_chunk(self.state["next_block"], old_start - 1, finalized, save=False)
        self.state["next_block"] = old_next
        self._save_state()

    def _index_chunk(self, start: int, limit: int, finalized: int, *, save: bool = True) -> int:
        end = min(limit, start + self.chunk - 1)
        # Continuity first: the chunk's last block must exist, and its parent must still be the block
        # indexed before (when that one is unfinalized).
        parent = start - 1 if str(start - 1) in self.state["hashes"] else None
        edge = self._headers(sorted({end} if parent is None else {end, parent}))
        if parent is not None and edge.get(parent, {}).get("hash", "").lower() != self.state["hashes"][str(parent)]:
            self.check_reorg(int(self.rpc.call("eth_blockNumber"), 16))
            return 0
        if end not in edge:
            raise ChainError(f"the node has no block {end} although its head is past it; retry later")
        hashes = {end: edge[end]["hash"].lower()}
        tables: dict[str, list[pa.Table]] = defaultdict(list)
        count = 0
        try:
            for part in self._parts(start, end, finalized):
                count += part.count
                if count > self.max_logs and end > start:  # bound the memory one chunk takes
                    self.chunk = max(1, (end - start + 1) // 2)
                    return 0
                if not part.unchanged:
                    log.info("blocks %d-%d changed while being read; reading them again", start, end)
                    return 0
                hashes.update(part.hashes)
                for topic, decoded in part.tables.items():
                    tables[topic] += decoded
        except RangeTooLarge:
            if end == start:
                raise
            self.chunk = max(1, self.chunk // 2)
            log.info("node refused blocks %d-%d; chunk now %d blocks", start, end, self.chunk)
            return 0

        def write(topic: str) -> None:  # on the pool: Parquet encoding and fsync release the GIL
            parts = tables[topic]
            table = parts[0] if len(parts) == 1 else pa.concat_tables(parts)
            write_atomic(range_file(self.root, self.specs[topic].table, start, end), table)  # logs come in order

        for _ in self._pool.map(write, list(tables)):
            pass
        self.quarantine.flush()
        for n, block_hash in hashes.items():
            if n > finalized:
                self.state["hashes"][str(n)] = block_hash
        self.state["next_block"] = end + 1
        if save:
            self._save_state()
        if count < self.max_logs // 4 and self.chunk < self.max_chunk:
            self.chunk = min(self.max_chunk, self.chunk * 2)
        return count

    def _decode_part(self, logs: pa.Table | list[Any], finalized: int, hashes: dict[int, str],
                     tables: dict[str, list[pa.Table]]) -> bool:
        """Check and decode one part of a chunk's logs into `tables`; False when a block changed meanwhile.

        Headers are fetched for blocks whose logs are unfinalized (hash checks) or carry no blockTimestamp;
        finalized history with timestamps in its logs needs none."""
        if isinstance(logs, list):  # an odd reply, parsed as JSON: each log judged on its own
            good = []
            for entry in logs:
                if well_formed(entry):
                    good.append(entry)
                else:
                    self.quarantine.event(entry, "the node returned a log without its fields")
            logs = table_from_logs(good)
        if not logs.num_rows:
            return True
        removed = logs["removed"].fill_null(False)
        if pc.any(removed).as_py():
            raise ChainError(f"block {quantity(logs['blockNumber'].filter(removed)[0].as_py())} was reorganised "
                             "during the read")
        try:
            numbers = hex_ints(logs["blockNumber"])
        except ValueError:  # not a block number: every log of the part is suspect
            for entry in logs.to_pylist():
                self.quarantine.event(entry, "the node returned a log with a malformed block number")
            return True
        blocks, first, where = np.unique(numbers, return_index=True, return_inverse=True)
        stamps = map(quantity, logs["blockTimestamp"].take(first).to_pylist())  # absent or malformed: headers say
        times = {n: t for n, t in zip(blocks.tolist(), stamps, strict=True) if t is not None}
        need = [n for n in blocks.tolist() if n > finalized or n not in times]
        headers = self._headers(need) if need else {}
        if headers:
            expected = pa.array([headers[n]["hash"].lower() if n in headers else None for n in blocks.tolist()],
                                pa.string()).take(where)
            if pc.any(pc.not_equal(pc.utf8_lower(logs["blockHash"]), expected)).as_py():
                return False
        times.update({n: int(b["timestamp"], 16) for n, b in headers.items()})
        hashes.update({n: b["hash"].lower() for n, b in headers.items()})
        with_topics = pc.greater(pc.list_value_length(logs["topics"]), 0)
        if not pc.all(with_topics).as_py():  # anonymous events: none of the market's
            logs = logs.filter(with_topics)
        topic0 = pc.list_element(logs["topics"], 0)
        found = pc.unique(topic0).to_pylist()
        for topic in found:
            if topic in self.specs:
                chosen = logs if len(found) == 1 else logs.filter(pc.equal(topic0, topic))
                tables[topic].append(self._decode(self.specs[topic], chosen, times))
        return True

    def _decode(self, spec: EventSpec, entries: pa.Table, times: dict[int, int]) -> pa.Table:
        """Decode logs in bulk; when the bulk fails, log by log, quarantining each that does not decode (one
        bad event never stops the indexer, and never comes back to stop it again)."""
        try:
            return spec.decode(entries, times)
        except Exception:
            good = []
            for i in range(entries.num_rows):
                entry = entries.slice(i, 1)
                try:
                    good.append(spec.decode(entry, times))
                except Exception as exc:
                    self.quarantine.event(entry.to_pylist()[0], f"{spec.name} does not decode: {type(exc).__name__}")
            return pa.concat_tables(good) if good else spec.schema.empty_table()

    def follow(self, *, poll: float = 2.0, stop: Any = None,
               progress: Callable[[Progress], None] | None = None,
               after_pass: Callable[[], None] | None = None) -> None:
        """Index to the head, then keep following it every `poll` seconds until `stop` (an Event) is set;
        `after_pass` runs after every successful pass (say, a push of the catalog to object storage)."""
        failures = 0
        while stop is None or not stop.is_set():
            try:
                self.sync(progress=progress)
                if after_pass is not None:
                    after_pass()
                failures = 0
            except Exception as exc:
                failures += 1
                log.error("indexing pass failed (%d in a row), retrying: %s: %s", failures, type(exc).__name__,
                          str(exc)[:500])
            pause = poll * min(2 ** max(failures - 1, 0), 30)
            if stop is not None:
                stop.wait(pause)
            else:
                time.sleep(pause)

    def status(self) -> dict[str, Any]:
        head, finalized = self.head()
        indexed = (self.state["next_block"] or 0) - 1
        return {"chain_id": self.chain_id, "market": self.market, "head": head, "finalized": finalized,
                "start_block": self.state["start_block"], "indexed": indexed, "lag": max(0, head - indexed),
                "files": sum(1 for _ in range_files(self.root))}
