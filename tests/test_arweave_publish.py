"""Publish -> open end to end on a real arlocal gateway with `store="ar://..."`, from Python and from the
command line: small objects bundled, large shards chunked, a lying gateway caught, Arweave CLI commands."""

from __future__ import annotations

import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from httpfaults import Fault, FaultProxy
from test_cli import cli

from deai_data import IntegrityError, Keystore, open_dataset, publish
from deai_data.storage import register_store
from deai_data.storage.arweave import ArweaveStore
from deai_data.storage.arweave.store import WALLET_KIND, reader_from_env


@pytest.fixture
def ar_reader(arlocal, monkeypatch):
    """`ar://` locators read through the session's arlocal (the registry's shared reader is rebuilt
    from DEAI_ARWEAVE_GATEWAYS, and rebuilt again from the original environment afterwards)."""
    monkeypatch.setenv("DEAI_ARWEAVE_GATEWAYS", arlocal.url)
    register_store("ar", reader_from_env, writer=ArweaveStore.from_uri, replace=True)
    yield
    monkeypatch.undo()
    register_store("ar", reader_from_env, writer=ArweaveStore.from_uri, replace=True)


@pytest.fixture
def wallet_in_keystore(funded_wallet):
    Keystore().put(WALLET_KIND, "owner", json.dumps(funded_wallet.to_jwk()).encode(),
                   {"address": funded_wallet.address})
    return "keystore:owner"


def images(rows: int, seed: int = 3) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table({"label": rng.integers(0, 10, rows), "image": [rng.bytes(3000) for _ in range(rows)]})


def test_publish_and_open_through_arlocal(arlocal, ar_reader, wallet_in_keystore):
    table = images(400)
    uri = f"ar://?gateway={arlocal.url}&wallet={wallet_in_keystore}&concurrency=1&bundle=300000"
    result = publish(table, store=uri, name="cats on the permaweb", shard_size=400_000)
    assert result.manifest_uri.startswith("ar://")
    sizes = [s.sealed_size for s in result.manifest.shards]
    assert min(sizes) <= 300_000 < max(sizes)  # some shards bundled as data items, some their own transaction
    arlocal.mine()

    dataset = open_dataset(result.manifest_uri, manifest_hash=result.manifest_hash)
    assert dataset.to_arrow().equals(table)
    assert dataset.verify().ok

    store = ArweaveStore([arlocal.url])
    found = list(store.find({"Seal-Id": result.manifest.seal_id}))
    kinds = sorted(o.tags["Object-Type"] for o in found)
    assert kinds == ["manifest"] + ["shard"] * len(sizes)
    manifest = next(o for o in found if o.tags["Object-Type"] == "manifest")
    assert manifest.locator == result.manifest_uri and manifest.tags["Manifest-Hash"] == result.manifest_hash


def test_a_lying_gateway_never_reaches_the_reader(arlocal, monkeypatch, wallet_in_keystore):
    table = images(200, seed=4)
    uri = f"ar://?gateway={arlocal.url}&wallet={wallet_in_keystore}&concurrency=1"
    result = publish(table, store=uri, name="tamper", shard_size=200_000)
    big = max(result.manifest.shards, key=lambda s: s.sealed_size)
    with FaultProxy(arlocal.url) as proxy:
        monkeypatch.setenv("DEAI_ARWEAVE_GATEWAYS", proxy.url)
        register_store("ar", reader_from_env, writer=ArweaveStore.from_uri, replace=True)
        try:
            dataset = open_dataset(result.manifest_uri, manifest_hash=result.manifest_hash)
            proxy.add(Fault("corrupt", match=big.locators[0].removeprefix("ar://"), at=5000, times=100))
            with pytest.raises(IntegrityError):
                dataset.read_shard(big.index)
        finally:
            monkeypatch.undo()
            register_store("ar", reader_from_env, writer=ArweaveStore.from_uri, replace=True)


def test_cli_wallet_estimate_publish_status_find(arlocal, tmp_path):
    created = json.loads(cli("arweave", "wallet", "new", "--name", "cli", "--json").stdout)
    assert "d" not in created and len(created["address"]) == 43
    arlocal.mint(created["address"], 10**15)
    shown = json.loads(cli("arweave", "wallet", "show", "--name", "cli", "--gateway", arlocal.url, "--json").stdout)
    assert shown["winston"] == 10**15
    assert cli("arweave", "wallet", "new", "--name", "cli", check=6).stderr.count("already holds") == 1

    quote = json.loads(cli("estimate", "1MiB", "--backend", "arweave", "--gateway", arlocal.url,
                           "--json").stdout)["quotes"][0]
    assert quote["winston"] == ArweaveStore([arlocal.url]).estimate(1 << 20)
    assert quote["total"] == f"{quote['winston'] / 10**12:.12f}".rstrip("0").rstrip(".")

    pq_file = tmp_path / "t.parquet"
    pq.write_table(images(50, seed=5), pq_file)
    store = f"ar://?gateway={arlocal.url}&wallet=keystore:cli&concurrency=1"
    published = json.loads(cli("publish", str(pq_file), "--store", store, "--json").stdout)
    locator = published["manifest_uri"]
    env = {**os.environ, "DEAI_ARWEAVE_GATEWAYS": arlocal.url}
    verified = json.loads(cli("verify", locator, "--manifest-hash", published["manifest_hash"], "--json",
                              env=env).stdout)
    assert verified["ok"] is True
    assert json.loads(cli("arweave", "status", locator, "--gateway", arlocal.url, "--json").stdout)["state"] \
        == "pending"
    arlocal.mine()
    assert json.loads(cli("arweave", "status", locator, "--gateway", arlocal.url, "--json").stdout)["confirmations"] \
        == 1
    seal_id = json.loads(cli("inspect", locator, "--json", env=env).stdout)["seal_id"]
    found = json.loads(cli("arweave", "find", "--seal-id", seal_id, "--gateway", arlocal.url, "--json").stdout)
    assert {o["tags"]["Object-Type"] for o in found["objects"]} == {"manifest", "shard"}
