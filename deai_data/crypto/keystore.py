"""The local keystore: secrets (data keys, later buyer private keys) encrypted at rest.

A key-encryption key is derived from a passphrase with scrypt; each entry is sealed with AES-256-GCM,
its kind, name and metadata bound as associated data. Nothing secret is ever written in plaintext.
"""

from __future__ import annotations

import base64
import getpass
import json
import os
import re
import secrets
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from ..errors import KeystoreError
from ..home import deai_home

FORMAT = "deai-data/keystore"
EXPORT_FORMAT = "deai-data/key-export"
VERSION = 1
DATA_KEY = "data-key"
PENDING_DATA_KEY = "pending-data-key"
_NAME = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_CHECK = b"deai-data keystore v1"
DEFAULT_SCRYPT_N = 2**15


def default_keystore_path() -> Path:
    env = os.environ.get("DEAI_KEYSTORE")
    return Path(env).expanduser() if env else deai_home() / "keystore"


def passphrase_from_env_or_prompt(*, confirm: bool = False) -> str:
    """`DEAI_KEYSTORE_PASSWORD`, else an interactive prompt; never blocks without a terminal."""
    env = os.environ.get("DEAI_KEYSTORE_PASSWORD")
    if env:
        return env
    if not (sys.stdin and sys.stdin.isatty()):
        raise KeystoreError("no keystore passphrase: DEAI_KEYSTORE_PASSWORD is not set and there is no terminal",
                            hint="set DEAI_KEYSTORE_PASSWORD, or run interactively to be prompted")
    first = getpass.getpass("deai-data keystore passphrase: ")
    if confirm and getpass.getpass("repeat passphrase: ") != first:
        raise KeystoreError("the two passphrases differ", hint="run the command again")
    if not first:
        raise KeystoreError("empty passphrase", hint="choose a non-empty passphrase")
    return first


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def _derive(passphrase: str, salt: bytes, n: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=8, p=1).derive(passphrase.encode())


