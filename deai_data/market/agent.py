"""The owner's key agent: watches purchases, delivers each dataset key to its buyer exactly once, and settles
its deliveries once their challenge period is over.

It serves only sellers in its own configuration and only datasets whose on-chain record matches the manifest
its keystore holds the key for. One purchase that fails (any exception) is quarantined with backoff and never
blocks the others. Restart-safe through a checkpoint file (no secrets); reorg-aware through confirmations.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from ..crypto.keystore import DATA_KEY
from ..dataset.reader import Dataset, fetch_manifest
from ..errors import ChainError, DeaiError, DecryptionError, IntegrityError, KeystoreError
from ..home import deai_home
from .client import Listing, Market, check_listing
from .defaults import DEFAULT_CONFIRMATIONS

log = logging.getLogger("deai_data.market.agent")

STATE_VERSION = 2


class KeyAgent:
    """Delivers keys for purchases sold by `owners` (default: this account only). A seller other than this
    account must also have authorised it on-chain (`set_key_agent`): authorisation takes both sides."""

    def __init__(self, market: Market, *, owners: list[str] | None = None, state_path: str | Path | None = None,
                 confirmations: int = DEFAULT_CONFIRMATIONS, start_block: int = 0, poll_interval: float = 2.0,
                 settle: bool = True, retry_base: float = 5.0, retry_max: float = 600.0) -> None:
        if market.account is None:
            raise ChainError("the key agent needs an account (the owner's or an authorised agent's)")
        self.market = market
        self.me = market.account.address
        self.owners = {a.lower() for a in (owners or [self.me])}
        self.confirmations = confirmations
        self.poll_interval = poll_interval
        self.settle_after = settle
        self.retry_base = retry_base
        self.retry_max = retry_max
        self.state_path = Path(state_path) if state_path else (
            deai_home() / "agents" / f"{market.chain_id}-{market.address}-{self.me}.json")
        self.state = self._load(start_block)
        self._checked: dict[int, str | None] = {}  # dataset id -> None (ours, matches) or why it is refused

    # ------------------------------------------------------------------ state

    def _fresh(self, start_block: int) -> dict[str, Any]:
        return {"version": STATE_VERSION, "next_block": start_block, "queue": {}, "unconfirmed": {},
                "to_settle": {}}

    def _load(self, start_block: int) -> dict[str, Any]:
        try:
            state = json.loads(self.state_path.read_text())
            if state.get("version") != STATE_VERSION:
                raise ValueError("another version")
            for table in ("queue", "unconfirmed", "to_settle"):
                state[table] = {int(k): v for k, v in state[table].items()}
            return state
        except FileNotFoundError:
            return self._fresh(start_block)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            log.error("checkpoint %s unreadable (%s): starting again from block %d", self.state_path, exc,
                      start_block)
            return self._fresh(start_block)

    def _save(self) -> None:
        self.state_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state, sort_keys=True))
        os.replace(tmp, self.state_path)

    @property
    def quarantined(self) -> dict[int, dict[str, Any]]:
        """Purchases that failed at least once: {purchase id: {attempts, next_try, reason}}."""
        return {pid: job for pid, job in self.state["queue"].items() if job.get("attempts")}

    # ------------------------------------------------------------------ work

    def run_once(self) -> list[int]:
        """Scan new confirmed blocks, serve what is due, re-check unconfirmed deliveries and settle finished
        challenge periods; returns the purchase ids delivered in this pass."""
        latest = self.market.w3.eth.block_number
        head = latest - self.confirmations
        queue = self.state["queue"]
        for pid, block in list(self.state["unconfirmed"].items()):
            if latest - block >= self.confirmations:
                del self.state["unconfirmed"][pid]
            else:
                queue.setdefault(pid, {"attempts": 0, "next_try": 0.0})  # re-check: a reorg may have removed it
        if head >= self.state["next_block"]:
            for event in self.market.events("Purchased", self.state["next_block"], head):
                args = event["args"]
                if args["seller"].lower() in self.owners:
                    queue.setdefault(args["purchaseId"], {"attempts": 0, "next_try": 0.0})
            for event in self.market.events("Subscribed", self.state["next_block"], head):
                args = event["args"]
                if args["seller"].lower() in self.owners:  # paid once its term is over and its claims settled
                    self.state["to_settle"][args["subscriptionId"]] = args["expires"]
            self.state["next_block"] = head + 1
        delivered = []
        now = time.time()
        for pid, job in sorted(queue.items()):
            if job["next_try"] > now:
                continue
            try:
                outcome = self._serve(pid)
            except Exception as exc:
                self._quarantine(pid, job, exc)
                continue
            del queue[pid]
            if outcome == "delivered":
                delivered.append(pid)
        if self.settle_after:
            self._settle_finished()
        self._save()
        return delivered

    def _quarantine(self, pid: int, job: dict[str, Any], exc: Exception) -> None:
        job["attempts"] += 1
        delay = min(self.retry_max, self.retry_base * 2 ** (job["attempts"] - 1))
        job["next_try"] = time.time() + delay
        job["reason"] = f"{type(exc).__name__}: {exc}"[:500]
        log.error("purchase %d: %s (attempt %d; next try in %.0f s)", pid, job["reason"], job["attempts"], delay)

    def _serve(self, pid: int) -> str:
        market = self.market
        info = market.purchase_info(pid)
        if info.status != "pending":
            return "settled"
        if info.seller.lower() not in self.owners:
            return "not ours"
        if info.seller != self.me and not market.contract.functions.isKeyAgent(info.seller, self.me).call():
            raise ChainError(f"seller {info.seller} has not authorised this agent ({self.me}) on-chain",
                             hint=f"the seller runs `deai-data market set-agent {self.me}`")
        if market.w3.eth.get_block("latest")["timestamp"] > info.deadline:
            log.warning("purchase %d: deadline passed before delivery; the buyer can refund", pid)
            return "missed"
        refusal = self._check_dataset(info.dataset_id)
        if refusal is not None:
            log.error("purchase %d: not delivered: %s", pid, refusal)
            return "refused"
        receipt = market.deliver_key(info)
        self.state["unconfirmed"][pid] = receipt["blockNumber"]
        challenge_end = market._event(receipt, "KeyDelivered")["challengeEnds"]
        self.state["to_settle"][pid] = challenge_end
        self._save()
        log.info("purchase %d: key delivered in block %d", pid, receipt["blockNumber"])
        return "delivered"

    def _check_dataset(self, dataset_id: int) -> str | None:
        """None when the listing is one this agent was set up for (its keystore holds the key of exactly the
        manifest the listing describes); else why not. Mismatches are remembered; missing keys are not (the
        operator may import the key later)."""
        if dataset_id in self._checked:
            return self._checked[dataset_id]
        listing = self.market.listing(dataset_id)
        entry = self.market.keystore.entry(DATA_KEY, listing.manifest_hash)
        if entry is None:
            raise KeystoreError(f"no key for dataset {dataset_id} (manifest {listing.manifest_hash}) in the keystore")
        refusal = self._matches_own_manifest(listing, entry.meta.get("manifest_uri"))
        self._checked[dataset_id] = refusal
        return refusal

    def _matches_own_manifest(self, listing: Listing, own_uri: str | None) -> str | None:
        uris = ([own_uri] if own_uri else []) + list(listing.manifest_uris)
        last: DeaiError | None = None
        for uri in uris:
            try:
                manifest, _ = fetch_manifest(uri, manifest_hash=listing.manifest_hash, trusted=uri == own_uri)
            except DeaiError as exc:
                last = exc
                continue
            try:
                check_listing(listing, manifest)
            except IntegrityError as exc:
                return f"the listing does not match our manifest: {exc.message}"
            if manifest.lineage is not None:  # our key must open every version it inherits shards from
                try:
                    Dataset(manifest, uri, keystore=self.market.keystore).generation_key(
                        len(manifest.lineage.generations))
                except DecryptionError as exc:
                    return f"our key does not open the versions this one inherits from: {exc.message}"
            return None
        raise last or KeystoreError(f"no URI for the manifest of dataset {listing.dataset_id}")

    def _settle_finished(self) -> None:
        now = self.market.w3.eth.get_block("latest")["timestamp"]
        due = [pid for pid, end in self.state["to_settle"].items()
               if end < now and pid not in self.state["unconfirmed"]]
        if not due:
            return
        try:
            settled = self.market.settle(due)
        except DeaiError as exc:
            log.error("settling %d purchases failed, will retry: %s", len(due), exc)
            return
        for pid in due:  # settled now, or already settled or refunded, or a subscription with claims still open
            if settled == len(due) or self.market.purchase_info(pid).status != "subscribed":
                del self.state["to_settle"][pid]
        log.info("settled %d purchases whose challenge period ended", settled)

    def run(self, stop: threading.Event | None = None) -> None:
        """Serve until `stop` is set (or forever), polling every `poll_interval` seconds."""
        stop = stop or threading.Event()
        while not stop.is_set():
            try:
                self.run_once()
            except Exception as exc:
                log.error("agent pass failed, will retry: %s", exc)
            stop.wait(self.poll_interval)
