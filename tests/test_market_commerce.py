"""Who gets paid, from Python, on the embedded chain and a real anvil: revenue splits (pull payments per payee,
changeable for later sales only, locked for good), a front-end's fee on top of the price, EIP-2612 permits against a
real OpenZeppelin ERC20Permit (`chains.Token`), and ERC-2981 royalties the author alone sets. Each attack first: a
split changed after a sale, a locked split changed by the token's next owner, a royalty removed by a buyer of the
token, a fee above the cap."""

from __future__ import annotations

import pytest
from chains import Token
from conftest import sample_table

from deai_data import Catalog, Keystore, publish
from deai_data.catalog.web import Pages
from deai_data.chain import dev_accounts, dev_advance_time
from deai_data.errors import MarketError, UsageError
from deai_data.market import KeyAgent, Market
from deai_indexer import Indexer

PRICE = 10**18
FEE_BPS = 250
CHALLENGE = 7200
NET = PRICE - PRICE * FEE_BPS // 10_000


@pytest.fixture
def parties(w3):
    accounts = dev_accounts(w3)
    names = ("treasury", "owner", "buyer", "coauthor", "frontend", "minter")
    return dict(zip(names, accounts[:len(names)], strict=True))


def _market(w3, address, account, path) -> Market:
    return Market(w3, address, account, keystore=Keystore(path, passphrase="pw", scrypt_n=2**10))


@pytest.fixture
def markets(w3, parties, tmp_path):
    deployed = Market.deploy(w3, parties["treasury"], fee_bps=FEE_BPS)
    return (_market(w3, deployed.address, parties["owner"], tmp_path / "o"),
            _market(w3, deployed.address, parties["buyer"], tmp_path / "b"))


@pytest.fixture
def published(markets, store_dir, parties):
    return publish(sample_table(200), store=store_dir, name="commerce-test", shard_size=16 * 1024,
                   keystore=markets[0].keystore, author=parties["owner"])


def _deliver_and_settle(w3, owner: Market, tmp_path) -> None:
    agent = KeyAgent(owner, state_path=tmp_path / "agent.json", confirmations=0)
    agent.run_once()
    dev_advance_time(w3, CHALLENGE + 5)
    agent.run_once()  # settles what is past its challenge period


def test_a_split_sale_through_a_front_end_pays_everyone_once(w3, markets, published, parties, tmp_path):
    owner, buyer = markets
    coauthor, frontend = parties["coauthor"], parties["frontend"]
    dataset_id = owner.register(published, price=PRICE, challenge_period=CHALLENGE)
    owner.set_revenue_split(dataset_id, {owner.me: 7_000, coauthor.address: 3_000})
    assert owner.revenue_split(dataset_id).shares == {owner.me: 7_000, coauthor.address: 3_000}

    purchase = buyer.purchase(dataset_id, referrer=frontend.address, referrer_bps=200)
    fee = PRICE * 200 // 10_000
    assert purchase.has_terms and buyer.purchase_terms(purchase.purchase_id).referrer == frontend.address
    assert w3.eth.get_balance(owner.address) == PRICE + fee  # price and fee in escrow
    _deliver_and_settle(w3, owner, tmp_path)
    assert buyer.receive_key(purchase.purchase_id) == published.key  # delivery is unchanged by the terms

    coauthor_share = NET * 3_000 // 10_000
    assert owner.withdrawable() == NET - coauthor_share  # the first payee (lowest address) takes the remainder
    assert owner.withdrawable(coauthor.address) == coauthor_share
    assert owner.withdrawable(frontend.address) == fee
    pulled = [owner.withdraw(), owner.using(coauthor).withdraw(), owner.using(frontend).withdraw(),
              owner.using(parties["treasury"]).withdraw_fees()]
    assert sum(pulled) == PRICE + fee and w3.eth.get_balance(owner.address) == 0
    with pytest.raises(MarketError, match="NothingToWithdraw"):
        owner.using(coauthor).withdraw()  # no payee is paid twice


@pytest.mark.parametrize("w3", ["embedded"], indirect=True)
def test_a_split_changed_after_a_sale_leaves_that_sale_alone(w3, markets, published, parties, tmp_path):
    owner, buyer = markets
    coauthor = parties["coauthor"].address
    dataset_id = owner.register(published, price=PRICE, challenge_period=CHALLENGE)
    owner.set_revenue_split(dataset_id, {coauthor: 10_000})
    first = buyer.purchase(dataset_id)
    owner.set_revenue_split(dataset_id, None)  # the owner takes the next sales back, not this one
    second = buyer.purchase(dataset_id)
    assert first.has_terms and not second.has_terms
    _deliver_and_settle(w3, owner, tmp_path)
    assert owner.withdrawable(coauthor) == NET and owner.withdrawable() == NET


@pytest.mark.parametrize("w3", ["embedded"], indirect=True)
def test_a_locked_split_binds_the_next_owner_and_bad_splits_are_refused(w3, markets, published, parties):
    owner, _ = markets
    coauthor, stranger = parties["coauthor"], parties["frontend"]
    dataset_id = owner.register(published, price=PRICE)
    with pytest.raises(UsageError, match="sum to 9999"):
        owner.set_revenue_split(dataset_id, {owner.me: 6_000, coauthor.address: 3_999})
    with pytest.raises(MarketError, match="InvalidPayee") as caught:
        owner.set_revenue_split(dataset_id, {owner.me: 10_000, coauthor.address: 0})
    assert "distinct" in caught.value.hint
    with pytest.raises(MarketError, match="NotDatasetOwner"):
        owner.using(stranger).set_revenue_split(dataset_id, {stranger.address: 10_000})

    owner.set_revenue_split(dataset_id, {owner.me: 5_000, coauthor.address: 5_000}, lock=True)
    owner._send(owner.contract.functions.transferFrom(owner.me, stranger.address, dataset_id), "transfer")
    with pytest.raises(MarketError, match="SplitLocked"):
        owner.using(stranger).set_revenue_split(dataset_id, {stranger.address: 10_000})
    assert owner.revenue_split(dataset_id).locked


