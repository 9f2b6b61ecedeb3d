"""The analyst's view: index a market's events into Parquet + DuckDB and query the catalog with SQL.

Builds a small market on the embedded in-process chain (three datasets, a dozen purchases), indexes it
with deai-indexer, and asks the catalog the usual questions. Against a real node, run
`deai-indexer run --rpc URL --market ADDRESS --root deai-index` and open `Catalog("deai-index")`.
"""

import tempfile
from pathlib import Path

import pyarrow as pa

from deai_data import Catalog, KeyAgent, Keystore, Market, connect, publish
from deai_data.chain import dev_accounts
from deai_indexer import Indexer, RpcClient

with tempfile.TemporaryDirectory() as tmp:
    tmp = Path(tmp)
    w3 = connect()
    treasury, owner, *buyers = dev_accounts(w3)[:6]
    owner_keys = Keystore(tmp / "owner-keystore", passphrase="owner")
    market = Market.deploy(w3, treasury, fee_bps=250)
    seller = Market(w3, market.address, owner, keystore=owner_keys)
    for n, name in enumerate(["sentences", "images", "audio"]):
        table = pa.table({"id": list(range(100 * (n + 1)))})
        result = publish(table, store=tmp / "store", name=name, keystore=owner_keys)
        seller.register(result, price=(n + 1) * 10**16)
    for i, buyer in enumerate(buyers * 3):
        Market(w3, market.address, buyer, keystore=Keystore(tmp / f"buyer-{i}", passphrase="b")).purchase(1 + i % 3)
    KeyAgent(seller, state_path=tmp / "agent.json").run_once()

    Indexer(RpcClient(w3), market.address, tmp / "index", confirmations=0).sync()
    with Catalog(tmp / "index") as catalog:
        print("top datasets by revenue:")
        for row in catalog.top_datasets(3).to_pylist():
            print(f"  {row['dataset_id']}  {row['name']:<10} {row['sales']} sales  {int(row['gross']) / 1e18:.2f} ETH")
        days = catalog.sql("SELECT day, sum(sales) AS sales, sum(owner_revenue) AS revenue FROM revenue_daily "
                           "GROUP BY ALL ORDER BY day", pandas=True)
        print(days.to_string(index=False))
        earned = int(catalog.sql("SELECT sum(owner_revenue) AS r FROM datasets").column("r")[0].as_py())
    on_chain = seller.withdrawable()
    assert earned == on_chain, (earned, on_chain)
    print(f"catalog revenue {earned} wei verified against the owner's on-chain balance")
