"""Versions that inherit unchanged shards (manifest version 3): found by content, opened through key links that the
market contract checks in a dispute. Attacks first: a buyer of the old version reaching the new shards, a manifest
whose key link leads nowhere (read, then disputed on-chain on both chains), a lineage that names another version than
the chain does, and hostile lineage fields."""

from __future__ import annotations

import json
from dataclasses import replace

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from conftest import sample_table

from deai_data import Catalog, Keystore, open_dataset, publish
from deai_data.catalog.web import Pages
from deai_data.chain import dev_accounts, dev_advance_time
from deai_data.crypto.keys import key_link, linked_key, new_data_key
from deai_data.crypto.keystore import DATA_KEY
from deai_data.crypto.sealing import open_shard
from deai_data.errors import (
    DecryptionError,
    IntegrityError,
    KeyDeliveryError,
    LimitError,
    ManifestError,
    PublishError,
    UsageError,
)
from deai_data.formats import canonical
from deai_data.formats.limits import Limits
from deai_data.formats.manifest import Manifest
from deai_data.market import KeyAgent, Market
from deai_data.storage.local import LocalStore
from deai_indexer import Indexer

SHARD = 8 * 1024
PRICE = 10**18
CHALLENGE = 7200


def _versions(store_dir, keystore, author=None):
    """v1; v2 = v1 with 1 % more rows appended; v3 = v2 with a block of 1 % of its scores changed in place."""
    v1_rows = sample_table(2000)
    v2_rows = pa.concat_tables([v1_rows, sample_table(20, seed=7).set_column(0, "id", pa.array(range(2000, 2020)))])
    scores = v2_rows.column("score").to_numpy().copy()
    scores[1000:1020] += 1.0
    v3_rows = v2_rows.set_column(1, "score", pa.array(scores))
    common = {"store": store_dir, "name": "growing", "shard_size": SHARD, "keystore": keystore, "author": author}
    v1 = publish(v1_rows, **common)
    v2 = publish(v2_rows, previous=v1.manifest_hash, **common)
    v3 = publish(v3_rows, previous=v2.manifest_hash, **common)
    return (v1, v2, v3), (v1_rows, v2_rows, v3_rows)


@pytest.fixture
def keystore(tmp_path):
    return Keystore(tmp_path / "keys", passphrase="pw", scrypt_n=2**10)


def test_the_key_link_matches_the_contracts_vector():
    # the same vector as contracts/test/DataMarket.t.sol (test_libraryMatchesPythonVectors)
    key, link = bytes(range(32)), bytes(range(32, 64))
    assert linked_key(key, link).hex() == "c89fcdc043c6e4d3a190477f51dbe160a2863718c2d9897ca73f1531f00b5d26"
    earlier = new_data_key()
    assert linked_key(key, key_link(key, earlier)) == earlier


def test_a_new_version_stores_only_its_new_shards_and_reads_back_whole(store_dir, keystore):
    (v1, v2, v3), (_, v2_rows, v3_rows) = _versions(store_dir, keystore)
    shards = len(v1.manifest.shards)
    assert shards > 20
    # appending 1 % of rows re-seals only the last, partly filled shard and adds the tail
    assert v2.sealed_shards <= 2 and v2.inherited_shards >= shards - 1
    assert v2.manifest.version == 3 and len(v2.manifest.lineage.generations) == 1
    # changing a block of 1 % of the rows in place re-seals the shards holding it, nothing else
    assert v3.sealed_shards <= 2 and v3.inherited_shards == len(v3.manifest.shards) - v3.sealed_shards
    generations = {e.origin[0] for e in v3.manifest.shards if e.origin}
    assert generations == {1, 2}  # most shards are still version 1's, sealed under its key
    assert [g.seal_id for g in v3.manifest.lineage.generations] == [v2.manifest.seal_id, v1.manifest.seal_id]
    inherited = next(e for e in v3.manifest.shards if e.origin == (2, 0))
    assert inherited.sha256 == v1.manifest.shards[0].sha256 and inherited.locators == v1.manifest.shards[0].locators
    stored = [p for p in store_dir.rglob("*") if p.is_file() and "sha256" in p.parts]
    assert len(stored) == shards + v2.sealed_shards + v3.sealed_shards + 3  # and three manifests: nothing twice

    for result, rows in ((v2, v2_rows), (v3, v3_rows)):
        dataset = open_dataset(result.manifest_uri, keystore=keystore, workers=8)  # threads derive keys at once
        assert dataset.to_arrow().equals(rows)
        assert dataset.take([0, 1010, len(rows) - 1]).equals(rows.take([0, 1010, len(rows) - 1]))  # sparse reads
    assert v3.manifest.sealed_size - sum(e.sealed_size for e in v3.manifest.shards if e.origin) < \
        v3.manifest.sealed_size * 0.1


