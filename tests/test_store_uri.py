"""Store URI settings: the query first, then the environment, then the default; bad numbers named."""

import pytest

from deai_data.errors import StorageError
from deai_data.storage.arweave import ArweaveStore
from deai_data.storage.filecoin import PieceStore
from deai_data.storage.ipfs import IpfsStore
from deai_data.storage.store_uri import StoreQuery


def test_query_then_environment_then_default(monkeypatch):
    monkeypatch.setenv("DEAI_X", " a, b ,,")
    query = StoreQuery("x://?gateway=http://one&gateway=http://two&n=3")
    assert query.values("gateway", "DEAI_X") == ["http://one", "http://two"]
    assert query.values("missing", "DEAI_X") == ["a", "b"] and query.values("missing") == []
    assert query.value("gateway") == "http://one" and query.value("missing", "DEAI_UNSET", "d") == "d"
    assert query.integer("n", 7) == 3 and query.integer("missing", 7) == 7
    with pytest.raises(StorageError, match="concurrency must be an integer, not 'many'"):
        ArweaveStore.from_uri("ar://?gateway=http://127.0.0.1:1&concurrency=many")


def test_each_network_store_reads_its_settings(monkeypatch):
    monkeypatch.setenv("DEAI_IPFS_GATEWAYS", "http://127.0.0.1:2")
    monkeypatch.setenv("DEAI_PDP_PROVIDERS", "http://127.0.0.1:3,http://127.0.0.1:4")
    ipfs = IpfsStore.from_uri("ipfs://?api=http://127.0.0.1:1")
    assert ipfs.node.url == "http://127.0.0.1:1" and ipfs.gateways == ["http://127.0.0.1:2"]
    assert PieceStore.from_uri("piece://").providers == ["http://127.0.0.1:3", "http://127.0.0.1:4"]
    store = ArweaveStore.from_uri("ar://?gateway=http://127.0.0.1:5&bundle=1000&concurrency=2")
    assert store.gateway.gateways == ["http://127.0.0.1:5"] and store.bundle_items_up_to == 1000
    assert store.chunk_concurrency == 2
