"""Every script in examples/ runs as written."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import REPO

from deai_data import Keystore, publish

EXAMPLES = sorted((REPO / "examples").glob("*.py"))


@pytest.mark.slow
@pytest.mark.parametrize("script", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs(script, tmp_path):
    assert "verified" in run_example(script.name, cwd=tmp_path).stdout
    # The analyst's chart is its output; torch keeps a compile cache in TMPDIR (not the script's doing).
    left = [p.name for p in tmp_path.iterdir() if p.suffix != ".png" and not p.name.startswith("torchinductor")]
    assert not left, f"{script.name} left temporary files behind: {left}"


def test_there_are_examples():
    assert EXAMPLES


def test_market_example_against_anvil(anvil, tmp_path):
    """The same script against a real node (it reads DEAI_RPC_URL)."""
    with anvil.rolled_back():
        out = run_example("market_lifecycle.py", cwd=tmp_path, env=dict(os.environ, DEAI_RPC_URL=anvil.url)).stdout
    assert "buyer opened 1000 records" in out


def test_subscription_example_against_anvil(anvil, tmp_path):
    """The subscription's life against a real node: two new versions claimed, delivered, opened; the owner paid."""
    with anvil.rolled_back():
        out = run_example("subscription_versions.py", cwd=tmp_path,
                          env=dict(os.environ, DEAI_RPC_URL=anvil.url)).stdout
    assert "claimed versions [2, 3] and opened the newest: 6000 records" in out and "subscription settled" in out


def test_analyst_example_against_anvil_draws_a_chart(anvil, tmp_path):
    from PIL import Image
    chart = tmp_path / "chart.png"
    with anvil.rolled_back():
        out = run_example("analyst_catalog.py", "--chart", str(chart), cwd=tmp_path,
                          env=dict(os.environ, DEAI_RPC_URL=anvil.url)).stdout
    assert "verified against the owner's on-chain balance" in out
    with Image.open(chart) as image:
        assert image.format == "PNG" and image.size == (600, 350)
        assert len(image.getcolors(maxcolors=1 << 16) or []) > 10  # bars, axes and text, not a blank page


def test_trainer_example_streams_from_ipfs_and_resumes(ipfs_node, tmp_path):
    import numpy as np
    rng = np.random.default_rng(3)
    features = rng.normal(size=(2048, 8)).astype(np.float32)
    result = publish({"features": features, "label": (features[:, 0] > 0).astype(np.int64)},
                     store=f"ipfs://?api={ipfs_node.api}", name="trainer-on-ipfs", shard_size=16 << 10)
    out = run_example("train_streaming.py", result.manifest_uri, cwd=tmp_path,
                      env=dict(os.environ, DEAI_IPFS_API=ipfs_node.api)).stdout
    assert "stopped after 20 batches" in out and "12 more batches: 32 in the epoch" in out


def run_example(name: str, *args: str, cwd, env: dict | None = None) -> subprocess.CompletedProcess:
    env = dict(env or os.environ, TMPDIR=str(cwd))  # whatever a script leaves in temp stays in the test's folder
    proc = subprocess.run([sys.executable, str(REPO / "examples" / name), *args], capture_output=True, text=True,
                          timeout=300, cwd=cwd, env=env, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    return proc


def test_owner_example_publishes_to_ipfs(ipfs_node, tmp_path):
    out = run_example("publish_folder.py", "--store", f"ipfs://?api={ipfs_node.api}", cwd=tmp_path).stdout
    assert "manifest uri  ipfs://baf" in out and "verified" in out and "'cats': " in out


def test_owner_example_publishes_to_arweave(arlocal, funded_wallet, tmp_path):
    from deai_data.storage.arweave.store import WALLET_KIND
    Keystore().put(WALLET_KIND, "owner", json.dumps(funded_wallet.to_jwk()).encode(),
                   {"address": funded_wallet.address})
    store = f"ar://?gateway={arlocal.url}&wallet=keystore:owner&concurrency=1&bundle=100000"
    out = run_example("publish_folder.py", "--store", store, cwd=tmp_path).stdout
    assert "manifest uri  ar://" in out and "verified" in out
