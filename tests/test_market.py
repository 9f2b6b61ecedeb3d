"""The market end to end on the embedded chain and on a real anvil: publish -> register -> purchase ->
the key agent delivers -> the buyer unseals, checks and opens by dataset id; refunds, wrong keys,
relayed registration, revert decoding, agent restarts and Merkle proofs checked by the contract."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from conftest import sample_table

from deai_data import Keystore, publish
from deai_data.chain import dev_accounts, dev_advance_time
from deai_data.crypto.key_delivery import delivery_info, seal_key
from deai_data.errors import KeyDeliveryError, MarketError
from deai_data.formats.merkle import inclusion_proof, merkle_root, verify_inclusion
from deai_data.market import KeyAgent, Market

PRICE = 10**17
FEE_BPS = 250
WINDOW = 3600


def _keystore(path) -> Keystore:
    return Keystore(path, passphrase="pw", scrypt_n=2**10)


@pytest.fixture
def parties(w3):
    accounts = dev_accounts(w3)
    return {"treasury": accounts[0], "owner": accounts[1], "buyer": accounts[2], "agent": accounts[3],
            "relayer": accounts[4], "stranger": accounts[5]}


@pytest.fixture
def owner_market(w3, parties, tmp_path) -> Market:
    deployed = Market.deploy(w3, parties["treasury"], fee_bps=FEE_BPS)
    return Market(w3, deployed.address, parties["owner"], keystore=_keystore(tmp_path / "owner-ks"))


@pytest.fixture
def buyer_market(owner_market, parties, tmp_path) -> Market:
    return Market(owner_market.w3, owner_market.address, parties["buyer"], keystore=_keystore(tmp_path / "buyer-ks"))


@pytest.fixture
def published(owner_market, store_dir):
    return publish(sample_table(600), store=store_dir, name="market-test", shard_size=16 * 1024,
                   keystore=owner_market.keystore, license="CC-BY-4.0")


def _register(market: Market, published, **terms) -> int:
    return market.register(published, price=PRICE, delivery_window=WINDOW, **terms)


def test_publish_register_buy_deliver_open(owner_market, buyer_market, published, parties, w3):
    dataset_id = _register(owner_market, published)
    listing = buyer_market.listing(dataset_id)
    assert listing.owner == parties["owner"].address
    assert listing.manifest_hash == published.manifest_hash
    assert listing.content_root == published.content_root
    assert listing.shard_count == len(published.manifest.shards) > 1
    assert listing.manifest_uris == (published.manifest_uri,)
    assert listing.license_uri == "CC-BY-4.0"

    purchase = buyer_market.purchase(dataset_id)
    assert purchase.status == "pending" and purchase.amount == PRICE
    with pytest.raises(KeyDeliveryError, match="not been delivered yet"):
        buyer_market.receive_key(purchase.purchase_id)

    agent = KeyAgent(owner_market)
    assert agent.run_once() == [purchase.purchase_id]
    assert agent.run_once() == []
    key = buyer_market.receive_key(purchase.purchase_id)
    assert key == published.key

    opened = buyer_market.open_dataset(dataset_id)
    assert opened.to_arrow().equals(sample_table(600))

    fee = PRICE * FEE_BPS // 10_000
    assert owner_market.withdrawable() == PRICE - fee
    before = w3.eth.get_balance(parties["owner"].address)
    assert owner_market.withdraw() == PRICE - fee
    assert w3.eth.get_balance(parties["owner"].address) > before
    assert owner_market.using(parties["stranger"]).withdraw_fees() == fee


def test_refund_after_window_and_agent_leaves_it(owner_market, buyer_market, published, w3, parties):
    dataset_id = _register(owner_market, published)
    purchase = buyer_market.purchase(dataset_id)
    with pytest.raises(MarketError) as early:
        buyer_market.refund(purchase.purchase_id)
    assert early.value.error == "DeliveryWindowOpen"
    dev_advance_time(w3, WINDOW + 5)
    with pytest.raises(KeyDeliveryError, match="refund"):
        buyer_market.receive_key(purchase.purchase_id)
    with pytest.raises(MarketError) as stranger:
        buyer_market.using(parties["stranger"]).refund(purchase.purchase_id)
    assert stranger.value.error == "NotBuyer"
    assert buyer_market.refund(purchase.purchase_id) == PRICE
    assert buyer_market.purchase_info(purchase.purchase_id).status == "refunded"
    assert buyer_market.withdrawable() == 0
    assert KeyAgent(owner_market).run_once() == []
    with pytest.raises(KeyDeliveryError, match="refunded"):
        buyer_market.receive_key(purchase.purchase_id)


def test_wrong_key_is_never_delivered_by_the_sdk_and_is_detected_by_the_buyer(owner_market, buyer_market,
                                                                           published):
    dataset_id = _register(owner_market, published)
    purchase = buyer_market.purchase(dataset_id)
    wrong = bytes(32)
    with pytest.raises(KeyDeliveryError, match="does not match its key commitment"):
        owner_market.deliver_key(purchase.purchase_id, wrong)
    assert owner_market.purchase_info(purchase.purchase_id).status == "pending"

    # A dishonest owner bypasses the SDK and seals a wrong key to the buyer by hand.
    buyer_pk = owner_market._buyer_public_key(purchase)
    sealed = seal_key(wrong, buyer_pk, delivery_info(owner_market.chain_id, owner_market.address,
                                                     purchase.purchase_id))
    owner_market._send(owner_market.contract.functions.deliverKey(purchase.purchase_id, sealed), "deliver")
    with pytest.raises(KeyDeliveryError, match="does not match") as err:
        buyer_market.receive_key(purchase.purchase_id)
    assert "refund" in str(err.value)
    assert not any(e.meta.get("purchase_id") == purchase.purchase_id for e in buyer_market.keystore.entries())


def test_key_sealed_for_another_purchase_does_not_open(owner_market, buyer_market, published):
    dataset_id = _register(owner_market, published)
    first = buyer_market.purchase(dataset_id)
    second = buyer_market.purchase(dataset_id)
    replayed = seal_key(published.key, owner_market._buyer_public_key(second),
                        delivery_info(owner_market.chain_id, owner_market.address, first.purchase_id))
    owner_market._send(owner_market.contract.functions.deliverKey(second.purchase_id, replayed), "deliver")
    with pytest.raises(KeyDeliveryError, match="cannot be unsealed"):
        buyer_market.receive_key(second.purchase_id)


def test_reverts_become_typed_errors(owner_market, buyer_market, published, parties):
    dataset_id = _register(owner_market, published)
    cases = [
        (lambda: buyer_market.purchase(dataset_id + 7), "UnknownDataset"),
        (lambda: buyer_market.purchase(dataset_id, max_price=PRICE - 1), "PriceAboveMax"),
        (lambda: _register(owner_market, published), "ContentRootTaken"),
        (lambda: buyer_market.set_price(dataset_id, 1), "NotDatasetOwner"),
        (lambda: buyer_market.withdraw(), "NothingToWithdraw"),
        (lambda: buyer_market.purchase_info(99), "UnknownPurchase"),
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


def test_agent_authorised_by_owner_and_transfer_moves_revenue(owner_market, buyer_market, published, parties, w3):
    dataset_id = _register(owner_market, published)
    agent_market = owner_market.using(parties["agent"])
    purchase = buyer_market.purchase(dataset_id)
    assert KeyAgent(agent_market).run_once() == []  # not authorised yet
    owner_market.set_key_agent(parties["agent"].address)
    assert KeyAgent(agent_market, state_path=agent_market.keystore.path / "agent2.json").run_once() == \
        [purchase.purchase_id]
    assert buyer_market.receive_key(purchase.purchase_id) == published.key


def test_relayed_registration_with_owner_signature(owner_market, published, parties, w3):
    reg = owner_market.registration(published, price=PRICE, delivery_window=WINDOW)
    deadline = w3.eth.get_block("latest")["timestamp"] + 3600
    signature = owner_market.sign_registration(reg, deadline)
    relayer = owner_market.using(parties["relayer"])
    forged = owner_market.using(parties["stranger"]).sign_registration(reg, deadline)
    with pytest.raises(MarketError) as err:
        relayer.register_for(reg, parties["owner"].address, deadline, forged)
    assert err.value.error == "InvalidSignature"
    dataset_id = relayer.register_for(reg, parties["owner"].address, deadline, signature)
    assert relayer.listing(dataset_id).owner == parties["owner"].address
    with pytest.raises(MarketError) as replay:
        relayer.register_for(reg, parties["owner"].address, deadline, signature)
    assert replay.value.error in ("InvalidSignature", "ContentRootTaken")


def test_agent_restart_delivers_each_key_exactly_once(owner_market, buyer_market, published, tmp_path):
    dataset_id = _register(owner_market, published)
    purchases = [buyer_market.purchase(dataset_id).purchase_id for _ in range(6)]
    state = tmp_path / "agent.json"
    first = KeyAgent(owner_market, state_path=state)
    # A crash after two deliveries, before the pass's checkpoint: the state file still says "block 0".
    for pid in purchases[:2]:
        assert first._serve(pid) == "delivered"
    restarted = KeyAgent(owner_market, state_path=state)
    assert restarted.state["next_block"] == 0
    assert sorted(restarted.run_once()) == purchases[2:]
    assert KeyAgent(owner_market, state_path=state).run_once() == []
    delivered = owner_market.events("KeyDelivered", 0)
    assert sorted(e["args"]["purchaseId"] for e in delivered) == purchases


@pytest.mark.parametrize("w3", ["anvil"], indirect=True)
def test_agent_resends_a_delivery_that_a_reorg_removed(owner_market, buyer_market, published, tmp_path, w3):
    dataset_id = _register(owner_market, published)
    purchase = buyer_market.purchase(dataset_id)
    w3.provider.make_request("anvil_mine", [2])                     # the purchase is 2 blocks deep
    agent = KeyAgent(owner_market, state_path=tmp_path / "agent.json", confirmations=2)
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
                                                                        store_dir):
    from deai_data.errors import IntegrityError
    from deai_data.torch import StreamingDataset

    dataset_id = _register(owner_market, published)
    purchase = buyer_market.purchase(dataset_id)
    KeyAgent(owner_market).run_once()
    buyer_market.receive_key(purchase.purchase_id)

    stream = StreamingDataset(dataset_id, market=buyer_market, batch_size=50, batched=True, shuffle=False)
    ids = [int(i) for batch in stream for i in batch["id"]]
    assert len(ids) == 600 and sorted(ids) == list(range(600))
    by_uri = StreamingDataset(published.manifest_uri, market=buyer_market, batch_size=600, batched=True)
    assert sorted(int(i) for batch in by_uri for i in batch["id"]) == list(range(600))

    unregistered = publish(sample_table(50, seed=3), store=store_dir, name="not-for-sale",
                           keystore=owner_market.keystore)
    with pytest.raises(IntegrityError, match="not registered"):
        StreamingDataset(unregistered.manifest_uri, market=buyer_market, key=unregistered.key)
