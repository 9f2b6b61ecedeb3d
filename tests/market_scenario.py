"""Drives a DataMarket on anvil with many owners, buyers, versions, purchases, deliveries, refunds,
transfers, price changes and withdrawals, and keeps the ground truth of what it did, computed from its
own actions (not from the chain), for comparison with the indexer's catalog.

Transactions are signed locally with fixed gas and sent without simulation or waiting (fast: about 2 ms
each; anvil mines them in arrival order), and every receipt is checked before time moves and at the end;
sealed keys are random 80-byte strings (the contract does not read them; the indexer only stores them).
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from web3 import Web3

from deai_data.chain.connect import anvil_dev_accounts
from deai_data.market import Market


@dataclass
class Truth:
    fee_bps: int
    datasets: dict[int, dict[str, Any]] = field(default_factory=dict)
    purchases: dict[int, dict[str, Any]] = field(default_factory=dict)
    withdrawals: list[tuple[str, int]] = field(default_factory=list)

    def events(self) -> int:
        regs = len(self.datasets) * 2  # DatasetRegistered + Transfer (mint)
        return regs + sum(1 + (p["status"] != "pending") for p in self.purchases.values())


WINDOW = 7 * 24 * 3600  # anvil gives each automined block its own second: keep deadlines far


class Scenario:
    def __init__(self, w3: Web3, *, fee_bps: int = 300, seed: int = 1) -> None:
        self.w3 = w3
        self.rng = random.Random(seed)
        accounts = anvil_dev_accounts()
        self.deployer, self.owners, self.buyers = accounts[0], accounts[1:4], accounts[4:9]
        self.market = Market.deploy(w3, self.deployer, fee_bps=fee_bps)
        self.contract = self.market.contract
        self.truth = Truth(fee_bps)
        self._nonces: dict[str, int] = {}
        self._chain_id = w3.eth.chain_id
        self._sent: list[tuple[bytes, str]] = []
        self._gas_price = w3.eth.gas_price * 3

    def _send(self, account, fn, value: int = 0) -> None:
        address = account.address
        nonce = self._nonces.get(address)
        if nonce is None:
            nonce = self.w3.eth.get_transaction_count(address, "pending")
        tx = fn.build_transaction({"from": address, "nonce": nonce, "gas": 600_000, "value": value,
                                   "gasPrice": self._gas_price, "chainId": self._chain_id})
        tx_hash = self.w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction)
        self._sent.append((tx_hash, fn.fn_name))
        self._nonces[address] = nonce + 1

    def check_receipts(self) -> None:
        """Every transaction sent since the last check was mined and succeeded (the truth assumes it)."""
        for tx_hash, name in self._sent:
            receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)
            if receipt["status"] != 1:
                tx = self.w3.eth.get_transaction(tx_hash)
                call = {"from": tx["from"], "to": tx["to"], "data": tx["input"], "value": tx["value"]}
                try:
                    self.w3.eth.call(call, receipt["blockNumber"] - 1)
                    reason = "no revert when replayed"
                except Exception as exc:
                    reason = str(self.market.decoder.error(exc, name))
                raise AssertionError(f"{name} transaction {tx_hash.hex()} reverted: {reason} "
                                     f"(gas used {receipt['gasUsed']}, block {receipt['blockNumber']})")
        self._sent.clear()

    def resync_nonces(self) -> None:
        self._nonces.clear()
        self._sent.clear()

    def register(self, owner_index: int | None = None, previous: int | None = None) -> int:
        owner = self.owners[self.rng.randrange(3) if owner_index is None else owner_index]
        if previous is not None:
            owner = next(o for o in self.owners if o.address == self.truth.datasets[previous]["owner"])
        dataset_id = len(self.truth.datasets) + 1
        price = self.rng.randrange(1, 10**6) * 10**9
        reg = {"manifestHash": self.rng.randbytes(32), "contentRoot": self.rng.randbytes(32),
               "keyCommitment": self.rng.randbytes(32), "shardCount": self.rng.randrange(1, 50),
               "paymentToken": "0x" + "00" * 20, "price": price, "deliveryWindow": WINDOW,
               "previous": previous or 0, "manifestURIs": [f"file:///nowhere/{dataset_id}"], "licenseURI": "CC0"}
        self._send(owner, self.contract.functions.register(reg))
        self.truth.datasets[dataset_id] = {"owner": owner.address, "price": price, "previous": previous,
                                           "manifest_hash": reg["manifestHash"].hex(), "paused": False}
        return dataset_id

    def purchase(self, dataset_id: int) -> int:
        buyer = self.rng.choice(self.buyers)
        price = self.truth.datasets[dataset_id]["price"]
        key = self.rng.randbytes(32)
        self._send(buyer, self.contract.functions.purchase(dataset_id, key, price), value=price)
        pid = len(self.truth.purchases) + 1
        self.truth.purchases[pid] = {"dataset_id": dataset_id, "buyer": buyer.address, "amount": price,
                                     "status": "pending", "public_key": key.hex(), "paid_to": None}
        return pid

    def deliver(self, pid: int) -> None:
        p = self.truth.purchases[pid]
        owner_address = self.truth.datasets[p["dataset_id"]]["owner"]
        owner = next(o for o in self.owners if o.address == owner_address)
        self._send(owner, self.contract.functions.deliverKey(pid, self.rng.randbytes(80)))
        p["status"], p["paid_to"] = "delivered", owner_address

    def refund(self, pid: int) -> None:
        p = self.truth.purchases[pid]
        buyer = next(b for b in self.buyers if b.address == p["buyer"])
        self._send(buyer, self.contract.functions.refund(pid))
        p["status"] = "refunded"

    def set_price(self, dataset_id: int) -> None:
        d = self.truth.datasets[dataset_id]
        owner = next(o for o in self.owners if o.address == d["owner"])
        d["price"] = self.rng.randrange(1, 10**6) * 10**9
        self._send(owner, self.contract.functions.setPrice(dataset_id, d["price"]))

    def transfer(self, dataset_id: int) -> None:
        d = self.truth.datasets[dataset_id]
        owner = next(o for o in self.owners if o.address == d["owner"])
        new_owner = self.rng.choice([o for o in self.owners if o is not owner])
        self._send(owner, self.contract.functions.transferFrom(owner.address, new_owner.address, dataset_id))
        d["owner"] = new_owner.address

    def withdraw_all(self) -> None:
        earned: dict[str, int] = defaultdict(int)
        for p in self.truth.purchases.values():
            if p["status"] == "delivered":
                earned[p["paid_to"]] += p["amount"] - p["amount"] * self.truth.fee_bps // 10_000
            elif p["status"] == "refunded":
                earned[p["buyer"]] += p["amount"]
        already = defaultdict(int)
        for account, amount in self.truth.withdrawals:
            already[account] += amount
        for account in self.owners + self.buyers:
            amount = earned[account.address] - already[account.address]
            if amount > 0:
                self._send(account, self.contract.functions.withdraw("0x" + "00" * 20))
                self.truth.withdrawals.append((account.address, amount))

    def advance(self, seconds: int) -> None:
        self.check_receipts()  # sent transactions may still be in anvil's pool: mine them at today's time
        self.w3.provider.make_request("evm_increaseTime", [seconds])
        self.w3.provider.make_request("evm_mine", [])

    def run(self, *, datasets: int, purchases: int, refund_share: float = 0.1, versions: int = 2) -> None:
        """A busy market: registrations (and new versions), purchases, price changes, transfers, then
        deliveries for most purchases, refunds for some after the window, and withdrawals."""
        ids = [self.register(i % 3) for i in range(datasets)]
        for i in range(versions):
            ids.append(self.register(previous=ids[i]))
        pending = []
        for n in range(purchases):
            pending.append(self.purchase(self.rng.choice(ids)))
            if n % 97 == 0:
                self.set_price(self.rng.choice(ids))
            if n % 211 == 0:
                self.transfer(self.rng.choice(ids))
        self.rng.shuffle(pending)
        cut = int(len(pending) * refund_share)
        for pid in pending[cut:]:
            self.deliver(pid)
        self.advance(WINDOW + 1)
        for pid in pending[:cut]:
            self.refund(pid)
        self.withdraw_all()
        self.check_receipts()
