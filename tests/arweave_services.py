"""Arweave services for the tests: a real arlocal gateway on a free loopback port, and arweave-js
(the reference client) through node.

Both come from services/arweave/node_modules (installed by `make services-deps`); a missing install is
a test failure, never a skip. arlocal is stopped by the PID this module started.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import requests
from chains import free_port, stop_process, wait_ready

REPO = Path(__file__).resolve().parent.parent
SERVICES = REPO / "services" / "arweave"
TOOL = SERVICES / "arweave-js.js"


def _require_install() -> None:
    if not (SERVICES / "node_modules" / "arlocal").is_dir():
        raise RuntimeError(f"arlocal is not installed in {SERVICES}: run `make services-deps`")


class Arlocal:
    """One arlocal process on 127.0.0.1 with its own database folder; `url` is the gateway."""

    def __init__(self) -> None:
        _require_install()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.root = Path(tempfile.mkdtemp(prefix="arlocal-"))
        self.log = open(self.root / "arlocal.log", "w+b")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(["node", str(SERVICES / "arlocal.js"), str(self.port), str(self.root / "db")],
                                     stdout=self.log, stderr=subprocess.STDOUT, cwd=self.root)  # its request log: there
        if not wait_ready(self.proc, lambda: requests.get(f"{self.url}/info", timeout=1).raise_for_status(), 60):
            self.log.seek(0)
            output = self.log.read().decode()[-2000:]
            self.stop()
            raise RuntimeError(f"arlocal did not start: {output}")

    def mine(self, blocks: int = 1) -> None:
        requests.get(f"{self.url}/mine/{blocks}", timeout=30).raise_for_status()

    def mint(self, address: str, winston: int = 10**18) -> None:
        requests.get(f"{self.url}/mint/{address}/{winston}", timeout=30).raise_for_status()

    def stop(self) -> None:
        stop_process(self.proc, 10)
        self.log.close()
        shutil.rmtree(self.root, ignore_errors=True)


def arweave_js(*args: str | Path, timeout: float = 300) -> dict | list:
    """Run one command of services/arweave/arweave-js.js; returns its JSON answer."""
    _require_install()
    done = subprocess.run(["node", str(TOOL), *map(str, args)], capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"arweave-js {args[0]} failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout)
