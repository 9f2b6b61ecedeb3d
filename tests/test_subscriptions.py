"""Subscriptions from Python, on the embedded chain and a real anvil: a term of access to every version registered in
it, each claimed free and delivered by the owner's key agent with the same fair exchange as a purchase, the price
paid to the owner only after the term and its claims, and refunded in full when a claim is not delivered or
delivered wrong. Each attack first: a claim of a version outside the term or the lineage, a claim after the term, an
undelivered claim, a wrong key, a fee-on-transfer token; then the catalog's view of renewals and expiry."""

from __future__ import annotations

import pyarrow as pa
import pytest
from chains import Token
from conftest import sample_table

from deai_data import Catalog, Keystore, publish
from deai_data.catalog.web import Pages
from deai_data.chain import dev_accounts, dev_advance_time
from deai_data.crypto.key_delivery import buyer_key_hash, seal_key
from deai_data.errors import KeyDeliveryError, MarketError
from deai_data.market import KeyAgent, Market
from deai_indexer import Indexer

PRICE = 10**18
PLAN = 5 * 10**18
TERM = 86_400
CHALLENGE = 7_200
WINDOW = 3_600
FEE_BPS = 250


@pytest.fixture
def parties(w3):
    return dict(zip(("treasury", "owner", "subscriber", "minter"), dev_accounts(w3)[:4], strict=True))


@pytest.fixture
def markets(w3, parties, tmp_path):
    deployed = Market.deploy(w3, parties["treasury"], fee_bps=FEE_BPS)
    return tuple(Market(w3, deployed.address, parties[who],
                        keystore=Keystore(tmp_path / who, passphrase="pw", scrypt_n=2**10))
                 for who in ("owner", "subscriber"))


class Series:
    """An owner's growing dataset: each `next()` publishes the rows so far plus a new batch (inheriting the
    unchanged shards of the version before) and registers it as superseding that version."""

    def __init__(self, owner: Market, store_dir, author, *, token: str | None = None) -> None:
        self.owner, self.store_dir, self.author, self.token = owner, store_dir, author, token
        self.rows = sample_table(600)
        self.results: list = []
        self.ids: list[int] = []

    def next(self) -> int:
        if self.results:
            batch = sample_table(60, seed=len(self.ids) + 1)
            batch = batch.set_column(0, "id", pa.array(range(len(self.rows), len(self.rows) + 60)))
            self.rows = pa.concat_tables([self.rows, batch])
        result = publish(self.rows, store=self.store_dir, name="daily-crawl", shard_size=8 * 1024,
                         keystore=self.owner.keystore, author=self.author,
                         previous=self.results[-1].manifest_hash if self.results else None)
        self.results.append(result)
        self.ids.append(self.owner.register(result, price=PRICE, payment_token=self.token, delivery_window=WINDOW,
                                            challenge_period=CHALLENGE,
                                            supersedes=self.ids[-1] if self.ids else None))
        return self.ids[-1]


def _agent(owner: Market, tmp_path) -> KeyAgent:
    return KeyAgent(owner, state_path=tmp_path / "agent.json", confirmations=0)


def _subscribed_and_claimed(owner: Market, subscriber: Market, store_dir, parties):
    """A series with a plan, a subscription to its first version and a claim of the second."""
    series = Series(owner, store_dir, parties["owner"])
    first = series.next()
    owner.set_subscription_plan(first, PLAN, TERM)
    sub = subscriber.subscribe(first)
    return series, sub, subscriber.claim(sub.subscription_id, series.next())


