"""The market's events as Arrow tables: one table per event type, decoded in bulk from raw JSON-RPC logs.

Column types: ids and integers up to 64 bits int64; amounts up to 126 bits (uint96 prices) decimal(38, 0);
wider integers (uint256 balances) exact decimal text, since no Parquet number holds every uint256; addresses
lowercase 0x-hex strings; bytes32 lowercase hex without 0x; bytes binary; strings as they are. Every row
also has block_number, block_hash, block_time, log_index and tx_hash.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from eth_abi import decode as abi_decode
from eth_utils import keccak

from deai_data import market_abi

from .hexcols import bool_column, decimal_column, hex_ints, hex_matrix, int64_column, string_column

AMOUNT = pa.decimal128(38, 0)
_DECIMAL_BITS = 126  # 2**126 < 10**38: every value of a narrower uint fits decimal(38, 0) exactly
_ID_FIELDS = {"datasetId", "purchaseId", "supersedes", "tokenId", "subscriptionId", "renews"}
COMMON = [
    pa.field("block_number", pa.int64(), nullable=False),
    pa.field("block_hash", pa.string(), nullable=False),
    pa.field("block_time", pa.timestamp("s", tz="UTC")),
    pa.field("log_index", pa.int32(), nullable=False),
    pa.field("tx_hash", pa.string(), nullable=False),
]


def snake(name: str) -> str:
    """camelCase / PascalCase (acronyms included: manifestURIs) -> snake_case."""
    words = re.sub(r"[A-Z]{2,}(?=[A-Z][a-z]|s?$|[0-9])", lambda m: m.group(0).capitalize(), name)
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", words).lower()


def _arrow_type(name: str, abi_type: str) -> pa.DataType:
    if abi_type == "address":
        return pa.string()
    if abi_type == "bool":
        return pa.bool_()
    if abi_type == "bytes32":
        return pa.string()
    if abi_type == "bytes":
        return pa.binary()
    if abi_type == "string":
        return pa.string()
    if abi_type in ("string[]", "address[]"):
        return pa.list_(pa.string())
    if abi_type.endswith("[]") and abi_type.startswith("uint") and int(abi_type[4:-2] or 256) <= 63:
        return pa.list_(pa.int64())
    if abi_type.startswith("uint"):
        bits = int(abi_type[4:] or 256)
        if name in _ID_FIELDS or bits <= 63:
            return pa.int64()
        return AMOUNT if bits <= _DECIMAL_BITS else pa.string()
    raise ValueError(f"no column type for {abi_type}")


def _words(hexes: list[str], abi_type: str, at: int) -> list[Any]:
    """One static ABI word at hex offset `at` of every string, decoded (inline loops: no call per value)."""
    end = at + 64
    if abi_type == "address":
        return ["0x" + h[at + 24:end].lower() for h in hexes]
    if abi_type == "bytes32":
        return [h[at:end].lower() for h in hexes]
    if abi_type == "bool":
        words = [int(h[at:end], 16) for h in hexes]
        if any(w > 1 for w in words):
            raise ValueError("a bool word is neither 0 nor 1")
        return [w == 1 for w in words]
    if abi_type.startswith("uint"):
        return [int(h[at:end], 16) for h in hexes]
    raise ValueError(f"not a static ABI type: {abi_type}")


def _python_value(abi_type: str, value: Any) -> Any:
    if abi_type == "address":
        return value.lower()
    if abi_type == "bytes32":
        return value.hex()
    if abi_type == "bytes":
        return bytes(value)
    if abi_type == "string[]":
        return list(value)
    if abi_type == "address[]":
        return [a.lower() for a in value]
    if abi_type.endswith("[]"):
        return list(value)
    return value


@dataclass(frozen=True)
class EventSpec:
    """One event of the ABI: its topic, table name, columns and how to decode a raw log into them."""

    name: str
    table: str
    topic: str
    schema: pa.Schema
    indexed: tuple[tuple[str, str], ...]
    data: tuple[tuple[str, str], ...]

    @cached_property
    def types(self) -> dict[str, pa.DataType]:
        return {f.name: f.type for f in self.schema}

    def decode(self, logs: pa.Table, times: dict[int, int]) -> pa.Table:
        """Decode raw logs (a table of `logtable.LOG_SCHEMA`, all of this event) into a table; `times` maps
        block number -> unix time."""
        columns: dict[str, Any] = {}
        field = {name: logs[name].combine_chunks() for name in ("blockNumber", "logIndex", "blockHash",
                                                                "transactionHash", "topics", "data")}
        numbers = columns["block_number"] = hex_ints(field["blockNumber"])
        blocks, where = np.unique(numbers, return_inverse=True)
        stamps = np.array([times.get(int(n), 0) for n in blocks], np.int64)[where]
        unknown = np.array([int(n) not in times for n in blocks], bool)[where]
        columns["block_time"] = pa.array(stamps.astype("datetime64[s]"), pa.timestamp("s", tz="UTC"), mask=unknown)
        log_index = hex_ints(field["logIndex"])
        if len(log_index) and log_index.max() >= 1 << 31:
            raise ValueError("a log index does not fit int32")
        columns["log_index"] = log_index.astype(np.int32)
        columns["block_hash"] = pc.utf8_lower(field["blockHash"])
        columns["tx_hash"] = pc.utf8_lower(field["transactionHash"])
        topics = field["topics"]
        count = len(self.indexed) + 1
        # Every log with the event's topic count: one matrix of all topics, each topic a slice of it.
        uniform = len(topics) and pc.all(pc.equal(pc.list_value_length(topics), count)).as_py()
        every = hex_matrix(pc.list_flatten(topics), 66) if uniform else None
        for position, (name, abi_type) in enumerate(self.indexed, start=1):
            matrix = every.reshape(len(topics), count * 66)[:, 66 * position:66 * position + 66] \
                if every is not None else None
            column = _word_column(matrix, 2, abi_type, self.types[name]) if matrix is not None else None
            columns[name] = column if column is not None else \
                _words(pc.list_element(topics, position).to_pylist(), abi_type, 2)
        head = 2 + 64 * len(self.data)
        # Data of static fields only, all of the event's length: every word decoded at once.
        matrix = hex_matrix(field["data"], head) if not any(map(_dynamic, (t for _, t in self.data))) else None
        datas = field["data"].to_pylist() if matrix is None else None  # the per-value paths read texts

        def texts() -> list[str]:
            return datas if datas is not None else field["data"].to_pylist()

        try:
            if datas and min(map(len, datas)) < head:
                raise ValueError("log data shorter than the event's head")
            for i, (name, abi_type) in enumerate(self.data):
                column = _word_column(matrix, 2 + 64 * i, abi_type, self.types[name]) if matrix is not None else None
                if column is not None:
                    columns[name] = column
                elif _dynamic(abi_type):
                    read = _dynamic_reader(abi_type, i)
                    columns[name] = [read(d) for d in texts()]
                else:
                    columns[name] = _words(texts(), abi_type, 2 + 64 * i)
        except (ValueError, IndexError, UnicodeDecodeError):  # malformed data: eth_abi says exactly what
            types = [t for _, t in self.data]
            rows = [abi_decode(types, bytes.fromhex(d[2:])) for d in texts()]
            for i, (name, abi_type) in enumerate(self.data):
                columns[name] = [_python_value(abi_type, row[i]) for row in rows]
        abi_types = dict(self.indexed + self.data)
        arrays = [_arrow_column(columns[f.name], f.type, abi_types.get(f.name, "")) for f in self.schema]
        return pa.Table.from_arrays(arrays, schema=self.schema)


def _word_column(matrix: np.ndarray, at: int, abi_type: str, arrow_type: pa.DataType) -> pa.Array | None:
    """One static word of every row of a hex matrix as its column; None where only the per-value path can
    make it (wide integers as text, or values too large for the column: that path then raises)."""
    if abi_type == "address":
        return string_column(matrix, at + 24, at + 64, b"0x")
    if abi_type == "bytes32":
        return string_column(matrix, at, at + 64)
    if abi_type == "bool":
        return bool_column(matrix, at)
    if arrow_type == pa.int64():
        return int64_column(matrix, at)
    if arrow_type == AMOUNT:
        return decimal_column(matrix, at)
    return None


def _arrow_column(values: Any, arrow_type: pa.DataType, abi_type: str) -> pa.Array:
    if isinstance(values, pa.Array):
        return values
    if arrow_type == AMOUNT:
        return decimal_array(values)
    if abi_type.startswith("uint") and arrow_type == pa.string():
        return pa.array([str(v) for v in values], arrow_type)  # exact text of a uint wider than decimal(38, 0)
    return pa.array(values, arrow_type)


_DECIMAL_LIMIT = 10**38


def decimal_array(values: list[int]) -> pa.Array:
    """decimal(38, 0) from Python ints, built from 64-bit halves (pa.array on ints costs ~17 us a value)."""
    if values and (max(values) >= _DECIMAL_LIMIT or min(values) < 0):
        raise ValueError(f"an amount does not fit decimal(38, 0): {max(values)}")
    halves = np.empty((len(values), 2), dtype="<u8")
    halves[:, 0] = np.fromiter((v & 0xFFFF_FFFF_FFFF_FFFF for v in values), np.uint64, len(values))
    halves[:, 1] = np.fromiter((v >> 64 for v in values), np.uint64, len(values))
    return pa.Array.from_buffers(AMOUNT, len(values), [None, pa.py_buffer(halves.tobytes())])


def _dynamic(abi_type: str) -> bool:
    """ABI types whose value sits behind an offset in the data (the ones `_dynamic_reader` reads)."""
    return abi_type in ("bytes", "string") or abi_type.endswith("[]")


def _dynamic_reader(abi_type: str, index: int) -> Callable[[str], Any]:
    """Reads one dynamic ABI value (bytes, string, string[], address[], small uint[]) straight from a log's data
    hex (with 0x);
    far faster than eth_abi for these types. Malformed data raises ValueError/IndexError."""
    head = 2 + 64 * index

    def read_bytes(d: str, at: int) -> bytes:
        size = int(d[at:at + 64], 16)
        raw = bytes.fromhex(d[at + 64:at + 64 + 2 * size])
        if len(raw) != size:
            raise ValueError("dynamic value runs past the data")
        return raw

    def read(d: str) -> Any:
        pos = 2 + 2 * int(d[head:head + 64], 16)
        if abi_type == "bytes":
            return read_bytes(d, pos)
        if abi_type == "string":
            return read_bytes(d, pos).decode()
        count = int(d[pos:pos + 64], 16)
        base = pos + 64
        if base + 64 * count > len(d):  # a hostile count: refused before any element is read
            raise ValueError("array runs past the data")
        if abi_type != "string[]":  # static elements, one word each
            words = [d[base + 64 * j:base + 64 * j + 64] for j in range(count)]
            return ["0x" + w[24:].lower() for w in words] if abi_type == "address[]" else [int(w, 16) for w in words]
        return [read_bytes(d, base + 2 * int(d[base + 64 * j:base + 64 * j + 64], 16)).decode()
                for j in range(count)]

    return read


def event_specs(abi: list[dict[str, Any]] | None = None) -> dict[str, EventSpec]:
    """EventSpec per topic0 (hex with 0x) for every event of the market's ABI."""
    specs = {}
    for item in abi or market_abi():
        if item.get("type") != "event":
            continue
        types = ",".join(i["type"] for i in item["inputs"])
        topic = "0x" + keccak(text=f"{item['name']}({types})").hex()
        indexed = tuple((i["name"], i["type"]) for i in item["inputs"] if i["indexed"])
        data = tuple((i["name"], i["type"]) for i in item["inputs"] if not i["indexed"])
        fields = [pa.field(snake(n), _arrow_type(n, t)) for n, t in indexed + data]
        schema = pa.schema(COMMON + fields)
        specs[topic] = EventSpec(item["name"], snake(item["name"]), topic, schema,
                                 tuple((snake(n), t) for n, t in indexed), tuple((snake(n), t) for n, t in data))
    return specs
