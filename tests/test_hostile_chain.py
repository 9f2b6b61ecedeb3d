"""Hostile chain data against the indexer, on a real anvil: a contract that emits an undecodable market event
and a uint256 at its maximum, and registrations whose manifest URIs point at loopback, local files, endless or
deeply nested bodies. The indexer quarantines, records a reason in its own words (never a response body),
backs off, stores every amount exactly, and never stops."""

from __future__ import annotations

import hashlib
import os
import time

import pyarrow as pa
import pytest
from hostile import bounded
from httpfaults import QuietHandler, serve
from web3 import Web3

from deai_data import Catalog, Keystore, publish
from deai_data.chain.connect import anvil_dev_accounts
from deai_data.errors import DeaiError
from deai_data.market import Market, artifact
from deai_indexer import Indexer
from deai_indexer.events import event_specs, snake

pytestmark = pytest.mark.slow

SECRET = b"internal-only: root password is hunter2"
HITS: list[str] = []


class Internal(QuietHandler):
    """A service only reachable from inside: what a request forgery would read out."""

    def do_GET(self) -> None:
        HITS.append(self.path)
        if self.path == "/deep":
            self.reply(200, DEEP)
        else:
            self.reply(200, SECRET)


@pytest.fixture
def node(anvil):
    """The session's anvil, rolled back after each test."""
    with anvil.rolled_back():
        yield anvil


@pytest.fixture(scope="module")
def internal():
    server, url = serve(Internal)
    yield url
    server.shutdown()
    server.server_close()


def _topic(name: str) -> bytes:
    return bytes.fromhex(next(s.topic for s in event_specs().values() if s.name == name)[2:])


def _push(data: bytes) -> bytes:
    return bytes([0x5F + len(data)]) + data  # PUSHn


def _poison_code() -> bytes:
    """Runtime code that, on any call, emits Withdrawn(account, token; to, amount = 2**256 - 1) exactly as the
    market would, then a `Purchased` log whose data is one byte (it cannot decode)."""
    code = _push(bytes.fromhex("c0" * 20)) + _push(b"\x00") + b"\x52"           # mstore(0, to)
    code += _push(b"\xff" * 32) + _push(b"\x20") + b"\x52"                       # mstore(32, 2**256 - 1)
    code += _push(b"\x00") + _push(bytes.fromhex("ab" * 20)) + _push(_topic("Withdrawn"))
    code += _push(b"\x40") + _push(b"\x00") + b"\xa3"                            # log3(0, 64, t0, account, token)
    code += _push(_topic("Purchased")) + _push(b"\x01") + _push(b"\x00") + b"\xa1"  # log1(0, 1, Purchased)
    return code + b"\x00"


def test_an_undecodable_event_is_quarantined_and_extremes_are_exact(node, tmp_path, monkeypatch):
    w3 = Web3(Web3.HTTPProvider(node.url))
    poison = Web3.to_checksum_address("0x" + "5e" * 20)
    node.rpc("anvil_setCode", poison, "0x" + _poison_code().hex())
    sender = anvil_dev_accounts()[0]
    for _ in range(2):
        tx = {"to": poison, "from": sender.address, "gas": 100_000, "nonce": w3.eth.get_transaction_count(
            sender.address), "chainId": w3.eth.chain_id, "gasPrice": w3.eth.gas_price * 2}
        w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(sender.sign_transaction(tx).raw_transaction))
    root = tmp_path / "index"
    indexer = Indexer(node.url, poison, root, confirmations=0, enrich=False)
    indexer.sync()
    indexer.sync()  # again: nothing new, the quarantine holds each log once
    with Catalog(root) as cat:
        amounts = cat.sql("SELECT amount FROM raw.withdrawn").column(0).to_pylist()
        assert amounts == [str(2**256 - 1)] * 2, "an amount of any uint256 value is stored exactly"
        payouts = cat.sql("SELECT amount, amount_text FROM payouts").to_pylist()
        assert payouts[0]["amount"] is None and payouts[0]["amount_text"] == str(2**256 - 1)
        held = cat.sql("SELECT kind, reason FROM quarantine").to_pylist()
        assert len(held) == 2 and all(h["kind"] == "event" and "Purchased does not decode" in h["reason"]
                                      for h in held)
        assert cat.sql("SELECT count(*) AS n FROM raw.purchased").to_pylist()[0]["n"] == 0


DEEP = b"[" * 100_000 + b"]" * 100_000