def test_a_subscriber_gets_each_new_version_from_the_agent_and_the_owner_is_paid_after_the_term(
        w3, markets, store_dir, parties, tmp_path):
    owner, subscriber = markets
    series = Series(owner, store_dir, parties["owner"])
    first = series.next()
    owner.set_subscription_plan(first, PLAN, TERM)
    assert owner.subscription_plan(first) == (PLAN, TERM)
    sub = subscriber.subscribe(first)
    assert (sub.status, sub.price, sub.open_claims) == ("subscribed", PLAN, 0)
    assert subscriber.claimable(sub.subscription_id) == []  # the version current at subscription is bought apart

    second, third = series.next(), series.next()
    assert subscriber.claimable(sub.subscription_id) == [second, third]
    claims = subscriber.claim_new(sub.subscription_id)
    assert [(c.dataset_id, c.amount, c.status) for c in claims] == [(second, 0, "pending"), (third, 0, "pending")]
    assert subscriber.claimable(sub.subscription_id) == []
    agent = _agent(owner, tmp_path)
    assert agent.run_once() == [c.purchase_id for c in claims]  # the agent serves claims as purchases
    keys = [subscriber.receive_key(c.purchase_id) for c in claims]
    assert keys == [series.results[1].key, series.results[2].key]
    assert subscriber.open_dataset(third).to_arrow().equals(series.rows)  # its key opens the inherited shards

    assert subscriber.settle(sub.subscription_id) == 0  # the term runs: nothing to settle yet
    dev_advance_time(w3, TERM + 5)
    agent.run_once()  # settles the claims (past their challenge period) and then the subscription
    agent.run_once()
    assert subscriber.subscription(sub.subscription_id).status == "settled"
    assert owner.withdrawable() == PLAN - PLAN * FEE_BPS // 10_000
    assert subscriber.withdrawable() == 0


def test_an_undelivered_claim_refunds_the_whole_subscription(w3, markets, store_dir, parties):
    owner, subscriber = markets
    series, sub, claim = _subscribed_and_claimed(owner, subscriber, store_dir, parties)
    with pytest.raises(KeyDeliveryError, match="not been delivered"):
        subscriber.receive_key(claim.purchase_id)
    dev_advance_time(w3, WINDOW + 5)
    before = w3.eth.get_balance(subscriber.me)
    assert subscriber.refund(claim.purchase_id) == PLAN  # the claim's own price is 0; its subscription's comes back
    assert w3.eth.get_balance(subscriber.me) > before + PLAN - 10**16  # withdrawn (less gas)
    assert subscriber.subscription(sub.subscription_id).status == "refunded"
    with pytest.raises(MarketError, match="WrongStatus"):
        subscriber.claim(sub.subscription_id, series.next())  # a refunded subscription grants nothing more
    dev_advance_time(w3, TERM)
    assert owner.settle(sub.subscription_id) == 0 and owner.withdrawable() == 0


def test_a_wrong_key_for_a_claim_is_disputed_and_refunds_the_subscription(w3, markets, store_dir, parties):
    owner, subscriber = markets
    series, sub, claim = _subscribed_and_claimed(owner, subscriber, store_dir, parties)
    wrong = series.results[0].key  # the first version's key, not the claimed one's (deliver_key would refuse it)
    buyer_key = owner.purchase_event(claim)["buyerKey"]
    delivery = seal_key(wrong, buyer_key, owner._context(claim.purchase_id))
    owner._send(owner.contract.functions.deliverKey(claim.purchase_id, buyer_key_hash(buyer_key),
                                                    delivery.as_call()), "deliver a wrong key")
    with pytest.raises(KeyDeliveryError, match=rf"disputed on-chain, the contract agreed and refunded {PLAN}"):
        subscriber.receive_key(claim.purchase_id)
    assert subscriber.subscription(sub.subscription_id).status == "refunded"
    assert owner.disputes_lost(owner.me) == 1


def test_claims_outside_the_term_or_the_lineage_are_refused_with_named_errors(w3, markets, store_dir, parties):
    owner, subscriber = markets
    series, other = Series(owner, store_dir, parties["owner"]), Series(owner, store_dir, parties["owner"])
    first = series.next()
    with pytest.raises(MarketError, match="no subscription plan"):
        subscriber.subscribe(first)
    owner.set_subscription_plan(first, PLAN, TERM)
    with pytest.raises(MarketError, match="OutOfRange"):
        owner.set_subscription_plan(first, PLAN, 59)
    with pytest.raises(MarketError, match="NotDatasetOwner"):
        subscriber.set_subscription_plan(first, 0, TERM)
    with pytest.raises(MarketError, match="PriceAboveMax"):
        subscriber.subscribe(first, max_price=PLAN - 1)
    sub = subscriber.subscribe(first)
    unrelated = other.next()
    with pytest.raises(MarketError, match="NotCovered"):
        subscriber.claim(sub.subscription_id, unrelated)
    with pytest.raises(MarketError, match="NotCovered"):
        subscriber.claim(sub.subscription_id, first)
    with pytest.raises(MarketError, match="NotBuyer"):
        owner.claim(sub.subscription_id, series.next())
    late = series.next()
    dev_advance_time(w3, TERM + 5)
    with pytest.raises(MarketError, match="TermOver"):
        subscriber.claim(sub.subscription_id, late)
    renewed = subscriber.subscribe(first, renews=sub.subscription_id)
    assert renewed.expires > sub.expires + TERM - 60  # lapsed: the renewal's term starts now
    with pytest.raises(MarketError, match="UnknownPurchase"):
        subscriber.subscription(999)


