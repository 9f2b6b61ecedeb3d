"""Manifests: canonical round trips, the hash as identity, a named field for every malformation, version 1
still readable byte for byte, the author's signature, and limits checked before anything is allocated."""

from __future__ import annotations

import copy
import json
import resource
import time
from dataclasses import replace

import pyarrow as pa
import pytest
from eth_account import Account
from hypothesis import given, settings
from hypothesis import strategies as st

from deai_data import LimitError, ManifestError
from deai_data.crypto.authorship import authorship_digest, sign_authorship
from deai_data.formats import canonical
from deai_data.formats.limits import Limits
from deai_data.formats.manifest import Manifest, ShardEntry
from deai_data.formats.merkle import merkle_root

SCHEMA = pa.schema([pa.field("path", pa.string(), nullable=False), pa.field("bytes", pa.binary())])
AUTHOR = Account.from_key("0x" + "11" * 32)


def make_manifest(n_shards: int = 3, *, version: int = 2, **overrides) -> Manifest:
    shards = tuple(
        ShardEntry(i, 10 + i, 1000 * (i + 1), 64 + 1000 * (i + 1) + 16, f"{i + 1:064x}", (f"file:///s/{i}",),
                   f"{i + 7:064x}" if version >= 2 else None)
        for i in range(n_shards)
    )
    fields = dict(
        seal_id="ab" * 32, name="images", schema=SCHEMA, records=sum(s.records for s in shards),
        segment_size=1 << 20, key_commitment="cd" * 32, shards=shards,
        content_root=merkle_root([bytes.fromhex(s.sha256) for s in shards]).hex(),
        description="d", license="CC0-1.0", metadata={"k": "v"}, version=version,
    )
    fields.update(overrides)
    return Manifest(**fields)


def signed(m: Manifest, owner: str | None = None) -> Manifest:
    return replace(m, authorship=sign_authorship(AUTHOR, m.seal_id, m.content_root, m.key_commitment,
                                                 len(m.shards), owner))


def test_round_trip_and_identity():
    m = signed(make_manifest())
    data = m.to_bytes()
    back = Manifest.from_bytes(data)
    assert back.to_bytes() == data
    assert back.hash == canonical.sha256_hex(data) == m.hash
    assert back.schema.equals(SCHEMA)
    assert back.version == 2 and back.author == AUTHOR.address.lower()
    assert make_manifest(name="other").hash != m.hash


def test_version_1_is_read_and_reencoded_byte_for_byte():
    """A version-1 document (as the first release wrote it: dataset_id, previous, no blake3, no authorship)
    parses as unsigned and encodes back to the very same bytes, so its hash, registered on-chain, holds."""
    v1 = make_manifest(version=1, previous_manifest="ef" * 32)
    doc = v1.to_dict()
    assert doc["version"] == 1 and doc["dataset_id"] == "ab" * 32 and doc["previous"] == "ef" * 32
    assert "seal_id" not in doc and "authorship" not in doc and "blake3" not in doc["shards"][0]
    data = canonical.encode(doc)
    back = Manifest.from_bytes(data)
    assert back.to_bytes() == data and back.seal_id == "ab" * 32 and back.previous_manifest == "ef" * 32
    assert back.authorship is None and back.author is None and back.signed_author() is None


@settings(max_examples=50, deadline=None)
@given(name=st.text(), description=st.text(), license=st.text(max_size=20),
       metadata=st.dictionaries(st.text(alphabet="abcxyz_", min_size=1, max_size=5), st.text(), max_size=3),
       n=st.integers(0, 9), previous=st.none() | st.just("ef" * 32), version=st.sampled_from([1, 2]))
def test_round_trip_any_text(name, description, license, metadata, n, previous, version):
    m = make_manifest(n, name=name, description=description, license=license, metadata=metadata,
                      previous_manifest=previous, version=version)
    assert Manifest.from_bytes(m.to_bytes()) == m