def _registered_with_uris(w3: Web3, tmp_path, uris: list[str], hashes: dict[int, bytes] | None = None) -> str:
    """A market on which an owner registers content under each of `uris`, with a random manifest hash (or the
    one `hashes` gives for that position), as any registrant may."""
    owner = anvil_dev_accounts()[1]
    keystore = Keystore(tmp_path / "ks", passphrase="pw", scrypt_n=2**10)
    market = Market(w3, Market.deploy(w3, anvil_dev_accounts()[0]).address, owner, keystore=keystore)
    for i, uri in enumerate(uris):
        result = publish(pa.table({"x": [i]}), store=tmp_path / "store", name=f"m{i}", keystore=keystore,
                         author=owner)
        registration, signature = market.registration(result, price=1, manifest_uris=(uri,))
        registration["manifestHash"] = (hashes or {}).get(i) or os.urandom(32)
        market._send(market.contract.functions.register(registration, signature), "register")
    return market.address


def test_registrations_cannot_make_the_indexer_fetch_inside(node, internal, tmp_path, monkeypatch):
    """The attack: name loopback, a private service or a local file as a manifest URI so that the indexer
    fetches it and publishes what it found in the catalog. Under the default policy nothing is fetched."""
    monkeypatch.delenv("DEAI_FETCH_ALLOW", raising=False)
    w3 = Web3(Web3.HTTPProvider(node.url))
    with node.rolled_back():
        market = _registered_with_uris(w3, tmp_path, [f"{internal}/secret", "file:///etc/passwd",
                                                      "http://169.254.169.254/latest/meta-data/"])
        before = len(HITS)
        root = tmp_path / "index"
        Indexer(node.url, market, root, confirmations=0).sync()
    assert len(HITS) == before, "no request reached the internal service"
    with Catalog(root) as cat:
        rows = cat.sql("SELECT manifest_status AS status, manifest_error AS error FROM versions").to_pylist()
        held = cat.sql("SELECT * FROM quarantine WHERE kind = 'manifest'").to_pylist()
    assert [r["status"] for r in rows] == ["refused"] * 3 and len(held) == 3
    assert all("fetch policy" in r["error"] for r in rows)


def test_what_an_allowed_fetch_finds_never_reaches_the_catalog(node, internal, tmp_path, monkeypatch):
    """Even where a deployment allows private networks and files, a hostile URI gets a bounded fetch and a
    reason in the indexer's words: no response body, no RecursionError, no 64 GiB read of /dev/zero; and
    a failed manifest is not fetched again before its backoff."""
    monkeypatch.setenv("DEAI_FETCH_ALLOW", "private,files")
    w3 = Web3(Web3.HTTPProvider(node.url))
    with node.rolled_back():
        market = _registered_with_uris(w3, tmp_path, [f"{internal}/secret", f"{internal}/deep", "file:///dev/zero"],
                                       {1: hashlib.sha256(DEEP).digest()})
        root = tmp_path / "index"
        indexer = Indexer(node.url, market, root, confirmations=0)
        started = time.perf_counter()
        indexer.sync()
        assert time.perf_counter() - started < 60
        hits = len(HITS)
        indexer.sync()
        assert len(HITS) == hits, "failed manifests wait for their backoff"
    with Catalog(root) as cat:
        rows = cat.sql("SELECT manifest_status, manifest_error FROM versions ORDER BY dataset_id").to_pylist()
        everything = str(cat.sql("SELECT * FROM manifests").to_pylist())
    assert [r["manifest_status"] for r in rows] == ["hash_mismatch", "malformed", "unreachable"]
    assert "hunter2" not in everything and SECRET.decode() not in everything
    assert "not a valid manifest" in rows[1]["manifest_error"]  # parsed (its hash matched): too deep
    assert "no object" in rows[2]["manifest_error"] or "fetch failed" in rows[2]["manifest_error"]


def test_a_hostile_dev_zero_manifest_is_bounded_for_the_sdk_too(tmp_path, monkeypatch):
    from deai_data.dataset.reader import fetch_manifest
    monkeypatch.setenv("DEAI_FETCH_ALLOW", "files")
    error = bounded(lambda: fetch_manifest("file:///dev/zero", trusted=False), DeaiError, mib=16, seconds=5)
    assert "not a regular file" in str(error)


def test_the_market_abi_has_no_amount_that_could_overflow_the_catalog():
    """Amounts the catalog keeps as DECIMAL(38, 0) are at most 126 bits wide in the ABI (uint96 prices and
    amounts); wider ones (uint256 totals) are kept as exact text. Ids are int64: the contract only takes ids it
    issued, and a log claiming a larger one would not decode and be quarantined (test above)."""
    for item in artifact()["abi"]:
        if item.get("type") != "event":
            continue
        for field in item["inputs"]:
            if field["type"].startswith("uint") and not field["indexed"]:
                bits = int(field["type"][4:].removesuffix("[]") or 256)
                spec = next(s for s in event_specs().values() if s.name == item["name"])
                column = spec.schema.field(snake(field["name"]))
                is_id = column.type == pa.int64() and field["name"] in ("supersedes", "datasetId", "purchaseId",
                                                                         "subscriptionId", "renews")
                assert bits <= 126 or column.type == pa.string() or is_id, (item["name"], field["name"])
