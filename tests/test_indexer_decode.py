"""The indexer's bulk decoder (hex matrices, deai_indexer/hexcols.py) against the per-value one and eth_abi,
for every static ABI type of the market's events, on values from Hypothesis."""

from __future__ import annotations

import json

import pyarrow as pa
from eth_abi import encode as abi_encode
from hypothesis import given, settings
from hypothesis import strategies as st

from deai_indexer.events import AMOUNT, event_specs
from deai_indexer.logtable import table_from_body, table_from_logs, well_formed

SPECS = {spec.name: spec for spec in event_specs().values()}


def raw_log(spec, values: dict, block: int = 5, index: int = 0, *, wide: bool = False) -> dict:
    """The log the market would emit; `wide`: integers encoded as uint256, whatever their declared width (what
    a hostile node can send)."""
    def types(fields):
        return [("uint256" if wide and t.startswith("uint") else t) for _, t in fields]

    topics = [spec.topic] + ["0x" + abi_encode([t], [values[n]]).hex()
                             for (n, _), t in zip(spec.indexed, types(spec.indexed), strict=True)]
    data = abi_encode(types(spec.data), [values[n] for n, _ in spec.data])
    return {"address": "0x" + "11" * 20, "topics": topics, "data": "0x" + data.hex(), "blockNumber": hex(block),
            "blockHash": "0x" + "AB" * 32, "transactionHash": "0x" + f"{index:064x}", "logIndex": hex(index),
            "removed": False}


def expected(abi_type: str, arrow_type: pa.DataType, value):
    if abi_type == "address":
        return value.lower()
    if abi_type == "bytes32":
        return value.hex()
    if arrow_type == AMOUNT:
        return int(value)
    return value


def strategy(abi_type: str, name: str):
    if abi_type == "address":
        return st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex().upper())
    if abi_type == "bytes32":
        return st.binary(min_size=32, max_size=32)
    if abi_type == "bool":
        return st.booleans()
    bits = int(abi_type[4:] or 256)  # the column type decides the range a value can take
    top = min(bits, 63) if name in ("purchase_id", "dataset_id", "supersedes", "token_id") else min(bits, 126)
    return st.integers(0, 2**top - 1)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_bulk_decode_equals_eth_abi_for_purchases_deliveries_and_settlements(data):
    for name in ("Purchased", "KeyDelivered", "PurchaseSettled", "Refunded", "PriceChanged", "SalesPaused"):
        spec = SPECS[name]
        count = data.draw(st.integers(1, 6))
        rows = [{n: data.draw(strategy(t, n)) for n, t in spec.indexed + spec.data} for _ in range(count)]
        logs = table_from_logs([raw_log(spec, row, index=i) for i, row in enumerate(rows)])
        table = spec.decode(logs, {5: 1_700_000_000})
        types = {f.name: f.type for f in spec.schema}
        for n, t in spec.indexed + spec.data:
            got = table.column(n).to_pylist()
            want = [expected(t, types[n], row[n]) for row in rows]
            assert [int(v) if types[n] == AMOUNT else v for v in got] == want, (name, n)
        assert table.column("block_hash").to_pylist() == ["0x" + "ab" * 32] * count
        assert table.column("log_index").to_pylist() == list(range(count))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.binary(min_size=20, max_size=20), st.integers(0, 2**16 - 1)), max_size=17),
       st.booleans())
def test_a_revenue_split_event_decodes_as_eth_abi_does(payees, locked):
    """Arrays of addresses and of small integers (RevenueSplitSet) read by the fast path equal eth_abi's values."""
    spec = SPECS["RevenueSplitSet"]
    row = {"dataset_id": 3, "owner": "0x" + "33" * 20, "split_id": 9, "locked": locked,
           "payees": ["0x" + p.hex() for p, _ in payees], "shares_bps": [bps for _, bps in payees]}
    table = spec.decode(table_from_logs([raw_log(spec, row)]), {})
    assert table.column("payees").to_pylist() == [row["payees"]]
    assert table.column("shares_bps").to_pylist() == [row["shares_bps"]]
    assert table.column("locked").to_pylist() == [locked]


def test_a_hostile_array_length_is_refused_at_once():
    """A count of 2**200 elements in a log's data fails at once (no loop over it, no allocation)."""
    spec = SPECS["RevenueSplitSet"]
    row = {"dataset_id": 3, "owner": "0x" + "33" * 20, "split_id": 9, "locked": False,
           "payees": ["0x" + "44" * 20], "shares_bps": [10_000]}
    log = raw_log(spec, row)
    data = log["data"]
    offset = 2 + 2 * int(data[2:66], 16)  # the payees array's length word
    log["data"] = data[:offset] + f"{2**200:064x}" + data[offset + 64:]
    try:
        spec.decode(table_from_logs([log]), {})
    except Exception as exc:
        assert not isinstance(exc, (AssertionError, MemoryError))
    else:
        raise AssertionError("a 2**200-element array decoded")


