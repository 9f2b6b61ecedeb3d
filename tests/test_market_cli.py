"""The market from the command line against a real anvil: owner and buyer as separate processes with
separate keystores, and a key agent (`deai-data serve-keys`) killed with SIGKILL mid-stream and restarted:
every purchase gets its key exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from chains import Token
from conftest import env_without_pythonpath
from web3 import Web3

from deai_data.chain.connect import anvil_dev_accounts
from deai_data.market import artifact

pytestmark = pytest.mark.slow

CLI = [sys.executable, "-m", "deai_data.cli.main"]


def _party(tmp_path: Path, name: str, key: str, rpc: str) -> dict[str, str]:
    home = tmp_path / name
    env = env_without_pythonpath()
    env.update(DEAI_HOME=str(home), DEAI_KEYSTORE=str(home / "keystore"), DEAI_KEYSTORE_PASSWORD=f"{name} pw",
               DEAI_ETH_PRIVATE_KEY=key, DEAI_RPC_URL=rpc)
    return env


def _publish_rows(owner: dict[str, str], tmp_path: Path, size: int) -> tuple[Path, dict]:
    """A folder with one random file of `size` bytes, published and signed by `owner` into tmp_path/store."""
    source = tmp_path / "rows"
    source.mkdir()
    (source / "a.bin").write_bytes(os.urandom(size))
    return source, _run(owner, "publish", str(source), "--store", str(tmp_path / "store"), "--sign")


def _run(env: dict[str, str], *args: str) -> dict:
    done = subprocess.run([*CLI, *args, "--json"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_cli_lifecycle_with_agent_killed_mid_stream(anvil, tmp_path):
    w3 = Web3(Web3.HTTPProvider(anvil.url))
    snapshot = w3.provider.make_request("evm_snapshot", [])["result"]
    try:
        _lifecycle(anvil, w3, tmp_path)
    finally:
        w3.provider.make_request("evm_revert", [snapshot])


def _lifecycle(anvil, w3: Web3, tmp_path: Path) -> None:
    dev = anvil_dev_accounts()
    owner = _party(tmp_path, "owner", dev[6].key.to_0x_hex(), anvil.url)
    buyer = _party(tmp_path, "buyer", dev[7].key.to_0x_hex(), anvil.url)
    source = tmp_path / "images"
    for label in ("cat", "dog"):
        (source / label).mkdir(parents=True)
        for i in range(40):
            (source / label / f"{i}.bin").write_bytes(os.urandom(700 + i))

    published = _run(owner, "publish", str(source), "--store", str(tmp_path / "store"), "--shard-size", "8KiB",
                     "--sign")
    market = _run(owner, "market", "deploy", "--fee-bps", "100")["market"]
    owner["DEAI_MARKET"] = buyer["DEAI_MARKET"] = market
    dataset_id = _run(owner, "market", "register", published["manifest_uri"], "--price", "0.01ether",
                      "--window", "3600", "--challenge-period", "600")["dataset_id"]
    shown = _run(buyer, "market", "show", str(dataset_id))
    assert shown["manifest_hash"] == published["manifest_hash"] and shown["price"] == 10**16

    purchases = [_run(buyer, "market", "buy", str(dataset_id))["purchase_id"] for _ in range(8)]
    contract = w3.eth.contract(address=market, abi=artifact()["abi"])

    def delivered_ids() -> list[int]:
        return [e["args"]["purchaseId"] for e in contract.events.KeyDelivered().get_logs(from_block=0)]

    state = tmp_path / "agent-state.json"
    agent = subprocess.Popen([*CLI, "serve-keys", "--confirmations", "0", "--poll", "0.2", "--state", str(state)],
                             env=owner, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not delivered_ids():
            assert agent.poll() is None, "the agent exited"
            assert time.monotonic() < deadline, "the agent delivered nothing"
            time.sleep(0.02)
    finally:
        os.kill(agent.pid, signal.SIGKILL)
        agent.wait()
    after_kill = delivered_ids()
    assert 1 <= len(after_kill) < len(purchases), "the kill must land mid-stream"

    _run(owner, "serve-keys", "--confirmations", "0", "--state", str(state), "--once")
    final = delivered_ids()
    assert sorted(final) == purchases, "every purchase delivered exactly once"

    assert _run(buyer, "market", "receive", str(purchases[-1]))["key_received"]
    out = tmp_path / "bought.parquet"
    got = _run(buyer, "get", published["manifest_uri"], "--manifest-hash", published["manifest_hash"],
               "--out", str(out))
    assert got["records"] == 80 and pq.read_table(out).num_rows == 80

    early = subprocess.run([*CLI, "market", "withdraw"], env=owner, capture_output=True, text=True, timeout=120)
    assert early.returncode == 12 and "NothingToWithdraw" in early.stderr  # payments wait out the challenge period
    w3.provider.make_request("evm_increaseTime", [601])
    w3.provider.make_request("evm_mine", [])
    assert _run(owner, "market", "settle", *map(str, purchases[:3]))["settled"] == 3
    _run(owner, "serve-keys", "--confirmations", "0", "--state", str(state), "--once")  # settles the rest
    withdrawn = _run(owner, "market", "withdraw")["withdrawn"]
    assert withdrawn == len(purchases) * (10**16 - 10**14)

    refused = subprocess.run([*CLI, "market", "refund", str(purchases[0])], env=buyer, capture_output=True,
                             text=True, timeout=120)
    assert refused.returncode == 12 and "WrongStatus" in refused.stderr


def test_cli_pays_settles_and_withdraws_in_an_erc20(anvil, tmp_path):
    """`market register --token`, `market buy` (approval, then the purchase), `market buy --permit` (one
    transaction), `serve-keys`, `market withdraw --token`, against a real ERC-20 on anvil; a buyer short of the
    token is told so and sends nothing; then a second version and `market show --latest`."""
    w3 = Web3(Web3.HTTPProvider(anvil.url))
    snapshot = w3.provider.make_request("evm_snapshot", [])["result"]
    try:
        dev = anvil_dev_accounts()
        owner = _party(tmp_path, "owner", dev[6].key.to_0x_hex(), anvil.url)
        buyer = _party(tmp_path, "buyer", dev[7].key.to_0x_hex(), anvil.url)
        token = Token(w3, dev[5], "TestToken")
        token.mint(dev[7].address, 3 * 10**6)
        source, published = _publish_rows(owner, tmp_path, 5000)
        owner["DEAI_MARKET"] = buyer["DEAI_MARKET"] = _run(owner, "market", "deploy", "--fee-bps", "100")["market"]
        dataset_id = _run(owner, "market", "register", published["manifest_uri"], "--price", "2000000", "--token",
                          token.address, "--window", "3600", "--challenge-period", "600")["dataset_id"]
        assert _run(buyer, "market", "show", str(dataset_id))["payment_token"] == token.address

        _run(buyer, "market", "buy", str(dataset_id))
        assert token.balance(dev[7].address) == 10**6
        short = subprocess.run([*CLI, "market", "buy", str(dataset_id)], env=buyer, capture_output=True, text=True,
                               timeout=120)
        assert short.returncode == 12 and "holds 1000000 of the payment token" in short.stderr
        token.mint(dev[7].address, 10**6)
        sent = w3.eth.get_transaction_count(dev[7].address)
        _run(buyer, "market", "buy", str(dataset_id), "--permit")  # EIP-2612: one transaction, no approve
        assert w3.eth.get_transaction_count(dev[7].address) == sent + 1 and token.balance(dev[7].address) == 0
        _run(owner, "serve-keys", "--confirmations", "0", "--state", str(tmp_path / "agent.json"), "--once")
        w3.provider.make_request("evm_increaseTime", [601])
        w3.provider.make_request("evm_mine", [])
        _run(owner, "serve-keys", "--confirmations", "0", "--state", str(tmp_path / "agent.json"), "--once")
        assert _run(owner, "market", "withdraw", "--token", token.address)["withdrawn"] == 4 * 10**6 * 99 // 100
        assert token.balance(dev[6].address) == 4 * 10**6 * 99 // 100

        (source / "b.bin").write_bytes(os.urandom(3000))  # a second version, replacing the first
        newer = _run(owner, "publish", str(source), "--store", str(tmp_path / "store"), "--sign")
        v2 = _run(owner, "market", "register", newer["manifest_uri"], "--price", "1", "--supersedes",
                  str(dataset_id))["dataset_id"]
        latest = _run(buyer, "market", "show", str(dataset_id), "--latest")
        assert latest["dataset_id"] == v2 and latest["lineage"] == [dataset_id, v2]
    finally:
        w3.provider.make_request("evm_revert", [snapshot])


def test_cli_splits_revenue_pays_a_referrer_and_sets_a_royalty(anvil, tmp_path):
    """`market register --split --lock-split`, `market split`, `market buy --referrer`, `market royalty`, then each
    payee and the front-end pull their own balance with `market withdraw`, on a real anvil."""
    w3 = Web3(Web3.HTTPProvider(anvil.url))
    with anvil.rolled_back():
        dev = anvil_dev_accounts()
        owner, buyer, coauthor, frontend = (_party(tmp_path, name, dev[i].key.to_0x_hex(), anvil.url)
                                            for i, name in ((6, "owner"), (7, "buyer"), (8, "coauthor"), (9, "fe")))
        _, published = _publish_rows(owner, tmp_path, 4000)
        market = _run(owner, "market", "deploy")["market"]
        for party in (owner, buyer, coauthor, frontend):
            party["DEAI_MARKET"] = market
        dataset_id = str(_run(owner, "market", "register", published["manifest_uri"], "--price", "1000000",
                              "--window", "3600", "--challenge-period", "600", "--split", f"{dev[6].address}=6000",
                              "--split", f"{dev[8].address}=4000", "--lock-split")["dataset_id"])
        split = _run(buyer, "market", "split", dataset_id)  # anyone can look
        assert split["locked"] and split["shares"] == {dev[6].address: 6000, dev[8].address: 4000}
        assert _run(owner, "market", "royalty", dataset_id, dev[6].address, "--bps", "250")["bps"] == 250

        bought = _run(buyer, "market", "buy", dataset_id, "--referrer", dev[9].address, "--referrer-bps", "100")
        assert bought["amount"] == 10**6
        agent = ("serve-keys", "--confirmations", "0", "--state", str(tmp_path / "agent.json"), "--once")
        _run(owner, *agent)
        w3.provider.make_request("evm_increaseTime", [601])
        w3.provider.make_request("evm_mine", [])
        _run(owner, *agent)  # settles
        assert _run(owner, "market", "withdraw")["withdrawn"] == 600_000
        assert _run(coauthor, "market", "withdraw")["withdrawn"] == 400_000
        assert _run(frontend, "market", "withdraw")["withdrawn"] == 10_000
        refused = subprocess.run([*CLI, "market", "split", dataset_id, "--clear"], env=owner, capture_output=True,
                                 text=True, timeout=120)
        assert refused.returncode != 0 and "SplitLocked" in refused.stderr


def test_cli_sells_a_subscription_and_the_subscriber_claims_each_new_version(anvil, tmp_path):
    """`market plan`, `market subscribe`, `market claim` (every new version), `serve-keys` delivering the claims,
    `market receive`, `market show --subscription`, and a claim after the term refused, on a real anvil."""
    w3 = Web3(Web3.HTTPProvider(anvil.url))
    with anvil.rolled_back():
        dev = anvil_dev_accounts()
        owner, subscriber = (_party(tmp_path, name, dev[i].key.to_0x_hex(), anvil.url)
                             for i, name in ((6, "owner"), (7, "subscriber")))
        source, published = _publish_rows(owner, tmp_path, 3000)
        owner["DEAI_MARKET"] = subscriber["DEAI_MARKET"] = _run(owner, "market", "deploy")["market"]
        first = str(_run(owner, "market", "register", published["manifest_uri"], "--price", "1000", "--window",
                         "3600", "--challenge-period", "600")["dataset_id"])
        plan = _run(owner, "market", "plan", first, "0.5ether", "--term", "1d")
        assert (plan["price"], plan["term"]) == (5 * 10**17, 86_400)
        sub = _run(subscriber, "market", "subscribe", first)
        (source / "b.bin").write_bytes(os.urandom(2000))  # the next day's version
        newer = _run(owner, "publish", str(source), "--store", str(tmp_path / "store"), "--sign")
        second = _run(owner, "market", "register", newer["manifest_uri"], "--price", "1000", "--supersedes",
                      first)["dataset_id"]

        claimed = _run(subscriber, "market", "claim", str(sub["subscription_id"]))
        assert [c["dataset_id"] for c in claimed["claims"]] == [second]
        _run(owner, "serve-keys", "--confirmations", "0", "--state", str(tmp_path / "agent.json"), "--once")
        assert _run(subscriber, "market", "receive", str(claimed["claims"][0]["purchase_id"]))["key_received"]
        shown = _run(subscriber, "market", "show", str(sub["subscription_id"]), "--subscription")
        assert (shown["status"], shown["open_claims"], shown["price"]) == ("subscribed", 1, 5 * 10**17)
        assert _run(subscriber, "market", "claim", str(sub["subscription_id"]))["claims"] == []

        w3.provider.make_request("evm_increaseTime", [86_401])
        w3.provider.make_request("evm_mine", [])
        late = subprocess.run([*CLI, "market", "claim", str(sub["subscription_id"]), str(second)], env=subscriber,
                              capture_output=True, text=True, timeout=120)
        assert late.returncode != 0 and "TermOver" in late.stderr
