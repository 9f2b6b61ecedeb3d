"""Sell a dataset and buy it back: publish (signed), register on a market, purchase, deliver the key, open by
id, and see the owner paid after the challenge period.

Runs on the embedded in-process chain with its development accounts. For a real chain set
DEAI_RPC_URL (for example an anvil: `anvil --host 127.0.0.1`) and use `deai_data.load_account()`
for the owner and the buyer instead of dev_accounts.
"""

import os
import tempfile
from pathlib import Path

import pyarrow as pa

from deai_data import KeyAgent, Keystore, Market, connect, fetch_policy, publish
from deai_data.chain import dev_accounts, dev_advance_time

# The listings name manifests in the local folder this script writes. The SDK refuses local files named by an
# on-chain listing unless told (a hostile listing could name any file): allow them here, for this process only.
fetch_policy.configure(fetch_policy.FetchPolicy(schemes=frozenset({"file"}), local_files=True))

with tempfile.TemporaryDirectory() as tmp:
    tmp = Path(tmp)
    w3 = connect(os.environ.get("DEAI_RPC_URL"))
    treasury, owner, buyer = dev_accounts(w3)[:3]

    # The owner publishes (sealed, to a local store, signed as its author) and registers the version for sale.
    owner_keys = Keystore(tmp / "owner-keystore", passphrase="owner passphrase")
    table = pa.table({"id": list(range(1000)), "text": [f"sentence {i}" for i in range(1000)]})
    result = publish(table, store=tmp / "store", name="sentences", license="CC-BY-4.0", keystore=owner_keys,
                     author=owner)
    market = Market.deploy(w3, treasury, fee_bps=250)
    seller = Market(w3, market.address, owner, keystore=owner_keys)
    dataset_id = seller.register(result, price=10**16, delivery_window=3600, challenge_period=600)
    print(f"registered dataset {dataset_id} on {market.address}")

    # The buyer's SDK checks the listing against the signed manifest, then pays into escrow with a fresh one-time
    # key kept in the buyer's own keystore.
    shopper = Market(w3, market.address, buyer, keystore=Keystore(tmp / "buyer-keystore", passphrase="buyer"))
    purchase = shopper.purchase(dataset_id)
    print(f"purchase {purchase.purchase_id}: {purchase.amount} wei in escrow until {purchase.deadline}")

    # The owner's key agent (normally `deai-data serve-keys`) encrypts the key to the buyer and delivers it.
    agent = KeyAgent(seller, state_path=tmp / "agent.json", confirmations=0)  # a dev chain: no reorgs
    delivered = agent.run_once()
    print(f"key agent delivered purchases {delivered}")

    # The buyer opens the key, checks it against the on-chain commitment (a wrong one would be disputed and
    # refunded by the contract), and opens the dataset by its id.
    shopper.receive_key(purchase.purchase_id)
    bought = shopper.open_dataset(dataset_id).to_arrow()
    assert bought.equals(table)
    print(f"buyer opened {bought.num_rows} records; every byte verified against the registered manifest")
    # The payment waits in escrow for the challenge period; then the agent settles it to the owner.
    dev_advance_time(w3, 601)  # a dev chain's clock; on a real chain, time passes
    agent.run_once()
    print(f"owner's balance to withdraw: {seller.withdrawable()} wei")