def test_authorship_signature_checks_offline_and_names_the_owner():
    m = signed(make_manifest(), owner="0x" + "42" * 20)
    back = Manifest.from_bytes(m.to_bytes())
    assert back.signed_author() == AUTHOR.address.lower()
    assert back.authorship.owner == "0x" + "42" * 20
    # The digest is the contract's: EIP-712 over (seal id, root, commitment, shard count, owner).
    digest = authorship_digest(m.seal_id, m.content_root, m.key_commitment, 3, "0x" + "42" * 20)
    assert len(digest) == 32 and digest != authorship_digest(m.seal_id, m.content_root, m.key_commitment, 4,
                                                             "0x" + "42" * 20)


def test_a_claimed_author_who_did_not_sign_is_refused():
    """The attack: copy someone's signature into a manifest that names another author, or other content."""
    m = signed(make_manifest())
    impostor = replace(m, authorship=replace(m.authorship, author="0x" + "99" * 20))
    with pytest.raises(ManifestError) as info:
        Manifest.from_bytes(impostor.to_bytes()).signed_author()
    assert info.value.field == "authorship.signature"
    other_content = replace(m, key_commitment="ee" * 32)
    with pytest.raises(ManifestError):
        other_content.signed_author()


def mutate(path: list, value, *, delete: bool = False, version: int = 2) -> bytes:
    doc = copy.deepcopy(signed(make_manifest(version=version)).to_dict() if version == 2
                        else make_manifest(version=1).to_dict())
    target = doc
    for key in path[:-1]:
        target = target[key]
    if delete:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return canonical.encode(doc)


@pytest.mark.parametrize(("path", "value", "field"), [
    (["format"], "something-else", "format"),
    (["version"], 4, "version"),
    (["version"], True, "version"),
    (["name"], 5, "name"),
    (["records"], -1, "records"),
    (["records"], 999, "records"),
    (["seal_id"], "xyz", "seal_id"),
    (["content_root"], "00" * 32, "content_root"),
    (["plaintext_size"], 1, "plaintext_size"),
    (["sealed_size"], 1, "sealed_size"),
    (["encryption", "scheme"], "rot13", "encryption.scheme"),
    (["encryption", "segment_size"], 3, "encryption.segment_size"),
    (["encryption", "key_commitment"], "zz", "encryption.key_commitment"),
    (["shard_format", "compression"], "gzip", "shard_format.compression"),
    (["schema", "arrow"], "bm90IGFycm93", "schema.arrow"),
    (["schema", "fields"], [], "schema.fields"),
    (["metadata", "k"], 1, "metadata.k"),
    (["shards", 1, "index"], 5, "shards[1].index"),
    (["shards", 0, "sha256"], "AB" * 32, "shards[0].sha256"),
    (["shards", 0, "blake3"], None, "shards[0].blake3"),
    (["shards", 0, "sealed_size"], 5, "shards[0].sealed_size"),
    (["shards", 2, "locators"], ["no-scheme"], "shards[2].locators"),
    (["shards", 0], "not an object", "shards[0]"),
    (["previous_manifest"], "short", "previous_manifest"),
    (["authorship", "author"], "0xABC", "authorship.author"),
    (["authorship", "owner"], 7, "authorship.owner"),
    (["authorship", "signature"], "0x" + "zz" * 65, "authorship.signature"),
    (["authorship"], "signed", "authorship"),
])
def test_malformed_field_is_named(path, value, field):
    with pytest.raises(ManifestError) as info:
        Manifest.from_bytes(mutate(path, value))
    assert info.value.field == field
    assert field in str(info.value)


def test_version_1_names_its_own_fields():
    with pytest.raises(ManifestError) as info:
        Manifest.from_bytes(mutate(["dataset_id"], "xyz", version=1))
    assert info.value.field == "dataset_id"
    with pytest.raises(ManifestError) as info:
        Manifest.from_bytes(mutate(["previous"], "short", version=1))
    assert info.value.field == "previous"


@pytest.mark.parametrize("key", ["name", "shards", "encryption", "schema", "previous_manifest", "authorship",
                                 "seal_id"])
