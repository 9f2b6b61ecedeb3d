"""Gas used by each market operation, from real transaction receipts.

    .venv/bin/python bench/market_gas.py                 # the embedded chain
    .venv/bin/python bench/market_gas.py --rpc URL       # e.g. an anvil: anvil --host 127.0.0.1 --port 8545

Prints a Markdown table (the one in docs/market.md). Goals from the issue: purchase + deliverKey under
200k gas together; register under 300k.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import pyarrow as pa

from deai_data import Keystore, publish
from deai_data.chain import connect, dev_accounts, dev_advance_time
from deai_data.market import Market

PRICE = 10**16


def _publish(store: Path, keystore: Keystore, rows: int, seed: int) -> object:
    table = pa.table({"id": list(range(seed, seed + rows)), "text": [f"row {i}" for i in range(rows)]})
    return publish(table, store=store, name=f"gas-{seed}", shard_size=4096, keystore=keystore)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rpc", help="JSON-RPC URL (default: the embedded chain)")
    args = parser.parse_args()
    w3 = connect(args.rpc)
    treasury, owner, buyer = dev_accounts(w3)[:3]
    gas: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        ks = Keystore(Path(tmp) / "ks", passphrase="bench", scrypt_n=2**10)
        market = Market.deploy(w3, treasury, fee_bps=250)
        seller = Market(w3, market.address, owner, keystore=ks)
        shopper = Market(w3, market.address, buyer, keystore=Keystore(Path(tmp) / "ks2", passphrase="b",
                                                                          scrypt_n=2**10))

        def measure(name: str, send) -> None:
            before = w3.eth.block_number
            send()
            block = w3.eth.get_block(w3.eth.block_number, full_transactions=False)
            assert block.number > before
            receipt = w3.eth.get_transaction_receipt(block.transactions[-1])
            gas[name] = receipt["gasUsed"]

        first = _publish(Path(tmp) / "store", ks, 2000, 0)
        measure("register (first dataset, 2 URIs)", lambda: seller.register(
            first, price=PRICE, manifest_uris=(first.manifest_uri, "ar://" + "x" * 43)))
        second = _publish(Path(tmp) / "store", ks, 2000, 10_000)
        measure("register (new version, previous set)", lambda: seller.register(second, price=PRICE, previous=1))
        measure("purchase (token's escrow at zero)", lambda: shopper.purchase(1))
        measure("purchase (escrow non-zero)", lambda: shopper.purchase(1))
        measure("deliverKey (owner's and treasury's first credit)", lambda: seller.deliver_key(1))
        measure("deliverKey (balances non-zero)", lambda: seller.deliver_key(2))
        measure("purchase (escrow back at zero; refunded below)", lambda: shopper.purchase(1))
        dev_advance_time(w3, 25 * 3600)
        measure("refund", lambda: shopper.refund(3, withdraw=False))
        measure("withdraw (buyer's refund)", lambda: shopper.withdraw())
        measure("withdraw (owner revenue)", lambda: seller.withdraw())
        measure("setPrice", lambda: seller.set_price(1, 2 * PRICE))
    print(f"| operation | gas ({'embedded chain' if not args.rpc else args.rpc}) |")
    print("| --- | ---: |")
    for name, used in gas.items():
        print(f"| {name} | {used:,} |")
    pair = gas["purchase (escrow non-zero)"] + gas["deliverKey (balances non-zero)"]
    first_pair = gas["purchase (token's escrow at zero)"] + gas["deliverKey (owner's and treasury's first credit)"]
    print(f"| purchase + deliverKey (steady / first ever) | {pair:,} / {first_pair:,} |")


if __name__ == "__main__":
    main()