def test_a_buyer_of_the_old_version_cannot_open_the_new_shards(store_dir, keystore):
    (v1, v2, _), _ = _versions(store_dir, keystore)
    with pytest.raises(DecryptionError, match="key commitment"):
        open_dataset(v2.manifest_uri, key=v1.key).read_shard(0)
    own = next(e for e in v2.manifest.shards if e.origin is None)
    sealed = LocalStore(store_dir).get(own.locators[0])
    seal_id = bytes.fromhex(v2.manifest.seal_id)
    # the old key, and what the old key holder can compute from the link (the link's pad), open nothing new
    pad = linked_key(v1.key, bytes.fromhex(v2.manifest.lineage.key_link))
    for guess in (v1.key, pad):
        with pytest.raises(IntegrityError):
            open_shard(sealed, data_key=guess, seal_id=seal_id, shard_index=own.index)
    assert open_shard(sealed, data_key=v2.key, seal_id=seal_id, shard_index=own.index)


def test_a_key_link_that_leads_nowhere_is_named_when_read(store_dir, keystore):
    (_, v2, _), _ = _versions(store_dir, keystore)
    broken = replace(v2.manifest, lineage=replace(v2.manifest.lineage, key_link="00" * 32))
    dataset = open_dataset(_store_manifest(store_dir, broken), key=v2.key)
    own = next(e.index for e in broken.shards if e.origin is None)
    assert dataset.read_shard(own).num_rows > 0  # the version's own shards still open
    with pytest.raises(DecryptionError, match="generation 1"):
        dataset.read_shard(0)


def test_nothing_is_inherited_across_a_schema_or_segment_size_change(store_dir, keystore):
    (v1, _, _), (v1_rows, _, _) = _versions(store_dir, keystore)
    wider = v1_rows.append_column("extra", pa.array([0] * v1_rows.num_rows))
    changed = publish(wider, store=store_dir, name="growing", shard_size=SHARD, keystore=keystore,
                      previous=v1.manifest_hash)
    resegmented = publish(v1_rows, store=store_dir, name="growing", shard_size=SHARD, keystore=keystore,
                          previous=v1.manifest_hash, segment_size=4096)
    for result in (changed, resegmented):
        assert result.inherited_shards == 0 and result.manifest.lineage is None and result.manifest.version == 2
        assert result.manifest.previous_manifest == v1.manifest_hash


def test_previous_must_be_a_version_whose_key_is_at_hand(store_dir, keystore):
    with pytest.raises(PublishError, match="no published version"):
        publish(sample_table(10), store=store_dir, name="x", keystore=keystore, previous="ab" * 32)
    with pytest.raises(PublishError, match="manifest hash"):
        publish(sample_table(10), store=store_dir, name="x", keystore=keystore, previous="v1")


def _store_manifest(store_dir, manifest: Manifest) -> str:
    body = manifest.to_bytes()
    return LocalStore(store_dir).put(body, sha256=canonical.sha256_hex(body))


