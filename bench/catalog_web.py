"""Page times of the catalog's web pages on a big synthetic catalog (not a test).

    .venv/bin/python bench/catalog_web.py [--purchases 10000000] [--runs 15]

Writes the synthetic catalog of bench/indexer.py (10 M purchases over 10,000 datasets, Zipf-distributed), serves
it with `deai_data.catalog.web.make_server` on 127.0.0.1 in this process, and times whole HTTP GETs of each page
(query, rendering, transfer; a browser's layout of the HTML is not included) from a client on the same machine:
p50 / p90 of `--runs` loads after 2 warm-ups. Goal: p50 under 300 ms for every page.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from deai_data import Catalog
from deai_data.catalog.web import make_server
from indexer import synthetic_catalog


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--purchases", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "index"
        started = time.perf_counter()
        synthetic_catalog(root, args.purchases)
        print(f"synthetic catalog: {args.purchases:,} purchases, written in {time.perf_counter() - started:.0f} s",
              file=sys.stderr)
        with Catalog(root) as catalog:
            busiest = catalog.top_datasets(1).to_pylist()[0]["dataset_id"]
            pages = {"market": "/", "datasets": "/datasets", "datasets, search": "/datasets?q=17",
                     "datasets, sorted by name": "/datasets?sort=name&order=asc",
                     f"dataset {busiest} (the busiest)": f"/datasets/{busiest}", "dataset 9000": "/datasets/9000"}
            server = make_server(catalog, port=0)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            base = f"http://127.0.0.1:{server.server_address[1]}"
            report = {}
            try:
                for name, path in pages.items():
                    times = []
                    for i in range(args.runs + 2):
                        t = time.perf_counter()
                        with urllib.request.urlopen(base + path, timeout=120) as reply:
                            size = len(reply.read())
                        if i >= 2:
                            times.append(time.perf_counter() - t)
                    times.sort()
                    report[name] = {"p50_ms": round(statistics.median(times) * 1000, 1),
                                    "p90_ms": round(times[int(len(times) * 0.9)] * 1000, 1), "bytes": size}
                    print(f"{name:<32} p50 {report[name]['p50_ms']:>7} ms  p90 {report[name]['p90_ms']:>7} ms  "
                          f"{size:,} bytes", file=sys.stderr)
            finally:
                server.shutdown()
                server.server_close()
        print(json.dumps({"purchases": args.purchases, "runs": args.runs, "pages": report}, indent=2))


if __name__ == "__main__":
    main()
