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


def _legacy_keystore(path, passphrase: str, entries: dict[str, bytes]) -> None:
    """A version-1 keystore as the first release wrote it: entries sealed under the scrypt key itself,
    scrypt N = 2**15, an `entries` folder left 0755."""
    import base64
    import json

    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    b64 = lambda data: base64.b64encode(data).decode()  # noqa: E731
    salt, nonce = os.urandom(16), os.urandom(12)
    kek = Scrypt(salt=salt, length=32, n=2**15, r=8, p=1).derive(passphrase.encode())
    path.mkdir(mode=0o700)
    (path / "keystore.json").write_text(json.dumps({
        "format": "deai-data/keystore", "version": 1, "cipher": "aes-256-gcm",
        "kdf": {"name": "scrypt", "n": 2**15, "r": 8, "p": 1, "salt": b64(salt)},
        "check_nonce": b64(nonce), "check": b64(AESGCM(kek).encrypt(nonce, b"deai-data keystore v1",
                                                                 b"deai-data keystore v1"))}))
    folder = path / "entries" / DATA_KEY
    folder.mkdir(parents=True)
    (path / "entries").chmod(0o755)
    for name, secret in entries.items():
        entry_nonce = os.urandom(12)
        ad = json.dumps({"kind": DATA_KEY, "name": name, "meta": {}}, sort_keys=True).encode()
        (folder / f"{name}.json").write_text(json.dumps({"kind": DATA_KEY, "name": name, "meta": {},
                                                          "nonce": b64(entry_nonce),
                                                          "ciphertext": b64(AESGCM(kek).encrypt(entry_nonce, secret,
                                                                                                ad))}))


def test_a_version_1_keystore_is_migrated_on_open(tmp_path):
    """Existing keystores keep working: opened, their header is rewritten as version 2 at today's scrypt cost
    (N = 2**17 by default), every folder is tightened to 0700, and the entries are read as before."""
    import json
    import stat

    path = tmp_path / "old"
    _legacy_keystore(path, "old pass", {"a" * 64: SECRET})
    store = Keystore(path, passphrase="old pass", scrypt_n=2**17)
    assert store.get(DATA_KEY, "a" * 64) == SECRET
    header = json.loads((path / "keystore.json").read_text())
    assert header["version"] == 2 and header["kdf"]["n"] == 2**17 and "check" not in header
    for folder in (path, path / "entries", path / "entries" / DATA_KEY):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    assert Keystore(path, passphrase="old pass").get(DATA_KEY, "a" * 64) == SECRET
    with pytest.raises(KeystoreError, match="wrong passphrase"):
        Keystore(path, passphrase="other").get(DATA_KEY, "a" * 64)


def test_the_default_cost_is_current_and_every_folder_is_private(tmp_path, monkeypatch):
    import json
    import stat

    from deai_data.crypto.keystore import DEFAULT_SCRYPT_N
    monkeypatch.delenv("DEAI_KEYSTORE_SCRYPT_N", raising=False)
    assert DEFAULT_SCRYPT_N >= 2**17
    store = Keystore(tmp_path / "deep" / "ks", passphrase="p")
    store.put(DATA_KEY, "b" * 64, SECRET)
    assert json.loads((tmp_path / "deep" / "ks" / "keystore.json").read_text())["kdf"]["n"] == DEFAULT_SCRYPT_N
    for folder in (store.path, store.path / "entries", store.path / "entries" / DATA_KEY):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder


def test_change_passphrase_rewraps_only_the_header(keystore):
    keystore.put(DATA_KEY, "c" * 64, SECRET)
    entry_file = keystore.path / "entries" / DATA_KEY / f"{'c' * 64}.json"
    before = entry_file.read_bytes()
    keystore.change_passphrase("new one")
    assert entry_file.read_bytes() == before
    assert Keystore(keystore.path, passphrase="new one").get(DATA_KEY, "c" * 64) == SECRET
    with pytest.raises(KeystoreError, match="wrong passphrase"):
        Keystore(keystore.path, passphrase="test passphrase").get(DATA_KEY, "c" * 64)


@pytest.mark.parametrize("kdf", [{"n": 2**40}, {"n": 2**24}, {"n": 3000}, {"n": 2**14, "r": 99}, {"n": 2**14, "p": 64},
                                 {"n": "many"}, {}])
def test_hostile_scrypt_costs_are_refused_before_any_work(keystore, tmp_path, kdf):
    """The attack: an export file (or a keystore) that declares scrypt N = 2**40 (a bare MemoryError before) or
    2**24 (16 GiB). Costs are checked before anything is derived."""
    import json
    import time

    keystore.put(DATA_KEY, "d" * 64, SECRET)
    doc = json.loads(keystore.export(DATA_KEY, "d" * 64, "pass"))
    doc["kdf"] = {**{"salt": doc["kdf"]["salt"]}, **kdf}
    started = time.perf_counter()
    with pytest.raises(KeystoreError):
        Keystore(tmp_path / "other", passphrase="o", scrypt_n=2**10).import_(json.dumps(doc).encode(), "pass")
    assert time.perf_counter() - started < 2
    header = json.loads((keystore.path / "keystore.json").read_text())
    header["kdf"] = {"salt": header["kdf"]["salt"], **kdf}
    (keystore.path / "keystore.json").write_text(json.dumps(header))
    with pytest.raises(KeystoreError):
        Keystore(keystore.path, passphrase="test passphrase", scrypt_n=2**10).get(DATA_KEY, "d" * 64)


@pytest.mark.parametrize("content", [b"", b"[", b"[]", b"{" * 100_000, b'{"kind": 1}', b"\xff\xfe"])
def test_damaged_files_are_keystore_errors(keystore, content):
    keystore.put(DATA_KEY, "e" * 64, SECRET)
    (keystore.path / "entries" / DATA_KEY / f"{'e' * 64}.json").write_bytes(content)
    with pytest.raises(KeystoreError):
        keystore.get(DATA_KEY, "e" * 64)
    with pytest.raises(KeystoreError):
        keystore.entries()
    with pytest.raises(KeystoreError):
        keystore.import_(content, "x")
    (keystore.path / "keystore.json").write_bytes(content)
    with pytest.raises(KeystoreError):
        Keystore(keystore.path, passphrase="p", scrypt_n=2**10).get(DATA_KEY, "e" * 64)
