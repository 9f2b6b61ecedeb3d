"""A publish run in its own process, killed with SIGKILL at a chosen point (used by test_resume.py).

usage: publish_child.py STORE JOURNALS KEYSTORE MODE N
MODE: none (finish and print the result as JSON), after-shards (die once N shards are done),
      in-put (die halfway through writing the N-th object, 1-based; the manifest is the last object).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa

from deai_data import Keystore, LocalStore, publish


def source_table() -> pa.Table:
    rng = np.random.default_rng(42)
    return pa.table({"i": np.arange(6000), "blob": [rng.bytes(100) for _ in range(6000)]})


class DyingStore(LocalStore):
    """A real LocalStore that SIGKILLs its own process halfway through the N-th write."""

    def __init__(self, root: str, die_at: int) -> None:
        super().__init__(root)
        self.calls = 0
        self.die_at = die_at

    def put(self, data, *, sha256=None, labels=None):
        self.calls += 1
        if self.calls == self.die_at:
            fd, _tmp = self._tempfile()
            os.write(fd, bytes(memoryview(data)[: len(data) // 2]))
            os.kill(os.getpid(), signal.SIGKILL)
        return super().put(data, sha256=sha256, labels=labels)


def main() -> None:
    store_dir, journals, keystore_dir, mode, n = sys.argv[1:6]
    n = int(n)
    store = DyingStore(store_dir, n) if mode == "in-put" else LocalStore(store_dir)

    def progress(p):
        if mode == "after-shards" and p.shards >= n:
            os.kill(os.getpid(), signal.SIGKILL)

    result = publish(source_table(), store=store, name="resumable", shard_size=60_000, journal_dir=journals,
                     keystore=Keystore(keystore_dir), workers=2, progress=progress)
    print(json.dumps({"manifest_uri": result.manifest_uri, "manifest_hash": result.manifest_hash,
                      "sealed": result.sealed_shards, "reused": result.reused_shards,
                      "shards": [s.sha256 for s in result.manifest.shards]}))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    main()
