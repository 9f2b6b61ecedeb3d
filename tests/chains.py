"""Chains for the market tests: the embedded in-process EVM and a real anvil started on a free loopback port.

anvil comes from contracts/node_modules (installed by `make contracts-deps`); a missing binary is a test
failure, never a skip. It is stopped by the PID this module started.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
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

