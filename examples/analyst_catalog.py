"""The analyst's view: index a market's events into Parquet + DuckDB, query the catalog with SQL, and
draw the revenue per dataset into a chart (PNG).

    python examples/analyst_catalog.py [--chart revenue.png]

Builds a small market first (three datasets, a dozen purchases) on the embedded in-process chain, or
on the node at $DEAI_RPC_URL (a development node such as anvil: its dev accounts play the parts), and
indexes it with deai-indexer. For a market you did not make, run
`deai-indexer run --rpc URL --market ADDRESS --root deai-index` and open `Catalog("deai-index")`.
Needs the `catalog` and `charts` extras (DuckDB, matplotlib).
"""

import argparse
import os
import tempfile
from pathlib import Path

import pyarrow as pa
from matplotlib.figure import Figure  # no pyplot: draws to a file, never to a display

from deai_data import Catalog, KeyAgent, Keystore, Market, connect, publish
from deai_data.chain import dev_accounts, dev_advance_time
from deai_indexer import Indexer, RpcClient

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("--chart", default="revenue.png", help="where to write the chart (default revenue.png)")
args = parser.parse_args()

with tempfile.TemporaryDirectory() as tmp:
    tmp = Path(tmp)
    rpc = os.environ.get("DEAI_RPC_URL")
    w3 = connect(rpc)
    treasury, owner, *buyers = dev_accounts(w3)[:6]
    owner_keys = Keystore(tmp / "owner-keystore", passphrase="owner")
    market = Market.deploy(w3, treasury, fee_bps=250)
    seller = Market(w3, market.address, owner, keystore=owner_keys)
    ids = []
    for n, name in enumerate(["sentences", "images", "audio"]):
        table = pa.table({"id": list(range(100 * (n + 1)))})
        result = publish(table, store=tmp / "store", name=name, keystore=owner_keys, author=owner)
        ids.append(seller.register(result, price=(n + 1) * 10**16, challenge_period=600))
    for i, buyer in enumerate(buyers * 3):
        Market(w3, market.address, buyer, keystore=Keystore(tmp / f"buyer-{i}", passphrase="b")).purchase(ids[i % 3])
    agent = KeyAgent(seller, state_path=tmp / "agent.json", confirmations=0)  # a dev chain: no reorgs
    agent.run_once()  # delivers every key
    dev_advance_time(w3, 601)  # past the 10-minute challenge period (a dev chain's clock)
    agent.run_once()  # settles: the owner is paid

    Indexer(RpcClient(rpc or w3), market.address, tmp / "index", confirmations=0).sync()
    with Catalog(tmp / "index") as catalog:
        print("top datasets by revenue:")
        top = catalog.top_datasets(3).to_pylist()
        for row in top:
            print(f"  {row['dataset_id']}  {row['name']:<10} {row['sales']} sales  {int(row['gross']) / 1e18:.2f} ETH")
        days = catalog.sql("SELECT day, sum(sales) AS sales, sum(owner_revenue) AS revenue FROM revenue_daily "
                           "GROUP BY ALL ORDER BY day", pandas=True)
        print(days.to_string(index=False))
        earned = int(catalog.sql("SELECT sum(owner_revenue) AS r FROM datasets").column("r")[0].as_py())
    on_chain = seller.withdrawable()
    assert earned == on_chain, (earned, on_chain)
    print(f"catalog revenue {earned} wei verified against the owner's on-chain balance")

    figure = Figure(figsize=(6, 3.5), dpi=100)
    axes = figure.subplots()
    axes.bar([f"#{r['dataset_id']} {r['name']}" for r in top], [int(r["gross"]) / 1e18 for r in top], color="#3b6ea5")
    axes.set_ylabel("gross sales (ETH)")
    axes.set_title("Revenue per dataset (deai-data catalog)")
    figure.tight_layout()
    figure.savefig(args.chart)
    print(f"chart written to {args.chart}")
