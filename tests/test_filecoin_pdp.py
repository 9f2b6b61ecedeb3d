"""Filecoin PDP storage against a double of a Curio provider (tests/pdp_double.py: no Curio runs here),
and the FilecoinWarmStorageService EIP-712 encoding against the published Synapse SDK's reference values."""

from __future__ import annotations

import json
import os
import random

import pytest
from eth_abi import decode as abi_decode
from eth_account import Account
from pdp_double import PdpDouble
from test_cli import cli

from deai_data import IntegrityError, StorageError, open_dataset, publish
from deai_data.storage.filecoin import (
    PdpClient,
    PieceStore,
    WarmStorageAuth,
    add_pieces_extra_data,
    create_data_set_extra_data,
    piece_of,
)
from deai_data.storage.filecoin.warm_storage import TYPES
from deai_data.storage.ipfs.cid import CID

# FilOzone/synapse-sdk src/test/pdp-auth.test.ts: "generated from the Solidity reference implementation"
SDK = {
    "private_key": "0x1234567890123456789012345678901234567890123456789012345678901234",
    "address": "0x2e988A386a799F506693793c6A5AF6B54dfAaBfB",
    "contract": "0x5615dEB798BB3E4dFa0139dFa1b3D433Cc23b72f",
    "chain_id": 31337,
    "domain_separator": "62ef5e11007063d470b2e85638bf452adae7cc646a776144c9ecfc7a9c42a3ba",
    "create": ("259fdf0e90ede5d9367809b4d623fa031e218536e1d87c0e38b54b38461ea0ec",
               "2ade4cae25767d913085f43ce05de4d5b4b3e1f19e87c8a35f184bcf69ccbed83636027a360676212407c0b5cc5d7e33a"
               "67919d5d450e3e12644a375c38b78b01c"),
    "add": ("94ed837bcb986fa8f59453cd9e42494f93227e80d4fa54aa3da458b2ffb69790",
            "11a84c9e14c95c8e6a8efc4ee72fb3bb4b596a398fc1c0ff9d1ddec24eab6ce239964f6c75144499e56f36c7e85559b74d5c"
            "03faf0cc9843846ff05a52d928f91b"),
    # PIECE_DATA there; the signature covers these v2 PieceCIDs' bytes (its `pieceCidBytes` list is stale)
    "add_pieces": ["bafkzcibcauan42av3szurbbscwuu3zjssvfwbpsvbjf6y3tukvlgl2nf5rha6pa",
                   "bafkzcibcpybwiktap34inmaex4wbs6cghlq5i2j2yd2bb2zndn5ep7ralzphkdy"],
    "removals": ("ef55929f8dd724ef4b43c5759db26878608f7e1277d168e3e621d3cd4ba682dd",
                 "cb8e645f2894fde89de54d4a54eb1e0d9871901c6fa1c2ee8a0390dc3a29e6cb2244d0561e3eca6452fa59efaab3d4b1"
                 "8a0b5b59ab52e233b3469422556ae9c61c"),
    "delete": ("79df79ba922d913eccb0f9a91564ba3a1a81a0ea81d99a7cecf23cc3f425cafb",
               "94e366bd2f9bfc933a87575126715bccf128b77d9c6937e194023e13b54272eb7a74b7e6e26acf4341d9c56e141ff7ba"
               "154c37ea03e9c35b126fff1efe1a0c831c"),
}


@pytest.fixture
def provider():
    double = PdpDouble()
    yield double
    double.close()


def sdk_auth() -> WarmStorageAuth:
    account = Account.from_key(SDK["private_key"])
    assert account.address == SDK["address"]
    return WarmStorageAuth(account, SDK["contract"], SDK["chain_id"])


def test_eip712_digests_and_signatures_match_the_sdk():
    auth = sdk_auth()
    message = auth._message("DeleteDataSet", {"clientDataSetId": 1})
    assert message.header.hex() == SDK["domain_separator"]
    cases = {
        "create": auth.create_data_set(12345, "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", with_cdn=True),
        "add": auth.add_pieces(12345, 1, [CID.parse(p) for p in SDK["add_pieces"]]),
        "removals": auth.schedule_piece_removals(12345, [1, 3, 5]),
        "delete": auth.delete_data_set(12345),
    }
    for name, signed in cases.items():
        assert (signed.digest.hex(), signed.signature.hex()) == SDK[name], name
    other = auth.create_data_set(12346, "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", with_cdn=True)
    assert other.digest.hex() != SDK["create"][0]
    assert set(TYPES) == {"CreateDataSet", "Cid", "AddPieces", "SchedulePieceRemovals", "DeleteDataSet"}


