"""Drives a DataMarket on anvil with many owners, buyers, versions, purchases, honest and wrong deliveries,
disputes, settlements, refunds, transfers, price changes and withdrawals, and keeps the ground truth of what
it did, computed from its own actions (not from the chain), for comparison with the indexer's catalog.

Transactions are signed locally with fixed gas and sent without simulation or waiting (fast: about 2 ms
each; anvil mines them in arrival order), and every receipt is checked before time moves and at the end.
Keys are real: registrations carry the author's signature, deliveries are encrypted to the buyer's
one-time key, and disputes carry real proofs, so the contract's judgement is what the truth predicts.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from web3 import Web3

from deai_data.chain.connect import anvil_dev_accounts
from deai_data.crypto.authorship import sign_authorship
from deai_data.crypto.key_delivery import (
    DeliveryContext,
    buyer_key_hash,
    dispute_proof,
    public_key_of,
    seal_key,
)
from deai_data.crypto.keys import key_commitment
from deai_data.market import Market


@dataclass
class Truth:
    fee_bps: int
    datasets: dict[int, dict[str, Any]] = field(default_factory=dict)
    purchases: dict[int, dict[str, Any]] = field(default_factory=dict)
    withdrawals: list[tuple[str, int]] = field(default_factory=list)
    transfers: int = 0

    def events(self) -> int:
        """Events in raw.dataset_registered, transfer, purchased, key_delivered, dispute_resolved,
        purchase_settled and refunded."""
        count = len(self.datasets) * 2 + self.transfers  # DatasetRegistered + Transfer (mint), transfers
        for p in self.purchases.values():
            count += 1 + p["delivered"] + p["disputed"] + (p["status"] in ("settled", "refunded"))
        return count

    def fee(self, amount: int) -> int:
        return amount * self.fee_bps // 10_000


WINDOW = 7 * 24 * 3600  # anvil gives each automined block its own second: keep deadlines far
CHALLENGE = 24 * 3600


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
        self._secrets = [self.rng.randrange(1, 2**255).to_bytes(32, "big") for _ in range(12)]
        self._publics = [public_key_of(s) for s in self._secrets]

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

    def _account(self, address: str) -> Any:
        return next(a for a in self.owners + self.buyers if a.address == address)

    def register(self, owner_index: int | None = None, supersedes: int | None = None) -> int:
        owner = self.owners[self.rng.randrange(3) if owner_index is None else owner_index]
        if supersedes is not None:
            owner = self._account(self.truth.datasets[supersedes]["owner"])
        dataset_id = len(self.truth.datasets) + 1
        price = self.rng.randrange(1, 10**6) * 10**9
        data_key, seal_id = self.rng.randbytes(32), self.rng.randbytes(32)
        content_root, shards = self.rng.randbytes(32), self.rng.randrange(1, 50)
        commitment = key_commitment(data_key, seal_id)
        authorship = sign_authorship(owner, seal_id.hex(), content_root.hex(), commitment.hex(), shards)
        reg = {"manifestHash": self.rng.randbytes(32), "contentRoot": content_root, "keyCommitment": commitment,
               "sealId": seal_id, "shardCount": shards, "author": owner.address, "owner": owner.address,
               "paymentToken": "0x" + "00" * 20, "price": price, "deliveryWindow": WINDOW,
               "challengePeriod": CHALLENGE, "supersedes": supersedes or 0, "keyLink": bytes(32),
               "manifestURIs": [f"file:///nowhere/{dataset_id}"], "licenseURI": "CC0-1.0"}
        self._send(owner, self.contract.functions.register(reg, bytes.fromhex(authorship.signature[2:])))
        self.truth.datasets[dataset_id] = {"owner": owner.address, "price": price, "supersedes": supersedes,
                                           "manifest_hash": reg["manifestHash"].hex(), "paused": False,
                                           "author": owner.address, "key": data_key}
        return dataset_id

    def purchase(self, dataset_id: int) -> int:
        buyer = self.rng.choice(self.buyers)
        d = self.truth.datasets[dataset_id]
        which = self.rng.randrange(len(self._secrets))
        public = self._publics[which]
        self._send(buyer, self.contract.functions.purchase(dataset_id, public[:32], public[32:], d["price"]),
                   value=d["price"])
        pid = len(self.truth.purchases) + 1
        self.truth.purchases[pid] = {"dataset_id": dataset_id, "buyer": buyer.address, "amount": d["price"],
                                     "seller": d["owner"], "status": "pending", "secret": self._secrets[which],
                                     "public_key": public, "delivered": False, "honest": None, "disputed": False,
                                     "delivery": None, "refund_reason": None}
        return pid

    def deliver(self, pid: int, *, honest: bool = True) -> None:
        p = self.truth.purchases[pid]
        key = self.truth.datasets[p["dataset_id"]]["key"] if honest else self.rng.randbytes(32)
        delivery = seal_key(key, p["public_key"], DeliveryContext(self._chain_id, self.market.address, pid))
        self._send(self._account(p["seller"]),
                   self.contract.functions.deliverKey(pid, buyer_key_hash(p["public_key"]), delivery.as_call()))
        p.update(status="delivered", delivered=True, honest=honest, delivery=delivery)

    def dispute(self, pid: int) -> None:
        p = self.truth.purchases[pid]
        proof = dispute_proof(p["delivery"], p["secret"])
        self._send(self._account(p["buyer"]), self.contract.functions.dispute(pid, proof.as_call()))
        p["disputed"] = True
        if p["honest"]:
            p["status"] = "settled"
        else:
            p.update(status="refunded", refund_reason="wrong_key")

    def settle(self, pids: list[int]) -> None:
        for start in range(0, len(pids), 20):  # ~23k gas each: 20 fit the fixed gas limit
            self._send(self.deployer, self.contract.functions.settleMany(pids[start:start + 20]))
        for pid in pids:
            self.truth.purchases[pid]["status"] = "settled"

    def refund(self, pid: int) -> None:
        p = self.truth.purchases[pid]
        self._send(self._account(p["buyer"]), self.contract.functions.refund(pid))
        p.update(status="refunded", refund_reason="not_delivered")

    def set_price(self, dataset_id: int) -> None:
        d = self.truth.datasets[dataset_id]
        d["price"] = self.rng.randrange(1, 10**6) * 10**9
        self._send(self._account(d["owner"]), self.contract.functions.setPrice(dataset_id, d["price"]))

    def transfer(self, dataset_id: int) -> None:
        """Move the token; the transfer pauses sales, and the new owner resumes them."""
        d = self.truth.datasets[dataset_id]
        owner = self._account(d["owner"])
        new_owner = self.rng.choice([o for o in self.owners if o is not owner])
        self._send(owner, self.contract.functions.transferFrom(owner.address, new_owner.address, dataset_id))
        self._send(new_owner, self.contract.functions.setPaused(dataset_id, False))
        d["owner"] = new_owner.address
        self.truth.transfers += 1

    def withdraw_all(self) -> None:
        earned: dict[str, int] = defaultdict(int)
        for p in self.truth.purchases.values():
            if p["status"] == "settled":
                earned[p["seller"]] += p["amount"] - self.truth.fee(p["amount"])
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

    def run(self, *, datasets: int, purchases: int, refund_share: float = 0.1, versions: int = 2,
            wrong_share: float = 0.05) -> None:
        """A busy market: registrations (and new versions), purchases, price changes, transfers; deliveries
        for most purchases, a few of them wrong and all of those disputed (and a few honest ones too);
        settlement of most deliveries after the challenge period, refunds for some after the delivery window,
        and withdrawals."""
        ids = [self.register(i % 3) for i in range(datasets)]
        for i in range(versions):
            ids.append(self.register(supersedes=ids[i]))
        pending = []
        for n in range(purchases):
            pending.append(self.purchase(self.rng.choice(ids)))
            if n % 97 == 0:
                self.set_price(self.rng.choice(ids))
            if n % 211 == 0:
                self.transfer(self.rng.choice(ids))
        self.rng.shuffle(pending)
        cut = int(len(pending) * refund_share)
        wrong = max(1, int(len(pending) * wrong_share))
        for i, pid in enumerate(pending[cut:]):
            self.deliver(pid, honest=i >= wrong)
        for pid in pending[cut:cut + wrong + 3]:
            self.dispute(pid)  # every wrong delivery, and three honest ones
        self.advance(CHALLENGE + 1)
        delivered = [pid for pid in pending[cut:] if self.truth.purchases[pid]["status"] == "delivered"]
        self.settle(delivered[: len(delivered) * 4 // 5])
        self.advance(WINDOW + 1)
        for pid in pending[:cut]:
            self.refund(pid)
        self.withdraw_all()
        self.check_receipts()
