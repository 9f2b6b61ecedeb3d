"""Sealing a data key to a buyer: HPKE (RFC 9180) base mode, X25519 / HKDF-SHA256 / AES-256-GCM.

Each purchase uses a fresh X25519 key pair; the `info` binds the sealed key to one chain, market and
purchase, so a sealed key cannot be replayed into another purchase.
"""

from __future__ import annotations

import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.hpke import AEAD, KDF, KEM, Suite

from ..errors import KeyDeliveryError

SUITE = Suite(KEM.X25519, KDF.HKDF_SHA256, AEAD.AES_256_GCM)
SEALED_KEY_SIZE = 80  # 32-byte encapsulated key + 32-byte data key + 16-byte tag
_INFO_LABEL = b"deai-data/v1/key-delivery"
_RAW = serialization.Encoding.Raw


def new_purchase_key() -> tuple[bytes, bytes]:
    """A fresh X25519 key pair for one purchase: (private key, public key), 32 raw bytes each."""
    private = X25519PrivateKey.generate()
    return (private.private_bytes(_RAW, serialization.PrivateFormat.Raw, serialization.NoEncryption()),
            private.public_key().public_bytes(_RAW, serialization.PublicFormat.Raw))


def delivery_info(chain_id: int, market: str, purchase_id: int) -> bytes:
    """HPKE `info` for one purchase: label || chain id (8 bytes) || market address (20) || purchase id (32)."""
    return _INFO_LABEL + struct.pack(">Q", chain_id) + bytes.fromhex(market.removeprefix("0x")) + \
        purchase_id.to_bytes(32, "big")


def seal_key(data_key: bytes, buyer_public_key: bytes, info: bytes) -> bytes:
    """Seal `data_key` to the buyer's X25519 public key (encapsulated key || ciphertext || tag)."""
    return SUITE.encrypt(bytes(data_key), X25519PublicKey.from_public_bytes(bytes(buyer_public_key)), info=info)


def open_sealed_key(sealed: bytes, private_key: bytes, info: bytes) -> bytes:
    """Open a sealed key with the purchase's private key; KeyDeliveryError if it was not sealed to it."""
    try:
        return SUITE.decrypt(bytes(sealed), X25519PrivateKey.from_private_bytes(bytes(private_key)), info=info)
    except (InvalidTag, ValueError) as exc:
        raise KeyDeliveryError(
            "the delivered key cannot be unsealed with this purchase's private key",
            hint="the owner sealed it to another key or for another purchase; it cannot be used",
        ) from exc