def test_pieces_upload_find_and_download(provider):
    client = PdpClient(provider.url)
    data = random.Random(1).randbytes(300_000)
    piece = client.upload_piece(data)
    cid = str(piece.cid)
    assert cid.startswith("bafkzcib") and client.has_piece(cid)
    client.wait_for_piece(cid, timeout=5)
    assert len(provider.uploads) == 1
    assert client.upload_piece(data).cid == piece.cid and len(provider.uploads) == 1  # already held: no upload
    assert client.download_piece(cid) == data
    assert client.download_piece(cid, 1000, 5000) == data[1000:5000]
    assert not client.has_piece(str(piece_of(b"y" * 1000).cid))

    provider.corrupt_downloads = True
    with pytest.raises(IntegrityError, match="not piece"):
        client.download_piece(cid)
    provider.corrupt_downloads = False

    other = piece_of(random.Random(2).randbytes(300_000))
    with pytest.raises(StorageError, match="Computed hash does not match"):
        client.upload_piece(data, piece=other)  # the provider re-hashes what it receives
    with pytest.raises(StorageError, match="size does not match"):
        client.upload_piece(data[:-1], piece=piece_of(data[:-1] + b"z" * 2))


def test_data_sets_carry_the_clients_authorisation(provider):
    account = Account.create()
    auth = WarmStorageAuth(account, "0x" + "11" * 20, 314159)
    client = PdpClient(provider.url)
    payee = "0x" + "22" * 20
    created = auth.create_data_set(7, payee)
    pending = client.create_data_set("0x" + "11" * 20, create_data_set_extra_data(account.address, False,
                                                                                  created.signature))
    status = client.status(pending)
    assert status["dataSetCreated"] is True and status["createMessageHash"] == pending.tx_hash
    data_set = provider.data_sets[status["dataSetId"]]
    assert data_set["payer"].lower() == account.address.lower()
    # what the contract checks: the signature recovers the payer over the CreateDataSet digest
    signable = auth._message("CreateDataSet", {"clientDataSetId": 7, "withCDN": False, "payee": payee})
    assert Account.recover_message(signable, signature=data_set["signature"]) == account.address

    pieces = [client.upload_piece(random.Random(i).randbytes(5000 + i)) for i in range(3)]
    added = auth.add_pieces(7, 0, [p.cid for p in pieces])
    result = client.status(client.add_pieces(status["dataSetId"], [str(p.cid) for p in pieces],
                                             add_pieces_extra_data(added.signature)))
    assert result["confirmedPieceIds"] == [0, 1, 2]
    signature, _ = abi_decode(["bytes", "string"], bytes.fromhex(data_set["last_extra"].removeprefix("0x")))
    signable = auth._message("AddPieces", {"clientDataSetId": 7, "firstAdded": 0,
                                           "pieceData": [{"data": p.cid.to_bytes()} for p in pieces]})
    assert Account.recover_message(signable, signature=signature) == account.address
    with pytest.raises(StorageError, match="not found"):
        client.add_pieces(status["dataSetId"], [str(piece_of(b"q" * 100).cid)], b"")


def test_publish_and_open_through_a_pdp_provider(provider, tmp_path):
    import pyarrow as pa
    rng = random.Random(3)
    table = pa.table({"x": list(range(500)), "blob": [rng.randbytes(500) for _ in range(500)]})
    result = publish(table, store=f"piece://?provider={provider.url}", name="pdp", shard_size=100_000)
    locators = [s.locators[0] for s in result.manifest.shards]
    assert all(loc.startswith("piece://bafkzcib") and f"provider={provider.url}" in loc for loc in locators)
    dataset = open_dataset(result.manifest_uri, manifest_hash=result.manifest_hash)
    assert dataset.to_arrow().equals(table)
    provider.corrupt_downloads = True
    with pytest.raises(IntegrityError):
        open_dataset(result.manifest_uri, manifest_hash=result.manifest_hash).read_shard(0)
    provider.corrupt_downloads = False
    store = PieceStore([provider.url])
    assert store.stat(locators[0]).size == result.manifest.shards[0].sealed_size


def test_piece_cli_prints_both_cids(tmp_path):
    data = random.Random(4).randbytes(2_000_000)
    path = tmp_path / "payload.bin"
    path.write_bytes(data)
    doc = json.loads(cli("piece", str(path)).stdout)
    piece = piece_of(data)
    assert doc == {"piece_cid": str(piece.cid), "piece_cid_v1": str(piece.cid_v1), "padded_size": 2 << 20,
                   "payload_size": len(data), "cid": str(CID.of(data))}
    assert cli("piece", str(tmp_path / "missing"), check=9).stderr.startswith("error:")
    os.truncate(path, 10)
    assert "at least 65" in cli("piece", str(path), check=2).stderr
