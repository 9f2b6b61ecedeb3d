"""Manifests: canonical round trips, the hash as identity, and a named field for every malformation."""

from __future__ import annotations

import copy

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deai_data import ManifestError
from deai_data.formats import canonical
from deai_data.formats.manifest import Manifest, ShardEntry
from deai_data.formats.merkle import merkle_root

SCHEMA = pa.schema([pa.field("path", pa.string(), nullable=False), pa.field("bytes", pa.binary())])


def make_manifest(n_shards: int = 3, **overrides) -> Manifest:
    shards = tuple(
        ShardEntry(i, 10 + i, 1000 * (i + 1), 64 + 1000 * (i + 1) + 16, f"{i + 1:064x}", (f"file:///s/{i}",))
        for i in range(n_shards)
    )
    fields = dict(
        dataset_id="ab" * 32, name="images", schema=SCHEMA, records=sum(s.records for s in shards),
        segment_size=1 << 20, key_commitment="cd" * 32, shards=shards,
        content_root=merkle_root([bytes.fromhex(s.sha256) for s in shards]).hex(),
        description="d", license="CC0-1.0", metadata={"k": "v"},
    )
    fields.update(overrides)
    return Manifest(**fields)


def test_round_trip_and_identity():
    m = make_manifest()
    data = m.to_bytes()
    back = Manifest.from_bytes(data)
    assert back.to_bytes() == data
    assert back.hash == canonical.sha256_hex(data) == m.hash
    assert back.schema.equals(SCHEMA)
    assert make_manifest(name="other").hash != m.hash


@settings(max_examples=50)
@given(name=st.text(), description=st.text(), license=st.text(max_size=20),
       metadata=st.dictionaries(st.text(alphabet="abcxyz_", min_size=1, max_size=5), st.text(), max_size=3),
       n=st.integers(0, 9), previous=st.none() | st.just("ef" * 32))
def test_round_trip_any_text(name, description, license, metadata, n, previous):
    m = make_manifest(n, name=name, description=description, license=license, metadata=metadata,
                      previous=previous)
    assert Manifest.from_bytes(m.to_bytes()) == m


def mutate(path: list, value, *, delete: bool = False) -> bytes:
    doc = copy.deepcopy(make_manifest().to_dict())
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
    (["version"], 2, "version"),
    (["version"], True, "version"),
    (["name"], 5, "name"),
    (["records"], -1, "records"),
    (["records"], 999, "records"),
    (["dataset_id"], "xyz", "dataset_id"),
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
    (["shards", 0, "sealed_size"], 5, "shards[0].sealed_size"),
    (["shards", 2, "locators"], ["no-scheme"], "shards[2].locators"),
    (["shards", 0], "not an object", "shards[0]"),
    (["previous"], "short", "previous"),
])
def test_malformed_field_is_named(path, value, field):
    with pytest.raises(ManifestError) as info:
        Manifest.from_bytes(mutate(path, value))
    assert info.value.field == field
    assert field in str(info.value)


@pytest.mark.parametrize("key", ["name", "shards", "encryption", "schema", "previous"])
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
