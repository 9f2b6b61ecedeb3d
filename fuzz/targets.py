"""The parsers of untrusted bytes as fuzz targets: each takes bytes and may return or raise a DeaiError; any
other exception is a finding. Shared by the Atheris driver (run.py) and the test that replays the corpus."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable

from deai_data.crypto.keystore import Keystore
from deai_data.crypto.sealing import ShardHeader
from deai_data.errors import DeaiError
from deai_data.formats import canonical
from deai_data.formats.manifest import Manifest
from deai_data.storage.arweave.ans104 import parse_bundle
from deai_data.storage.arweave.transaction import Transaction
from deai_data.storage.http import parse_json
from deai_data.storage.ipfs import dag_cbor
from deai_data.storage.ipfs.car import read_car
from deai_data.storage.ipfs.cid import CID
from deai_data.storage.ipfs.unixfs import FileNode
from deai_data.storage.registry import store_for


def _car(data: bytes) -> None:
    _, blocks = read_car(data)
    for _ in blocks:
        pass


def _canonical(data: bytes) -> None:
    with contextlib.suppress(canonical.CanonicalError):
        canonical.decode(data, max_depth=16)


def _arweave_tx(data: bytes) -> None:
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        return
    if isinstance(doc, dict):
        Transaction.from_json(doc)


def _locator(data: bytes) -> None:
    text = data.decode("utf-8", errors="replace")
    for prefix in ("", "ipfs://", "ar://", "piece://"):
        store_for(prefix + text)


_KEYSTORE: Keystore | None = None


def _key_import(data: bytes) -> None:
    global _KEYSTORE
    if _KEYSTORE is None:
        import tempfile
        _KEYSTORE = Keystore(tempfile.mkdtemp(prefix="fuzz-ks-"), passphrase="fuzz", scrypt_n=2**10)
    _KEYSTORE.import_(data, "fuzz")


TARGETS: dict[str, Callable[[bytes], object]] = {
    "manifest": Manifest.from_bytes,
    "canonical": _canonical,
    "car": _car,
    "dag_cbor": dag_cbor.decode,
    "dag_pb": FileNode.decode,
    "cid": CID.from_bytes,
    "ans104_bundle": parse_bundle,
    "shard_header": ShardHeader.decode,
    "json_answer": parse_json,
    "arweave_tx": _arweave_tx,
    "locator": _locator,
    "key_import": _key_import,
}


def run_one(target: Callable[[bytes], object], data: bytes) -> None:
    """One input: a result or a DeaiError is fine; anything else propagates (the fuzzer reports it)."""
    with contextlib.suppress(DeaiError):
        target(data)
