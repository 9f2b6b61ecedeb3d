"""Sell a growing dataset by subscription: each new version stores only its new shards and inherits the rest, a
subscriber pays once for a term and claims every version registered in it, the owner's key agent delivers each
claim, and the owner is paid after the term.

Runs on the embedded in-process chain with its development accounts (DEAI_RPC_URL for a node, as in
market_lifecycle.py).
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

DAY = 86_400

with tempfile.TemporaryDirectory() as tmp:
    tmp = Path(tmp)
    w3 = connect(os.environ.get("DEAI_RPC_URL"))
    treasury, owner, subscriber = dev_accounts(w3)[:3]
    owner_keys = Keystore(tmp / "owner-keystore", passphrase="owner passphrase")
    market = Market.deploy(w3, treasury, fee_bps=250)
    seller = Market(w3, market.address, owner, keystore=owner_keys)

    def crawl(day: int) -> pa.Table:
        """The crawl so far: 2,000 pages a day."""
        pages = range(2_000 * day)
        return pa.table({"id": list(pages), "text": [f"page {i}, crawled on day {i // 2_000}" for i in pages]})

    # Day 1: the first version, and a subscription plan on it: 0.05 ether for 30 days of every new version.
    first = publish(crawl(1), store=tmp / "store", name="daily-crawl", shard_size=16_384, keystore=owner_keys,
                    author=owner)
    versions = [seller.register(first, price=10**16, delivery_window=3600, challenge_period=600)]
    seller.set_subscription_plan(versions[0], price=5 * 10**16, term=30 * DAY)

    reader = Market(w3, market.address, subscriber, keystore=Keystore(tmp / "reader-keystore", passphrase="reader"))
    subscription = reader.subscribe(versions[0])
    print(f"subscription {subscription.subscription_id}: {subscription.price} wei in escrow until "
          f"{subscription.expires}")

    # Days 2 and 3: each version names the shards already stored and seals only the new pages.
    previous = first
    for day in (2, 3):
        result = publish(crawl(day), store=tmp / "store", name="daily-crawl", shard_size=16_384,
                         keystore=owner_keys, author=owner, previous=previous.manifest_hash)
        versions.append(seller.register(result, price=10**16, delivery_window=3600, challenge_period=600,
                                        supersedes=versions[-1]))
        print(f"day {day}: version {versions[-1]} sealed {result.sealed_shards} new shards and inherits "
              f"{result.inherited_shards}")
        previous = result

    # The subscriber claims what is new (free), the owner's key agent delivers each claim like a purchase.
    claims = reader.claim_new(subscription.subscription_id)
    agent = KeyAgent(seller, state_path=tmp / "agent.json", confirmations=0)
    agent.run_once()
    for claim in claims:
        reader.receive_key(claim.purchase_id)  # checked against the commitment; a wrong key would be disputed
    newest = reader.open_dataset(versions[0], version="latest").to_arrow()
    assert newest.equals(crawl(3))
    print(f"subscriber claimed versions {[c.dataset_id for c in claims]} and opened the newest: {newest.num_rows} "
          "records, every byte verified against the registered manifests")

    # After the term (and the claims' challenge periods) the agent settles the subscription to the owner.
    dev_advance_time(w3, 30 * DAY + 1)  # a dev chain's clock; on a real chain, time passes
    agent.run_once()
    agent.run_once()
    print(f"subscription {reader.subscription(subscription.subscription_id).status}; owner's balance to withdraw: "
          f"{seller.withdrawable()} wei")
