"""`deai-data estimate`: Arweave quoted by a real gateway (arlocal), Filecoin from `getServicePrice()` answered on a
real chain (anvil) by a double of FilecoinWarmStorageService's price getter (raw EVM code returning a
ServicePricing, both layouts the service has published), S3 from a list price; offline, the remembered quotes."""

from __future__ import annotations

import json
import time
from decimal import Decimal

import pyarrow as pa
import pytest
from test_cli import cli

from deai_data import StorageError, UsageError, publish
from deai_data.storage.costs import TIB, arweave_quote, compare, filecoin_quote, s3_quote

USDFC = 10**18


def price_getter(anvil, words: list[int]) -> str:
    """Deploy code that answers any call with `words` ABI-encoded (a double of getServicePrice())."""
    data = b"".join(w.to_bytes(32, "big") for w in words)
    runtime = bytes([0x60, len(data), 0x60, 12, 0x60, 0, 0x39, 0x60, len(data), 0x60, 0, 0xF3]) + data
    init = bytes([0x60, len(runtime), 0x60, 12, 0x60, 0, 0x39, 0x60, len(runtime), 0x60, 0, 0xF3]) + runtime
    sender = anvil.rpc("eth_accounts")[0]
    tx = anvil.rpc("eth_sendTransaction", {"from": sender, "data": "0x" + init.hex(), "gas": hex(300_000)})
    for _ in range(50):
        receipt = anvil.rpc("eth_getTransactionReceipt", tx)
        if receipt:
            return receipt["contractAddress"]
        time.sleep(0.1)
    raise AssertionError("the price getter was not deployed")


def test_filecoin_price_from_the_service_contract_then_remembered(anvil):
    token = int("b3042734b608a1B16e9e86B374A3f3e389B4cDf0", 16)
    current = price_getter(anvil, [3 * USDFC, 7 * USDFC, 9 * USDFC, token, 86400, USDFC // 10])
    quote = filecoin_quote(2 * TIB, 6, rpc=anvil.url, service=current)
    assert quote.live and quote.per_month == 6 and quote.total == 36 and quote.unit == "USDFC"
    assert current in quote.source and quote.detail["price_per_tib_month"] == "3"
    small = filecoin_quote(1000, 1, rpc=anvil.url, service=current)
    assert small.per_month == Decimal("0.1")                     # the service's monthly minimum
    earlier = price_getter(anvil, [2 * USDFC, 4 * USDFC, token, 86400])   # the four-field layout
    assert filecoin_quote(TIB, 1, rpc=anvil.url, service=earlier).per_month == 2
    offline = filecoin_quote(TIB, 1, rpc=anvil.url, service=current, offline=True)
    assert not offline.live and offline.per_month == 2 and "on 20" in offline.source   # the last quote, dated
    wrong = price_getter(anvil, [1, 2, 3])
    fallback = filecoin_quote(TIB, 1, rpc=anvil.url, service=wrong)
    assert not fallback.live and "could not be read (StorageError)" in fallback.source and fallback.per_month == 2
    unreachable = filecoin_quote(TIB, 1, rpc="http://127.0.0.1:9", service=current)
    assert not unreachable.live and unreachable.per_month == 2


def test_the_default_prices_say_where_they_come_from():
    fresh = filecoin_quote(TIB, 12)
    assert fresh.per_month == Decimal("2.5") and "specification's default" in fresh.source
    s3 = s3_quote(10**12, 12)
    assert s3.per_month == 23 and s3.total == 276 and "list price" in s3.source
    assert s3_quote(10**9, 2, usd_per_gb_month=Decimal("0.01")).total == Decimal("0.02")
    assert arweave_quote(10, [], offline=True).total is None
    with pytest.raises(UsageError):
        compare(10, 0)
    with pytest.raises(UsageError):
        compare(10, 1, backends=["dropbox"])
    with pytest.raises(StorageError):
        from deai_data.storage.costs import _service_price
        _service_price("http://127.0.0.1:9", "0x" + "00" * 20)


def test_arweave_quote_live_then_offline_and_the_cli(arlocal, tmp_path):
    live = arweave_quote(1 << 20, [arlocal.url], 12)
    assert live.live and live.total == Decimal(live.detail["winston"]) / 10**12 and live.per_month is None
    scaled = arweave_quote(2 << 20, [arlocal.url], offline=True)
    assert not scaled.live and scaled.detail["winston"] == 2 * live.detail["winston"]
    assert "scaled from" in scaled.source

    out = cli("estimate", "1GiB", "--months", "24", "--gateway", arlocal.url, "--s3-price", "0.02").stdout
    assert "24 months" in out and "quoted by" in out and "the price given" in out
    doc = json.loads(cli("estimate", "1GiB", "--backend", "s3", "--backend", "filecoin", "--json").stdout)
    assert [q["backend"] for q in doc["quotes"]] == ["filecoin", "s3"] and doc["bytes"] == 1 << 30

    result = publish(pa.table({"x": list(range(1000))}), store=tmp_path / "store", name="sized")
    doc = json.loads(cli("estimate", result.manifest_uri, "--backend", "s3", "--offline", "--json").stdout)
    assert doc["bytes"] == result.manifest.sealed_size
    assert "neither a size" in cli("estimate", "12 parsecs", check=2).stderr
    assert "--s3-price" in cli("estimate", "1GB", "--s3-price", "cheap", check=2).stderr