def test_values_too_large_for_their_column_still_fail_loudly():
    """An id past int64 or an amount past decimal(38, 0) is not silently cut: the bulk path steps aside and
    the per-value path raises (the indexer then quarantines that log alone)."""
    spec = SPECS["Refunded"]
    row = {"purchase_id": 1, "dataset_id": 2, "buyer": "0x" + "22" * 20, "payment_token": "0x" + "00" * 20,
           "amount": 10**28}
    assert spec.decode(table_from_logs([raw_log(spec, row)]), {}).column("amount").to_pylist()[0] == 10**28
    for field, value in (("purchase_id", 2**63), ("amount", 10**38), ("amount", 2**200)):
        try:
            spec.decode(table_from_logs([raw_log(spec, {**row, field: value}, wide=True)]), {})
        except Exception as exc:  # the type is the per-value path's; what matters is that it fails
            assert not isinstance(exc, AssertionError)
        else:
            raise AssertionError(f"{field}={value} decoded without an error")


def test_a_bool_word_other_than_0_or_1_fails_loudly():
    """The ABI allows a bool word to be 0 or 1 only: a hostile node's `...02` is not read as False."""
    spec = SPECS["SalesPaused"]
    row = {"dataset_id": 7, "owner": "0x" + "22" * 20, "paused": True}
    good = raw_log(spec, row)
    assert spec.decode(table_from_logs([good]), {}).column("paused").to_pylist() == [True]
    word = 2 + 64 * [n for n, _ in spec.data].index("paused")
    for bad_word in ("0" * 63 + "2", "1" + "0" * 62 + "1"):
        bad = {**good, "data": good["data"][:word] + bad_word + good["data"][word + 64:]}
        try:
            spec.decode(table_from_logs([bad]), {})
        except Exception as exc:  # the per-value path's ValueError; the indexer quarantines that log alone
            assert not isinstance(exc, AssertionError)
        else:
            raise AssertionError(f"bool word {bad_word} decoded without an error")


HEX = st.text("0123456789abcdefABCDEF", max_size=70).map(lambda s: "0x" + s)
ODD = st.one_of(HEX, st.text(max_size=12), st.integers(), st.none(), st.booleans(), st.lists(HEX, max_size=2),
                st.dictionaries(st.text(max_size=3), st.lists(st.dictionaries(st.text(max_size=2), HEX), max_size=2),
                                max_size=2))
FIELDS = ("address", "topics", "data", "blockHash", "blockNumber", "blockTimestamp", "transactionHash", "logIndex",
          "removed")


@st.composite
def log_entries(draw) -> dict:
    """A log as a node might send it: its fields (each maybe of another JSON type, or missing) and unknown ones."""
    entry = {"address": HEX, "topics": st.lists(HEX, max_size=4), "data": HEX, "blockHash": HEX, "blockNumber": HEX,
             "blockTimestamp": HEX, "transactionHash": HEX, "logIndex": HEX, "removed": st.booleans()}
    odd = draw(st.sets(st.sampled_from(FIELDS), max_size=2))
    log = {name: draw(ODD if name in odd else strategy) for name, strategy in entry.items()}
    for name in draw(st.sets(st.sampled_from(FIELDS), max_size=1)):
        del log[name]
    log.update(draw(st.dictionaries(st.sampled_from(["extra", "transactionIndex"]), ODD, max_size=2)))
    return log


def compact(value) -> bytes:
    """JSON as most nodes write it: no spaces."""
    return json.dumps(value, separators=(",", ":")).encode()


def plain(log: dict) -> bool:
    """Optional fields absent or of their JSON types."""
    return all(log.get(name) is None or type(log[name]) is kind
               for name, kind in (("address", str), ("blockTimestamp", str), ("removed", bool)))


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_a_reply_read_by_arrow_is_the_same_logs_as_read_by_json(data):
    """The fast path (Arrow's JSON reader on the reply) gives exactly the table the JSON path builds
    from the same reply, or steps aside (None) when any log is odd; a reply of well-formed logs always takes it.
    Never an exception, whatever the reply holds."""
    logs = data.draw(st.lists(log_entries(), max_size=5))
    reply = {"jsonrpc": "2.0", "id": 7, "result": logs}
    good = all(well_formed(log) for log in logs)
    for body in (compact(reply), json.dumps(reply, indent=data.draw(st.sampled_from([None, 1]))).encode()):
        table = table_from_body(body)
        if table is None:  # steps aside only for an odd log or an optional field of another type
            assert not good or not all(map(plain, logs))
        else:
            assert good
            assert table.equals(table_from_logs(logs))
    mutated = data.draw(st.integers(0, len(body)))
    damaged = table_from_body(body[:mutated] + data.draw(st.binary(max_size=8)) + body[mutated:])  # never raises
    assert damaged is None or isinstance(damaged, pa.Table)


def test_an_error_reply_is_never_read_as_no_logs():
    """Only a reply with a result list is logs; an error, a missing or null result, a batch step aside (the
    JSON path then raises the node's error)."""
    for body in (b'{"jsonrpc":"2.0","id":1,"error":{"code":-32005,"message":"query returned more than 10000"}}',
                 b'{"jsonrpc":"2.0","id":1,"result":null}', b'{"jsonrpc":"2.0","id":1}',
                 b'[{"jsonrpc":"2.0","id":1,"result":[]}]', b'{"jsonrpc":"2.0","id":1,"result":[null]}', b""):
        assert table_from_body(body) is None, body
    assert table_from_body(b'{"jsonrpc":"2.0","id":1,"result":[]}').num_rows == 0