def test_missing_field_is_named(key):
    with pytest.raises(ManifestError) as info:
        Manifest.from_bytes(mutate([key], None, delete=True))
    assert info.value.field == key


def test_non_canonical_or_garbage_is_rejected():
    data = make_manifest().to_bytes()
    with pytest.raises(ManifestError, match="canonical"):
        Manifest.from_bytes(data.replace(b",", b", ", 1))
    with pytest.raises(ManifestError):
        Manifest.from_bytes(b"\x00" * 10)
    with pytest.raises(ManifestError, match="top level"):
        Manifest.from_bytes(b"[]")


# ---- hostile documents: a typed error in bounded time and memory ---------------------------------------

def _bounded(fn, *, seconds: float = 5.0, extra_mib: int = 200):
    """Run fn; return (exception, seconds, growth of the process's peak memory in MiB)."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    try:
        fn()
        caught = None
    except Exception as exc:
        caught = exc
    took = time.perf_counter() - started
    grew = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert took < seconds, f"took {took:.1f} s"
    assert grew < extra_mib, f"peak memory grew {grew:.0f} MiB"
    return caught


@pytest.mark.parametrize("document", [
    b"[" * 200_000 + b"]" * 200_000,                             # nesting: RecursionError (or a segfault) before
    b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
    b'{"version":' + b"9" * 100_000 + b"}",                      # int over Python's 4,300-digit limit: ValueError
    b'{"version":1e999}',
    b'{"x":"\\ud800"}',
    b"\xff\xfe{}",
])
def test_hostile_json_gives_a_manifest_error(document):
    caught = _bounded(lambda: Manifest.from_bytes(document))
    assert isinstance(caught, ManifestError), repr(caught)


def test_size_and_count_limits_are_checked_before_parsing():
    limits = Limits(manifest_bytes=4096, shards=2)
    big = make_manifest(3).to_bytes()
    caught = _bounded(lambda: Manifest.from_bytes(b" " * 5000, limits=limits))
    assert isinstance(caught, LimitError) and caught.limit == "manifest_bytes"
    caught = _bounded(lambda: Manifest.from_bytes(big, limits=Limits(shards=2)))
    assert isinstance(caught, LimitError) and caught.limit == "shards"
    caught = _bounded(lambda: Manifest.from_bytes(mutate(["name"], "x" * 70_000)))
    assert isinstance(caught, LimitError) and caught.limit == "string_bytes"
    doc = json.loads(make_manifest(1).to_bytes())
    doc["shards"][0]["locators"] = [f"file:///{i}" for i in range(17)]
    caught = _bounded(lambda: Manifest.from_bytes(canonical.encode(doc)))
    assert isinstance(caught, LimitError) and caught.limit == "locators_per_shard"


def test_a_declared_shard_size_over_the_limit_is_refused():
    """The attack: declare a shard of 2**62 bytes so that a reader allocates it before checking anything."""
    doc = json.loads(make_manifest(1).to_bytes())
    shard = doc["shards"][0]
    shard["plaintext_size"] = 2**62
    shard["sealed_size"] = 64 + 2**62 + 16 * (2**62 // (1 << 20))
    doc["plaintext_size"], doc["sealed_size"] = shard["plaintext_size"], shard["sealed_size"]
    caught = _bounded(lambda: Manifest.from_bytes(canonical.encode(doc)))
    assert isinstance(caught, LimitError) and caught.limit == "shard_bytes"


def test_the_dataset_size_limit(tmp_path):
    caught = _bounded(lambda: Manifest.from_bytes(make_manifest(3).to_bytes(), limits=Limits(dataset_bytes=5000)))
    assert isinstance(caught, LimitError) and caught.limit == "dataset_bytes"


def test_limits_have_hard_caps():
    with pytest.raises(LimitError):
        Limits(shards=0)
    with pytest.raises(LimitError):
        Limits(manifest_bytes=2**40)
    assert Limits(shards=1_000_000).shards == 1_000_000
