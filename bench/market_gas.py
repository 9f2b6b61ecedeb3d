"""Gas used by each market operation, from real transaction receipts.

    .venv/bin/python bench/market_gas.py                 # the embedded chain
    .venv/bin/python bench/market_gas.py --rpc URL       # e.g. an anvil: anvil --host 127.0.0.1 --port 8545

Prints a Markdown table (the one in docs/market.md). Goals (issue 14): purchase + deliverKey + settle under
220k gas in the steady state; a dispute under 120k. Issue 20 adds revenue splits, a front-end's fee, EIP-2612
permits and royalties: each measured in the steady state (every balance it credits already non-zero).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import pyarrow as pa

from deai_data import Keystore, fetch_policy, publish
from deai_data.chain import connect, dev_accounts, dev_advance_time
from deai_data.crypto.key_delivery import DeliveryContext, buyer_key_hash, dispute_proof, seal_key
from deai_data.market import Market

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from chains import Token  # the tests' ERC-20 deployer (tests/data/tokens.json)

PRICE = 10**16
CHALLENGE = 600
TERM = 30 * 86_400


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rpc", help="JSON-RPC URL (default: the embedded chain)")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()
    w3 = connect(args.rpc)
    # the manifests live in a local store; the second URI registered (ar://...) is never fetched
    fetch_policy.configure(fetch_policy.FetchPolicy(schemes=frozenset({"file"}), local_files=True))
    treasury, owner, buyer, coauthor, frontend, permitter = dev_accounts(w3)[:6]
    gas: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        ks = Keystore(Path(tmp) / "ks", passphrase="bench", scrypt_n=2**10)
        market = Market.deploy(w3, treasury, fee_bps=250)
        seller = Market(w3, market.address, owner, keystore=ks)
        shopper = Market(w3, market.address, buyer, keystore=Keystore(Path(tmp) / "ks2", passphrase="b",
                                                                          scrypt_n=2**10))

        def measure(name: str, send) -> object:
            receipt_of = send()
            receipt = receipt_of if isinstance(receipt_of, dict) and "gasUsed" in receipt_of else None
            if receipt is None:
                block = w3.eth.get_block(w3.eth.block_number, full_transactions=False)
                receipt = w3.eth.get_transaction_receipt(block.transactions[-1])
            gas[name] = receipt["gasUsed"]
            return receipt_of

        def published(seed: int, rows: int = 2000, previous: str | None = None) -> object:
            table = pa.table({"id": list(range(seed, seed + rows)), "text": [f"row {i}" for i in range(rows)]})
            return publish(table, store=Path(tmp) / "store", name=f"gas-{seed}", shard_size=4096, keystore=ks,
                           author=owner, previous=previous)

        def deliver_wrong(pid: int) -> None:
            info = seller.purchase_info(pid)
            key = seller.purchase_event(info)["buyerKey"]
            delivery = seal_key(bytes(32), key, DeliveryContext(seller.chain_id, seller.address, pid))
            seller._send(seller.contract.functions.deliverKey(pid, buyer_key_hash(key), delivery.as_call()), "bad")

        def dispute(pid: int) -> None:
            info = shopper.purchase_info(pid)
            proof = dispute_proof(shopper.delivery(info), shopper._purchase_secret(info))
            shopper._send(shopper.contract.functions.dispute(pid, proof.as_call()), "dispute")

        first = published(0)
        terms = {"price": PRICE, "challenge_period": CHALLENGE}
        measure("register (first dataset, 2 URIs)", lambda: seller.register(
            first, manifest_uris=(first.manifest_uri, "ar://" + "x" * 43), **terms))
        measure("register (new version, supersedes set)", lambda: seller.register(published(10_000), supersedes=1,
                                                                                  **terms))
        measure("purchase (the token's escrow at zero)", lambda: shopper.purchase(1))           # purchase 1
        measure("purchase (escrow non-zero)", lambda: shopper.purchase(1))                      # purchase 2
        measure("deliverKey", lambda: seller.deliver_key(1))
        measure("deliverKey (second)", lambda: seller.deliver_key(2))
        dev_advance_time(w3, CHALLENGE + 1)
        measure("settle (seller's and treasury's first credit)", lambda: seller.settle(1))
        measure("settle (balances non-zero)", lambda: seller.settle(2))
        for _ in range(3):                                                                      # purchases 3-5
            shopper.purchase(1)
        deliver_wrong(3)
        measure("dispute (wrong key: buyer refunded)", lambda: dispute(3))
        seller.deliver_key(4)
        measure("dispute (honest key: seller paid at once)", lambda: dispute(4))
        dev_advance_time(w3, 25 * 3600)
        measure("refund (nothing delivered)", lambda: shopper.refund(5, withdraw=False))
        measure("withdraw (buyer's refunds)", lambda: shopper.withdraw())
        measure("withdraw (seller's revenue, to another address)", lambda: seller.withdraw(to=treasury.address))
        measure("setPrice", lambda: seller.set_price(1, 2 * PRICE))
        for _ in range(10):
            shopper.purchase(1)
        for pid in range(6, 16):
            seller.deliver_key(pid)
        dev_advance_time(w3, CHALLENGE + 1)
        measure("settleMany (10 purchases)", lambda: seller.settle(list(range(6, 16))))

        # the same trade in an ERC-20 (OpenZeppelin's, deployed as the tests deploy it)
        token = Token(w3, treasury, "TestToken")
        token.mint(buyer.address, 10 * PRICE)
        sold_in_token = seller.register(published(20_000), payment_token=token.address, **terms)
        measure("ERC-20 approve (the buyer's first)", lambda: shopper._send(
            token.contract.functions.approve(market.address, 2**256 - 1), "approve"))
        measure("purchase in an ERC-20 (the token's escrow at zero)", lambda: shopper.purchase(sold_in_token))
        measure("purchase in an ERC-20 (escrow non-zero)", lambda: shopper.purchase(sold_in_token))
        # a buyer who never approved: the permit rides in the purchase (one transaction instead of two)
        token.mint(permitter.address, 10 * PRICE)
        signer = Market(w3, market.address, permitter, keystore=Keystore(Path(tmp) / "ks3", passphrase="c",
                                                                         scrypt_n=2**10))
        measure("purchase in an ERC-20 with an EIP-2612 permit (no approve)",
                lambda: signer.purchase(sold_in_token, permit=True))

        # commerce: a two-payee split, a front-end's fee, a royalty; each credit's first write paid once first
        shared = seller.register(published(30_000), **terms)
        measure("setRevenueSplit (2 payees)", lambda: seller.set_revenue_split(
            shared, {owner.address: 7_000, coauthor.address: 3_000}))
        measure("setRoyalty", lambda: seller.set_royalty(shared, owner.address, 250))
        shopper.purchase(1)  # left pending: the escrow stays non-zero, as in a live market
        for steady in (False, True):  # the first round pays each balance's first write; the second is measured
            def record(name: str, send, steady=steady) -> object:
                return measure(name, send) if steady else send()

            split_pid = record("purchase under a revenue split", lambda: shopper.purchase(shared)).purchase_id
            referred_pid = record("purchase through a front-end (fee on top)", lambda: shopper.purchase(
                1, referrer=frontend.address, referrer_bps=100)).purchase_id
            seller.deliver_key(split_pid)
            seller.deliver_key(referred_pid)
            dev_advance_time(w3, CHALLENGE + 1)
            record("settle under a 2-payee split", lambda pid=split_pid: seller.settle(pid))
            record("settle with a front-end's fee", lambda pid=referred_pid: seller.settle(pid))
        # versions that inherit shards: the key link is stored at registration, a dispute walks the links asked for
        versions = [published(40_000)]
        versions += [published(40_000, 2100, versions[0].manifest_hash)]
        versions += [published(40_000, 2200, versions[1].manifest_hash)]
        ids = [seller.register(versions[0], **terms)]
        ids.append(measure("register (new version inheriting shards: key link stored)", lambda: seller.register(
            versions[1], supersedes=ids[0], **terms)))
        ids.append(seller.register(versions[2], supersedes=ids[1], **terms))
        linked_pid = shopper.purchase(ids[2]).purchase_id
        seller.deliver_key(linked_pid)
        measure("dispute (honest key, 2 linked generations checked)",
                lambda: shopper.dispute(linked_pid, withdraw=False, generations=2))
        # subscriptions: a plan, a term bought and renewed, a claim of a new version delivered, both settled
        subscribed_to = seller.register(published(50_000), **terms)
        measure("setSubscriptionPlan", lambda: seller.set_subscription_plan(subscribed_to, PRICE, TERM))
        sub = measure("subscribe", lambda: shopper.subscribe(subscribed_to))
        measure("subscribe (renewing)", lambda: shopper.subscribe(subscribed_to, renews=sub.subscription_id))
        newer = seller.register(published(50_000, 2100), supersedes=subscribed_to, **terms)
        claim = measure("claim (a version registered in the term)", lambda: shopper.claim(sub.subscription_id, newer))
        measure("deliverKey (a claim)", lambda: seller.deliver_key(claim.purchase_id))
        dev_advance_time(w3, TERM + 1)
        measure("settle (a claim)", lambda: seller.settle(claim.purchase_id))
        measure("settle (a subscription after its term)", lambda: seller.settle(sub.subscription_id))
    steady = gas["purchase (escrow non-zero)"] + gas["deliverKey (second)"] + gas["settle (balances non-zero)"]
    first_ever = gas["purchase (the token's escrow at zero)"] + gas["deliverKey"] + \
        gas["settle (seller's and treasury's first credit)"]
    gas["purchase + deliverKey + settle (steady state)"] = steady
    gas["purchase + deliverKey + settle (first ever)"] = first_ever
    gas["the same in an ERC-20 (steady state, after one approval)"] = \
        gas["purchase in an ERC-20 (escrow non-zero)"] + gas["deliverKey (second)"] + gas["settle (balances non-zero)"]
    gas["the same under a 2-payee split (steady state)"] = \
        gas["purchase under a revenue split"] + gas["deliverKey (second)"] + gas["settle under a 2-payee split"]
    gas["the same through a front-end (steady state)"] = gas["purchase through a front-end (fee on top)"] + \
        gas["deliverKey (second)"] + gas["settle with a front-end's fee"]
    gas["a subscriber's new version (claim + deliverKey + settle)"] = gas["claim (a version registered in the term)"] \
        + gas["deliverKey (a claim)"] + gas["settle (a claim)"]
    print(f"| operation | gas ({'embedded chain' if not args.rpc else args.rpc}) |")
    print("| --- | ---: |")
    for name, used in gas.items():
        print(f"| {name} | {used:,} |")
    disputes = (gas["dispute (wrong key: buyer refunded)"], gas["dispute (honest key: seller paid at once)"])
    print(f"\ngoals: steady trade {steady:,} < 220,000: {steady < 220_000}; disputes "
          f"{disputes[0]:,} / {disputes[1]:,} < 120,000: {max(disputes) < 120_000}")
    if args.json:
        Path(args.json).write_text(json.dumps(gas, indent=1) + "\n")


if __name__ == "__main__":
    main()
