"""Data keys and what is derived from them: the key commitment, per-shard salts and per-shard keys.

One random 256-bit data key and seal id per sealing; each shard gets its own HKDF-SHA256 key, so no
(key, nonce) pair can repeat across shards, datasets or re-seals of changed content. A key link lets a
version's key open an earlier version's key (and so the shards it inherits), never the other way.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import struct

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from eth_utils import keccak

from ..errors import UsageError

DATA_KEY_SIZE = 32
SEAL_ID_SIZE = 32

_COMMITMENT_LABEL = b"deai-data/v1/key-commitment"
_SALT_LABEL = b"deai-data/v1/shard-salt"
_SHARD_KEY_LABEL = b"deai-data/v1/shard-key"
_FINGERPRINT_LABEL = b"deai-data/v1/content-fingerprint"
_KEY_LINK_LABEL = b"deai-data/v3/key-link".ljust(32, b"\0")


def new_data_key() -> bytes:
    """A fresh random 256-bit data key."""
    return secrets.token_bytes(DATA_KEY_SIZE)


def new_seal_id() -> bytes:
    """A fresh random 256-bit seal id: names one sealing of a dataset version, bound into every shard's AEAD
    and the key commitment (the market's token id is the "dataset id"; this is not it)."""
    return secrets.token_bytes(SEAL_ID_SIZE)


def check_key(key: bytes) -> bytes:
    """Return `key` as bytes if it is a 32-byte key, else raise UsageError (a ValueError)."""
    key = bytes(key)
    if len(key) != DATA_KEY_SIZE:
        raise UsageError(f"a data key is {DATA_KEY_SIZE} bytes, got {len(key)}")
    return key


def key_commitment(data_key: bytes, seal_id: bytes) -> bytes:
    """HMAC-SHA256(data_key, label || seal_id): lets anyone check a key without learning it."""
    return hmac.new(data_key, _COMMITMENT_LABEL + seal_id, hashlib.sha256).digest()


def linked_key(data_key: bytes, link: bytes) -> bytes:
    """The earlier version's data key: keccak256(label || data_key) XOR link (the market contract computes the
    same in a dispute). Knowing the earlier key tells nothing of `data_key`."""
    pad = keccak(_KEY_LINK_LABEL + data_key)
    return bytes(a ^ b for a, b in zip(pad, link, strict=True))


def key_link(data_key: bytes, earlier_key: bytes) -> bytes:
    """The link that makes `data_key` open `earlier_key` (`linked_key(data_key, link) == earlier_key`)."""
    return linked_key(data_key, earlier_key)


def fingerprint_key(data_key: bytes, seal_id: bytes) -> bytes:
    """Key of the secret content fingerprint (an AES-GCM tag over a shard's plaintext)."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=seal_id, info=_FINGERPRINT_LABEL).derive(data_key)


def shard_salt(data_key: bytes, seal_id: bytes, shard_index: int, fingerprint: bytes) -> bytes:
    """Synthetic per-shard salt (SIV style): HMAC of the shard's secret content fingerprint.

    The same plaintext re-sealed gives the same ciphertext (a resumed publish reproduces finished
    shards exactly); different plaintext at the same index gets a different salt, hence a different
    shard key, so no (key, nonce) pair is ever used for two plaintexts.
    """
    msg = _SALT_LABEL + seal_id + struct.pack(">Q", shard_index) + fingerprint
    return hmac.new(data_key, msg, hashlib.sha256).digest()


def shard_key(data_key: bytes, seal_id: bytes, shard_index: int, salt: bytes) -> bytes:
    """HKDF-SHA256(data_key, salt, info = label || seal_id || shard_index) -> 32-byte AES key."""
    info = _SHARD_KEY_LABEL + seal_id + struct.pack(">Q", shard_index)
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(data_key)
