"""Paying in an ERC-20 from Python and the CLI, on the embedded chain and on a real anvil, with real token contracts
(OpenZeppelin's ERC20: `chains.Token`): approve, escrow,
delivery, settlement and withdrawal in the token; a fee-on-transfer token, a short balance and an address that is
no token are refused with what happened, and nothing is paid."""

from __future__ import annotations

import pytest
from chains import Token
from conftest import sample_table

from deai_data import Keystore, publish
from deai_data.chain import dev_accounts, dev_advance_time
from deai_data.errors import MarketError
from deai_data.market import KeyAgent, Market

PRICE = 25 * 10**6  # 25 units of a 6-decimal stablecoin
FEE_BPS = 250
CHALLENGE = 7200
NET = PRICE - PRICE * FEE_BPS // 10_000


@pytest.fixture
def parties(w3):
    accounts = dev_accounts(w3)
    return {"treasury": accounts[0], "owner": accounts[1], "buyer": accounts[2], "minter": accounts[3]}


@pytest.fixture
def markets(w3, parties, tmp_path):
    deployed = Market.deploy(w3, parties["treasury"], fee_bps=FEE_BPS)
    owner = Market(w3, deployed.address, parties["owner"], keystore=Keystore(tmp_path / "o", passphrase="pw",
                                                                             scrypt_n=2**10))
    buyer = Market(w3, deployed.address, parties["buyer"], keystore=Keystore(tmp_path / "b", passphrase="pw",
                                                                             scrypt_n=2**10))
    return owner, buyer


@pytest.fixture
def published(markets, store_dir, parties):
    return publish(sample_table(300), store=store_dir, name="erc20-test", shard_size=16 * 1024,
                   keystore=markets[0].keystore, author=parties["owner"])


def test_bought_settled_and_withdrawn_in_an_erc20(w3, markets, published, parties, tmp_path):
    owner, buyer = markets
    token = Token(w3, parties["minter"], "TestToken")
    token.mint(buyer.me, PRICE + 1)
    dataset_id = owner.register(published, price=PRICE, payment_token=token.address, challenge_period=CHALLENGE)
    assert buyer.listing(dataset_id).payment_token == token.address

    purchase = buyer.purchase(dataset_id)  # approves the market, then pays into escrow
    assert purchase.amount == PRICE and token.balance(buyer.me) == 1 and token.balance(owner.address) == PRICE
    agent = KeyAgent(owner, state_path=tmp_path / "agent.json", confirmations=0)
    assert agent.run_once() == [purchase.purchase_id]
    assert buyer.receive_key(purchase.purchase_id) == published.key
    assert buyer.open_dataset(dataset_id).to_arrow().equals(sample_table(300))

    dev_advance_time(w3, CHALLENGE + 5)
    agent.run_once()
    assert owner.withdrawable(token=token.address) == NET and owner.withdrawable() == 0
    assert owner.withdraw(token.address) == NET and token.balance(owner.me) == NET
    assert owner.using(parties["treasury"]).withdraw_fees(token.address) == PRICE - NET
    assert token.balance(owner.address) == 0  # the market holds nothing more than it owes


def test_a_fee_on_transfer_token_is_refused_and_nothing_is_paid(w3, markets, published, parties):
    owner, buyer = markets
    token = Token(w3, parties["minter"], "FeeOnTransferToken")
    token.mint(buyer.me, 2 * PRICE)
    dataset_id = owner.register(published, price=PRICE, payment_token=token.address)
    with pytest.raises(MarketError, match="TokenTransferMismatch") as caught:
        buyer.purchase(dataset_id)
    assert "fee-on-transfer" in caught.value.hint
    assert token.balance(buyer.me) == 2 * PRICE and token.balance(owner.address) == 0


def test_a_short_balance_or_a_token_that_is_no_contract_is_refused_before_sending(w3, markets, published, parties,
                                                                                  tmp_path):
    owner, buyer = markets
    other = publish(sample_table(50, seed=2), store=tmp_path / "other", name="other", keystore=owner.keystore,
                    author=parties["owner"])
    token = Token(w3, parties["minter"], "TestToken")
    token.mint(buyer.me, PRICE - 1)
    short = owner.register(published, price=PRICE, payment_token=token.address)
    sent = w3.eth.get_transaction_count(buyer.me)
    with pytest.raises(MarketError, match=f"holds {PRICE - 1} of the payment token .* the price is {PRICE}"):
        buyer.purchase(short)
    nowhere = owner.register(other, price=PRICE, payment_token=parties["minter"].address)  # an account
    with pytest.raises(MarketError, match="is not a contract"):
        buyer.purchase(nowhere)
    assert w3.eth.get_transaction_count(buyer.me) == sent  # no approval, no purchase was sent