@pytest.mark.parametrize("w3", ["anvil"], indirect=True)
def test_an_erc20_subscription_and_the_catalogs_view_of_terms_and_renewals(w3, anvil, markets, store_dir, parties,
                                                                         tmp_path):
    owner, subscriber = markets
    usd = Token(w3, parties["minter"], "TestToken")
    usd.mint(subscriber.me, 3 * PLAN)
    series = Series(owner, store_dir, parties["owner"], token=usd.address)
    first = series.next()
    owner.set_subscription_plan(first, PLAN, TERM)
    sub = subscriber.subscribe(first)  # approves the market, then pays in one transaction
    assert usd.balance(owner.address) == PLAN
    claim = subscriber.claim(sub.subscription_id, series.next())
    _agent(owner, tmp_path).run_once()
    subscriber.receive_key(claim.purchase_id)
    renewal = subscriber.subscribe(first, renews=sub.subscription_id)
    assert renewal.expires == sub.expires + TERM  # renewed before the end: the term runs on from it
    dev_advance_time(w3, TERM + CHALLENGE + 5)
    assert owner.settle([claim.purchase_id, sub.subscription_id]) == 2

    fot = Token(w3, parties["minter"], "FeeOnTransferToken")
    fot.mint(subscriber.me, 3 * PLAN)
    taxed = Series(owner, store_dir, parties["owner"], token=fot.address).next()
    owner.set_subscription_plan(taxed, PLAN, TERM)
    with pytest.raises(MarketError, match="TokenTransferMismatch"):
        subscriber.subscribe(taxed)

    root = tmp_path / "index"
    Indexer(anvil.url, owner.address, root, confirmations=0).sync()
    with Catalog(root) as cat:
        rows = cat.sql("SELECT subscription_id, status, claims, open_claims, renews, price, payment_token, "
                       "epoch(expires_at)::BIGINT AS expires FROM subscriptions ORDER BY subscription_id").to_pylist()
        plans = cat.sql("SELECT dataset_id, price, term_s FROM subscription_plans ORDER BY dataset_id").to_pylist()
        sales = cat.sql("SELECT sum(sales) AS n, sum(gross) AS gross FROM dataset_sales").to_pylist()[0]
        claimed = cat.sql("SELECT claimed_under FROM purchases WHERE purchase_id = ?",
                          [claim.purchase_id]).to_pylist()
        page = Pages(cat).dataset(first)
        listed = cat.sql("SELECT subscription_price, subscription_term_s, subscriptions, subscription_revenue "
                         "FROM datasets WHERE dataset_id = ?", [first]).to_pylist()
    assert rows[0] == {"subscription_id": sub.subscription_id, "status": "settled", "claims": 1, "open_claims": 0,
                       "renews": None, "price": PLAN, "payment_token": usd.address.lower(), "expires": sub.expires}
    assert (rows[1]["renews"], rows[1]["expires"], rows[1]["claims"]) == (sub.subscription_id, renewal.expires, 0)
    assert rows[1]["status"] in ("active", "expired")  # by the wall clock; the dev chain's clock ran ahead
    assert plans == [{"dataset_id": first, "price": PLAN, "term_s": TERM},
                     {"dataset_id": taxed, "price": PLAN, "term_s": TERM}]
    assert (sales["n"], sales["gross"]) == (1, PLAN)  # the subscription is the sale; its free claim is not
    assert claimed == [{"claimed_under": sub.subscription_id}]
    assert listed == [{"subscription_price": PLAN, "subscription_term_s": TERM, "subscriptions": 2,
                       "subscription_revenue": PLAN - PLAN * FEE_BPS // 10_000}]
    assert "A 1-day term of every new version" in page and "id='subscriptions'" in page
    table = page[page.index("id='subscriptions'"):]
    assert table.index(f">{renewal.subscription_id}<") < table.index(f">{sub.subscription_id}<")  # newest first
