"""A real IPFS node for the tests: js-ipfs (services/ipfs/node_modules, installed by `make services-deps`),
initialised in a temporary repo with no bootstrap peers, no MDNS, no swarm listeners, API and gateway on
free loopback ports, and run `--offline`. A missing install is a test failure, never a skip. Stopped by
the PID this module started.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import requests
from chains import free_port, stop_process, wait_ready

REPO = Path(__file__).resolve().parent.parent
SERVICES = REPO / "services" / "ipfs"
CLI = SERVICES / "node_modules" / "ipfs" / "src" / "cli.js"


class JsIpfs:
    """One js-ipfs daemon; `api` is its RPC base URL, `gateway` its (path) gateway."""

    def __init__(self) -> None:
        if not CLI.is_file():
            raise RuntimeError(f"js-ipfs is not installed in {SERVICES}: run `make services-deps`")
        self.root = Path(tempfile.mkdtemp(prefix="jsipfs-"))
        self.env = {**os.environ, "IPFS_PATH": str(self.root / "repo"),
                    "NODE_OPTIONS": f"--require {SERVICES / 'polyfill.js'}"}
        subprocess.run(["node", str(CLI), "init", "--empty-repo"], env=self.env, check=True, capture_output=True,
                       timeout=120)
        api_port, gateway_port, rpc_port = free_port(), free_port(), free_port()
        config_path = self.root / "repo" / "config"
        config = json.loads(config_path.read_text())
        config["Bootstrap"] = []
        config["Addresses"].update({"Swarm": [], "API": f"/ip4/127.0.0.1/tcp/{api_port}",
                                    "Gateway": f"/ip4/127.0.0.1/tcp/{gateway_port}",
                                    "RPC": f"/ip4/127.0.0.1/tcp/{rpc_port}/ws", "Delegates": []})
        config.setdefault("Discovery", {}).update({"MDNS": {"Enabled": False}, "webRTCStar": {"Enabled": False}})
        config_path.write_text(json.dumps(config))
        self.api = f"http://127.0.0.1:{api_port}"
        self.gateway = f"http://127.0.0.1:{gateway_port}"
        self.log = open(self.root / "daemon.log", "w+b")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(["node", str(CLI), "daemon", "--offline", "--enable-preload=false"],
                                     env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        probe = lambda: requests.post(f"{self.api}/api/v0/version", timeout=2).raise_for_status()  # noqa: E731
        if not wait_ready(self.proc, probe, 90, poll=0.2):
            output = self.output()[-3000:]
            self.stop()
            raise RuntimeError(f"js-ipfs did not start: {output}")

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def add(self, path: Path, *, chunk_size: int = 262144) -> str:
        """`ipfs add --cid-version=1 --raw-leaves` through the node's own CLI: the reference CID."""
        done = requests.post(f"{self.api}/api/v0/add?cid-version=1&raw-leaves=true&chunker=size-{chunk_size}"
                             "&cid-base=base32&pin=false",
                             files={"file": ("data.bin", path.read_bytes(), "application/octet-stream")}, timeout=300)
        done.raise_for_status()
        return json.loads(done.text.splitlines()[-1])["Hash"]

    def stop(self) -> None:
        stop_process(self.proc, 15)
        self.log.close()
        shutil.rmtree(self.root, ignore_errors=True)
