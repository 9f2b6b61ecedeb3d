"""Every parser of untrusted bytes, fed random bytes and mutations of valid samples (Hypothesis): it returns
or raises its one typed error (a DeaiError), within bounded time, never a bare ValueError, RecursionError,
MemoryError or IndexError. The corpus the fuzzer found lives in fuzz/corpus and is replayed here too."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deai_data.crypto.sealing import HEADER_SIZE, ShardHeader, seal_shard
from deai_data.errors import DeaiError, FormatError
from deai_data.storage.arweave.ans104 import build_bundle, decode_avro_tags, parse_bundle, sign_data_item
from deai_data.storage.arweave.store import tx_id_of
from deai_data.storage.arweave.transaction import Transaction
from deai_data.storage.arweave.wallet import Wallet
from deai_data.storage.filecoin.commp import Piece, piece_of
from deai_data.storage.filecoin.store import parse_piece_locator
from deai_data.storage.ipfs import dag_cbor
from deai_data.storage.ipfs.car import car_bytes, read_car
from deai_data.storage.ipfs.cid import CID
from deai_data.storage.ipfs.store import cid_of
from deai_data.storage.ipfs.unixfs import FileNode, file_blocks
from deai_data.storage.registry import store_for
from deai_data.storage.varint import decode_varint

FUZZ = Path(__file__).resolve().parent.parent / "fuzz"
RELAXED = settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow])


def _typed(parse, data) -> None:
    """Call the parser; only a DeaiError may come out."""
    with contextlib.suppress(DeaiError):
        parse(data)


def _mutations(sample: bytes) -> st.SearchStrategy[bytes]:
    """Valid bytes with a few bytes flipped, cut, or spliced: the inputs that reach deep into a parser."""
    def mutate(data: bytes, edits: list[tuple[int, int, int]]) -> bytes:
        out = bytearray(data)
        for kind, where, value in edits:
            if not out:
                break
            at = where % len(out)
            if kind == 0:
                out[at] ^= value or 1
            elif kind == 1:
                del out[at:]
            else:
                out[at:at] = bytes([value]) * (value % 9)
        return bytes(out)
    edits = st.lists(st.tuples(st.integers(0, 2), st.integers(0, 1 << 20), st.integers(0, 255)), min_size=1,
                     max_size=4)
    return st.builds(mutate, st.just(sample), edits)


# ---- valid samples ------------------------------------------------------------------------------------
_ROOT, _BLOCKS = file_blocks(os.urandom(3000), chunk_size=1024)
CAR = car_bytes([_ROOT], _BLOCKS)
NODE = next(b.data for b in _BLOCKS if b.cid == _ROOT)
CBOR = dag_cbor.encode({"a": [1, 2, {"b": b"xyz"}], "c": "text", "link": _ROOT})
HEADER = bytes(seal_shard(b"x" * 100, data_key=bytes(32), seal_id=bytes(32), shard_index=0))[:HEADER_SIZE]


@pytest.fixture(scope="module")
def bundle() -> bytes:
    wallet = Wallet.generate()
    items = [sign_data_item(wallet, os.urandom(50), [("App-Name", "deai-data"), ("K", "v")]) for _ in range(2)]
    return build_bundle(items)


@RELAXED
@given(st.one_of(st.binary(max_size=2000), _mutations(CAR)))
def test_car_reader(data):
    def parse(raw: bytes) -> None:
        _, blocks = read_car(raw)
        for _ in blocks:
            pass
    _typed(parse, data)


@RELAXED
@given(st.one_of(st.binary(max_size=600), _mutations(NODE)))
def test_dag_pb_file_node(data):
    _typed(FileNode.decode, data)


@RELAXED
@given(st.one_of(st.binary(max_size=600), _mutations(CBOR)))
def test_dag_cbor(data):
    _typed(dag_cbor.decode, data)


@RELAXED
@given(st.one_of(st.binary(max_size=80), _mutations(_ROOT.to_bytes())))
def test_cid_bytes_and_text(data):
    _typed(CID.from_bytes, data)
    _typed(CID.parse, data.decode("latin-1"))
    _typed(lambda text: Piece.from_cid(text), data.decode("latin-1"))


@RELAXED
@given(st.binary(max_size=20))
def test_varints(data):
    _typed(decode_varint, data)


@RELAXED
@given(st.one_of(st.binary(max_size=200), _mutations(HEADER)))
def test_shard_header(data):
    _typed(ShardHeader.decode, data)


@settings(max_examples=150, deadline=3000, suppress_health_check=[HealthCheck.too_slow,
                                                                    HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_ans104_bundles_and_tags(bundle, data):
    raw = data.draw(st.one_of(st.binary(max_size=1500), _mutations(bundle)))
    _typed(parse_bundle, raw)
    _typed(decode_avro_tags, raw[:300])


def test_avro_tag_that_is_not_utf8():
    """Found by the property above in CI: a tag of one byte 0xff (count 1, lengths 1 and 0, end)."""
    with pytest.raises(FormatError, match="not UTF-8"):
        decode_avro_tags(b"\x02\x02\xff\x00\x00")


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                 max_size=6), max_leaves=20)


@RELAXED
@given(st.dictionaries(st.sampled_from(["format", "id", "last_tx", "owner", "tags", "target", "quantity",
                                        "data_root", "data_size", "reward", "signature", "data"]), _JSON))
def test_arweave_transaction_json(doc):
    _typed(Transaction.from_json, doc)


@RELAXED
@given(st.text(max_size=200))
def test_locators(text):
    for parse in (store_for, cid_of, tx_id_of, parse_piece_locator):
        _typed(parse, text)
    for scheme in ("ipfs://", "ar://", "piece://", "file://", "http://"):
        _typed(store_for, scheme + text)


def test_a_piece_of_each_size_kind_still_parses():
    assert Piece.from_cid(str(piece_of(bytes(200)).cid)).payload_size == 200


@pytest.mark.parametrize("target", sorted(p.name for p in FUZZ.glob("corpus/*")) if FUZZ.is_dir() else [])
def test_the_fuzzer_corpus_replays_clean(target):
    """Every input the fuzzer kept (fuzz/corpus/<target>/) still ends in a typed error or a result."""
    import sys
    sys.path.insert(0, str(FUZZ))
    import targets  # fuzz/targets.py: the same entry points the fuzzer drives

    check = targets.TARGETS[target]
    for path in sorted((FUZZ / "corpus" / target).iterdir()):
        targets.run_one(check, path.read_bytes())
