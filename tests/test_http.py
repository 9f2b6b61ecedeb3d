"""Reading over HTTP through the fault-injecting proxy: retries, timeouts, failover, altered bytes."""

from __future__ import annotations

import time

import pytest
from conftest import sample_table
from httpfaults import Fault, FaultProxy, StaticServer

from deai_data import HttpStore, IntegrityError, NotFoundError, StorageError, open_dataset, publish
from deai_data.storage import content_path, store_for


@pytest.fixture
def served(store_dir, keystore):
    """A dataset published to a local store, served over HTTP through a fault proxy."""
    result = publish(sample_table(2000), store=store_dir, name="web", keystore=keystore, shard_size=30_000,
                     segment_size=4096)
    with StaticServer(store_dir) as origin, FaultProxy(origin.url) as proxy:
        yield result, origin.url, proxy.url, proxy


def http_only(dataset):
    """Drop the file:// locators so that every shard must come through the mirrors."""
    dataset.manifest = dataset.manifest.with_locators({i: () for i in range(dataset.num_shards)})
    return dataset


def manifest_url(base, result):
    return f"{base}/{content_path(result.manifest_hash)}"


def fast_store(**kw):
    return HttpStore(backoff=0.01, **kw)


def test_range_requests_against_the_static_server(served):
    result, origin, _, _ = served
    url = manifest_url(origin, result)
    store = fast_store()
    whole = store.get(url)
    assert store.get(url, 10, 30) == whole[10:30]
    assert store.get(url, len(whole) - 5) == whole[-5:]
    assert store.get(url, 0, 0) == b""
    assert store.stat(url).size == len(whole)
    assert store.exists(url) and not store.exists(url + "00")
    with pytest.raises(NotFoundError):
        store.get(url + "00")


def test_open_and_verify_over_http_with_mirrors(served, keystore):
    result, _, proxy_url, proxy = served
    dataset = http_only(open_dataset(manifest_url(proxy_url, result), keystore=keystore, mirrors=[proxy_url]))
    assert dataset.verify().ok
    assert dataset.to_arrow().equals(sample_table(2000))
    assert any(hit.path.endswith(result.manifest.shards[0].sha256) for hit in proxy.hits)


def test_retries_on_500_and_429_then_succeeds(served):
    result, _, proxy_url, proxy = served
    url = manifest_url(proxy_url, result)
    proxy.add(Fault("status", status=500, times=2), Fault("status", status=429, headers={"Retry-After": "0"}))
    assert fast_store().get(url) == store_for(result.manifest_uri).get(result.manifest_uri)
    assert [h.fault for h in proxy.hits] == ["status", "status", "status", None]


def test_gives_up_with_a_clear_error(served):
    result, _, proxy_url, proxy = served
    proxy.add(Fault("status", status=503, times=100))
    with pytest.raises(StorageError, match="gave up after 3 attempts: HTTP 503"):
        fast_store(retries=2).get(manifest_url(proxy_url, result))


def test_stall_is_a_timeout_then_a_retry(served):
    result, _, proxy_url, proxy = served
    proxy.add(Fault("stall", delay=1.5))
    started = time.monotonic()
    data = fast_store(timeout=0.5).get(manifest_url(proxy_url, result))
    assert len(data) > 0 and time.monotonic() - started < 1.5 + 1
    assert len(proxy.hits) == 2


def test_truncated_and_stalled_bodies_are_retried(served):
    result, _, proxy_url, proxy = served
    url = manifest_url(proxy_url, result)
    expected = store_for(result.manifest_uri).get(result.manifest_uri)
    proxy.add(Fault("truncate", at=100), Fault("stall-body", at=50, delay=1.5), Fault("reset"))
    assert fast_store(timeout=0.5).get(url) == expected
    assert [h.fault for h in proxy.hits] == ["truncate", "stall-body", "reset", None]


def test_altered_bytes_are_an_integrity_error_naming_the_shard(served, keystore):
    result, _, proxy_url, proxy = served
    entry = result.manifest.shards[1]
    proxy.add(Fault("corrupt", match=entry.sha256, at=entry.sealed_size // 2, times=10))
    dataset = http_only(open_dataset(manifest_url(proxy_url, result), keystore=keystore, mirrors=[proxy_url]))
    with pytest.raises(IntegrityError) as info:
        dataset.to_arrow()
    assert info.value.shard == 1 and info.value.segment is not None
    assert proxy_url in str(info.value)


def test_lying_gateway_falls_over_to_an_honest_mirror(served, keystore):
    result, origin, proxy_url, proxy = served
    proxy.add(Fault("corrupt", match="/objects/", at=70, times=1000))
    dataset = http_only(open_dataset(manifest_url(origin, result), keystore=keystore, mirrors=[proxy_url, origin]))
    assert dataset.to_arrow().num_rows == 2000
    assert sum(h.fault == "corrupt" for h in proxy.hits) == dataset.num_shards


def test_http_store_is_read_only():
    with pytest.raises(StorageError, match="read-only"):
        HttpStore().put(b"x")


def test_large_shards_are_fetched_as_parallel_ranges(tmp_path, keystore):
    """range_parts > 1: each remote shard arrives as byte ranges fetched at once, each retried on its own,
    and the whole is verified as always (an altered range is caught)."""
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(3)
    table = pa.table({"i": np.arange(40), "blob": [rng.bytes(200_000) for _ in range(40)]})
    store_dir = tmp_path / "big"
    result = publish(table, store=store_dir, name="big", keystore=keystore, shard_size=3_400_000)
    with StaticServer(store_dir) as origin, FaultProxy(origin.url) as proxy:
        url = manifest_url(proxy.url, result)
        dataset = http_only(open_dataset(url, keystore=keystore, mirrors=[proxy.url], range_parts=3))
        proxy.add(Fault("status", match=result.manifest.shards[0].sha256, status=503))
        assert dataset.to_arrow().equals(table)
        big = [s for s in result.manifest.shards if s.sealed_size >= 2 << 20]  # smaller shards: one request
        ranged = [h for h in proxy.hits if h.range and any(s.sha256 in h.path for s in big)]
        parts = [min(3, s.sealed_size >> 20) for s in big]  # ranges of at least 1 MiB
        assert big and 3 in parts and len(ranged) == sum(parts)
        sized = [h for h in proxy.hits if h.method == "HEAD" and any(s.sha256 in h.path for s in big)]
        assert len(sized) == len(big) + 1  # the size is checked first (no allocation before), retried after the 503
        assert {h.range.split("-")[0] for h in ranged if big[0].sha256 in h.path} == \
            {f"bytes={i * big[0].sealed_size // parts[0]}" for i in range(parts[0])}

        proxy.add(Fault("corrupt", match=big[0].sha256, at=1000, times=100))
        with pytest.raises(IntegrityError):
            dataset.read_shard(big[0].index)
