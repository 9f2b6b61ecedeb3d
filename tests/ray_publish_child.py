"""A Ray publish driven from its own process, for test_ray.py to kill with SIGKILL mid-publish.

usage: ray_publish_child.py CLUSTER_ADDRESS STORE JOURNALS
Prints one line per finished shard (slowly: the test kills it between lines).
"""

from __future__ import annotations

import sys
import time

import numpy as np
import pyarrow as pa
import ray

KEY, SEAL_ID = bytes(range(32)), bytes(range(100, 132))
SHARD_SIZE = 40_000


def source_table() -> pa.Table:
    rng = np.random.default_rng(7)
    return pa.table({"i": np.arange(3000), "blob": [rng.bytes(int(n)) for n in rng.integers(1, 800, 3000)]})


def settings(store: str, journals: str) -> dict:
    return {"store": store, "name": "ray-resume", "key": KEY, "seal_id": SEAL_ID, "shard_size": SHARD_SIZE,
            "keystore": False, "journal_dir": journals}


if __name__ == "__main__":
    address, store, journals = sys.argv[1:4]
    ray.init(address=address, log_to_driver=False, configure_logging=False)
    from deai_data.ray import publish

    def report(progress) -> None:
        print(f"shard {progress.shards}", flush=True)
        time.sleep(0.3)

    publish(ray.data.from_arrow(source_table()).repartition(7), workers=1, progress=report,
            **settings(store, journals))
    print("finished", flush=True)
