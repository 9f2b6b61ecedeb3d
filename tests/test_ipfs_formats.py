"""CIDs, DAG-CBOR, UnixFS (dag-pb, raw leaves) and CAR v1 without a node: published fixtures, round trips,
and every malformed or altered input refused with a reason."""

from __future__ import annotations

import io
import random

import pytest

from deai_data.storage.ipfs import CID, CarError, dag_cbor, file_blocks, read_car, write_car
from deai_data.storage.ipfs.car import car_bytes
from deai_data.storage.ipfs.cid import DAG_CBOR, DAG_PB, RAW
from deai_data.storage.ipfs.unixfs import CHUNK_SIZE, MAX_LINKS, FileNode
from deai_data.storage.varint import decode_varint, encode_varint


def test_cid_fixtures_and_round_trips():
    # the well-known CIDv1 (raw) of "hello world", and ipld/codec-fixtures "array-2" in DAG-CBOR
    assert str(CID.of(b"hello world")) == "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"
    assert dag_cbor.encode([2]).hex() == "8102"
    assert str(CID.of(dag_cbor.encode([2]), DAG_CBOR)) == "bafyreihdb57fdysx5h35urvxz64ros7zvywshber7id6t6c6fek37jgyfe"
    for cid in (CID.of(b"x"), CID.of(b"y", DAG_PB), CID.parse("QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG")):
        assert CID.parse(str(cid)) == cid and CID.from_bytes(cid.to_bytes()) == cid
    assert CID.parse("QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG").version == 0
    assert CID.of(b"abc").verify(b"abc") and not CID.of(b"abc").verify(b"abd")
    for bad in ("", "bnotbase32!", "zabc", "QmShort"):
        with pytest.raises(ValueError):
            CID.parse(bad)
    assert [decode_varint(encode_varint(n))[0] for n in (0, 127, 128, 300, 2**40)] == [0, 127, 128, 300, 2**40]
    with pytest.raises(ValueError, match="minimally"):
        decode_varint(b"\x80\x00")


def test_dag_cbor_canonical_maps_and_links():
    link = CID.of(b"leaf")
    value = {"version": 1, "roots": [link], "a": b"\x00\xff", "neg": -5, "ok": True, "none": None}
    encoded = dag_cbor.encode(value)
    assert dag_cbor.decode(encoded) == value
    assert encoded.index(b"a") < encoded.index(b"ok") < encoded.index(b"neg") < encoded.index(b"roots")
    for bad in (b"\xf9\x00\x00", b"\x9f\x01\xff", b"\xc1\x01", b"\x82\x01"):  # float, indefinite, tag 1, short
        with pytest.raises(ValueError):
            dag_cbor.decode(bad)


@pytest.mark.parametrize("size", [0, 1, CHUNK_SIZE, CHUNK_SIZE + 1, CHUNK_SIZE * 3 + 17])
def test_unixfs_files_and_car_round_trip(size):
    data = random.Random(size).randbytes(size)
    root, blocks = file_blocks(data)
    assert root.codec == (RAW if size <= CHUNK_SIZE else DAG_PB)
    out = io.BytesIO()
    write_car(out, [root], blocks)
    roots, read = read_car(out.getvalue())
    assert roots == [root]
    found = dict(read)
    assert set(found) == {b.cid for b in blocks}
    if root.codec == DAG_PB:
        node = FileNode.decode(found[root])
        assert node.filesize == size
        assert b"".join(found[link.cid] for link in node.links) == data


def test_wide_files_get_a_second_level():
    data = bytes(CHUNK_SIZE * (MAX_LINKS + 3))  # zeros: identical leaves share one CID, as in Kubo
    root, blocks = file_blocks(data)
    top = FileNode.decode(next(b.data for b in blocks if b.cid == root))
    assert len(top.links) == 2 and top.blocksizes == (CHUNK_SIZE * MAX_LINKS, CHUNK_SIZE * 3)


def test_car_reader_refuses_bad_input():
    data = random.Random(9).randbytes(CHUNK_SIZE + 5)
    root, blocks = file_blocks(data)
    good = car_bytes([root], blocks)
    tampered = bytearray(good)
    tampered[-3] ^= 1
    with pytest.raises(CarError, match="does not match its CID"):
        list(read_car(bytes(tampered))[1])
    with pytest.raises(CarError, match="ended inside"):
        list(read_car(good[:-10])[1])
    with pytest.raises(CarError, match="header"):
        read_car(b"\x05hello")
    bad_version = encode_varint(len(h := dag_cbor.encode({"roots": [root], "version": 2}))) + h
    with pytest.raises(CarError, match="not a CAR v1"):
        read_car(bad_version)
    streamed = read_car(iter([good[i:i + 1000] for i in range(0, len(good), 1000)]))[1]
    assert [cid for cid, _ in streamed] == [b.cid for b in blocks]
