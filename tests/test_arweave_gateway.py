"""The Arweave client and `ar://` store against a real arlocal gateway: uploads (inline, by chunks,
bundled, through a bundler), reads, confirmations, GraphQL discovery, resume after SIGKILL, faults and
failover, and interoperability with arweave-js both ways."""

from __future__ import annotations

import hashlib
import json
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from arweave_services import arweave_js
from chains import free_port
from httpfaults import Fault, FaultProxy, QuietHandler, serve

from deai_data import IntegrityError, NotFoundError, StorageError
from deai_data.storage.arweave import ArweaveStore, GatewayClient, Transaction, Wallet, parse_bundle, validate_path
from deai_data.storage.arweave.ans104 import DataItem
from deai_data.storage.arweave.merkle import MAX_CHUNK_SIZE, unb64url

HERE = Path(__file__).parent


def payload(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def eventually(read, timeout: float = 30.0, *, done=lambda value: True):
    """arlocal unpacks a bundle uploaded by chunks in the background (as real gateways index bundles
    later): poll until its items are served (and `done(value)`, for indexes that lag the data)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = read()
            if done(value) or time.monotonic() > deadline:
                return value
        except NotFoundError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.1)


@pytest.fixture
def store(arlocal, funded_wallet, tmp_path) -> ArweaveStore:
    # arlocal files chunks in arrival order: one chunk in flight (arweave.net takes several)
    return ArweaveStore([arlocal.url], funded_wallet, chunk_concurrency=1, state_dir=tmp_path / "state")


def test_inline_and_chunked_uploads_read_back(store, arlocal):
    small, large = payload(1000, 1), payload(3 * MAX_CHUNK_SIZE + 5000, 2)
    a = store.put(small, labels={"Object-Type": "manifest"})
    b = store.put(large, labels={"Object-Type": "shard"})
    assert store.get(a) == small and store.get(b) == large
    assert store.get(b, 100, 300_000) == large[100:300_000]
    assert store.get(b, len(large) - 10) == large[-10:]
    assert store.stat(a).size == 1000 and store.stat(b).size == len(large)
    assert store.verified_get(b) == large
    header = store.gateway.transaction(b.removeprefix("ar://"))
    tags = dict(header.tags)
    assert tags["App-Name"] == "deai-data" and tags["Content-SHA256"] == hashlib.sha256(large).hexdigest()
    assert tags["Object-Type"] == "shard"
    with pytest.raises(NotFoundError):
        store.get("ar://" + "A" * 43)
    assert not store.exists("ar://" + "A" * 43)


def test_confirmations_follow_the_blocks(store, arlocal):
    locator = store.put(payload(500, 3))
    assert store.status(locator).state == "pending"
    arlocal.mine()
    first = store.status(locator)
    assert first.confirmed and first.confirmations == 1
    arlocal.mine(2)
    assert store.status(locator).confirmations == 3
    assert store.status(locator).block_height == first.block_height


def test_same_bytes_are_paid_for_once(store, arlocal, funded_wallet):
    data = payload(2 * MAX_CHUNK_SIZE + 1, 4)
    first = store.put(data)
    balance = store.gateway.balance(funded_wallet.address)
    assert store.put(data) == first
    assert store.gateway.balance(funded_wallet.address) == balance


def test_an_unfunded_wallet_gets_a_clear_error(arlocal, tmp_path):
    poor = ArweaveStore([arlocal.url], Wallet.generate(), chunk_concurrency=1, state_dir=tmp_path)
    with pytest.raises(StorageError, match=r"holds 0 winston.*fund the wallet"):
        poor.put(payload(5000, 5))
    with pytest.raises(StorageError, match="needs a wallet"):
        ArweaveStore([arlocal.url]).put(b"x")


def test_graphql_discovery_pages_through_tags(store, arlocal):
    dataset = payload(16, 6).hex()
    locators = [store.put(payload(300 + i, 100 + i), labels={"Dataset-Id": dataset, "Shard-Index": str(i)})
                for i in range(5)]
    arlocal.mine()
    found = list(store.find({"Dataset-Id": dataset}, page_size=2))
    assert sorted(o.locator for o in found) == sorted(locators)
    assert {o.tags["Shard-Index"] for o in found} == {"0", "1", "2", "3", "4"}
    assert all(o.block_height is not None for o in found)
    only = list(store.find({"Dataset-Id": dataset, "Shard-Index": ["1", "3"]}))
    assert sorted(o.tags["Shard-Index"] for o in only) == ["1", "3"]


def test_small_objects_travel_in_one_bundle(arlocal, funded_wallet, tmp_path):
    store = ArweaveStore([arlocal.url], funded_wallet, chunk_concurrency=1, bundle_items_up_to=64 << 10,
                         state_dir=tmp_path)
    objects = [payload(200 + 50 * i, 200 + i) for i in range(6)]
    locators = [store.put(o, labels={"i": str(i)}) for i, o in enumerate(objects)]
    assert store.get(locators[2]) == objects[2]  # served from the queue before the flush
    bundle_id = store.flush()
    assert bundle_id is not None and store.flush() is None
    items = parse_bundle(ArweaveStore([arlocal.url]).get(f"ar://{bundle_id}"))
    assert [f"ar://{i.id}" for i in items] == locators
    reader = ArweaveStore([arlocal.url])
    for locator, data in zip(locators, objects, strict=True):
        assert reader.get(locator) == data
    arlocal.mine()
    assert reader.status(locators[0]).confirmed


class BundlerDouble:
    """A double of a bundling service (no real bundler runs here). It follows the upload API the
    services share: `POST /tx` with an `application/octet-stream` body holding one signed ANS-104 data
    item, answered with JSON carrying the item's id; it verifies the item, then posts it to the gateway
    in a bundle paid with its own wallet, as a bundler does."""

    def __init__(self, gateway: str, tmp: Path) -> None:
        wallet = Wallet.generate()
        requests.get(f"{gateway}/mint/{wallet.address}/{10**18}", timeout=10).raise_for_status()
        self.store = ArweaveStore([gateway], wallet, chunk_concurrency=1, bundle_items_up_to=1 << 30, state_dir=tmp)
        self.received: list[str] = []
        double = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                item = DataItem(self.body())
                if self.path != "/tx" or not item.verify():
                    return self.reply(400, "invalid data item")
                double.store._queue(item)
                double.store.flush()
                double.received.append(item.id)
                self.reply(200, {"id": item.id, "timestamp": 0})

        self.server, self.url = serve(Handler)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_uploads_through_a_bundler(arlocal, tmp_path):
    bundler = BundlerDouble(arlocal.url, tmp_path / "bundler")
    try:
        owner = Wallet.generate()  # pays nothing: the bundler does
        arlocal.mint(owner.address)  # yet arlocal drops an item whose owner holds less than its size's price
        store = ArweaveStore([arlocal.url], owner, bundler=bundler.url, state_dir=tmp_path / "state")
        data = payload(3 * MAX_CHUNK_SIZE, 7)
        locator = store.put(data, labels={"Object-Type": "shard"})
        assert bundler.received == [locator.removeprefix("ar://")]
        assert eventually(lambda: store.get(locator)) == data
        tags = {"Object-Type": "shard", "Content-SHA256": hashlib.sha256(data).hexdigest()}
        found = eventually(lambda: list(store.find(tags)), done=bool)  # GraphQL indexes the item after its data
        assert [o.locator for o in found] == [locator]
    finally:
        bundler.close()


def test_killed_upload_resumes_without_resending_chunks(arlocal, funded_wallet, tmp_path):
    data = payload(10 * MAX_CHUNK_SIZE + 999, 8)
    (tmp_path / "data.bin").write_bytes(data)
    (tmp_path / "wallet.json").write_text(json.dumps(funded_wallet.to_jwk()))
    with FaultProxy(arlocal.url) as proxy:
        child = subprocess.run([sys.executable, str(HERE / "arweave_upload_child.py"), proxy.url,
                                str(tmp_path / "wallet.json"), str(tmp_path / "state"), str(tmp_path / "data.bin"),
                                "4"], capture_output=True, text=True, timeout=120)
        assert child.returncode == -9, child.stderr
        assert sum(h.path == "/chunk" for h in proxy.hits) == 4
        balance = requests.get(f"{arlocal.url}/wallet/{funded_wallet.address}/balance", timeout=5).text
        store = ArweaveStore([proxy.url], funded_wallet, chunk_concurrency=1, state_dir=tmp_path / "state")
        locator = store.put(data)
        chunk_posts = sum(h.path == "/chunk" for h in proxy.hits)
        tx_posts = sum(h.path == "/tx" and h.method == "POST" for h in proxy.hits)
    assert chunk_posts == 11 and tx_posts == 1  # 4 before the kill + the 7 missing; one header, paid once
    assert requests.get(f"{arlocal.url}/wallet/{funded_wallet.address}/balance", timeout=5).text == balance
    assert store.get(locator) == data


def test_reads_retry_and_fail_over(arlocal, store):
    data = payload(2 * MAX_CHUNK_SIZE + 77, 9)
    locator = store.put(data)
    tx_id = locator.removeprefix("ar://")
    with FaultProxy(arlocal.url) as proxy:
        reader = ArweaveStore([proxy.url], backoff=0.01)
        proxy.add(Fault("status", match=tx_id, status=500, times=2),
                  Fault("status", match=tx_id, status=429, headers={"Retry-After": "0"}),
                  Fault("truncate", match=f"/{tx_id}", at=1000))
        assert reader.get(locator) == data
        assert [h.fault for h in proxy.hits if h.path == f"/{tx_id}"][:4] == ["status", "status", "status", "truncate"]

        proxy.add(Fault("corrupt", match=f"/{tx_id}", at=12345, times=10))
        with pytest.raises(IntegrityError, match="signed data_root"):
            reader.get(locator)
        both = ArweaveStore([proxy.url, arlocal.url], backoff=0.01)  # the lying gateway first
        assert both.get(locator) == data

        proxy.faults.clear()
        proxy.add(Fault("stall", match=f"/{tx_id}", delay=2.0, times=10))
        slow = ArweaveStore([proxy.url], timeout=0.5, retries=1, backoff=0.01)
        with pytest.raises(StorageError, match="every gateway failed"):
            slow.get(locator)
        proxy.faults.clear()

    dead = f"http://127.0.0.1:{free_port()}"
    assert ArweaveStore([dead, arlocal.url], retries=0).get(locator) == data


def test_chunk_posts_are_retried(arlocal, funded_wallet, tmp_path):
    data = payload(3 * MAX_CHUNK_SIZE, 10)
    with FaultProxy(arlocal.url) as proxy:
        proxy.add(Fault("status", match="/chunk", status=503, times=2))
        store = ArweaveStore([proxy.url], funded_wallet, chunk_concurrency=1, state_dir=tmp_path, backoff=0.01)
        locator = store.put(data)
    assert ArweaveStore([arlocal.url]).get(locator) == data


def test_interoperates_with_arweave_js(arlocal, funded_wallet, store, tmp_path):
    jwk = tmp_path / "wallet.json"  # an anvil-style throwaway test key, in a test folder only
    jwk.write_text(json.dumps(funded_wallet.to_jwk()))
    ours = payload(5 * MAX_CHUNK_SIZE + 3333, 11)
    locator = store.put(ours)
    got = arweave_js("download", arlocal.url, locator.removeprefix("ar://"), tmp_path / "ours.out")
    assert got["size"] == len(ours) and (tmp_path / "ours.out").read_bytes() == ours

    theirs = payload(4 * MAX_CHUNK_SIZE + 10, 12)
    (tmp_path / "theirs.bin").write_bytes(theirs)
    uploaded = arweave_js("upload", arlocal.url, jwk, tmp_path / "theirs.bin")
    assert store.get(f"ar://{uploaded['id']}") == theirs  # data_root of their header checked on the way
    assert store.verified_get(f"ar://{uploaded['id']}") == theirs

    signed = arweave_js("sign-tx", arlocal.url, jwk, tmp_path / "theirs.bin")
    tx = Transaction.from_json(signed)
    assert tx.verify() and tx.id == signed["id"]
    assert dict(tx.tags)["Grüße"] == "naïve ✓"


def test_gateway_errors_name_what_failed(arlocal):
    client = GatewayClient([arlocal.url], retries=0)
    assert client.price(1_000_000) == int(requests.get(f"{arlocal.url}/price/1000000", timeout=5).text)
    assert client.height() >= 0
    with pytest.raises(NotFoundError):
        client.transaction("B" * 43)
    with pytest.raises(StorageError, match="no Arweave gateway"):
        GatewayClient([])


class StrictChunkGateway:
    """A double of the part of an Arweave node that arlocal does not implement faithfully: it takes chunks
    in any order and from many connections, and applies the node's rules to each (the proof must
    validate under the header's data_root at the given offset, the chunk must hash to the proven leaf,
    at most 256 KiB, offsets inside the data). Headers, prices and anchors are answered minimally."""

    def __init__(self) -> None:
        self.headers: dict[str, Transaction] = {}
        self.chunks: dict[tuple[bytes, int], bytes] = {}
        self.rejected: list[str] = []
        self.lock = threading.Lock()
        double = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                if self.path.startswith("/price/"):
                    return self.reply(200, b"1000")
                if self.path == "/tx_anchor":
                    return self.reply(200, b"A" * 64)
                if self.path.endswith("/status"):
                    known = self.path.split("/")[2] in double.headers
                    return self.reply(202 if known else 404, b"Pending" if known else b"Not Found")
                self.reply(404)

            def do_POST(self) -> None:
                doc = json.loads(self.body())
                if self.path == "/tx":
                    tx = Transaction.from_json(doc)
                    with double.lock:
                        double.headers[tx.id] = tx
                    return self.reply(200, b"OK")
                root, size = unb64url(doc["data_root"]), int(doc["data_size"])
                chunk, offset = unb64url(doc["chunk"]), int(doc["offset"])
                proven = validate_path(root, offset, size, unb64url(doc["data_path"]))
                ok = (any(h.data_root == root and h.data_size == size for h in double.headers.values())
                      and proven is not None and proven[1] - proven[0] == len(chunk) <= MAX_CHUNK_SIZE
                      and hashlib.sha256(chunk).digest() == proven[2] and proven[0] <= offset < proven[1])
                with double.lock:
                    if not ok:
                        double.rejected.append(doc["offset"])
                        return self.reply(400, b"invalid chunk")
                    double.chunks[(root, proven[0])] = chunk
                self.reply(200, b"OK")

        self.server, self.url = serve(Handler)

    def assembled(self, root: bytes) -> bytes:
        return b"".join(c for (r, _), c in sorted(self.chunks.items()) if r == root)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("size", [MAX_CHUNK_SIZE * 9, MAX_CHUNK_SIZE * 12 + 1000, MAX_CHUNK_SIZE * 7 + 100_000])
def test_concurrent_chunks_satisfy_the_nodes_rules(size, tmp_path):
    gateway = StrictChunkGateway()
    try:
        store = ArweaveStore([gateway.url], Wallet.generate(), chunk_concurrency=8, state_dir=tmp_path)
        data = payload(size, size)
        tx_id = store.put(data).removeprefix("ar://")
        assert gateway.rejected == []
        assert gateway.assembled(gateway.headers[tx_id].data_root) == data
    finally:
        gateway.close()
