"""The `ipfs://` store against a real IPFS node (js-ipfs, offline, loopback): the same CIDs as the node
computes, CAR import, verified reads by CAR and by block, ranges, and every lying source caught: altered
blocks, a missing block, an unlinked block, a wrong root."""

from __future__ import annotations

import random

import pyarrow as pa
import pytest
import requests
from httpfaults import Fault, FaultProxy, QuietHandler, serve

from deai_data import IntegrityError, NotFoundError, StorageError, open_dataset, publish
from deai_data.storage import register_store
from deai_data.storage.ipfs import CID, IpfsStore, file_cid, read_car
from deai_data.storage.ipfs.car import car_bytes
from deai_data.storage.ipfs.store import reader_from_env
from deai_data.storage.ipfs.unixfs import CHUNK_SIZE, MAX_LINKS, Block


@pytest.fixture
def node(ipfs_node):
    return ipfs_node


def payload(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


class TrustlessGatewayDouble:
    """A double of a trustless gateway (js-ipfs's gateway serves no CARs). It answers
    `GET /ipfs/{cid}?format=car` with the CAR the real node exports (`dag/export`) and `?format=raw` with
    the node's block, as the trustless gateway spec describes; `mode` makes it misbehave: "drop" (leave out
    the last block), "extra" (add a block not linked from the root), "root" (announce another root)."""

    def __init__(self, api: str) -> None:
        self.mode: str | None = None
        self.requests: list[str] = []
        double = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                double.requests.append(self.path)
                cid, _, query = self.path.removeprefix("/ipfs/").partition("?")
                if "format=car" in query:
                    raw = requests.post(f"{api}/api/v0/dag/export?arg={cid}", timeout=30).content
                    body, kind = double.rewrite(raw), "application/vnd.ipld.car"
                else:
                    raw = requests.post(f"{api}/api/v0/block/get?arg={cid}", timeout=30)
                    body, kind = raw.content, "application/vnd.ipld.raw"
                self.reply(200, body, {"Content-Type": kind})

        self.server, self.url = serve(Handler)

    def rewrite(self, car: bytes) -> bytes:
        if self.mode is None:
            return car
        roots, blocks = read_car(car)
        kept = [Block(c, d) for c, d in blocks]
        if self.mode == "drop":
            kept = kept[:-1]
        elif self.mode == "extra":
            kept.append(Block(CID.of(b"not linked"), b"not linked"))
        elif self.mode == "root":
            roots = [CID.of(b"another root")]
        return car_bytes(roots, kept)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def gateway(node):
    double = TrustlessGatewayDouble(node.api)
    yield double
    double.close()


@pytest.mark.parametrize("size", [1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * CHUNK_SIZE + 5, CHUNK_SIZE * (MAX_LINKS + 2)])
def test_our_cids_are_the_nodes(node, tmp_path, size):
    data = payload(size, size)
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    assert str(file_cid(data)) == node.add(path)


def test_put_then_read_whole_ranges_and_stat(node):
    store = IpfsStore(node.api)
    data = payload(5 * CHUNK_SIZE + 1234, 1)
    locator = store.put(data)
    assert locator == f"ipfs://{file_cid(data)}"
    reader = IpfsStore(node.api)  # a fresh reader: nothing cached
    assert reader.get(locator) == data
    for start, end in ((0, 10), (CHUNK_SIZE - 5, CHUNK_SIZE + 5), (3 * CHUNK_SIZE, len(data)), (100, None)):
        assert reader.get(locator, start, end) == data[start:end]
    assert reader.stat(locator).size == len(data) and reader.exists(locator)
    small = store.put(b"tiny object")
    assert CID.parse(small.removeprefix("ipfs://")).codec == 0x55 and reader.get(small) == b"tiny object"
    assert reader.stat(small).size == len(b"tiny object")  # block/stat: nothing downloaded


def test_missing_blocks_are_not_found(node):
    store = IpfsStore(node.api, retries=0, block_timeout="1s")
    absent = f"ipfs://{CID.of(b'never added anywhere')}"
    assert not store.exists(absent)
    with pytest.raises(NotFoundError):
        store.get(absent)


def test_reads_a_whole_file_as_one_verified_car(node, gateway):
    data = payload(4 * CHUNK_SIZE + 99, 2)
    locator = IpfsStore(node.api).put(data)
    store = IpfsStore(gateways=[gateway.url])
    assert store.get(locator) == data
    assert [r for r in gateway.requests if "format=car" in r]
    assert not [r for r in gateway.requests if "format=raw" in r]  # one request, no block-by-block


@pytest.mark.parametrize("mode,why", [("drop", "lacks 1 linked"), ("extra", "not linked"), ("root", "roots")])
def test_a_lying_car_is_refused(node, gateway, mode, why):
    data = payload(3 * CHUNK_SIZE + 1, 3)
    locator = IpfsStore(node.api).put(data)
    gateway.mode = mode
    store = IpfsStore(gateways=[gateway.url])
    with pytest.raises(IntegrityError, match=why):
        store._car_from(gateway.url, CID.parse(locator.removeprefix("ipfs://")))
    assert store.get(locator) == data  # then block by block (?format=raw), every block checked


def test_altered_blocks_from_the_node_or_a_gateway_are_caught(node, gateway):
    data = payload(2 * CHUNK_SIZE + 7, 4)
    locator = IpfsStore(node.api).put(data)
    leaf = str(CID.of(data[:CHUNK_SIZE]))
    with FaultProxy(node.api) as proxy:
        proxy.add(Fault("corrupt", match=leaf, at=10, times=100))
        with pytest.raises(IntegrityError, match=f"block {leaf} does not match"):
            IpfsStore(proxy.url, backoff=0.01).get(locator, 0, 100)
        both = IpfsStore(node.api, gateways=[gateway.url + "/x-broken"], backoff=0.01)
        assert both.get(locator, 0, 100) == data[:100]  # a failing gateway, then the node
    with FaultProxy(gateway.url) as proxy:
        proxy.add(Fault("corrupt", match="format=car", at=500, times=100))
        mixed = IpfsStore(node.api, gateways=[proxy.url], backoff=0.01)
        assert mixed.get(locator) == data  # the altered CAR is dropped; blocks come verified


def test_publish_and_open_on_ipfs(node, monkeypatch):
    rng = random.Random(5)
    table = pa.table({"i": list(range(300)), "blob": [rng.randbytes(2000) for _ in range(300)]})
    result = publish(table, store=f"ipfs://?api={node.api}", name="ipfs", shard_size=300_000)
    assert all(s.locators[0].startswith("ipfs://baf") for s in result.manifest.shards)  # raw leaf or dag-pb root
    monkeypatch.setenv("DEAI_IPFS_API", node.api)
    register_store("ipfs", reader_from_env, writer=IpfsStore.from_uri, replace=True)
    try:
        dataset = open_dataset(result.manifest_uri, manifest_hash=result.manifest_hash)
        assert dataset.to_arrow().equals(table) and dataset.verify().ok
    finally:
        monkeypatch.undo()
        register_store("ipfs", reader_from_env, writer=IpfsStore.from_uri, replace=True)
    with pytest.raises(StorageError, match="needs a node API"):
        IpfsStore(gateways=["http://127.0.0.1:1"]).put(b"x")
