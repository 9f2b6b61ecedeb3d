"""The indexer against a real anvil: thousands of events compared with independently kept ground truth;
reorgs at several depths during backfill and follow; SIGKILL at random points; RPC errors, rate
limits, range and result caps, stalls; manifest enrichment; the catalog API and CLI."""

from __future__ import annotations

import copy
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow as pa
import pytest
from chains import Anvil
from conftest import env_without_pythonpath
from market_scenario import Scenario
from rpcfaults import RpcFaultProxy
from web3 import Web3

from deai_data import Catalog, ChainError, Keystore, publish
from deai_data.catalog.web import Pages
from deai_data.chain.connect import anvil_dev_accounts
from deai_data.storage.staging import staged_name
from deai_indexer import Indexer, RpcClient
from deai_indexer.layout import range_files

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def node():
    """This module's own anvil (reorg tests rewrite its history)."""
    chain = Anvil()
    yield chain
    chain.stop()


@pytest.fixture
def w3(node):
    chain = Web3(Web3.HTTPProvider(node.url))
    snapshot = chain.provider.make_request("evm_snapshot", [])["result"]
    yield chain
    chain.provider.make_request("evm_revert", [snapshot])


def _check(root: Path, truth, *, enriched: bool = False) -> None:
    """The catalog equals the ground truth, with no duplicate and no missing row."""
    with Catalog(root) as cat:
        rows = cat.sql("SELECT * FROM purchases ORDER BY purchase_id").to_pylist()
        assert [r["purchase_id"] for r in rows] == sorted(truth.purchases)
        for row in rows:
            want = truth.purchases[row["purchase_id"]]
            assert row["dataset_id"] == want["dataset_id"]
            assert row["buyer"] == want["buyer"].lower() and row["seller"] == want["seller"].lower()
            assert int(row["amount"]) == want["amount"]
            assert row["status"] == want["status"], (row, want)
            assert row["disputed"] == want["disputed"]
            assert row["refund_reason"] == want["refund_reason"]
            assert (row["delivered_at"] is not None) == want["delivered"]
            if want["status"] == "settled":
                fee = truth.fee(want["amount"])
                assert (int(row["fee"]), int(row["seller_amount"])) == (fee, want["amount"] - fee)
        datasets = {r["dataset_id"]: r for r in cat.sql("SELECT * FROM datasets").to_pylist()}
        assert sorted(datasets) == sorted(truth.datasets)
        for dataset_id, want in truth.datasets.items():
            got = datasets[dataset_id]
            mine = [p for p in truth.purchases.values() if p["dataset_id"] == dataset_id]
            settled = [p["amount"] for p in mine if p["status"] == "settled"]
            assert got["owner"] == want["owner"].lower() and got["author"] == want["author"].lower()
            assert int(got["price"]) == want["price"]
            assert got["supersedes"] == want["supersedes"]
            assert got["manifest_hash"] == want["manifest_hash"]
            assert not got["paused"]
            assert (got["purchases"], got["settled"]) == (len(mine), len(settled))
            assert got["delivered"] == sum(p["delivered"] for p in mine)
            assert got["refunded"] == sum(p["status"] == "refunded" for p in mine)
            assert got["disputes_lost"] == sum(p["disputed"] and not p["honest"] for p in mine)
            assert int(got["fees"]) == sum(truth.fee(a) for a in settled)
        lost = {r["owner"]: r["disputes_lost"] for r in cat.sql("SELECT * FROM owners").to_pylist()}
        for owner in {d["owner"] for d in truth.datasets.values()} | {p["seller"] for p in truth.purchases.values()}:
            want = sum(p["disputed"] and not p["honest"] and p["seller"] == owner for p in truth.purchases.values())
            assert lost.get(owner.lower(), 0) == want
        withdrawn: dict[str, int] = {}
        for account, amount in truth.withdrawals:
            withdrawn[account.lower()] = withdrawn.get(account.lower(), 0) + amount
        payouts = cat.sql("SELECT account, sum(amount) AS total FROM payouts GROUP BY ALL").to_pylist()
        assert {r["account"]: int(r["total"]) for r in payouts} == withdrawn
        total = cat.sql("SELECT sum(owner_revenue) AS r, sum(sales) AS n FROM revenue_daily").to_pylist()[0]
        settled = [p["amount"] for p in truth.purchases.values() if p["status"] == "settled"]
        assert int(total["r"] or 0) == sum(a - truth.fee(a) for a in settled)
        assert (total["n"] or 0) == len(settled)
        counts = cat.sql("""SELECT count(*) AS n, count(DISTINCT (block_number, log_index)) AS u FROM (
            SELECT block_number, log_index FROM raw.purchased UNION ALL
            SELECT block_number, log_index FROM raw.key_delivered UNION ALL
            SELECT block_number, log_index FROM raw.dispute_resolved UNION ALL
            SELECT block_number, log_index FROM raw.purchase_settled UNION ALL
            SELECT block_number, log_index FROM raw.refunded UNION ALL
            SELECT block_number, log_index FROM raw.dataset_registered UNION ALL
            SELECT block_number, log_index FROM raw.transfer)""").to_pylist()[0]
        assert counts["n"] == counts["u"] == truth.events()
        if enriched:
            statuses = cat.sql("SELECT DISTINCT manifest_status FROM versions").column(0).to_pylist()
            assert statuses == ["not_found"]


