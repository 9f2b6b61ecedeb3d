"""The local keystore: secrets (data keys, purchase keys) encrypted at rest, in a folder only its owner reads.

A random entry key, wrapped under a key derived from the passphrase with scrypt (bounded costs), seals each
entry with AES-256-GCM, its kind, name and metadata bound as associated data. Nothing secret is in plaintext.
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
VERSION = 2  # 2: a random entry key wrapped under the scrypt key (version 1 keystores are migrated on open)
EXPORT_VERSION = 1
DATA_KEY = "data-key"
PENDING_DATA_KEY = "pending-data-key"
_NAME = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_CHECK = b"deai-data keystore v1"
_WRAP_AD = b"deai-data keystore v2 entry key"
DEFAULT_SCRYPT_N = 2**17  # 128 MiB and about 0.4 s here: today's interactive recommendation
SCRYPT_N_ENV = "DEAI_KEYSTORE_SCRYPT_N"
MIN_SCRYPT_N, MAX_SCRYPT_N = 2**10, 2**20  # what a keystore or an export file may declare (1 GiB at r = 8)
MAX_SCRYPT_MEMORY = 1 << 30


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


def default_scrypt_n() -> int:
    """2**17, or DEAI_KEYSTORE_SCRYPT_N (a power of two from 2**10: for tests and very slow machines)."""
    text = os.environ.get(SCRYPT_N_ENV)
    return DEFAULT_SCRYPT_N if not text else _check_kdf({"n": int(text) if text.isdigit() else -1, "r": 8, "p": 1})[0]


def _check_kdf(kdf: Any) -> tuple[int, int, int]:
    """(n, r, p) of a declared scrypt setting, refused unless within bounded cost (an export file or a
    keystore may come from anyone: n = 2**40 must not become a 16 TiB allocation)."""
    try:
        n, r, p = int(kdf["n"]), int(kdf.get("r", 8)), int(kdf.get("p", 1))
    except (KeyError, TypeError, ValueError, AttributeError):
        raise KeystoreError("the scrypt settings are missing or not numbers") from None
    if not (MIN_SCRYPT_N <= n <= MAX_SCRYPT_N and n & (n - 1) == 0 and 1 <= r <= 16 and 1 <= p <= 4
            and 128 * n * r <= MAX_SCRYPT_MEMORY):
        raise KeystoreError(f"scrypt settings n={n}, r={r}, p={p} are outside the accepted costs "
                            f"(n a power of two from 2**10 to 2**20, r <= 16, p <= 4, at most 1 GiB)")
    return n, r, p


def _derive(passphrase: str, salt: bytes, n: int, r: int = 8, p: int = 1) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase.encode())


def _private_dir(path: Path) -> None:
    """Create `path` (and missing parents) readable by the owner only; tighten it if it exists."""
    if not path.is_dir():
        if not path.parent.exists():
            _private_dir(path.parent)
        path.mkdir(mode=0o700, exist_ok=True)
    if path.stat().st_mode & 0o077:
        path.chmod(0o700)


def _write_private(path: Path, payload: dict[str, Any]) -> None:
    """Atomically write a JSON file readable by the owner only, in a folder only the owner reads."""
    _private_dir(path.parent)
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


def _entry_of(path: Path) -> KeyEntry:
    try:
        doc = json.loads(path.read_text())
        return KeyEntry(str(doc["kind"]), str(doc["name"]), dict(doc.get("meta", {})))
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
        raise KeystoreError(f"keystore entry {path} is damaged") from None


class Keystore:
    """A folder of encrypted entries. The passphrase is asked for only when a secret is read or written."""

    def __init__(self, path: str | Path | None = None, *, passphrase: str | None = None,
                 scrypt_n: int | None = None) -> None:
        self.path = Path(path).expanduser() if path is not None else default_keystore_path()
        self._passphrase = passphrase
        self._scrypt_n = _check_kdf({"n": scrypt_n})[0] if scrypt_n is not None else default_scrypt_n()
        self._entry_key: bytes | None = None

    def __repr__(self) -> str:
        return f"Keystore({str(self.path)!r})"

    # ---- the entry key ---------------------------------------------------------------------------
    def _header_path(self) -> Path:
        return self.path / "keystore.json"

    def _read_header(self) -> dict[str, Any]:
        header_path = self._header_path()
        try:
            header = json.loads(header_path.read_text())
            if not isinstance(header, dict):
                raise ValueError("not an object")
        except (OSError, ValueError, RecursionError) as exc:
            raise KeystoreError(f"{header_path} is unreadable: {str(exc)[:200]}") from None
        if header.get("format") != FORMAT or header.get("version") not in (1, VERSION):
            raise KeystoreError(f"{header_path} is not a deai-data keystore (versions 1 and {VERSION})")
        return header

    def _key(self) -> AESGCM:
        if self._entry_key is None:
            if self._header_path().exists():
                self._entry_key = self._open_existing(self.passphrase())
            else:
                self._entry_key = secrets.token_bytes(32)
                self._write_header(self.passphrase(confirm=True), self._entry_key)
        return AESGCM(self._entry_key)

    def passphrase(self, *, confirm: bool = False) -> str:
        if self._passphrase is None:
            self._passphrase = passphrase_from_env_or_prompt(confirm=confirm)
        return self._passphrase

    def _open_existing(self, passphrase: str) -> bytes:
        """The entry key; a version-1 keystore (entries sealed under the scrypt key itself) or one whose
        scrypt cost is below this keystore's is rewritten with a version-2 header at the current cost."""
        header = self._read_header()
        try:
            kdf = header["kdf"]
            n, r, p = _check_kdf(kdf)
            kek = _derive(passphrase, _unb64(kdf["salt"]), n, r, p)
            if header["version"] == 1:
                AESGCM(kek).decrypt(_unb64(header["check_nonce"]), _unb64(header["check"]), _CHECK)
                entry_key = kek  # version 1 sealed entries under the scrypt key: it becomes the entry key
            else:
                entry_key = AESGCM(kek).decrypt(_unb64(header["wrap_nonce"]), _unb64(header["wrapped_key"]),
                                                _WRAP_AD)
        except InvalidTag:
            raise KeystoreError(f"wrong passphrase for the keystore at {self.path}",
                                hint="check DEAI_KEYSTORE_PASSWORD") from None
        except (KeyError, TypeError, ValueError) as exc:
            raise KeystoreError(f"{self._header_path()} is damaged: {str(exc)[:200]}") from None
        if header["version"] == 1 or n < self._scrypt_n:
            self._write_header(passphrase, entry_key)
        _private_dir(self.path)
        if (self.path / "entries").is_dir():
            for folder in [self.path / "entries", *(self.path / "entries").iterdir()]:
                if folder.is_dir():
                    _private_dir(folder)
        return entry_key

    def _write_header(self, passphrase: str, entry_key: bytes) -> None:
        salt, nonce = secrets.token_bytes(16), secrets.token_bytes(12)
        kek = _derive(passphrase, salt, self._scrypt_n)
        _write_private(self._header_path(), {
            "format": FORMAT, "version": VERSION,
            "kdf": {"name": "scrypt", "n": self._scrypt_n, "r": 8, "p": 1, "salt": _b64(salt)},
            "cipher": "aes-256-gcm", "wrap_nonce": _b64(nonce),
            "wrapped_key": _b64(AESGCM(kek).encrypt(nonce, entry_key, _WRAP_AD)),
        })

    def change_passphrase(self, new_passphrase: str) -> None:
        """Re-wrap the entry key under a new passphrase (the entries are not rewritten)."""
        if not new_passphrase:
            raise KeystoreError("empty passphrase", hint="choose a non-empty passphrase")
        self._key()
        assert self._entry_key is not None
        self._write_header(new_passphrase, self._entry_key)
        self._passphrase = new_passphrase

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
        except (OSError, ValueError, RecursionError):
            raise KeystoreError(f"keystore entry {kind}/{name} is damaged") from None
        try:
            return self._key().decrypt(_unb64(doc["nonce"]), _unb64(doc["ciphertext"]),
                                       self._ad(kind, name, doc.get("meta", {})))
        except (InvalidTag, KeyError, ValueError, TypeError):
            raise KeystoreError(f"keystore entry {kind}/{name} is corrupt or was altered") from None

    def delete(self, kind: str, name: str) -> None:
        self._entry_path(kind, name).unlink(missing_ok=True)

    def entry(self, kind: str, name: str) -> KeyEntry | None:
        """One entry's kind, name and metadata (nothing decrypted), or None when there is none."""
        path = self._entry_path(kind, name)
        return _entry_of(path) if path.is_file() else None

    def entries(self, kind: str | None = None) -> list[KeyEntry]:
        """Every entry (or every entry of one kind), without decrypting anything."""
        root = self.path / "entries"
        return [_entry_of(path) for path in sorted(root.glob(f"{kind or '*'}/*.json"))]

    # ---- portable export -------------------------------------------------------------------------
    def export(self, kind: str, name: str, passphrase: str) -> bytes:
        """One entry sealed under `passphrase` (scrypt + AES-GCM) for moving to another keystore."""
        secret = self.get(kind, name)
        meta = entry.meta if (entry := self.entry(kind, name)) else {}
        salt, nonce = secrets.token_bytes(16), secrets.token_bytes(12)
        key = _derive(passphrase, salt, self._scrypt_n)
        doc = {"format": EXPORT_FORMAT, "version": EXPORT_VERSION, "kind": kind, "name": name, "meta": meta,
               "kdf": {"name": "scrypt", "n": self._scrypt_n, "r": 8, "p": 1, "salt": _b64(salt)},
               "nonce": _b64(nonce)}
        doc["ciphertext"] = _b64(AESGCM(key).encrypt(nonce, secret, self._ad(kind, name, meta)))
        return json.dumps(doc, sort_keys=True, indent=1).encode()

    def import_(self, bundle: bytes, passphrase: str) -> KeyEntry:
        """Add an entry from an `export` bundle; returns what was imported."""
        if len(bundle) > 1 << 20:
            raise KeystoreError("a key export is a few kilobytes; this file is over 1 MiB")
        try:
            doc = json.loads(bundle)
            if not isinstance(doc, dict) or doc.get("format") != EXPORT_FORMAT:
                raise ValueError("not a deai-data key export")
            kind, name, meta = doc["kind"], doc["name"], doc.get("meta", {})
            n, r, p = _check_kdf(doc["kdf"])
            key = _derive(passphrase, _unb64(doc["kdf"]["salt"]), n, r, p)
            secret = AESGCM(key).decrypt(_unb64(doc["nonce"]), _unb64(doc["ciphertext"]), self._ad(kind, name, meta))
        except InvalidTag:
            raise KeystoreError("wrong export passphrase, or the export file was altered") from None
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
            raise KeystoreError(f"not a valid key export: {str(exc)[:200]}") from None
        self.put(kind, name, secret, meta)
        return KeyEntry(kind, name, meta)