def _hostile(manifest: Manifest, change) -> bytes:
    doc = json.loads(manifest.to_bytes())
    change(doc)
    return canonical.encode(doc)


def test_hostile_lineage_fields_are_named(store_dir, keystore):
    (_, _, v3), _ = _versions(store_dir, keystore)
    m = v3.manifest
    cases = [
        (lambda d: d["shards"][0].update(origin={"generation": 3, "index": 0}), "shards[0].origin.generation"),
        (lambda d: d["shards"][0].update(origin={"generation": 0, "index": 0}), "shards[0].origin.generation"),
        (lambda d: d["shards"][0].update(origin={"generation": 1, "index": -1}), "shards[0].origin.index"),
        (lambda d: d["shards"][0].update(origin="v1"), "shards[0].origin"),
        (lambda d: d["lineage"].update(generations=[]), "lineage.generations"),
        (lambda d: d["lineage"]["generations"][0].update(key_link=None), "lineage.generations[0].key_link"),
        (lambda d: d["lineage"]["generations"][1].update(seal_id="xyz"), "lineage.generations[1].seal_id"),
        (lambda d: d["lineage"].update(key_link=7), "lineage.key_link"),
        (lambda d: d.update(previous_manifest=None), "lineage"),
    ]
    for change, field in cases:
        with pytest.raises(ManifestError) as info:
            Manifest.from_bytes(_hostile(m, change))
        assert info.value.field == field, field
    many = _hostile(m, lambda d: d["lineage"].update(generations=d["lineage"]["generations"] * 6))
    with pytest.raises(LimitError, match="generations"):
        Manifest.from_bytes(many, limits=Limits(lineage_generations=10))


# ---------------------------------------------------------------------------------------------- on-chain


@pytest.fixture
def parties(w3):
    accounts = dev_accounts(w3)
    return dict(zip(("treasury", "owner", "buyer"), accounts[:3], strict=True))


@pytest.fixture
def markets(w3, parties, tmp_path, keystore):
    deployed = Market.deploy(w3, parties["treasury"], fee_bps=250)
    return (Market(w3, deployed.address, parties["owner"], keystore=keystore),
            Market(w3, deployed.address, parties["buyer"],
                   keystore=Keystore(tmp_path / "b", passphrase="pw", scrypt_n=2**10)))


def _register_lineage(owner: Market, versions) -> list[int]:
    ids: list[int] = []
    for result in versions:
        ids.append(owner.register(result, price=PRICE, challenge_period=CHALLENGE, supersedes=ids[-1] if ids else None))
    return ids


def test_a_buyer_of_the_newest_version_opens_every_inherited_shard_and_an_honest_dispute_pays_the_seller(
        w3, markets, store_dir, parties, tmp_path):
    owner, buyer = markets
    (v1, v2, v3), (_, _, v3_rows) = _versions(store_dir, owner.keystore, author=parties["owner"])
    ids = _register_lineage(owner, (v1, v2, v3))
    assert owner.listing(ids[2]).key_link == v3.manifest.lineage.key_link and owner.listing(ids[0]).key_link is None
    purchase = buyer.purchase(ids[2])
    KeyAgent(owner, state_path=tmp_path / "agent.json", confirmations=0).run_once()
    assert buyer.receive_key(purchase.purchase_id) == v3.key
    assert buyer.open_dataset(ids[2]).to_arrow().equals(v3_rows)  # one key opens three generations
    assert buyer.dispute(purchase.purchase_id) == 0  # both links checked on-chain: the seller is paid at once
    assert buyer.purchase_info(purchase.purchase_id).status == "settled"