def test_thousands_of_events_match_ground_truth_and_reindexing_is_idempotent(w3, node, tmp_path):
    scenario = Scenario(w3, seed=3)
    scenario.run(datasets=8, purchases=1300)
    assert scenario.truth.events() > 2500
    root = tmp_path / "index"
    indexer = Indexer(node.url, scenario.market.address, root, confirmations=5, chunk=64)
    written = indexer.sync()
    _check(root, scenario.truth, enriched=True)
    files = sorted(p.name for p, _, _ in range_files(root))
    assert Indexer(node.url, scenario.market.address, root, confirmations=5).sync() == 0
    assert sorted(p.name for p, _, _ in range_files(root)) == files
    assert written >= scenario.truth.events()
    status = indexer.status()
    assert status["lag"] == 0 and status["indexed"] == w3.eth.block_number


def test_backfill_includes_the_last_block_and_extends_both_ways(w3, node, tmp_path):
    scenario = Scenario(w3, seed=4)
    scenario.run(datasets=3, purchases=60, versions=0)
    head = w3.eth.block_number
    purchased_blocks = sorted({int(log["blockNumber"], 16) for log in RpcClient(node.url).call(
        "eth_getLogs", {"address": scenario.market.address, "fromBlock": "0x0", "toBlock": hex(head),
                        "topics": [scenario.contract.events.Purchased().topic]})})
    middle = purchased_blocks[len(purchased_blocks) // 2]
    root = tmp_path / "index"
    indexer = Indexer(node.url, scenario.market.address, root, confirmations=0, chunk=7)
    indexer.sync(middle, start_block=middle - 5)                     # ends exactly on a block with an event
    with Catalog(root) as cat:
        last = cat.sql("SELECT max(block_number) AS b FROM raw.purchased").to_pylist()[0]["b"]
    assert last == middle
    indexer.sync(start_block=0)                                      # earlier blocks, then on to the head
    _check(root, scenario.truth)


def _snapshot(w3: Web3) -> str:
    return w3.provider.make_request("evm_snapshot", [])["result"]


@pytest.mark.parametrize("depth", [1, 3, 12])
def test_reorg_during_backfill_rolls_back_and_reindexes(w3, node, tmp_path, depth):
    scenario = Scenario(w3, seed=5)
    scenario.run(datasets=3, purchases=40, versions=0)
    ids = list(scenario.truth.datasets)
    fork = _snapshot(w3)
    saved = copy.deepcopy(scenario.truth)
    for _ in range(depth):                                          # the branch that will vanish
        scenario.purchase(ids[0])
    scenario.check_receipts()
    root = tmp_path / "index"
    indexer = Indexer(node.url, scenario.market.address, root, confirmations=depth + 5, chunk=16)
    indexer.sync()

    # A reorg `depth` blocks deep: back to the fork point, then a different, longer branch.
    w3.provider.make_request("evm_revert", [fork])
    scenario.truth = saved
    scenario.resync_nonces()
    for _ in range(depth + 2):
        scenario.purchase(ids[1])
    scenario.deliver(max(scenario.truth.purchases))
    scenario.check_receipts()
    indexer.sync()
    _check(root, scenario.truth)


def test_reorg_while_following_and_by_snapshot_revert(w3, node, tmp_path):
    scenario = Scenario(w3, seed=6)
    scenario.run(datasets=2, purchases=30, versions=0)
    root = tmp_path / "index"
    indexer = Indexer(node.url, scenario.market.address, root, confirmations=50, chunk=8)
    stop = threading.Event()
    follower = threading.Thread(target=indexer.follow, kwargs={"poll": 0.05, "stop": stop})
    follower.start()
    try:
        snapshot = _snapshot(w3)
        saved = copy.deepcopy(scenario.truth)
        for _ in range(15):
            scenario.purchase(1)
        scenario.check_receipts()
        _wait_indexed(indexer, w3.eth.block_number)
        w3.provider.make_request("evm_revert", [snapshot])          # 15 blocks vanish
        scenario.truth = saved
        scenario.resync_nonces()
        for _ in range(6):
            scenario.purchase(2)
        scenario.check_receipts()
        w3.provider.make_request("anvil_mine", [20])                # the new branch grows longer
        _wait_indexed(indexer, w3.eth.block_number)
    finally:
        stop.set()
        follower.join(10)
    _check(root, scenario.truth)


def _wait_indexed(indexer: Indexer, block: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while (indexer.state["next_block"] or 0) <= block:
        assert time.monotonic() < deadline, f"indexer stuck at {indexer.state['next_block']}, head {block}"
        time.sleep(0.05)
    time.sleep(0.3)  # let a pass that started before the last change finish


def test_sigkill_at_random_points_then_restart(w3, node, tmp_path):
    scenario = Scenario(w3, seed=7)
    scenario.run(datasets=4, purchases=300, versions=1)
    root = tmp_path / "index"
    env = env_without_pythonpath()
    cmd = [sys.executable, "-m", "deai_indexer", "backfill", "0", "--root", str(root), "--rpc", node.url,
           "--market", scenario.market.address, "--chunk", "2", "--confirmations", "3", "--json"]
    # Each run is killed at a random moment shortly after it has written a checkpoint of its own, so the
    # kills land mid-backfill (fetching, writing a file, renaming, checkpointing) however long the CLI
    # takes to start on a loaded machine; after 12 kills the last run is left to finish.
    state = root / "state.json"

    def checkpoint() -> int:
        return state.stat().st_mtime_ns if state.exists() else 0

    rng = random.Random(7)
    kills = 0
    for attempt in range(13):
        before = checkpoint()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        if attempt < 12:
            deadline = time.monotonic() + 120
            while checkpoint() == before and proc.poll() is None:
                assert time.monotonic() < deadline, "the backfill made no progress"
                time.sleep(0.005)
            time.sleep(rng.uniform(0, 0.1))
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                kills += 1
                continue
        assert proc.wait(timeout=300) == 0
        break
    assert kills >= 1, "the kills must land mid-backfill"
    assert not list(root.rglob("*.tmp")), "a restart removes what killed writers left"
    _check(root, scenario.truth)


def test_restart_removes_temp_files_of_dead_writers_only(w3, node, tmp_path):
    scenario = Scenario(w3, seed=11)
    scenario.run(datasets=1, purchases=5, versions=0)
    root = tmp_path / "index"
    Indexer(node.url, scenario.market.address, root, confirmations=0).sync()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    folder = next(root.glob("events/*/bucket=0"))
    abandoned = folder / staged_name("000000000001-000000000002.parquet", pid=dead.pid)
    in_progress = folder / staged_name("000000000003-000000000004.parquet")
    abandoned.write_bytes(b"half a file")
    in_progress.write_bytes(b"being written")
    Indexer(node.url, scenario.market.address, root, confirmations=0).sync()
    assert not abandoned.exists() and in_progress.exists()
    _check(root, scenario.truth)


def test_rpc_errors_rate_limits_caps_and_stalls(w3, node, tmp_path):
    scenario = Scenario(w3, seed=8)
    scenario.run(datasets=3, purchases=150, versions=0)
    faults = ["429", None, "500", None, None, "stall", None, None]
    with RpcFaultProxy(node.url, faults=faults, max_range=9, max_results=25, stall_seconds=1.5) as proxy:
        rpc = RpcClient(proxy.url, timeout=1.0, retries=8, backoff=0.01)
        root = tmp_path / "index"
        Indexer(rpc, scenario.market.address, root, confirmations=2, chunk=500).sync()
        assert proxy.refusals > 0
    _check(root, scenario.truth)


def test_odd_logs_from_a_hostile_node_are_quarantined_alone(w3, node, tmp_path):
    """A node that sends one log with a numeric block number, one without topics, and unknown nested fields in
    the others: the indexer's fast reader steps aside, the two logs are quarantined, and every other log is
    indexed exactly as from the honest node. A log marked removed stops the pass and keeps nothing."""
    scenario = Scenario(w3, seed=12)
    scenario.run(datasets=2, purchases=40, versions=0)
    damaged: list[dict] = []

    def reshape(logs: list) -> list:
        logs = [{**entry, "extra": {"by": [{"a": 1}, {"b": [2]}]}} for entry in logs]
        if len(logs) > 20:
            damaged.extend([logs[7], logs[13]])
            logs[7] = {**logs[7], "blockNumber": int(logs[7]["blockNumber"], 16)}
            logs[13] = {k: v for k, v in logs[13].items() if k != "topics"}
        return logs

    honest, hostile = tmp_path / "honest", tmp_path / "hostile"
    Indexer(node.url, scenario.market.address, honest, confirmations=0, enrich=False, chunk=100_000).sync()
    with RpcFaultProxy(node.url, reshape=reshape) as proxy:
        Indexer(proxy.url, scenario.market.address, hostile, confirmations=0, enrich=False, chunk=100_000).sync()
    assert len(damaged) == 2
    lost = {(int(e["blockNumber"], 16), int(e["logIndex"], 16)) for e in damaged}
    with Catalog(honest) as good, Catalog(hostile) as cat:
        held = cat.sql("SELECT log_index, tx_hash, reason FROM quarantine ORDER BY log_index").to_pylist()
        assert [h["log_index"] for h in held] == sorted(i for _, i in lost)
        assert all("without its fields" in h["reason"] for h in held)
        for table in ("purchased", "key_delivered", "dataset_registered", "transfer"):
            want = [r for r in good.sql(f"SELECT * FROM raw.{table} ORDER BY block_number, log_index").to_pylist()
                    if (r["block_number"], r["log_index"]) not in lost]
            assert cat.sql(f"SELECT * FROM raw.{table} ORDER BY block_number, log_index").to_pylist() == want
    # A log the node says was removed (a reorg during the read): the pass stops, nothing of the chunk is kept.
    with RpcFaultProxy(node.url, reshape=lambda logs: [{**e, "removed": i == 3} for i, e in enumerate(logs)]) as proxy:
        moving = Indexer(proxy.url, scenario.market.address, tmp_path / "moving", confirmations=0, enrich=False,
                         chunk=100_000)
        with pytest.raises(ChainError, match=r"block \d+ was reorganised"):
            moving.sync()
    assert not list(range_files(tmp_path / "moving"))


def test_enrichment_records_ok_mismatch_and_unreachable(w3, node, tmp_path):
    owner = anvil_dev_accounts()[1]
    scenario = Scenario(w3, seed=9)
    keystore = Keystore(tmp_path / "ks", passphrase="pw", scrypt_n=2**10)
    good = publish(pa.table({"x": list(range(5000))}), store=tmp_path / "store", name="good", keystore=keystore,
                   description="enrichment test", shard_size=8192, author=owner)
    other = publish(pa.table({"y": list(range(7))}), store=tmp_path / "store", name="other", keystore=keystore,
                    author=owner)
    seller = scenario.market.using(owner)
    seller.register(good, price=1)
    lying, signature = seller.registration(other, price=1)
    lying["manifestHash"] = os.urandom(32)                          # its URI serves another manifest
    seller._send(seller.contract.functions.register(lying, signature), "register")
    scenario.truth.datasets.clear()
    scenario.register(0)                                            # a URI that does not exist
    scenario.check_receipts()
    from deai_data.storage.local import path_from_locator
    path_from_locator(good.manifest.shards[-1].locators[0]).unlink()   # one shard lost from the store
    root = tmp_path / "index"
    Indexer(node.url, scenario.market.address, root, confirmations=0, check_availability=True).sync()
    with Catalog(root) as cat:
        rows = cat.sql("SELECT dataset_id, manifest_status, name, records, description, backends, "
                       "manifest_shards, shards_available FROM versions ORDER BY dataset_id").to_pylist()
    assert [r["manifest_status"] for r in rows] == ["ok", "hash_mismatch", "not_found"]
    assert rows[0]["name"] == "good" and rows[0]["records"] == 5000 and rows[0]["backends"] == ["file"]
    assert rows[0]["manifest_shards"] > 2 and rows[0]["shards_available"] == rows[0]["manifest_shards"] - 1
    assert rows[1]["name"] is None

    # deai-indexer probe: the lost shard flags the dataset (exit 3), in the storage views and on its page
    probe = subprocess.run([sys.executable, "-m", "deai_indexer", "probe", "--root", str(root), "--json",
                            "--hash-shards", "2"], capture_output=True, text=True, env=env_without_pythonpath())
    assert probe.returncode == 3, probe.stderr
    assert json.loads(probe.stdout)["flagged"] == [good.manifest_hash]
    with Catalog(root) as cat:
        status = cat.sql("SELECT * FROM storage_status").to_pylist()
        health = cat.sql("SELECT * FROM storage_health").to_pylist()
        listed = cat.sql("SELECT dataset_id, storage_flagged FROM datasets ORDER BY dataset_id").to_pylist()
        assert [(r["backend"], r["status"], r["missing"], r["hashed"] <= 2) for r in status] == [
            ("file", "missing", 1, True)]
        assert health[0]["flagged"] and health[0]["shards_fetchable"] == health[0]["shards_checked"] - 1
        assert [r["storage_flagged"] for r in listed] == [True, None, None]
        page = Pages(cat).dataset(listed[0]["dataset_id"])
        assert "flagged: " in page and "id='backends'" in page
        assert "<td>flagged</td>" in Pages(cat).datasets({"storage": "flagged"})
        assert "0 versions" in Pages(cat).datasets({"storage": "ok"})


def test_catalog_api_and_cli(w3, node, tmp_path):
    scenario = Scenario(w3, seed=10)
    scenario.run(datasets=4, purchases=200, versions=1)
    root = tmp_path / "index"
    Indexer(node.url, scenario.market.address, root, confirmations=0).sync()
    with Catalog(root) as cat:
        top = cat.top_datasets(3).to_pylist()
        assert len(top) == 3 and top[0]["gross"] >= top[1]["gross"] >= top[2]["gross"]
        best = top[0]["dataset_id"]
        history = cat.dataset_history(best).to_pylist()
        assert history[0]["event"] == "registered"
        assert sum(h["event"] == "purchased" for h in history) == sum(
            p["dataset_id"] == best for p in scenario.truth.purchases.values())
        buyer = scenario.buyers[0].address
        mine = cat.buyer_purchases(buyer).to_pylist()
        assert len(mine) == sum(p["buyer"] == buyer for p in scenario.truth.purchases.values())
        assert "purchases" in cat.tables() and "raw.purchased" in cat.tables()
        assert cat.sql("SELECT count(*) AS n FROM purchases", pandas=True)["n"][0] == 200
    env = dict(os.environ, DEAI_CATALOG=str(root))
    cli = [sys.executable, "-m", "deai_data.cli.main", "catalog"]
    out = subprocess.run([*cli, "top", "-n", "2", "--json"], env=env, capture_output=True, text=True, check=True)
    assert [r["dataset_id"] for r in json.loads(out.stdout)] == [t["dataset_id"] for t in top[:2]]
    out = subprocess.run([*cli, "sql", "SELECT status, count(*) AS n FROM purchases GROUP BY ALL ORDER BY 1",
                          "--format", "csv"], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.splitlines()[0] == '"status","n"'
    shown = subprocess.run([*cli, "show", str(best)], env=env, capture_output=True, text=True, check=True)
    assert "history:" in shown.stdout and "key_delivered" in shown.stdout
    missing = subprocess.run([*cli, "show", "999"], env=env, capture_output=True, text=True)
    assert missing.returncode == 14 and "not in the catalog" in missing.stderr

    indexer_cli = [sys.executable, "-m", "deai_indexer"]
    status = json.loads(subprocess.run([*indexer_cli, "status", "--root", str(root), "--rpc", node.url, "--market",
                                        scenario.market.address, "--json"], capture_output=True, text=True,
                                       check=True).stdout)
    assert status["lag"] == 0 and status["indexed"] == w3.eth.block_number
    (root / "catalog.duckdb").unlink()
    subprocess.run([*indexer_cli, "rebuild", "--root", str(root)], capture_output=True, check=True)
    with Catalog(root) as cat:
        assert cat.sql("SELECT count(*) AS n FROM purchases").to_pylist()[0]["n"] == 200
        assert cat.top_datasets(3).to_pylist() == top
        assert not cat.sql("SELECT sql FROM duckdb_views() WHERE contains(sql, $1)", [str(tmp_path)]).num_rows

    # The folder moves (or is copied to another machine) and opens as it is, from any working directory.
    moved = tmp_path / "elsewhere" / "copied-index"
    moved.parent.mkdir()
    shutil.copytree(root, moved)
    here = os.getcwd()
    try:
        os.chdir(tmp_path / "elsewhere")
        with Catalog(moved) as cat:
            assert cat.sql("SELECT count(*) AS n FROM purchases").to_pylist()[0]["n"] == 200
            assert cat.top_datasets(3).to_pylist() == top
            assert cat.sql("SELECT count(*) AS n FROM raw.purchased").to_pylist()[0]["n"] == 200
    finally:
        os.chdir(here)

    # An index built for the first market contract (state version 1: other events, other columns) is refused
    # with what to do, and left as it was: never mixed with the current market's rows.
    state = json.loads((root / "state.json").read_text())
    old = json.dumps({**state, "version": 1})
    (root / "state.json").write_text(old)
    refused = subprocess.run([*indexer_cli, "backfill", "0", "--root", str(root), "--rpc", node.url, "--market",
                              scenario.market.address], capture_output=True, text=True)
    assert refused.returncode != 0 and "first market contract" in refused.stderr and "new --root" in refused.stderr
    assert (root / "state.json").read_text() == old


def test_indexes_the_embedded_chain_and_the_documented_queries_run(tmp_path):
    """The in-process chain works as a source too (RpcClient(w3)); every SQL example in docs/catalog.md runs."""
    from deai_data.chain import connect, dev_accounts, dev_advance_time
    from deai_data.market import KeyAgent, Market

    chain = connect()
    treasury, owner, buyer = dev_accounts(chain)[:3]
    owner_keys = Keystore(tmp_path / "ks", passphrase="pw", scrypt_n=2**10)
    market = Market.deploy(chain, treasury, fee_bps=100)
    seller = Market(chain, market.address, owner, keystore=owner_keys)
    shopper = Market(chain, market.address, buyer, keystore=Keystore(tmp_path / "ks2", passphrase="b", scrypt_n=2**10))
    result = publish(pa.table({"x": list(range(30))}), store=tmp_path / "store", name="embedded", keystore=owner_keys,
                     author=owner)
    dataset_id = seller.register(result, price=10**15, challenge_period=600)
    purchases = [shopper.purchase(dataset_id).purchase_id for _ in range(3)]
    KeyAgent(seller, state_path=tmp_path / "agent.json", confirmations=0).run_once()
    dev_advance_time(chain, 601)
    assert seller.settle(purchases) == 3
    root = tmp_path / "index"
    Indexer(RpcClient(chain), market.address, root, confirmations=0).sync()
    with Catalog(root) as cat:
        row = cat.sql("SELECT * FROM datasets").to_pylist()[0]
        assert (row["name"], row["delivered"], row["settled"], row["manifest_status"]) == ("embedded", 3, 3, "ok")
        assert row["manifest_matches"] is True
        assert int(row["owner_revenue"]) == 3 * (10**15 - 10**13)
        assert [r["purchase_id"] for r in cat.buyer_purchases(buyer.address).to_pylist()] == purchases[::-1]
        docs = (Path(__file__).resolve().parent.parent / "docs" / "catalog.md").read_text()
        block = docs.split("```sql", 1)[1].split("```", 1)[0]
        statements = [s for s in block.split(";") if "SELECT" in s]
        assert len(statements) >= 5
        for statement in statements:
            cat.sql(statement)


def test_catalog_pushed_to_s3_is_queried_from_another_machine(w3, node, tmp_path, s3, monkeypatch):
    """The indexer copies its folder to an S3 bucket (the loopback S3 server) after every pass; an analyst with
    nothing but the bucket (another DEAI_HOME, no index folder) opens `Catalog("s3://...")`: the same answers.
    A second pass moves only what changed; a tampered or hostile copy is refused."""
    from deai_data import CatalogError, catalog_mirror
    scenario = Scenario(w3, seed=12)
    scenario.run(datasets=3, purchases=40, versions=1)
    root, uri = tmp_path / "index", f"s3://{s3.bucket('analytics')}/catalog"
    indexer_cli = [sys.executable, "-m", "deai_indexer", "backfill", "0", "--root", str(root), "--rpc", node.url,
                   "--market", scenario.market.address, "--confirmations", "0", "--push-to", uri]
    subprocess.run(indexer_cli, capture_output=True, text=True, check=True, env=dict(os.environ))
    with Catalog(root) as local:
        expected = local.top_datasets(3).to_pylist()

    monkeypatch.setenv("DEAI_HOME", str(tmp_path / "analyst"))
    with Catalog(uri) as remote:
        assert remote.top_datasets(3).to_pylist() == expected
        assert remote.sql("SELECT count(*) AS n FROM purchases").to_pylist()[0]["n"] == 40

    scenario.run(datasets=1, purchases=10, versions=0)
    subprocess.run(indexer_cli, capture_output=True, text=True, check=True, env=dict(os.environ))
    assert catalog_mirror.push(root, uri).copied == 0  # nothing changed since the CLI's push
    copy_dir = tmp_path / "analyst-copy"
    first = catalog_mirror.pull(uri, copy_dir)
    scenario.run(datasets=1, purchases=5, versions=0)
    Indexer(node.url, scenario.market.address, root, confirmations=0).sync()
    pushed = catalog_mirror.push(root, uri)
    pulled = catalog_mirror.pull(uri, copy_dir)
    assert 0 < pushed.copied < pushed.files and pulled.copied == pushed.copied and first.copied == first.files
    with Catalog(copy_dir) as remote:
        assert remote.sql("SELECT count(*) AS n FROM purchases").to_pylist()[0]["n"] == 55

    client, bucket = s3.client(), "analytics"
    victim = next(k["Key"] for k in client.list_objects_v2(Bucket=bucket, Prefix="catalog/events")["Contents"]
                  if k["Key"].endswith(".parquet"))
    client.put_object(Bucket=bucket, Key=victim, Body=b"not the file the listing names")
    with pytest.raises(CatalogError, match="does not match its listing"):
        catalog_mirror.pull(uri, tmp_path / "fresh-copy")
    listing = json.loads(client.get_object(Bucket=bucket, Key="catalog/mirror.json")["Body"].read())
    listing["files"]["../../outside.txt"] = "0" * 64
    client.put_object(Bucket=bucket, Key="catalog/mirror.json", Body=json.dumps(listing).encode())
    with pytest.raises(CatalogError, match="outside its folder"):
        catalog_mirror.pull(uri, tmp_path / "fresh-copy")
    assert not (tmp_path / "outside.txt").exists()


def test_probe_passes_are_merged_into_one_file_without_duplicates(tmp_path):
    """A probe every hour would leave thousands of files for the catalog view to open: past `COMPACT_AFTER` the
    older passes become one file, and a merge cut off before it removed its inputs is repaired by the next."""
    from datetime import datetime, timedelta, timezone

    import pyarrow.parquet as pq

    from deai_indexer.layout import write_atomic
    from deai_indexer.probe import SCHEMA, compact_probes, probes_dir

    start = datetime(2026, 12, 1, tzinfo=timezone.utc)
    folder = probes_dir(tmp_path)

    def a_pass(hour: int) -> dict:
        when = start + timedelta(hours=hour)
        row = {"probed_at": when, "manifest_hash": "ab" * 32, "shard": 0, "backend": "local", "locator": "file:///x",
               "state": "available" if hour % 5 else "missing", "size": 10, "confirmations": None, "hashed": False,
               "seconds": 0.01, "detail": ""}
        write_atomic(folder / f"{when:%Y%m%dT%H%M%SZ}.parquet", pa.Table.from_pylist([row], schema=SCHEMA))
        return row

    rows = [a_pass(h) for h in range(8)]
    assert compact_probes(tmp_path, keep=8) is None and len(list(folder.glob("*.parquet"))) == 8
    rows.append(a_pass(8))
    merged = compact_probes(tmp_path, keep=8)
    assert merged is not None and merged.name == "20261201T000000Z-20261201T070000Z.parquet"
    assert sorted(p.name for p in folder.glob("*.parquet")) == [merged.name, "20261201T080000Z.parquet"]
    assert pq.read_table(merged).to_pylist() == rows[:8]

    shutil.copy(merged, folder / "20261201T000000Z-20261201T050000Z.parquet")  # a merge cut off before cleaning up
    rows += [a_pass(h) for h in range(9, 16)]
    final = compact_probes(tmp_path, keep=8)
    assert final is not None and final.name == "20261201T000000Z-20261201T140000Z.parquet"
    assert pq.read_table(final).to_pylist() == rows[:15]  # each observation once, in time order