def test_an_erc20_purchase_with_a_permit_is_one_transaction(w3, markets, published, parties, store_dir):
    owner, buyer = markets
    token = Token(w3, parties["minter"], "TestToken")  # OpenZeppelin ERC20Permit
    token.mint(buyer.me, 3 * 10**6)
    dataset_id = owner.register(published, price=10**6, payment_token=token.address)
    sent = w3.eth.get_transaction_count(buyer.me)
    purchase = buyer.purchase(dataset_id, permit=True)
    assert w3.eth.get_transaction_count(buyer.me) == sent + 1  # no approve transaction
    assert purchase.amount == 10**6 and token.balance(owner.address) == 10**6
    native = publish(sample_table(50), store=store_dir, name="commerce-native", shard_size=16 * 1024,
                     keystore=owner.keystore, author=parties["owner"])
    with pytest.raises(UsageError, match="native currency"):
        buyer.purchase(owner.register(native, price=1), permit=True)


@pytest.mark.parametrize("w3", ["embedded"], indirect=True)
def test_a_royalty_is_the_authors_and_capped(w3, markets, published, parties):
    owner, _ = markets
    stranger = parties["frontend"]
    dataset_id = owner.register(published, price=PRICE)
    assert owner.royalty(dataset_id, 10**18) == (None, 0)
    with pytest.raises(MarketError, match="OutOfRange"):
        owner.set_royalty(dataset_id, owner.me, 1_001)
    owner.set_royalty(dataset_id, owner.me, 500)
    owner._send(owner.contract.functions.transferFrom(owner.me, stranger.address, dataset_id), "transfer")
    with pytest.raises(MarketError, match="NotAuthor"):  # a buyer of the token cannot drop the author's royalty
        owner.using(stranger).set_royalty(dataset_id, None, 0)
    assert owner.royalty(dataset_id, 10**18) == (owner.me, 5 * 10**16)
    assert owner.contract.functions.supportsInterface(bytes.fromhex("2a55205a")).call()


@pytest.mark.parametrize("w3", ["embedded"], indirect=True)
def test_a_referrer_fee_above_the_cap_is_refused_and_nothing_is_paid(w3, markets, published, parties):
    owner, buyer = markets
    dataset_id = owner.register(published, price=PRICE)
    before = w3.eth.get_balance(buyer.me)
    with pytest.raises(MarketError, match="InvalidReferrer"):
        buyer.purchase(dataset_id, referrer=parties["frontend"].address, referrer_bps=501)
    with pytest.raises(MarketError, match="PriceAboveMax"):  # max_price must cover the fee on top
        buyer.purchase(dataset_id, referrer=parties["frontend"].address, referrer_bps=100, max_price=PRICE)
    assert w3.eth.get_balance(buyer.me) == before  # refused in simulation: nothing was sent


@pytest.mark.parametrize("w3", ["anvil"], indirect=True)
def test_the_catalog_shows_who_was_paid_each_split_and_royalty(w3, anvil, markets, published, parties, tmp_path):
    owner, buyer = markets
    coauthor, frontend = parties["coauthor"].address, parties["frontend"].address
    dataset_id = owner.register(published, price=PRICE, challenge_period=CHALLENGE)
    owner.set_revenue_split(dataset_id, {owner.me: 6_000, coauthor: 4_000}, lock=True)
    owner.set_royalty(dataset_id, coauthor, 300)
    buyer.purchase(dataset_id, referrer=frontend, referrer_bps=150)
    _deliver_and_settle(w3, owner, tmp_path)

    root = tmp_path / "index"
    Indexer(anvil.url, owner.address, root, confirmations=0).sync()
    with Catalog(root) as cat:
        paid = {(r["role"], r["account"]): int(r["amount"]) for r in cat.sql(
            "SELECT role, account, amount FROM earnings WHERE dataset_id = ?", [dataset_id]).to_pylist()}
        split = cat.sql("SELECT payees, shares_bps, locked FROM revenue_splits WHERE dataset_id = ?",
                        [dataset_id]).to_pylist()
        royalty = cat.sql("SELECT receiver, royalty_bps FROM royalties WHERE dataset_id = ?", [dataset_id]).to_pylist()
        sale = cat.sql("SELECT referrer, referrer_fee FROM purchases WHERE dataset_id = ?", [dataset_id]).to_pylist()
        page = Pages(cat).dataset(dataset_id)
    coauthor_share = NET * 4_000 // 10_000
    assert paid == {("payee", owner.me.lower()): NET - coauthor_share, ("payee", coauthor.lower()): coauthor_share,
                    ("referrer", frontend.lower()): PRICE * 150 // 10_000, ("protocol", None): PRICE - NET}
    assert sorted(split[0]["payees"]) == sorted([owner.me.lower(), coauthor.lower()]) and split[0]["locked"]
    assert sorted(split[0]["shares_bps"]) == [4_000, 6_000]
    assert royalty == [{"receiver": coauthor.lower(), "royalty_bps": 300}]
    assert sale == [{"referrer": frontend.lower(), "referrer_fee": PRICE * 150 // 10_000}]
    assert "New sales are split (locked for good)" in page and "300 bps" in page  # the dataset's web page
    assert page.count("<tr>", page.index("id='earnings'"), page.index("Delivery record")) == 5  # header + 4
