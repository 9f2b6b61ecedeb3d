"""Stored objects altered in every way the issue names: each is detected, and nothing is returned."""

from __future__ import annotations

import random
import shutil

import pytest
from conftest import sample_table

from deai_data import (
    DecryptionError,
    IntegrityError,
    KeystoreError,
    ManifestError,
    NotFoundError,
    UnsupportedLocatorError,
    open_dataset,
    publish,
)
from deai_data.crypto.sealing import segment_span
from deai_data.formats import canonical
from deai_data.storage import path_from_locator

SEG = 4096


@pytest.fixture
def published(store_dir, keystore):
    table = sample_table(3000)
    result = publish(table, store=store_dir, name="victim", keystore=keystore, shard_size=40_000, segment_size=SEG)
    assert len(result.manifest.shards) >= 3
    assert all(s.sealed_size > 3 * SEG for s in result.manifest.shards)
    return result


def shard_path(result, index):
    return path_from_locator(result.manifest.shards[index].locators[0])


def read_everything(uri, keystore, **kw):
    return open_dataset(uri, keystore=keystore, **kw).to_arrow()


def test_flip_a_byte_anywhere_in_any_shard(published, keystore):
    rng = random.Random(7)
    for index, entry in enumerate(published.manifest.shards):
        path = shard_path(published, index)
        original = path.read_bytes()
        for offset in [0, 63, 64, len(original) - 1] + [rng.randrange(len(original)) for _ in range(6)]:
            blob = bytearray(original)
            blob[offset] ^= 1 << rng.randrange(8)
            path.write_bytes(bytes(blob))
            with pytest.raises(IntegrityError) as info:
                read_everything(published.manifest_uri, keystore)
            err = info.value
            assert err.shard == index and err.dataset.startswith("victim")
            if offset >= 64:  # in a segment body: the failing segment is named
                start, _ = segment_span(err.segment, entry.plaintext_size, SEG)
                assert start <= offset < segment_span(err.segment, entry.plaintext_size, SEG)[1]
            else:
                assert "header" in str(err)
        path.write_bytes(original)
    assert read_everything(published.manifest_uri, keystore).num_rows == 3000


@pytest.mark.slow  # exhaustive (about 11 s): `make test` runs it, `make test-fast` does not
@pytest.mark.parametrize("verify", ["full", "sha256", "aead"])
def test_every_flip_drop_and_swap_at_every_position_is_caught(store_dir, keystore, verify):
    """A small shard altered at each of its byte positions (one bit flipped; the byte dropped; the byte
    swapped with the next one where they differ) never decodes, whichever check is on: the digest (BLAKE3 or
    SHA-256) catches it before decryption, and without it the size or an AEAD tag does."""
    result = publish(sample_table(8), store=store_dir, name="small", keystore=keystore, segment_size=1024)
    (entry,) = result.manifest.shards
    path = shard_path(result, 0)
    original = path.read_bytes()
    dataset = open_dataset(result.manifest_uri, keystore=keystore)
    assert dataset.read_shard(0, verify=verify).num_rows == 8

    def refused(altered: bytes) -> None:
        path.write_bytes(altered)
        with pytest.raises(IntegrityError):
            dataset.read_shard(0, verify=verify)

    for offset in range(len(original)):
        flipped = bytearray(original)
        flipped[offset] ^= 1 << (offset % 8)
        refused(bytes(flipped))
        refused(original[:offset] + original[offset + 1:])
        if offset + 1 < len(original) and original[offset] != original[offset + 1]:
            swapped = bytearray(original)
            swapped[offset], swapped[offset + 1] = original[offset + 1], original[offset]
            refused(bytes(swapped))
    assert entry.sealed_size == len(original) > 2 * 1024


def test_flip_a_byte_anywhere_in_the_manifest(published, keystore):
    path = path_from_locator(published.manifest_uri)
    original = path.read_bytes()
    for offset in random.Random(3).sample(range(len(original)), 25):
        blob = bytearray(original)
        blob[offset] ^= 0x02
        path.write_bytes(bytes(blob))
        with pytest.raises(IntegrityError, match="manifest hash"):
            open_dataset(published.manifest_uri, keystore=keystore)
        # even when fetched from a name that implies no hash, a pinned hash catches it
        loose = path.parent.parent / "loose.json"
        loose.write_bytes(bytes(blob))
        with pytest.raises(IntegrityError):
            open_dataset(loose, keystore=keystore, manifest_hash=published.manifest_hash)
    path.write_bytes(original)


def test_truncated_shard(published, keystore):
    path = shard_path(published, 1)
    data = path.read_bytes()
    for cut in (len(data) - 1, len(data) - 16, 64 + SEG + 16, 64, 10, 0):
        path.write_bytes(data[:cut])
        with pytest.raises(IntegrityError) as info:
            read_everything(published.manifest_uri, keystore)
        assert info.value.shard == 1
        # the size is the diagnosis: no segment is blamed for bytes that are not there
        assert "truncated" in str(info.value) and info.value.segment is None