def _write_private(path: Path, payload: dict[str, Any]) -> None:
    """Atomically write a JSON file readable by the owner only."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(payload, fh, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class KeyEntry:
    """What the keystore shows about an entry without decrypting it."""

    kind: str
    name: str
    meta: dict[str, Any]


class Keystore:
    """A folder of encrypted entries. The passphrase is asked for only when a secret is read or written."""

    def __init__(self, path: str | Path | None = None, *, passphrase: str | None = None,
                 scrypt_n: int = DEFAULT_SCRYPT_N) -> None:
        self.path = Path(path).expanduser() if path is not None else default_keystore_path()
        self._passphrase = passphrase
        self._scrypt_n = scrypt_n
        self._kek: bytes | None = None

    def __repr__(self) -> str:
        return f"Keystore({str(self.path)!r})"

    # ---- key-encryption key ----------------------------------------------------------------------
    def _header_path(self) -> Path:
        return self.path / "keystore.json"

    def _key(self) -> AESGCM:
        if self._kek is not None:
            return AESGCM(self._kek)
        header_path = self._header_path()
        if header_path.exists():
            header = json.loads(header_path.read_text())
            if header.get("format") != FORMAT or header.get("version") != VERSION:
                raise KeystoreError(f"{header_path} is not a deai-data keystore (version {VERSION})")
            passphrase = self._passphrase or passphrase_from_env_or_prompt()
            kek = _derive(passphrase, _unb64(header["kdf"]["salt"]), header["kdf"]["n"])
            try:
                AESGCM(kek).decrypt(_unb64(header["check_nonce"]), _unb64(header["check"]), _CHECK)
            except InvalidTag:
                raise KeystoreError(f"wrong passphrase for the keystore at {self.path}",
                                    hint="check DEAI_KEYSTORE_PASSWORD") from None
        else:
            passphrase = self._passphrase or passphrase_from_env_or_prompt(confirm=True)
            salt = secrets.token_bytes(16)
            kek = _derive(passphrase, salt, self._scrypt_n)
            nonce = secrets.token_bytes(12)
            _write_private(header_path, {
                "format": FORMAT, "version": VERSION,
                "kdf": {"name": "scrypt", "n": self._scrypt_n, "r": 8, "p": 1, "salt": _b64(salt)},
                "cipher": "aes-256-gcm",
                "check_nonce": _b64(nonce),
                "check": _b64(AESGCM(kek).encrypt(nonce, _CHECK, _CHECK)),
            })
        self._kek = kek
        return AESGCM(kek)

    # ---- entries ---------------------------------------------------------------------------------
    def _entry_path(self, kind: str, name: str) -> Path:
        for part in (kind, name):
            if not _NAME.match(part):
                raise KeystoreError(f"invalid keystore kind or name {part!r}")
        return self.path / "entries" / kind / f"{name}.json"

    @staticmethod
    def _ad(kind: str, name: str, meta: dict[str, Any]) -> bytes:
        return json.dumps({"kind": kind, "name": name, "meta": meta}, sort_keys=True).encode()

    def put(self, kind: str, name: str, secret: bytes, meta: dict[str, Any] | None = None) -> None:
        """Store (or replace) a secret under (kind, name)."""
        meta = dict(meta or {})
        path = self._entry_path(kind, name)
        nonce = secrets.token_bytes(12)
        sealed = self._key().encrypt(nonce, bytes(secret), self._ad(kind, name, meta))
        _write_private(path, {"kind": kind, "name": name, "meta": meta,
                              "nonce": _b64(nonce), "ciphertext": _b64(sealed)})

    def has(self, kind: str, name: str) -> bool:
        return self._entry_path(kind, name).is_file()

    def get(self, kind: str, name: str) -> bytes:
        """Decrypt and return the secret stored under (kind, name)."""
        path = self._entry_path(kind, name)
        try:
            doc = json.loads(path.read_text())
        except FileNotFoundError:
            raise KeystoreError(f"no {kind} entry named {name} in the keystore at {self.path}",
                                hint="import the key with `deai-data keys import`, or pass it explicitly") from None
        try:
            return self._key().decrypt(_unb64(doc["nonce"]), _unb64(doc["ciphertext"]),
                                       self._ad(kind, name, doc.get("meta", {})))
        except (InvalidTag, KeyError, ValueError):
            raise KeystoreError(f"keystore entry {kind}/{name} is corrupt or was altered") from None

    def delete(self, kind: str, name: str) -> None:
        self._entry_path(kind, name).unlink(missing_ok=True)

    def entry(self, kind: str, name: str) -> KeyEntry | None:
        """One entry's kind, name and metadata (nothing decrypted), or None when there is none."""
        path = self._entry_path(kind, name)
        if not path.is_file():
            return None
        doc = json.loads(path.read_text())
        return KeyEntry(doc["kind"], doc["name"], doc.get("meta", {}))

    def entries(self, kind: str | None = None) -> list[KeyEntry]:
        """Every entry (or every entry of one kind), without decrypting anything."""
        root = self.path / "entries"
        found = []
        for path in sorted(root.glob(f"{kind or '*'}/*.json")):
            doc = json.loads(path.read_text())
            found.append(KeyEntry(doc["kind"], doc["name"], doc.get("meta", {})))
        return found

    # ---- portable export -------------------------------------------------------------------------
    def export(self, kind: str, name: str, passphrase: str) -> bytes:
        """One entry sealed under `passphrase` (scrypt + AES-GCM) for moving to another keystore."""
        secret = self.get(kind, name)
        meta = entry.meta if (entry := self.entry(kind, name)) else {}
        salt, nonce = secrets.token_bytes(16), secrets.token_bytes(12)
        key = _derive(passphrase, salt, self._scrypt_n)
        doc = {"format": EXPORT_FORMAT, "version": VERSION, "kind": kind, "name": name, "meta": meta,
               "kdf": {"name": "scrypt", "n": self._scrypt_n, "r": 8, "p": 1, "salt": _b64(salt)},
               "nonce": _b64(nonce)}
        doc["ciphertext"] = _b64(AESGCM(key).encrypt(nonce, secret, self._ad(kind, name, meta)))
        return json.dumps(doc, sort_keys=True, indent=1).encode()

    def import_(self, bundle: bytes, passphrase: str) -> KeyEntry:
        """Add an entry from an `export` bundle; returns what was imported."""
        try:
            doc = json.loads(bundle)
            if doc.get("format") != EXPORT_FORMAT:
                raise ValueError("not a deai-data key export")
            kind, name, meta = doc["kind"], doc["name"], doc.get("meta", {})
            key = _derive(passphrase, _unb64(doc["kdf"]["salt"]), doc["kdf"]["n"])
            secret = AESGCM(key).decrypt(_unb64(doc["nonce"]), _unb64(doc["ciphertext"]), self._ad(kind, name, meta))
        except InvalidTag:
            raise KeystoreError("wrong export passphrase, or the export file was altered") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise KeystoreError(f"not a valid key export: {exc}") from None
        self.put(kind, name, secret, meta)
        return KeyEntry(kind, name, meta)
