"""Chains for the market tests: the embedded in-process EVM and a real anvil started on a free loopback port; test
ERC-20 tokens deployed on either.

anvil comes from contracts/node_modules (installed by `make contracts-deps`); a missing binary is a test
failure, never a skip. It is stopped by the PID this module started.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import requests
from eth_account.signers.local import LocalAccount
from web3 import Web3

from deai_data.chain import RevertDecoder, Transactor

REPO = Path(__file__).resolve().parent.parent
# real ERC-20s (OpenZeppelin's), compiled from contracts/test/helpers/Tokens.sol by `make artifacts`
TOKENS = json.loads((REPO / "tests" / "data" / "tokens.json").read_text())
ANVIL = REPO / "contracts" / "node_modules" / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_process(proc: subprocess.Popen, grace: float = 5.0) -> None:
    """SIGTERM the process this test harness started (by its PID), SIGKILL it after `grace` seconds."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


def wait_ready(proc: subprocess.Popen, probe: Callable[[], object], timeout: float, poll: float = 0.1) -> bool:
    """Call `probe` (an HTTP request) until it succeeds: True; False when the process died or `timeout`
    seconds passed first."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            probe()
            return True
        except requests.RequestException:
            if proc.poll() is not None or time.monotonic() > deadline:
                return False
            time.sleep(poll)


class Anvil:
    """One anvil process on 127.0.0.1; `url` is its JSON-RPC endpoint."""

    def __init__(self, *extra: str) -> None:
        if not ANVIL.is_file():
            raise RuntimeError(f"anvil is not installed at {ANVIL}: run `make contracts-deps` (npm ci in contracts/)")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([str(ANVIL), "--host", "127.0.0.1", "--port", str(self.port), "--silent",
                                      *extra], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        probe = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
        if not wait_ready(self.proc, lambda: requests.post(self.url, json=probe, timeout=1).raise_for_status(), 20,
                          poll=0.05):
            err = self.proc.stderr.read().decode() if self.proc.stderr else ""
            self.stop()
            raise RuntimeError(f"anvil did not start: {err}")

    def rpc(self, method: str, *params: object) -> object:
        reply = requests.post(self.url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)},
                              timeout=30).json()
        return reply["result"]

    @contextmanager
    def rolled_back(self) -> Iterator[None]:
        """Whatever happens on the node inside the block is undone after it (evm_snapshot / evm_revert)."""
        snapshot = self.rpc("evm_snapshot")
        try:
            yield
        finally:
            self.rpc("evm_revert", snapshot)

    def stop(self) -> None:
        stop_process(self.proc)
        if self.proc.stderr:
            self.proc.stderr.close()


class Token:
    """A deployed test token (TestToken or FeeOnTransferToken: open `mint`)."""

    def __init__(self, w3: Web3, deployer: LocalAccount, name: str) -> None:
        abi = TOKENS[name]["abi"]
        self.tx = Transactor(w3, deployer, RevertDecoder(abi))
        factory = w3.eth.contract(abi=abi, bytecode=TOKENS[name]["bytecode"])
        self.address = self.tx.send(factory.constructor(), f"deploy {name}")["contractAddress"]
        self.contract = w3.eth.contract(address=self.address, abi=abi)

    def mint(self, to: str, amount: int) -> None:
        self.tx.send(self.contract.functions.mint(to, amount), "mint")

    def balance(self, account: str) -> int:
        return self.contract.functions.balanceOf(account).call()
