"""Sell a dataset and buy it back: publish, register on a market, purchase, deliver the key, open by id.

Runs on the embedded in-process chain with its development accounts. For a real chain set
DEAI_RPC_URL (for example an anvil: `anvil --host 127.0.0.1`) and use `deai_data.load_account()`
for the owner and the buyer instead of dev_accounts.
"""

import os
import tempfile
from pathlib import Path

import pyarrow as pa

from deai_data import KeyAgent, Keystore, Market, connect, publish
from deai_data.chain import dev_accounts

with tempfile.TemporaryDirectory() as tmp:
    tmp = Path(tmp)
    w3 = connect(os.environ.get("DEAI_RPC_URL"))
    treasury, owner, buyer = dev_accounts(w3)[:3]

    # The owner publishes (sealed, to a local store) and registers the version for sale.
    owner_keys = Keystore(tmp / "owner-keystore", passphrase="owner passphrase")
    table = pa.table({"id": list(range(1000)), "text": [f"sentence {i}" for i in range(1000)]})
    result = publish(table, store=tmp / "store", name="sentences", license="CC-BY-4.0", keystore=owner_keys)
    market = Market.deploy(w3, treasury, fee_bps=250)
    seller = Market(w3, market.address, owner, keystore=owner_keys)
    dataset_id = seller.register(result, price=10**16, delivery_window=3600)
    print(f"registered dataset {dataset_id} on {market.address}")

    # The buyer pays into escrow with a fresh sealing key kept in the buyer's own keystore.
    shopper = Market(w3, market.address, buyer, keystore=Keystore(tmp / "buyer-keystore", passphrase="buyer"))
    purchase = shopper.purchase(dataset_id)
    print(f"purchase {purchase.purchase_id}: {purchase.amount} wei in escrow until {purchase.deadline}")

    # The owner's key agent (normally `deai-data serve-keys`) seals the key to the buyer and delivers it.
    delivered = KeyAgent(seller, state_path=tmp / "agent.json").run_once()
    print(f"key agent delivered purchases {delivered}")

    # The buyer unseals the key, checks it against the on-chain commitment, and opens by dataset id.
    shopper.receive_key(purchase.purchase_id)
    bought = shopper.open_dataset(dataset_id).to_arrow()
    assert bought.equals(table)
    print(f"buyer opened {bought.num_rows} records; every byte verified against the registered manifest")
    print(f"owner's balance to withdraw: {seller.withdrawable()} wei")