def test_a_link_that_leads_nowhere_is_refunded_by_the_contract(w3, markets, store_dir, parties, tmp_path):
    owner, buyer = markets
    (v1, v2, _), _ = _versions(store_dir, owner.keystore, author=parties["owner"])
    first = owner.register(v1, price=PRICE, challenge_period=CHALLENGE)
    # the owner registers v2 with a link that opens no earlier version (the authorship signature does not cover
    # the lineage, so the signed manifest stays valid): the buyer's own key checks pass, inherited shards fail
    lying = replace(v2.manifest, lineage=replace(v2.manifest.lineage, key_link="11" * 32))
    uri = _store_manifest(store_dir, lying)
    second = owner.register(uri, price=PRICE, challenge_period=CHALLENGE, supersedes=first)
    owner.keystore.put(DATA_KEY, lying.hash, v2.key)
    purchase = buyer.purchase(second)
    paid = w3.eth.get_balance(buyer.me)
    KeyAgent(owner, state_path=tmp_path / "agent.json", confirmations=0).run_once()
    assert buyer.purchase_info(purchase.purchase_id).status == "pending"  # the owner's own agent refuses it
    owner.deliver_key(purchase.purchase_id)  # delivered by hand: the version's own key is right
    with pytest.raises(KeyDeliveryError, match=r"does not open the earlier versions.*disputed on-chain"):
        buyer.receive_key(purchase.purchase_id)  # checked on arrival: disputed with the generations it inherits
    assert buyer.purchase_info(purchase.purchase_id).status == "refunded"
    assert owner.disputes_lost(owner.me) == 1
    assert w3.eth.get_balance(buyer.me) > paid + PRICE - 10**16  # the whole price back and withdrawn (less gas)
    dev_advance_time(w3, CHALLENGE + 5)
    assert owner.withdrawable() == 0  # nothing ever reaches the seller


def test_a_lineage_that_names_another_version_than_the_chain_is_refused_before_paying(w3, markets, store_dir,
                                                                                      parties):
    owner, buyer = markets
    (v1, v2, _), (v1_rows, _, _) = _versions(store_dir, owner.keystore, author=parties["owner"])
    owner.register(v1, price=PRICE, challenge_period=CHALLENGE)
    other = publish(pc.take(v1_rows, pa.array(range(10))), store=store_dir, name="other", keystore=owner.keystore,
                    author=parties["owner"])
    unrelated = owner.register(other, price=PRICE, challenge_period=CHALLENGE)
    second = owner.register(v2, price=PRICE, challenge_period=CHALLENGE, supersedes=unrelated)
    balance = w3.eth.get_balance(buyer.me)
    with pytest.raises(IntegrityError, match="generation 1"):
        buyer.purchase(second)
    assert w3.eth.get_balance(buyer.me) == balance  # nothing paid, no gas spent
    with pytest.raises(UsageError, match="supersedes"):
        owner.register(v2, price=PRICE)


@pytest.mark.parametrize("w3", ["anvil"], indirect=True)
def test_the_catalog_shows_what_each_version_inherited_and_stored(w3, anvil, markets, store_dir, parties, tmp_path):
    owner, _ = markets
    (v1, v2, v3), _ = _versions(store_dir, owner.keystore, author=parties["owner"])
    ids = _register_lineage(owner, (v1, v2, v3))
    root = tmp_path / "index"
    Indexer(anvil.url, owner.address, root, confirmations=0).sync()
    with Catalog(root) as cat:
        query = "SELECT dataset_id, manifest_version, inherited_shards, stored_size, sealed_size FROM versions"
        rows = {r["dataset_id"]: r for r in cat.sql(query).to_pylist()}
        page = Pages(cat).dataset(ids[2])
    for dataset_id, result in zip(ids, (v1, v2, v3), strict=True):
        row = rows[dataset_id]
        assert row["inherited_shards"] == result.inherited_shards
        assert row["stored_size"] == sum(e.sealed_size for e in result.manifest.shards if e.origin is None)
    assert rows[ids[2]]["manifest_version"] == 3 and rows[ids[2]]["stored_size"] < rows[ids[2]]["sealed_size"] / 10
    versions = page[page.index("id='lineage'"):page.index("<h2>Sales</h2>")]
    assert "inherited_shards" in versions and f">{v3.inherited_shards}<" in versions
