"""The keystore: secrets encrypted at rest, a clear error (never a hang) without a passphrase."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from deai_data import Keystore, KeystoreError
from deai_data.crypto.keystore import DATA_KEY

SECRET = bytes(range(100, 132))


def test_put_get_list_delete(keystore):
    keystore.put(DATA_KEY, "a" * 64, SECRET, {"name": "images"})
    assert keystore.get(DATA_KEY, "a" * 64) == SECRET
    assert [(e.kind, e.name, e.meta) for e in keystore.entries()] == [(DATA_KEY, "a" * 64, {"name": "images"})]
    keystore.delete(DATA_KEY, "a" * 64)
    assert keystore.entries() == []
    with pytest.raises(KeystoreError, match="no data-key entry"):
        keystore.get(DATA_KEY, "a" * 64)


def test_no_secret_in_plaintext_on_disk(keystore):
    keystore.put(DATA_KEY, "b" * 64, SECRET)
    for path in keystore.path.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert SECRET not in data and SECRET.hex().encode() not in data
            assert path.stat().st_mode & 0o077 == 0, f"{path} is readable by others"


def test_wrong_passphrase(keystore):
    keystore.put(DATA_KEY, "c" * 64, SECRET)
    with pytest.raises(KeystoreError, match="wrong passphrase"):
        Keystore(keystore.path, passphrase="not it").get(DATA_KEY, "c" * 64)
    assert Keystore(keystore.path, passphrase="test passphrase").get(DATA_KEY, "c" * 64) == SECRET


def test_altered_entry_or_metadata_is_refused(keystore):
    keystore.put(DATA_KEY, "d" * 64, SECRET, {"name": "x"})
    path = keystore.path / "entries" / DATA_KEY / f"{'d' * 64}.json"
    path.write_text(path.read_text().replace('"name": "x"', '"name": "y"'))
    with pytest.raises(KeystoreError, match="corrupt or was altered"):
        keystore.get(DATA_KEY, "d" * 64)


def test_invalid_names_are_refused(keystore):
    with pytest.raises(KeystoreError, match="invalid"):
        keystore.put(DATA_KEY, "../escape", SECRET)


def test_export_import_between_keystores(keystore, tmp_path):
    keystore.put(DATA_KEY, "e" * 64, SECRET, {"name": "n"})
    bundle = keystore.export(DATA_KEY, "e" * 64, "transfer pass")
    assert SECRET not in bundle and SECRET.hex().encode() not in bundle
    other = Keystore(tmp_path / "other", passphrase="other", scrypt_n=2**10)
    with pytest.raises(KeystoreError, match="wrong export passphrase"):
        other.import_(bundle, "nope")
    entry = other.import_(bundle, "transfer pass")
    assert (entry.name, entry.meta) == ("e" * 64, {"name": "n"})
    assert other.get(DATA_KEY, "e" * 64) == SECRET
    with pytest.raises(KeystoreError, match="not a valid key export"):
        other.import_(b"{}", "x")


def test_no_passphrase_and_no_terminal_is_a_clear_error_not_a_hang(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DEAI_KEYSTORE_PASSWORD"}
    code = ("from deai_data import Keystore\n"
            f"Keystore({str(tmp_path / 'ks')!r}).put('data-key', 'x', b'k')\n")
    proc = subprocess.run([sys.executable, "-c", code], env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "DEAI_KEYSTORE_PASSWORD is not set and there is no terminal" in proc.stderr
    assert not (tmp_path / "ks" / "entries").exists()


def test_listing_needs_no_passphrase(keystore, monkeypatch):
    keystore.put(DATA_KEY, "f" * 64, SECRET)
    monkeypatch.delenv("DEAI_KEYSTORE_PASSWORD")
    assert [e.name for e in Keystore(keystore.path).entries()] == ["f" * 64]
