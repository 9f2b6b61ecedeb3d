"""The owner's key agent: watches purchases and delivers each dataset key, sealed to its buyer, exactly once.

Restart-safe: a checkpoint file (no secrets) records the next block to scan, purchases to retry and
deliveries not yet confirmed; every purchase's on-chain status is read before delivering, and the
contract refuses a second delivery anyway. Purchases are acted on only `confirmations` blocks deep,
and a delivery that a reorg removed is sent again.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

from ..errors import ChainError, DeaiError, KeystoreError, MarketError
from ..home import deai_home
from .client import Market

log = logging.getLogger("deai_data.market.agent")


class KeyAgent:
    """Delivers keys for every dataset whose current owner is this account or authorised it as key agent."""

    def __init__(self, market: Market, *, state_path: str | Path | None = None, confirmations: int = 0,
                 start_block: int = 0, poll_interval: float = 2.0) -> None:
        if market.account is None:
            raise ChainError("the key agent needs an account (the owner's or an authorised agent's)")
        self.market = market
        self.me = market.account.address
        self.confirmations = confirmations
        self.poll_interval = poll_interval
        self.state_path = Path(state_path) if state_path else (
            deai_home() / "agents" / f"{market.chain_id}-{market.address}-{self.me}.json")
        self.state = self._load(start_block)

    # ------------------------------------------------------------------ state

    def _load(self, start_block: int) -> dict[str, Any]:
        if self.state_path.is_file():
            state = json.loads(self.state_path.read_text())
            state["unconfirmed"] = {int(k): v for k, v in state.get("unconfirmed", {}).items()}
            return state
        return {"next_block": start_block, "retry": [], "unconfirmed": {}}

    def _save(self) -> None:
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state, sort_keys=True))
        os.replace(tmp, self.state_path)

    # ------------------------------------------------------------------ work

    def run_once(self) -> list[int]:
        """Scan new confirmed blocks, retry what failed, re-check unconfirmed deliveries; returns the
        purchase ids delivered in this pass."""
        w3 = self.market.w3
        latest = w3.eth.block_number
        head = latest - self.confirmations
        candidates = list(self.state["retry"])
        for pid, block in list(self.state["unconfirmed"].items()):
            if latest - block >= self.confirmations:
                del self.state["unconfirmed"][pid]
            else:
                candidates.append(pid)
        if head >= self.state["next_block"]:
            for event in self.market.events("Purchased", self.state["next_block"], head):
                candidates.append(event["args"]["purchaseId"])
        delivered, retry = [], []
        for pid in dict.fromkeys(candidates):
            outcome = self._serve(pid)
            if outcome == "delivered":
                delivered.append(pid)
            elif outcome == "retry":
                retry.append(pid)
        self.state["retry"] = retry
        self.state["next_block"] = max(self.state["next_block"], head + 1)
        self._save()
        return delivered

    def _serve(self, pid: int) -> str:
        market = self.market
        try:
            info = market.purchase_info(pid)
            if info.status != "pending":
                return "settled"
            owner = market.contract.functions.ownerOf(info.dataset_id).call()
            if owner != self.me and not market.contract.functions.isKeyAgent(owner, self.me).call():
                return "not ours"
            if market.w3.eth.get_block("latest")["timestamp"] > info.deadline:
                log.warning("purchase %d: deadline passed before delivery; the buyer can refund", pid)
                return "missed"
            receipt = market.deliver_key(info)
        except KeystoreError as exc:
            log.error("purchase %d: no key to deliver: %s", pid, exc)
            return "retry"
        except MarketError as exc:
            if exc.error == "NotPending":
                return "settled"
            log.error("purchase %d: delivery refused: %s", pid, exc)
            return "retry"
        except DeaiError as exc:
            log.error("purchase %d: delivery failed: %s", pid, exc)
            return "retry"
        self.state["unconfirmed"][pid] = receipt["blockNumber"]
        self._save()
        log.info("purchase %d: key delivered in block %d", pid, receipt["blockNumber"])
        return "delivered"

    def run(self, stop: threading.Event | None = None) -> None:
        """Serve until `stop` is set (or forever), polling every `poll_interval` seconds."""
        stop = stop or threading.Event()
        while not stop.is_set():
            try:
                self.run_once()
            except ChainError as exc:
                log.error("agent pass failed, will retry: %s", exc)
            stop.wait(self.poll_interval)
