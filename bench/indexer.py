"""Indexer benchmarks: ingest rate against cryo on the same anvil chain, and catalog query latency.

    python3 -m venv .bench-cryo && .bench-cryo/bin/pip install cryo==0.3.2      # once (cryo's wheel)
    .venv/bin/python bench/indexer.py --events 20000 --cryo-python .bench-cryo/bin/python
    .venv/bin/python bench/indexer.py --query-only --purchases 10000000

Part 1 starts its own anvil (contracts/node_modules), fills it with market events (purchases and key
deliveries from tests/market_scenario.py, many transactions per block), then in the same run times
`deai-indexer`'s sync (raw eth_getLogs, decoded into typed Parquet per event) and cryo's `logs`
extraction (raw logs to Parquet, Rust) over the same blocks, and prints events/s and the ratio.
Part 2 writes a synthetic catalog (10 M purchases by default) in the indexer's layout and times the
top-10 revenue query and one dataset's history (p50 and p90 of 15 runs after 2 warm-ups).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))


def fill_chain(w3, events: int) -> str:
    """Purchases and key deliveries of 20 author-signed datasets of one owner, 500 transactions per block,
    sent in JSON-RPC batches from anvil's unlocked development accounts (no local signing of transactions:
    fast to generate). Every purchase names the same buyer key (the block order of transactions from several
    senders is the node's: purchase ids do not follow the sending order); the deliveries are well-formed
    but not checked."""
    from deai_data.chain.connect import anvil_dev_accounts
    from deai_data.crypto.authorship import sign_authorship
    from deai_data.crypto.key_delivery import buyer_key_hash, new_purchase_key
    from deai_data.market import Market
    from deai_indexer import RpcClient

    accounts = anvil_dev_accounts()
    market = Market.deploy(w3, accounts[0], fee_bps=300)
    owner, buyers = accounts[1], [a.address for a in accounts[2:9]]
    rpc = RpcClient(w3.provider.endpoint_uri)
    contract = market.contract
    price = 10**15
    buyer_key = new_purchase_key()[1]
    ephemeral = new_purchase_key()[1]

    nonces = {a.address: w3.eth.get_transaction_count(a.address) for a in accounts}

    def tx(sender: str, data: str, value: int) -> tuple[str, list]:
        nonces[sender] += 1
        return ("eth_sendTransaction", [{"from": sender, "to": market.address, "data": data, "value": hex(value),
                                         "gas": hex(400_000), "nonce": hex(nonces[sender] - 1)}])

    def send(calls: list[tuple[str, str, int]]) -> None:
        rpc.call("evm_setAutomine", False)
        for i in range(0, len(calls), 500):
            rpc.batch([tx(*call) for call in calls[i:i + 500]])
            rpc.call("evm_mine")
        rpc.call("evm_setAutomine", True)

    def registration(i: int) -> list:
        seal_id, root, commitment = bytes([i + 1]) * 32, bytes([i + 101]) * 32, b"\x07" * 32
        authorship = sign_authorship(owner, seal_id.hex(), root.hex(), commitment.hex(), 4)
        return [{"manifestHash": bytes([i + 51]) * 32, "contentRoot": root, "keyCommitment": commitment,
                 "sealId": seal_id, "shardCount": 4, "author": owner.address, "owner": owner.address,
                 "paymentToken": "0x" + "00" * 20, "price": price, "deliveryWindow": 30 * 86_400,
                 "challengePeriod": 86_400, "supersedes": 0, "manifestURIs": [f"ar://{i}"], "licenseURI": "CC0"},
                bytes.fromhex(authorship.signature[2:])]

    send([(owner.address, contract.encode_abi("register", registration(i)), 0) for i in range(20)])
    purchases = events // 2
    send([(buyers[i % len(buyers)], contract.encode_abi("purchase", [1 + i % 20, buyer_key[:32], buyer_key[32:],
                                                                     price]), price) for i in range(purchases)])
    delivery = (ephemeral[:32], ephemeral[32:], b"\x5a" * 32)
    send([(owner.address, contract.encode_abi("deliverKey", [pid, buyer_key_hash(buyer_key), delivery]), 0)
          for pid in range(1, purchases + 1)])
    assert market.purchase_info(purchases).status == "delivered", "the last purchase was not delivered"
    return market.address


CRYO = """
import json, os, sys, time
import cryo
rpc, market, last, out = sys.argv[1:5]
start = time.perf_counter()
cryo.freeze("logs", rpc=rpc, contract=[market], blocks=[f"0:{int(last) + 1}"], output_dir=out, no_verbose=True,
            chunk_size=100000)
print(json.dumps({"seconds": time.perf_counter() - start}), flush=True)
os._exit(0)   # cryo 0.3.2 sometimes crashes while Python shuts down, after its work is done
"""


def ingest(args: argparse.Namespace) -> None:
    from chains import Anvil
    from web3 import Web3

    from deai_indexer import Indexer

    node = Anvil("--gas-limit", "300000000")
    try:
        w3 = Web3(Web3.HTTPProvider(node.url))
        t = time.perf_counter()
        market = fill_chain(w3, args.events)
        head = w3.eth.block_number
        print(f"chain: {args.events} events in {head} blocks, generated in {time.perf_counter() - t:.1f} s")
        rows = []
        with tempfile.TemporaryDirectory() as tmp:  # warm-up, not counted: imports, first Parquet write
            Indexer(node.url, market, Path(tmp) / "index", confirmations=0, enrich=False).sync()
        for run in range(args.runs):
            with tempfile.TemporaryDirectory() as tmp:
                indexer = Indexer(node.url, market, Path(tmp) / "index", confirmations=0, enrich=False)
                t = time.perf_counter()
                written = indexer.sync()
                total = time.perf_counter() - t
                ours = indexer.timings["ingest"]  # logs -> typed Parquet; the one-off catalog creation apart
                cryo_s = None
                if args.cryo_python:
                    done = subprocess.run([args.cryo_python, "-c", CRYO, node.url, market, str(head),
                                           str(Path(tmp) / "cryo")], capture_output=True, text=True, timeout=600)
                    if done.returncode != 0:
                        raise SystemExit(f"cryo failed: {done.stderr[-2000:]}")
                    cryo_s = json.loads(done.stdout.strip().splitlines()[-1])["seconds"]
                rows.append((written / ours, written / cryo_s if cryo_s else None))
                line = (f"run {run + 1}: deai-indexer {written} events to Parquet in {ours:.3f} s = "
                        f"{written / ours:,.0f} events/s (sync with catalog creation {total:.3f} s)")
                if cryo_s:
                    line += f"; cryo {cryo_s:.3f} s = {written / cryo_s:,.0f} events/s; ratio {cryo_s / ours:.2f}x"
                print(line)
        ours_med = statistics.median(r[0] for r in rows)
        print(f"median: deai-indexer {ours_med:,.0f} events/s (decoded, typed, one file per event type)")
        if args.cryo_python:
            cryo_med = statistics.median(r[1] for r in rows)
            paired = statistics.median(r[0] / r[1] for r in rows)
            print(f"median: cryo {cryo_med:,.0f} events/s (raw logs); ratio of medians {ours_med / cryo_med:.2f}x, "
                  f"median of the per-run ratios {paired:.2f}x (goal >= 1.0x)")
    finally:
        node.stop()


def synthetic_catalog(root: Path, purchases: int, datasets: int = 10_000, seed: int = 0) -> None:
    """A catalog in the indexer's layout: registrations, purchases (Zipf-distributed over datasets, ten per
    block), and key deliveries and settlements for 90 % of them; files of one million rows."""
    from deai_indexer.catalog import build_catalog
    from deai_indexer.events import AMOUNT, decimal_array, event_specs
    from deai_indexer.indexer import STATE_VERSION
    from deai_indexer.layout import range_file, write_atomic

    specs = {s.table: s for s in event_specs().values()}
    rng = np.random.default_rng(seed)
    native = "0x" + "00" * 20

    def hexes(prefix: str, values: np.ndarray, width: int) -> pa.Array:
        return pa.array(np.char.add(prefix, np.char.zfill(values.astype(f"U{width}"), width)))

    def write(name: str, first_block: int, cols: dict) -> None:
        n = len(next(iter(cols.values())))
        numbers = first_block + np.arange(n) // 10
        cols.update(block_number=numbers, block_hash=hexes("0x", numbers, 64), log_index=np.arange(n) % 10,
                    block_time=(1_700_000_000 + numbers * 12).astype("datetime64[s]"),
                    tx_hash=hexes("0x", first_block * 10 + np.arange(n), 64))
        schema = specs[name].schema
        arrays = [cols[f.name] if isinstance(cols[f.name], pa.Array) else
                  decimal_array(cols[f.name].tolist()) if f.type == AMOUNT else pa.array(cols[f.name], f.type)
                  for f in schema]
        write_atomic(range_file(root, name, first_block, int(numbers[-1])),
                     pa.Table.from_arrays([a.cast(f.type) for a, f in zip(arrays, schema, strict=True)],
                                          schema=schema))

    ids = np.arange(1, datasets + 1)
    owners = hexes("0x", ids % 500, 40)
    write("dataset_registered", 0, {
        "dataset_id": ids, "owner": owners, "author": owners, "manifest_hash": hexes("", ids, 64),
        "content_root": hexes("", ids + 7, 64), "key_commitment": hexes("", ids + 9, 64),
        "seal_id": hexes("", ids + 11, 64), "shard_count": np.full(datasets, 10),
        "payment_token": pa.array([native] * datasets), "price": rng.integers(1, 10**6, datasets) * 10**9,
        "delivery_window": np.full(datasets, 86_400), "challenge_period": np.full(datasets, 86_400),
        "supersedes": np.zeros(datasets, np.int64), "manifest_uris": [[f"ar://{i}"] for i in ids],
        "license_uri": pa.array(["CC0"] * datasets), "registrar": owners})
    delivered_from = 1_000 + purchases // 10 + 1
    settled_from = delivered_from + purchases // 10 + 1
    for start in range(0, purchases, 1_000_000):
        n = min(1_000_000, purchases - start)
        pids = np.arange(start + 1, start + n + 1)
        dataset = rng.zipf(1.3, n) % datasets + 1
        sellers = hexes("0x", dataset % 500, 40)
        amount = rng.integers(1, 10**6, n) * 10**9
        write("purchased", 1_000 + start // 10, {
            "purchase_id": pids, "dataset_id": dataset, "buyer": hexes("0x", pids % 100_000, 40), "seller": sellers,
            "payment_token": pa.array([native] * n), "amount": amount, "deadline": np.full(n, 1_800_000_000),
            "buyer_key_x": hexes("", pids, 64), "buyer_key_y": hexes("", pids + 1, 64)})
        keep = rng.random(n) < 0.9
        fee = amount[keep] * 3 // 100
        write("key_delivered", delivered_from + start // 10, {
            "purchase_id": pids[keep], "dataset_id": dataset[keep], "seller": sellers.filter(pa.array(keep)),
            "delivered_by": sellers.filter(pa.array(keep)), "ephemeral_x": hexes("", pids[keep], 64),
            "ephemeral_y": hexes("", pids[keep] + 3, 64), "encrypted_key": hexes("", pids[keep] + 5, 64),
            "challenge_ends": np.full(len(fee), 1_800_086_400)})
        write("purchase_settled", settled_from + start // 10, {
            "purchase_id": pids[keep], "dataset_id": dataset[keep], "seller": sellers.filter(pa.array(keep)),
            "payment_token": pa.array([native] * len(fee)), "seller_amount": amount[keep] - fee, "fee": fee})
    last = settled_from + purchases // 10 + 1
    (root / "state.json").write_text(json.dumps({"format": "deai-indexer/state", "version": STATE_VERSION,
                                                 "chain_id": 1, "market": native, "start_block": 0,
                                                 "next_block": last + 1, "finalized_block": last,
                                                 "head_block": last, "hashes": {}}))
    build_catalog(root)


def queries(args: argparse.Namespace) -> None:
    from deai_data import Catalog

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "index"
        t = time.perf_counter()
        synthetic_catalog(root, args.purchases)
        size = sum(p.stat().st_size for p in root.rglob("*.parquet"))
        print(f"synthetic catalog: {args.purchases:,} purchases, {size / 1e6:.0f} MB Parquet, "
              f"written in {time.perf_counter() - t:.1f} s")
        with Catalog(root) as cat:
            for name, run in [("top-10 datasets by revenue", lambda: cat.top_datasets(10)),
                              ("one dataset's history", lambda: cat.dataset_history(17))]:
                times = []
                for i in range(17):
                    t = time.perf_counter()
                    result = run()
                    if i >= 2:
                        times.append(time.perf_counter() - t)
                times.sort()
                p50, p90 = statistics.median(times) * 1000, times[int(len(times) * 0.9)] * 1000
                print(f"{name}: p50 {p50:.0f} ms, p90 {p90:.0f} ms ({result.num_rows} rows)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cryo-python", help="a Python with cryo==0.3.2 installed (compared in the same run)")
    parser.add_argument("--purchases", type=int, default=10_000_000)
    parser.add_argument("--ingest-only", action="store_true")
    parser.add_argument("--query-only", action="store_true")
    args = parser.parse_args()
    if not args.query_only:
        ingest(args)
    if not args.ingest_only:
        queries(args)


if __name__ == "__main__":
    main()
