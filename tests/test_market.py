"""The market end to end on the embedded chain and on a real anvil: publish (signed) -> register -> purchase
(checked against the manifest) -> the key agent delivers -> the buyer opens, checks and disputes a wrong key
-> settlement after the challenge period; and one test per attack on the market's fair exchange."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from conftest import sample_table
from web3 import Web3

from deai_data import Keystore, publish
from deai_data.chain import dev_accounts, dev_advance_time
from deai_data.crypto.authorship import sign_authorship
from deai_data.crypto.key_delivery import DeliveryContext, buyer_key_hash, new_purchase_key, seal_key
from deai_data.errors import IntegrityError, KeyDeliveryError, MarketError, UsageError
from deai_data.formats.merkle import inclusion_proof, merkle_root, verify_inclusion
from deai_data.market import KeyAgent, Market

PRICE = 10**17
FEE_BPS = 250
WINDOW = 3600
CHALLENGE = 7200
NET = PRICE - PRICE * FEE_BPS // 10_000


def _keystore(path) -> Keystore:
    return Keystore(path, passphrase="pw", scrypt_n=2**10)


@pytest.fixture
def parties(w3):
    accounts = dev_accounts(w3)
    return {"treasury": accounts[0], "owner": accounts[1], "buyer": accounts[2], "agent": accounts[3],
            "relayer": accounts[4], "attacker": accounts[5], "bob": accounts[6]}


@pytest.fixture
def owner_market(w3, parties, tmp_path) -> Market:
    deployed = Market.deploy(w3, parties["treasury"], fee_bps=FEE_BPS)
    return Market(w3, deployed.address, parties["owner"], keystore=_keystore(tmp_path / "owner-ks"))


@pytest.fixture
def buyer_market(owner_market, parties, tmp_path) -> Market:
    return Market(owner_market.w3, owner_market.address, parties["buyer"], keystore=_keystore(tmp_path / "buyer-ks"))


@pytest.fixture
def attacker_market(owner_market, parties, tmp_path) -> Market:
    return Market(owner_market.w3, owner_market.address, parties["attacker"],
                  keystore=_keystore(tmp_path / "attacker-ks"))


@pytest.fixture
def published(owner_market, store_dir, parties):
    return publish(sample_table(600), store=store_dir, name="market-test", shard_size=16 * 1024,
                   keystore=owner_market.keystore, license="CC-BY-4.0", author=parties["owner"])


def _register(market: Market, published, **terms) -> int:
    return market.register(published, price=PRICE, delivery_window=WINDOW, challenge_period=CHALLENGE, **terms)


def _agent(market: Market, tmp_path: Path, name: str = "agent.json", **kw) -> KeyAgent:
    return KeyAgent(market, state_path=tmp_path / name, **{"confirmations": 0, **kw})


def _copy_listing(attacker: Market, victim_published, **changes) -> int:
    """The copied-listing attack, sent straight to the contract (no SDK check on the attacker's side): the
    victim's public manifest hash, key commitment and seal id, a content root of the attacker's choosing,
    registered under the attacker's own authorship at price 0."""
    m = victim_published.manifest
    fields = {"manifest_hash": m.hash, "content_root": random.Random(1).randbytes(32).hex(),
              "key_commitment": m.key_commitment, "seal_id": m.seal_id, "shard_count": len(m.shards)}
    fields.update(changes)
    me = attacker.account
    authorship = sign_authorship(me, fields["seal_id"], fields["content_root"], fields["key_commitment"],
                                 fields["shard_count"])
    registration = {
        "manifestHash": bytes.fromhex(fields["manifest_hash"]), "contentRoot": bytes.fromhex(fields["content_root"]),
        "keyCommitment": bytes.fromhex(fields["key_commitment"]), "sealId": bytes.fromhex(fields["seal_id"]),
        "shardCount": fields["shard_count"], "author": me.address, "owner": me.address,
        "paymentToken": "0x" + "00" * 20, "price": 0, "deliveryWindow": WINDOW, "challengePeriod": CHALLENGE,
        "supersedes": 0, "keyLink": bytes(32), "manifestURIs": list(victim_published.manifest_uris),
        "licenseURI": "",
    }
    fn = attacker.contract.functions.register(registration, bytes.fromhex(authorship.signature[2:]))
    return attacker._event(attacker._send(fn, "copy a listing"), "DatasetRegistered")["datasetId"]


def _buy_raw(market: Market, dataset_id: int) -> int:
    """A purchase without the SDK's listing check (what an attacker buying its own copy does)."""
    secret, public = new_purchase_key()
    market.keystore.put("purchase-key", public.hex(), secret, {})
    listing_price = market.listing(dataset_id).price
    fn = market.contract.functions.purchase(dataset_id, public[:32], public[32:], listing_price)
    return market._event(market._send(fn, "buy", value=listing_price), "Purchased")["purchaseId"]


# ---- the honest paths ---------------------------------------------------------------------------------

def test_publish_register_buy_deliver_settle_open(owner_market, buyer_market, published, parties, w3, tmp_path):
    dataset_id = _register(owner_market, published)
    listing = buyer_market.listing(dataset_id)
    assert listing.owner == listing.author == parties["owner"].address
    assert (listing.manifest_hash, listing.content_root, listing.seal_id) == \
        (published.manifest_hash, published.content_root, published.manifest.seal_id)
    assert listing.shard_count == len(published.manifest.shards) > 1
    assert listing.manifest_uris == (published.manifest_uri,) and listing.license_uri == "CC-BY-4.0"
    assert listing.challenge_period == CHALLENGE

    purchase = buyer_market.purchase(dataset_id)
    assert purchase.status == "pending" and purchase.amount == PRICE and purchase.seller == listing.owner
    with pytest.raises(KeyDeliveryError, match="not been delivered yet"):
        buyer_market.receive_key(purchase.purchase_id)

    agent = _agent(owner_market, tmp_path)
    assert agent.run_once() == [purchase.purchase_id]
    assert agent.run_once() == []
    assert buyer_market.receive_key(purchase.purchase_id) == published.key
    assert buyer_market.open_dataset(dataset_id).to_arrow().equals(sample_table(600))

    # The payment waits in escrow for the challenge period; then the agent settles and the owner withdraws.
    assert buyer_market.purchase_info(purchase.purchase_id).status == "delivered"
    assert owner_market.withdrawable() == 0
    dev_advance_time(w3, CHALLENGE + 5)
    agent.run_once()
    assert buyer_market.purchase_info(purchase.purchase_id).status == "settled"
    assert owner_market.withdrawable() == NET
    before = w3.eth.get_balance(parties["owner"].address)
    assert owner_market.withdraw() == NET
    assert w3.eth.get_balance(parties["owner"].address) > before
    assert owner_market.using(parties["attacker"]).withdraw_fees() == PRICE - NET


def test_wrong_key_is_disputed_automatically_and_refunded(owner_market, buyer_market, published, parties, w3):
    """A dishonest owner bypasses the SDK and delivers a wrong key: the buyer's SDK proves it on-chain at once
    and the contract, not either party, refunds the whole price and counts the lost dispute."""
    dataset_id = _register(owner_market, published)
    purchase = buyer_market.purchase(dataset_id)
    with pytest.raises(KeyDeliveryError, match="does not match its key commitment"):
        owner_market.deliver_key(purchase.purchase_id, bytes(32))  # the SDK never delivers a wrong key
    _deliver_by_hand(owner_market, purchase.purchase_id, bytes(32))
    before = w3.eth.get_balance(parties["buyer"].address)
    with pytest.raises(KeyDeliveryError, match="disputed on-chain, the contract agreed and refunded"):
        buyer_market.receive_key(purchase.purchase_id)
    assert buyer_market.purchase_info(purchase.purchase_id).status == "refunded"
    assert w3.eth.get_balance(parties["buyer"].address) > before + PRICE * 9 // 10  # refund withdrawn (less gas)
    assert owner_market.disputes_lost(parties["owner"].address) == 1
    assert owner_market.withdrawable() == 0
    assert not any(e.kind == "data-key" for e in buyer_market.keystore.entries())


def _deliver_by_hand(seller: Market, purchase_id: int, key: bytes, *, context_purchase: int | None = None,
                     buyer_key: bytes | None = None) -> None:
    info = seller.purchase_info(purchase_id)
    buyer_key = buyer_key or seller.purchase_event(info)["buyerKey"]
    delivery = seal_key(key, buyer_key, DeliveryContext(seller.chain_id, seller.address,
                                                        context_purchase or purchase_id))
    fn = seller.contract.functions.deliverKey(purchase_id, buyer_key_hash(buyer_key), delivery.as_call())
    seller._send(fn, "deliver by hand")


def test_dispute_against_an_honest_delivery_pays_the_seller_and_after_the_period_is_refused(
        owner_market, buyer_market, published, parties, w3, tmp_path):
    dataset_id = _register(owner_market, published)
    first, second = buyer_market.purchase(dataset_id), buyer_market.purchase(dataset_id)
    assert sorted(_agent(owner_market, tmp_path).run_once()) == [first.purchase_id, second.purchase_id]
    assert buyer_market.dispute(first.purchase_id) == 0  # the contract recomputed the key: it is right
    assert buyer_market.purchase_info(first.purchase_id).status == "settled"
    assert owner_market.withdrawable() == NET  # paid at once, before the period ends
    assert owner_market.disputes_lost(parties["owner"].address) == 0

    dev_advance_time(w3, CHALLENGE + 5)
    with pytest.raises(MarketError) as late:
        buyer_market.dispute(second.purchase_id)
    assert late.value.error == "ChallengePeriodOver"
    assert buyer_market.settle([second.purchase_id]) == 1


def test_delivery_for_another_purchase_is_refused_or_refunded(owner_market, buyer_market, published):
    """Replay: a delivery made for one purchase sent into another. Naming the other buyer's key, the contract
    refuses it; naming this buyer's key, it cannot open (bound to the other purchase) and is refunded."""
    dataset_id = _register(owner_market, published)
    first, second = buyer_market.purchase(dataset_id), buyer_market.purchase(dataset_id)
    first_key = owner_market.purchase_event(first)["buyerKey"]
    with pytest.raises(MarketError) as err:
        _deliver_by_hand(owner_market, second.purchase_id, published.key, buyer_key=first_key)
    assert err.value.error == "WrongBuyerKey"
    _deliver_by_hand(owner_market, second.purchase_id, published.key, context_purchase=first.purchase_id)
    with pytest.raises(KeyDeliveryError, match="refunded"):
        buyer_market.receive_key(second.purchase_id)
    assert buyer_market.purchase_info(second.purchase_id).status == "refunded"


def test_refund_after_window_and_agent_leaves_it(owner_market, buyer_market, published, w3, parties, tmp_path):
    dataset_id = _register(owner_market, published)
    purchase = buyer_market.purchase(dataset_id)
    with pytest.raises(MarketError) as early:
        buyer_market.refund(purchase.purchase_id)
    assert early.value.error == "DeliveryWindowOpen"
    dev_advance_time(w3, WINDOW + 5)
    with pytest.raises(KeyDeliveryError, match="refund"):
        buyer_market.receive_key(purchase.purchase_id)
    with pytest.raises(MarketError) as stranger:
        buyer_market.using(parties["attacker"]).refund(purchase.purchase_id)
    assert stranger.value.error == "NotBuyer"
    assert buyer_market.refund(purchase.purchase_id) == PRICE
    assert buyer_market.purchase_info(purchase.purchase_id).status == "refunded"
    assert _agent(owner_market, tmp_path).run_once() == []
    with pytest.raises(KeyDeliveryError, match="refunded"):
        buyer_market.receive_key(purchase.purchase_id)


# ---- the attacks --------------------------------------------------------------------------------------

def test_attack_copied_listing_gets_nothing_from_the_owners_agent(owner_market, buyer_market, attacker_market,
                                                                  published, parties, tmp_path):
    """The attack: copy the victim's manifest hash and key commitment into a price-0 listing, name the victim's
    agent, buy it. The agent serves only its own sellers and its own manifests; buyers' SDKs refuse the copy."""
    _register(owner_market, published)
    copy_id = _copy_listing(attacker_market, published)
    attacker_market.set_key_agent(parties["owner"].address)  # "the agent is never asked"
    pid = _buy_raw(attacker_market, copy_id)
    victims_agent = _agent(owner_market, tmp_path)
    assert victims_agent.run_once() == []
    assert attacker_market.purchase_info(pid).status == "pending"
    # Even an agent told to serve the attacker refuses: the listing does not match the manifest it holds.
    lenient = _agent(owner_market, tmp_path, "lenient.json", owners=[parties["owner"].address,
                                                                     parties["attacker"].address])
    assert lenient.run_once() == []
    assert "does not match our manifest" in (lenient._checked.get(copy_id) or "")
    # An honest buyer's SDK checks the record against the manifest before paying: nothing is paid.
    with pytest.raises(IntegrityError) as refused:
        buyer_market.purchase(copy_id)
    assert "content_root" in str(refused.value)
    assert buyer_market.contract.functions.purchaseCount().call() == 1  # the attacker's own purchase only
    with pytest.raises(IntegrityError):
        buyer_market.open_dataset(copy_id, key=published.key)


def test_attack_copy_with_every_field_but_the_author(owner_market, buyer_market, attacker_market, published,
                                                     parties, tmp_path):
    """Copy everything, the content root too, under the attacker's authorship: the author check catches it."""
    _register(owner_market, published)
    copy_id = _copy_listing(attacker_market, published, content_root=published.content_root)
    with pytest.raises(IntegrityError) as refused:
        buyer_market.purchase(copy_id)
    assert "author" in str(refused.value)
    pid = _buy_raw(attacker_market, copy_id)
    agent = _agent(owner_market, tmp_path, owners=[parties["owner"].address, parties["attacker"].address])
    attacker_market.set_key_agent(parties["owner"].address)
    assert agent.run_once() == [] and attacker_market.purchase_info(pid).status == "pending"


def test_attack_unsolicited_transfer_does_not_enlist_the_victims_agent(owner_market, attacker_market, published,
                                                                       parties, w3, tmp_path):
    """Register the copy, buy it, then transfer the token to the victim (ERC-721 needs no consent): the
    purchase belongs to its seller at purchase (the attacker), and sales pause on transfer."""
    _register(owner_market, published)
    copy_id = _copy_listing(attacker_market, published)
    pid = _buy_raw(attacker_market, copy_id)
    fn = attacker_market.contract.functions.transferFrom(parties["attacker"].address, parties["owner"].address,
                                                         copy_id)
    attacker_market._send(fn, "gift the token")
    assert owner_market.listing(copy_id).owner == parties["owner"].address and owner_market.listing(copy_id).paused
    assert _agent(owner_market, tmp_path).run_once() == []
    assert attacker_market.purchase_info(pid).seller == parties["attacker"].address
    with pytest.raises(MarketError) as err:
        _buy_raw(attacker_market, copy_id)
    assert err.value.error == "SalesArePaused"
    dev_advance_time(w3, WINDOW + 5)
    assert attacker_market.refund(pid) == 0  # the attacker paid nothing and gets nothing


def test_one_bad_purchase_never_stops_the_agent(owner_market, buyer_market, published, store_dir, parties,
                                                tmp_path, monkeypatch):
    """Any failure on one purchase (here: a delivery that raises a bare ValueError, as a low-order X25519 key
    once did) quarantines that purchase with backoff; the others are delivered; a restart does not loop."""
    dataset_id = _register(owner_market, published)
    bad, good = buyer_market.purchase(dataset_id), buyer_market.purchase(dataset_id)
    real = owner_market.deliver_key

    def poisoned(info, *args, **kw):
        if info.purchase_id == bad.purchase_id:
            raise ValueError("point is not on the curve")
        return real(info, *args, **kw)

    monkeypatch.setattr(owner_market, "deliver_key", poisoned)
    agent = _agent(owner_market, tmp_path, retry_base=60)
    assert agent.run_once() == [good.purchase_id]
    quarantined = agent.quarantined
    assert list(quarantined) == [bad.purchase_id] and "ValueError" in quarantined[bad.purchase_id]["reason"]
    restarted = _agent(owner_market, tmp_path)
    assert restarted.run_once() == []  # backing off: not retried at once
    assert restarted.quarantined[bad.purchase_id]["attempts"] == 1
    monkeypatch.setattr(owner_market, "deliver_key", real)
    restarted.state["queue"][bad.purchase_id]["next_try"] = 0  # the backoff has passed
    assert restarted.run_once() == [bad.purchase_id]


def test_invalid_buyer_keys_are_refused_by_the_contract(buyer_market, owner_market, published):
    dataset_id = _register(owner_market, published)
    for x, y in [(bytes(32), bytes(32)), (b"\x01" * 32, b"\x02" * 32), (b"\xff" * 32, b"\x01" * 32)]:
        with pytest.raises(MarketError) as err:
            buyer_market._send(buyer_market.contract.functions.purchase(dataset_id, x, y, PRICE), "buy", value=PRICE)
        assert err.value.error == "InvalidBuyerKey"


def test_attack_front_running_a_registration_gains_nothing(owner_market, attacker_market, published, parties, w3):
    """Copy the owner's registration (with the author's signature) from the mempool and send it first: only the
    owner may send `register`; a relayed `registerFor` needs the owner's own signature and mints to the owner."""
    registration, author_signature = owner_market.registration(published, price=PRICE, delivery_window=WINDOW,
                                                               challenge_period=CHALLENGE)
    with pytest.raises(MarketError) as err:
        attacker_market._send(attacker_market.contract.functions.register(registration, author_signature), "copy")
    assert err.value.error == "NotOwner"
    stolen = dict(registration, owner=parties["attacker"].address)
    with pytest.raises(MarketError) as err:
        attacker_market._send(attacker_market.contract.functions.register(stolen, author_signature), "steal")
    assert err.value.error == "InvalidAuthorSignature"
    # The owner signs for a relayer; a front-runner relaying the same call only registers it for the owner.
    deadline = w3.eth.get_block("latest")["timestamp"] + 3600
    owner_signature = owner_market.sign_registration(registration, 7, deadline)
    dataset_id = attacker_market.register_for(registration, author_signature, 7, deadline, owner_signature)
    assert owner_market.listing(dataset_id).owner == parties["owner"].address
    assert _register(owner_market, published) == dataset_id  # the owner's own send finds it registered


def test_unordered_nonces_can_be_cancelled(owner_market, published, parties, w3):
    registration, author_signature = owner_market.registration(published, price=PRICE, delivery_window=WINDOW,
                                                               challenge_period=CHALLENGE)
    deadline = w3.eth.get_block("latest")["timestamp"] + 3600
    relayer = owner_market.using(parties["relayer"])
    forged = owner_market.using(parties["attacker"]).sign_registration(registration, 5, deadline)
    with pytest.raises(MarketError) as err:
        relayer.register_for(registration, author_signature, 5, deadline, forged)
    assert err.value.error == "InvalidSignature"
    signature = owner_market.sign_registration(registration, 5, deadline)
    owner_market.cancel_nonce(5)  # a pre-signed registration the owner no longer wants
    with pytest.raises(MarketError) as err:
        relayer.register_for(registration, author_signature, 5, deadline, signature)
    assert err.value.error == "NonceUsed"
    later = owner_market.sign_registration(registration, 2, deadline)  # a lower nonce still works
    assert relayer.register_for(registration, author_signature, 2, deadline, later) == 1


def test_escrow_stays_with_the_seller_when_the_token_moves(owner_market, buyer_market, published, parties, w3,
                                                           tmp_path):
    """A transfer (to a cold wallet, or a dead address) leaves pending purchases with their seller, whose agent
    still delivers and who is paid; sales pause until the new owner sets its terms."""
    dataset_id = _register(owner_market, published)
    purchase = buyer_market.purchase(dataset_id)
    dead = "0x000000000000000000000000000000000000dEaD"
    owner_market._send(owner_market.contract.functions.transferFrom(parties["owner"].address, dead, dataset_id),
                       "transfer")
    assert _agent(owner_market, tmp_path).run_once() == [purchase.purchase_id]
    assert buyer_market.receive_key(purchase.purchase_id) == published.key
    dev_advance_time(w3, CHALLENGE + 5)
    assert buyer_market.settle(purchase.purchase_id) == 1
    assert owner_market.withdrawable() == NET
    with pytest.raises(MarketError) as err:
        buyer_market.purchase(dataset_id)
    assert err.value.error == "SalesArePaused"


def test_a_price_cut_in_flight_is_paid_at_the_new_price(owner_market, buyer_market, published, parties, w3):
    dataset_id = _register(owner_market, published)
    owner_market.set_price(dataset_id, PRICE // 4)
    before = w3.eth.get_balance(parties["buyer"].address)
    purchase = buyer_market.purchase(dataset_id, max_price=PRICE)
    assert purchase.amount == PRICE // 4
    assert buyer_market.withdrawable() == 0  # the difference came straight back
    assert before - w3.eth.get_balance(parties["buyer"].address) < PRICE // 2


def test_withdraw_to_another_address(owner_market, buyer_market, published, parties, w3, tmp_path):
    dataset_id = _register(owner_market, published)
    purchase = buyer_market.purchase(dataset_id)
    _agent(owner_market, tmp_path).run_once()
    dev_advance_time(w3, CHALLENGE + 5)
    buyer_market.settle(purchase.purchase_id)
    cold = Web3.to_checksum_address("0x" + "c0" * 20)
    assert owner_market.withdraw(to=cold) == NET
    assert w3.eth.get_balance(cold) == NET


def test_reverts_become_typed_errors(owner_market, buyer_market, published, parties):
    dataset_id = _register(owner_market, published)
    cases = [
        (lambda: buyer_market.purchase(dataset_id + 7), "UnknownDataset"),
        (lambda: buyer_market.purchase(dataset_id, max_price=PRICE - 1), "PriceAboveMax"),
        (lambda: buyer_market.set_price(dataset_id, 1), "NotDatasetOwner"),
        (lambda: buyer_market.withdraw(), "NothingToWithdraw"),
        (lambda: buyer_market.purchase_info(99), "UnknownPurchase"),
        (lambda: owner_market.register(published, price=PRICE, delivery_window=1), "OutOfRange"),
        (lambda: owner_market.register(published, price=PRICE, manifest_uris=("x://y",) * 9), "TooLong"),
    ]
    for action, name in cases:
        with pytest.raises(MarketError) as err:
            action()
        assert err.value.error == name, err.value
        assert err.value.hint, name
    owner_market.set_paused(dataset_id, True)
    with pytest.raises(MarketError) as paused:
        buyer_market.purchase(dataset_id)
    assert paused.value.error == "SalesArePaused" and paused.value.error_args["datasetId"] == dataset_id


def test_unsigned_manifests_cannot_be_registered(owner_market, store_dir):
    unsigned = publish(sample_table(20), store=store_dir, name="unsigned", keystore=owner_market.keystore)
    assert unsigned.manifest.authorship is None
    with pytest.raises(MarketError, match="unsigned"):
        owner_market.register(unsigned, price=PRICE)


def test_agent_needs_both_sides_to_serve_another_seller(owner_market, buyer_market, published, parties, tmp_path):
    """An agent serves a seller only when the seller authorised it on-chain and it lists the seller itself."""
    dataset_id = _register(owner_market, published)
    agent_market = Market(owner_market.w3, owner_market.address, parties["agent"], keystore=owner_market.keystore)
    purchase = buyer_market.purchase(dataset_id)
    assert _agent(agent_market, tmp_path, "a1.json").run_once() == []  # does not list the owner
    listing_owner = _agent(agent_market, tmp_path, "a2.json", owners=[parties["owner"].address])
    assert listing_owner.run_once() == [] and "not authorised" in listing_owner.quarantined[purchase.purchase_id][
        "reason"]
    owner_market.set_key_agent(parties["agent"].address)
    assert _agent(agent_market, tmp_path, "a3.json", owners=[parties["owner"].address]).run_once() == \
        [purchase.purchase_id]
    assert buyer_market.receive_key(purchase.purchase_id) == published.key


def test_agent_restart_delivers_each_key_exactly_once(owner_market, buyer_market, published, tmp_path):
    dataset_id = _register(owner_market, published)
    purchases = [buyer_market.purchase(dataset_id).purchase_id for _ in range(6)]
    first = _agent(owner_market, tmp_path)
    # A crash after two deliveries, before the pass's checkpoint: the state file still says "block 0".
    for pid in purchases[:2]:
        assert first._serve(pid) == "delivered"
    restarted = _agent(owner_market, tmp_path)
    assert restarted.state["next_block"] == 0
    assert sorted(restarted.run_once()) == purchases[2:]
    assert _agent(owner_market, tmp_path).run_once() == []
    delivered = owner_market.events("KeyDelivered", 0)
    assert sorted(e["args"]["purchaseId"] for e in delivered) == purchases


@pytest.mark.parametrize("w3", ["anvil"], indirect=True)
def test_agent_resends_a_delivery_that_a_reorg_removed(owner_market, buyer_market, published, tmp_path, w3):
    dataset_id = _register(owner_market, published)
    purchase = buyer_market.purchase(dataset_id)
    w3.provider.make_request("anvil_mine", [2])                     # the purchase is 2 blocks deep
    agent = KeyAgent(owner_market, state_path=tmp_path / "agent.json")  # default: 2 confirmations
    fork = w3.provider.make_request("evm_snapshot", [])["result"]
    assert agent.run_once() == [purchase.purchase_id]
    assert buyer_market.purchase_info(purchase.purchase_id).status == "delivered"
    assert purchase.purchase_id in agent.state["unconfirmed"]      # watched until 2 blocks deep

    w3.provider.make_request("evm_revert", [fork])                  # the delivery's block vanishes
    assert buyer_market.purchase_info(purchase.purchase_id).status == "pending"
    assert agent.run_once() == [purchase.purchase_id]               # sent again from the watch list
    w3.provider.make_request("anvil_mine", [2])
    assert agent.run_once() == [] and not agent.state["unconfirmed"]
    buyer_market.receive_key(purchase.purchase_id)
    assert buyer_market.open_dataset(dataset_id).to_arrow().num_rows == 600


@pytest.mark.parametrize("w3", ["anvil"], indirect=True)
def test_attack_reorg_replays_a_delivery_into_another_buyers_purchase(owner_market, buyer_market, published, parties,
                                                                      tmp_path, w3):
    """Alice's purchase gets id N and the owner delivers to her; a reorg drops both, Bob's purchase takes id N, and
    the owner's signed delivery is mined again. It names Alice's key, so the contract refuses it: Bob's purchase
    stays pending (his refund stays possible), the owner is not paid for Bob."""
    dataset_id = _register(owner_market, published)
    fork = w3.provider.make_request("evm_snapshot", [])["result"]
    alice = buyer_market.purchase(dataset_id)
    receipt = owner_market.deliver_key(alice)
    delivery_tx = w3.eth.get_transaction(receipt["transactionHash"])
    w3.provider.make_request("evm_revert", [fork])

    bob_market = Market(w3, owner_market.address, parties["bob"], keystore=_keystore(tmp_path / "bob-ks"))
    bob = bob_market.purchase(dataset_id)
    assert bob.purchase_id == alice.purchase_id
    raw = owner_market.account.sign_transaction({
        "to": delivery_tx["to"], "data": delivery_tx["input"], "nonce": delivery_tx["nonce"], "gas": 300_000,
        "maxFeePerGas": delivery_tx["maxFeePerGas"], "maxPriorityFeePerGas": delivery_tx["maxPriorityFeePerGas"],
        "chainId": w3.eth.chain_id, "value": 0, "type": 2}).raw_transaction
    replayed = w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(raw))
    assert replayed["status"] == 0
    assert bob_market.purchase_info(bob.purchase_id).status == "pending"
    dev_advance_time(w3, WINDOW + 5)
    assert bob_market.refund(bob.purchase_id) == PRICE


@pytest.mark.parametrize("w3", ["anvil"], indirect=True)
def test_a_reorg_that_drops_a_purchase_is_never_served(owner_market, buyer_market, published, tmp_path, w3):
    dataset_id = _register(owner_market, published)
    fork = w3.provider.make_request("evm_snapshot", [])["result"]
    buyer_market.purchase(dataset_id)
    agent = KeyAgent(owner_market, state_path=tmp_path / "agent.json")  # 2 confirmations
    assert agent.run_once() == []                                      # too shallow to act on
    w3.provider.make_request("evm_revert", [fork])                     # the purchase is gone
    w3.provider.make_request("anvil_mine", [3])
    assert agent.run_once() == [] and not agent.state["queue"]
    assert owner_market.events("Purchased", 0) == []


@pytest.mark.parametrize("w3", ["embedded"], indirect=True)
def test_python_merkle_proofs_verify_on_chain(owner_market):
    rng = random.Random(7)
    verify = owner_market.contract.functions.verifyInclusion
    for size in [*range(1, 18), 31, 32, 33, 100]:
        hashes = [rng.randbytes(32) for _ in range(size)]
        root = merkle_root(hashes)
        for index in {0, size - 1, rng.randrange(size)}:
            proof = inclusion_proof(hashes, index)
            assert verify(hashes[index], index, size, proof, root).call()
            assert not verify(rng.randbytes(32), index, size, proof, root).call()
            if proof:
                bad = [*proof[:-1], rng.randbytes(32)]
                assert not verify(hashes[index], index, size, bad, root).call()


def test_verify_shard_against_registered_dataset(owner_market, published):
    dataset_id = _register(owner_market, published)
    hashes = [bytes.fromhex(s.sha256) for s in published.manifest.shards]
    for index, shard_hash in enumerate(hashes):
        assert owner_market.verify_shard(dataset_id, shard_hash, index, inclusion_proof(hashes, index))
    assert not owner_market.verify_shard(dataset_id, hashes[0], 1, inclusion_proof(hashes, 0))


@pytest.mark.parametrize("w3", ["embedded"], indirect=True)
def test_solidity_built_merkle_trees_match_python(w3):
    """Roots and proofs from contracts/test/helpers/MerkleBuilder.sol (the RFC's recursive definition,
    built by `forge build` before pytest in `make test`) equal and verify with the Python side."""
    built = Path(__file__).resolve().parent.parent / "contracts/out/MerkleBuilder.sol/MerkleBuilder.json"
    assert built.is_file(), f"{built} is missing: run `make contracts-test` (forge build) first"
    doc = json.loads(built.read_text())
    deployer = dev_accounts(w3)[0]
    factory = w3.eth.contract(abi=doc["abi"], bytecode=doc["bytecode"]["object"])
    tx = factory.constructor().build_transaction({"from": deployer.address, "nonce": 0, "gas": 3_000_000,
                                                  "chainId": w3.eth.chain_id})
    address = w3.eth.wait_for_transaction_receipt(
        w3.eth.send_raw_transaction(deployer.sign_transaction(tx).raw_transaction))["contractAddress"]
    builder = w3.eth.contract(address=address, abi=doc["abi"])
    rng = random.Random(11)
    for size in [*range(1, 20), 32, 33, 63, 64, 65]:
        hashes = [rng.randbytes(32) for _ in range(size)]
        root = builder.functions.root(hashes).call()
        assert root == merkle_root(hashes)
        for index in {0, size - 1, rng.randrange(size)}:
            proof = builder.functions.proof(hashes, index).call()
            assert list(proof) == inclusion_proof(hashes, index)
            assert verify_inclusion(hashes[index], index, size, proof, root)


@pytest.mark.parametrize("w3", ["embedded"], indirect=True)
def test_streaming_loader_opens_by_dataset_id_checked_against_the_chain(owner_market, buyer_market, published,
                                                                        store_dir, tmp_path, parties):
    from deai_data.torch import StreamingDataset

    dataset_id = _register(owner_market, published)
    purchase = buyer_market.purchase(dataset_id)
    _agent(owner_market, tmp_path).run_once()
    buyer_market.receive_key(purchase.purchase_id)

    stream = StreamingDataset(dataset_id, market=buyer_market, batch_size=50, batched=True, shuffle=False)
    ids = [int(i) for batch in stream for i in batch["id"]]
    assert len(ids) == 600 and sorted(ids) == list(range(600))
    by_uri = StreamingDataset(published.manifest_uri, market=buyer_market, batch_size=600, batched=True)
    assert sorted(int(i) for batch in by_uri for i in batch["id"]) == list(range(600))

    unregistered = publish(sample_table(50, seed=3), store=store_dir, name="not-for-sale",
                           keystore=owner_market.keystore, author=parties["owner"])
    with pytest.raises(IntegrityError, match="not registered"):
        StreamingDataset(unregistered.manifest_uri, market=buyer_market, key=unregistered.key)


def test_latest_version_follows_the_lineage_and_a_stranger_cannot_join_it(owner_market, buyer_market,
                                                                          attacker_market, published, store_dir,
                                                                          parties, tmp_path):
    def version(seed: int, market: Market = owner_market, author: str = "owner"):
        return publish(sample_table(60, seed=seed), store=store_dir, name="market-test", keystore=market.keystore,
                       author=parties[author])

    v1 = _register(owner_market, published)
    v2 = _register(owner_market, version(11), supersedes=v1)
    _register(owner_market, version(12))  # another dataset of the same owner: not in the lineage
    v3 = _register(owner_market, version(13), supersedes=v2)
    assert buyer_market.lineage(v1) == [v1, v2, v3] and buyer_market.lineage(v2) == [v2, v3]
    assert buyer_market.latest_version(v1) == buyer_market.latest_version(v3) == v3

    # a stranger cannot add a "newer version" to someone else's lineage: the contract checks the replaced
    # version's owner
    with pytest.raises(MarketError, match="NotDatasetOwner"):
        _register(attacker_market, version(14, attacker_market, "attacker"), supersedes=v3)
    assert buyer_market.latest_version(v1) == v3

    purchase = buyer_market.purchase(v3)
    _agent(owner_market, tmp_path).run_once()
    buyer_market.receive_key(purchase.purchase_id)
    assert buyer_market.open_dataset(v1, version="latest").to_arrow().equals(sample_table(60, seed=13))
    with pytest.raises(UsageError, match='takes "latest"'):
        buyer_market.open_dataset(v1, version="2")


def test_the_shipped_contract_fits_the_eip170_code_size_limit():
    """Every chain refuses to deploy code over 24,576 bytes (EIP-170): the shipped artifact must stay below it
    (contracts/foundry.toml chooses the optimizer runs for that)."""
    from deai_data.market import artifact

    size = len(bytes.fromhex(artifact()["deployedBytecode"].removeprefix("0x")))
    assert size <= 24_576, f"DataMarket's code is {size} bytes, over EIP-170's 24,576"
