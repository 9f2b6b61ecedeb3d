"""Every script in examples/ runs as written."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import REPO

EXAMPLES = sorted((REPO / "examples").glob("*.py"))


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs(script, tmp_path):
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300,
                          cwd=tmp_path, env=dict(os.environ, TMPDIR=str(tmp_path)), stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    assert "verified" in proc.stdout


def test_there_are_examples():
    assert EXAMPLES


def test_market_example_against_anvil(anvil, tmp_path):
    """The same script against a real node (it reads DEAI_RPC_URL)."""
    from web3 import Web3
    w3 = Web3(Web3.HTTPProvider(anvil.url))
    snapshot = w3.provider.make_request("evm_snapshot", [])["result"]
    try:
        proc = subprocess.run([sys.executable, str(REPO / "examples" / "market_lifecycle.py")], capture_output=True,
                              text=True, timeout=300, cwd=tmp_path, env=dict(os.environ, DEAI_RPC_URL=anvil.url),
                              stdin=subprocess.DEVNULL)
    finally:
        w3.provider.make_request("evm_revert", [snapshot])
    assert proc.returncode == 0, proc.stderr
    assert "buyer opened 1000 records" in proc.stdout
