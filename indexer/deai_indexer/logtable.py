"""eth_getLogs replies as Arrow tables, one row per log. Arrow's JSON reader parses a reply straight into
columns, with no Python object per log and off the GIL; a reply with any odd log goes through a plain JSON
parse instead, and each of its logs is judged on its own.
"""

from __future__ import annotations

import io
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

LOG_SCHEMA = pa.schema([
    ("address", pa.string()), ("topics", pa.list_(pa.string())), ("data", pa.string()),
    ("blockHash", pa.string()), ("blockNumber", pa.string()), ("blockTimestamp", pa.string()),
    ("transactionHash", pa.string()), ("logIndex", pa.string()), ("removed", pa.bool_()),
])
_REQUIRED = ("topics", "data", "blockHash", "blockNumber", "transactionHash", "logIndex")
_REPLY = pj.ParseOptions(explicit_schema=pa.schema([("result", pa.list_(pa.struct(list(LOG_SCHEMA))))]),
                         unexpected_field_behavior="ignore", newlines_in_values=True)


def table_from_body(body: bytes) -> pa.Table | None:
    """The logs of an eth_getLogs reply, when the reply is a JSON-RPC success whose every log has its fields
    with their JSON types; None for anything else (an error, a batch, one odd log), which the caller then
    parses as JSON."""
    if not body.startswith(b"{") or len(body) >= 1 << 31:
        return None
    try:  # the whole reply is one JSON object, and one block of the reader
        reply = pj.read_json(io.BytesIO(body), parse_options=_REPLY,
                             read_options=pj.ReadOptions(block_size=len(body) + 1, use_threads=False))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    results = reply["result"]
    if reply.num_rows != 1 or results.null_count:  # an error reply has no result
        return None
    logs = results.chunk(0).flatten()
    if logs.null_count:
        return None
    table = pa.Table.from_struct_array(logs)
    if any(table[name].null_count for name in _REQUIRED) or pc.list_flatten(table["topics"]).null_count:
        return None
    return table.set_column(table.schema.get_field_index("removed"), "removed", table["removed"].fill_null(False))


def well_formed(entry: Any) -> bool:
    """A log with its fields, of their JSON types (unrolled: this runs once per log of an odd reply)."""
    if type(entry) is not dict:
        return False
    get = entry.get
    topics = get("topics")
    return (type(get("blockNumber")) is str and type(get("blockHash")) is str and type(get("logIndex")) is str
            and type(get("transactionHash")) is str and type(topics) is list and type(get("data")) is str
            and all(type(t) is str for t in topics))


def table_from_logs(entries: list[dict[str, Any]]) -> pa.Table:
    """Well-formed logs (see `well_formed`) parsed as JSON, as the same table; optional fields of another
    type count as absent."""
    def text(value: Any) -> str | None:
        return value if type(value) is str else None

    rows = [{"address": text(e.get("address")), "topics": e["topics"], "data": e["data"],
             "blockHash": e["blockHash"], "blockNumber": e["blockNumber"],
             "blockTimestamp": text(e.get("blockTimestamp")), "transactionHash": e["transactionHash"],
             "logIndex": e["logIndex"], "removed": e.get("removed") is True} for e in entries]
    return pa.Table.from_pylist(rows, schema=LOG_SCHEMA)