def test_swapped_shards(published, keystore):
    a, b = shard_path(published, 0), shard_path(published, 1)
    da, db = a.read_bytes(), b.read_bytes()
    a.write_bytes(db)
    b.write_bytes(da)
    with pytest.raises(IntegrityError) as info:
        read_everything(published.manifest_uri, keystore)
    assert info.value.shard == 0


def test_swapped_segments(published, keystore):
    entry = published.manifest.shards[0]
    path = shard_path(published, 0)
    data = bytearray(path.read_bytes())
    s1, e1 = segment_span(1, entry.plaintext_size, SEG)
    s2, e2 = segment_span(2, entry.plaintext_size, SEG)
    data[s1:e1], data[s2:e2] = bytes(data[s2:e2]), bytes(data[s1:e1])
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError) as info:
        open_dataset(published.manifest_uri, keystore=keystore).read_shard(0)
    assert (info.value.shard, info.value.segment) == (0, 1)


def test_segment_replayed_from_another_dataset(published, store_dir, keystore, tmp_path):
    other = publish(sample_table(3000), store=tmp_path / "other", name="other", keystore=keystore,
                    shard_size=40_000, segment_size=SEG)
    victim, donor = shard_path(published, 0), shard_path(other, 0)
    entry = published.manifest.shards[0]
    data, foreign = bytearray(victim.read_bytes()), donor.read_bytes()
    s, e = segment_span(2, entry.plaintext_size, SEG)
    data[s:e] = foreign[s:e]
    victim.write_bytes(bytes(data))
    with pytest.raises(IntegrityError) as info:
        open_dataset(published.manifest_uri, keystore=keystore).read_shard(0)
    assert (info.value.shard, info.value.segment) == (0, 2)


def test_whole_shard_from_another_dataset(published, keystore, tmp_path):
    other = publish(sample_table(3000), store=tmp_path / "other", name="other", keystore=keystore,
                    shard_size=40_000, segment_size=SEG)
    shutil.copyfile(shard_path(other, 0), shard_path(published, 0))
    with pytest.raises(IntegrityError) as info:
        read_everything(published.manifest_uri, keystore)
    assert info.value.shard == 0


def test_wrong_key_is_a_decryption_error(published, keystore):
    with pytest.raises(DecryptionError, match="does not match the dataset's key commitment"):
        read_everything(published.manifest_uri, keystore, key=bytes(32))
    with pytest.raises(DecryptionError):
        open_dataset(published.manifest_uri, key=b"short").read_shard(0)
    with pytest.raises(DecryptionError):
        open_dataset(published.manifest_uri, key="not hex").read_shard(0)


def test_no_key_in_keystore(published, tmp_path):
    from deai_data import Keystore

    with pytest.raises(KeystoreError, match="no key for dataset victim"):
        open_dataset(published.manifest_uri, keystore=Keystore(tmp_path / "empty", passphrase="p")).read_shard(0)


def test_missing_objects_name_the_locator(published, keystore):
    path = shard_path(published, 2)
    path.unlink()
    with pytest.raises(NotFoundError) as info:
        read_everything(published.manifest_uri, keystore)
    assert info.value.locator == published.manifest.shards[2].locators[0]
    assert info.value.locator in str(info.value)
    with pytest.raises(NotFoundError, match="nowhere"):
        open_dataset("file:///nowhere/manifest.json")
    with pytest.raises(UnsupportedLocatorError, match="gopher://"):
        open_dataset("gopher://example/x")


def test_malformed_manifest_names_the_field(published, keystore, tmp_path):
    doc = canonical.decode(path_from_locator(published.manifest_uri).read_bytes())
    doc["shards"][1]["records"] = "many"
    bad = tmp_path / "bad.json"
    bad.write_bytes(canonical.encode(doc))
    with pytest.raises(ManifestError) as info:
        open_dataset(bad, keystore=keystore)
    assert info.value.field == "shards[1].records"


def test_verify_reports_every_bad_shard_without_strict(published, keystore):
    for index in (0, 2):
        path = shard_path(published, index)
        blob = bytearray(path.read_bytes())
        blob[100] ^= 1
        path.write_bytes(bytes(blob))
    report = open_dataset(published.manifest_uri, keystore=keystore).verify(strict=False)
    assert not report.ok
    assert sorted(e.shard for e in report.errors) == [0, 2]
    assert report.shards == len(published.manifest.shards) - 2


def test_a_good_mirror_rescues_a_tampered_copy(published, keystore, tmp_path):
    mirror = tmp_path / "mirror"
    shutil.copytree(path_from_locator(published.manifest_uri).parents[2], mirror / "objects")
    path = shard_path(published, 0)
    blob = bytearray(path.read_bytes())
    blob[500] ^= 1
    path.write_bytes(bytes(blob))
    table = read_everything(published.manifest_uri, keystore, mirrors=[mirror.as_uri()])
    assert table.num_rows == 3000
