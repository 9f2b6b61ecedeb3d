"""commP and PieceCID (v1 and v2) against public vectors (go-fil-commp-hashhash testdata, go-fil-commcid
fixtures) and against a bit-by-bit reference written independently here.

(The data-segment README's example v2 CID for 65 zero bytes is one character short of any valid piece
multihash and matches no implementation; it is not used.)"""

from __future__ import annotations

import hashlib
import random

import pytest

from deai_data.storage.filecoin import commp
from deai_data.storage.filecoin.commp import Piece, fr32_pad, padded_piece_size, piece_of, piece_of_file, zero_roots
from deai_data.storage.ipfs.cid import CID

# go-fil-commp-hashhash testdata/0xCC.txt and zero.txt: payload size, padded piece size, PieceCID v1
CC = """96,128,baga6ea4seaqhwcjhi4krhl3ht6dewnwevkpxbepxy7p7onwgz65t52typbsysby
126,128,baga6ea4seaqapbh46gdnszvb7fcinevsy5bzg3b4higkh7groptswf6zas6jamy
127,128,baga6ea4seaqmfldjtozgne6adk7eve2vdxte7vzlivae7nzsbrawobo546zkijq
192,256,baga6ea4seaqkx7m2s6r4zahtlbwrs5ryvemkclwfp7nijopdd5swpdnxzjf7wkq
253,256,baga6ea4seaql6ldbyafhiecr36xba5tufreyo4km2ts3lfknhl2zogp3aztxijy
254,256,baga6ea4seaqkixbzz75uys2pcjbrbdilgjhmum72qm4xphrwav2iyel5oat4aka
255,512,baga6ea4seaqg7celu5y2iwbi2ra5koygvotxtzr5lj6vzvxi6gfub6mpa6niwpi
256,512,baga6ea4seaqi7c3dnwkqysqh4lpkz5jaxz2d2f5bvo3ttu2hnfmdewhcoji56na
384,512,baga6ea4seaqhexlmnzbarsbdbdahs7e36dkq5vkdwsrttehoakrif5wiqme36lq
507,512,baga6ea4seaqenvh5mcy5cjqwsbubbpczprkk2onwvfjd2743zkqh6ofuzkatwey
508,512,baga6ea4seaqb6ckbupixkhwp7thgb52f4en222boppajkqk7gaomkpof3lh4cei
509,1024,baga6ea4seaqdzbeaexq6gpbqh2tlnbz5mm5neap2kejsketkogzd6x2dx7dzkii
512,1024,baga6ea4seaqojaa522sjqms2wipasjbxnjgytunsgp52tgrfcofj73f7q7ou6hy
768,1024,baga6ea4seaqb6xvxaybzp6vslujjiwvgt23ckrwt7y53eddy5qmc6csnc37lwpi
1015,1024,baga6ea4seaqmgiyjcutwgo6glks2mogixs6mb4sbehto6uzienucfx23wbtkica
1016,1024,baga6ea4seaqjxgfdkdu37aryhg7bqqiwizj5f6ugasftgeocabwnj4cxkgisaoq
1017,2048,baga6ea4seaqf3n5ob5qonkwnxfcbjzftsagbnrjfzualqvzhcylz46b7sgz6wmi
1024,2048,baga6ea4seaqdlpnhgsndrgjeu4p46hahlsr4lybg6du4d56ooppdpxhcofxeuoi"""
ZERO = """127,128,baga6ea4seaqdomn3tgwgrh3g532zopskstnbrd2n3sxfqbze7rxt7vqn7veigmy
254,256,baga6ea4seaqgiktap34inmaex4wbs6cghlq5i2j2yd2bb2zndn5ep7ralzphkdy
508,512,baga6ea4seaqfpirydiugkk7up5v666wkm6n6jlw6lby2wxht5mwaqekerdfykjq
1016,1024,baga6ea4seaqb66wjlfkrbye6uqoemcyxmqylwmrm235uclwfpsyx3ge2imidoly
1024,2048,baga6ea4seaqpy7usqklokfx2vxuynmupslkeutzexe2uqurdg5vhtebhxqmpqmy"""
EACH = b"".join(bytes([i]) * 127 for i in range(4))
# go-fil-commcid: payload, PieceCID v1, PieceCID v2
COMMCID = [
    (EACH, "baga6ea4seaqes3nobte6ezpp4wqan2age2s5yxcatzotcvobhgcmv5wi2xh5mbi",
     "bafkzcibcaaces3nobte6ezpp4wqan2age2s5yxcatzotcvobhgcmv5wi2xh5mbi"),
    (EACH + bytes(127 * 4), "baga6ea4seaqn42av3szurbbscwuu3zjssvfwbpsvbjf6y3tukvlgl2nf5rha6pa",
     "bafkzcibcaac542av3szurbbscwuu3zjssvfwbpsvbjf6y3tukvlgl2nf5rha6pa"),
    (EACH + bytes(4), "baga6ea4seaqn42av3szurbbscwuu3zjssvfwbpsvbjf6y3tukvlgl2nf5rha6pa",
     "bafkzcibd7abqlxticxolgseegik2stpfgkkuwyf6kufex3doorkvmzpjuxwe4dz4"),
    (EACH + bytes(5), "baga6ea4seaqn42av3szurbbscwuu3zjssvfwbpsvbjf6y3tukvlgl2nf5rha6pa",
     "bafkzcibd64bqlxticxolgseegik2stpfgkkuwyf6kufex3doorkvmzpjuxwe4dz4"),
]


@pytest.mark.parametrize("fill,table", [(0xCC, CC), (0x00, ZERO)])
def test_go_fil_commp_hashhash_vectors(fill, table):
    for line in table.splitlines():
        size, padded, cid = line.split(",")
        piece = piece_of(bytes([fill]) * int(size))
        assert (piece.padded_size, str(piece.cid_v1)) == (int(padded), cid), size


@pytest.mark.parametrize("data,v1,v2", COMMCID)
def test_piece_cid_v2_vectors(data, v1, v2):
    piece = piece_of(data)
    assert str(piece.cid) == v2
    assert str(piece.cid_v1) == v1
    again = Piece.from_cid(v2)
    assert (again.root, again.payload_size, again.padded_size) == (piece.root, len(data), piece.padded_size)


def test_empty_32_and_64_gib_pieces_from_zero_subtrees():
    for size, v1, v2 in ((32 << 30, "baga6ea4seaqao7s73y24kcutaosvacpdjgfe5pw76ooefnyqw4ynr3d2y6x2mpq",
                          "bafkzcibcaapao7s73y24kcutaosvacpdjgfe5pw76ooefnyqw4ynr3d2y6x2mpq"),
                         (64 << 30, "baga6ea4seaqomqafu276g53zko4k23xzh4h4uecjwicbmvhsuqi7o4bhthhm4aq",
                          "bafkzcibcaap6mqafu276g53zko4k23xzh4h4uecjwicbmvhsuqi7o4bhthhm4aq")):
        piece = Piece(zero_roots()[(size // 32).bit_length() - 1], size // 128 * 127, size)
        assert (str(piece.cid_v1), str(piece.cid)) == (v1, v2)


def _reference_fr32(data: bytes) -> bytes:
    """Bit by bit: each 127 bytes (a little-endian 1016-bit number) as four 254-bit numbers in 32 bytes."""
    out = bytearray()
    for i in range(0, len(data), 127):
        number = int.from_bytes(data[i:i + 127], "little")
        for quarter in range(4):
            out += ((number >> (254 * quarter)) & ((1 << 254) - 1)).to_bytes(32, "little")
    return bytes(out)


def _reference_commp(data: bytes) -> bytes:
    padded = padded_piece_size(len(data))
    nodes = _reference_fr32(data + bytes(padded // 128 * 127 - len(data)))
    level = [nodes[i:i + 32] for i in range(0, len(nodes), 32)]
    while len(level) > 1:
        level = [bytearray(hashlib.sha256(level[i] + level[i + 1]).digest()) for i in range(0, len(level), 2)]
        for node in level:
            node[31] &= 0x3F
        level = [bytes(n) for n in level]
    return level[0]


def test_fr32_matches_the_bitwise_reference():
    data = random.Random(1).randbytes(127 * 300)
    assert fr32_pad(data).tobytes() == _reference_fr32(data)


@pytest.mark.parametrize("size", [65, 1000, 127 * 1024, (1 << 20) - 5, (3 << 20) + 12345])
def test_blockwise_hashing_matches_the_reference(size, tmp_path):
    data = random.Random(size).randbytes(size)
    expected = _reference_commp(data)
    assert piece_of(data, workers=1).root == expected
    assert piece_of(data, workers=2).root == expected
    path = tmp_path / "payload.bin"
    path.write_bytes(data)
    assert piece_of_file(path, workers=2).root == expected


def test_sizes_and_errors():
    assert [padded_piece_size(n) for n in (65, 127, 128, 254, 255, 1 << 20)] == [128, 128, 256, 256, 512, 2 << 20]
    with pytest.raises(ValueError, match="at least 65"):
        piece_of(bytes(64))
    with pytest.raises(ValueError, match="not a v2 PieceCID"):
        Piece.from_cid(CID.of(b"x"))


def test_native_hashing_equals_python_on_both_sha256_paths(monkeypatch):
    """`make setup` builds the extension (a C compiler is part of this environment): it must be here.
    Its SHA-extension and portable compressions and the Python path must agree bit for bit."""
    native = commp.native
    assert native is not None, "the commP extension was not built: run `make setup`"
    data = random.Random(11).randbytes(127 * 8192 + 5000)
    expected = _reference_commp(data[:127 * 64])
    results = []
    for portable in (False, True):
        previous = native.use_portable(portable)
        try:
            results.append((piece_of(data, workers=2).root, piece_of(data[:127 * 64]).root))
        finally:
            native.use_portable(previous)
    monkeypatch.setattr(commp, "native", None)  # the fallback: hashlib, then on worker processes
    results.append((piece_of(data, workers=1).root, piece_of(data[:127 * 64]).root))
    results.append((piece_of(data, workers=2).root, piece_of(data[:127 * 64]).root))
    assert results[0] == results[1] == results[2] == results[3] and results[0][1] == expected
    with pytest.raises(ValueError, match="power-of-two"):
        native.tree_root(bytes(96))
