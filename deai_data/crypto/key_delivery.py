"""Verifiable key delivery: the data key encrypted to a buyer's one-time secp256k1 key (hashed ECDH), in a
form the market contract can recompute when the buyer reveals the one-time secret in a dispute.

pad = SHA-256(label, chain id, market, purchase id, keccak256(B), R.x, (r*B).x); delivered = key XOR pad.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ec
from eth_keys import KeyAPI
from eth_utils import keccak

from ..errors import KeyDeliveryError

CURVE_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
FIELD_PRIME = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFC2F
PUBLIC_KEY_SIZE = 64  # x || y, 32 bytes each, big-endian
_LABEL = b"deai-data/v2/key-delivery".ljust(32, b"\0")
_CURVE = ec.SECP256K1()


@dataclass(frozen=True)
class DeliveryContext:
    """What every delivery is bound to: one chain, one market, one purchase."""

    chain_id: int
    market: str
    purchase_id: int


@dataclass(frozen=True)
class Delivery:
    """A delivered key as the contract records it: the ephemeral point R = r*G and the encrypted key."""

    ephemeral_x: bytes
    ephemeral_y: bytes
    encrypted_key: bytes

    def as_call(self) -> tuple[bytes, bytes, bytes]:
        return (self.ephemeral_x, self.ephemeral_y, self.encrypted_key)


@dataclass(frozen=True)
class DisputeProof:
    """What a buyer reveals to prove a delivery wrong: its public key B, the delivery, the one-time secret b
    and the shared point S = b*R (the contract checks B = b*G and S = b*R with `ecrecover`)."""

    buyer_key: bytes
    delivery: Delivery
    secret: bytes
    shared: bytes
    generations: int = 0
    """How many earlier versions, along the key links, the key must also open (those it inherits shards of)."""

    def as_call(self) -> tuple[bytes, bytes, tuple[bytes, bytes, bytes], bytes, bytes, bytes, int]:
        return (self.buyer_key[:32], self.buyer_key[32:], self.delivery.as_call(), self.secret,
                self.shared[:32], self.shared[32:], self.generations)


def _point(public_key: bytes, what: str) -> ec.EllipticCurvePublicKey:
    raw = bytes(public_key)
    if len(raw) != PUBLIC_KEY_SIZE:
        raise KeyDeliveryError(f"{what} is {len(raw)} bytes, expected {PUBLIC_KEY_SIZE} (x || y)")
    x, y = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    try:
        return ec.EllipticCurvePublicNumbers(x, y, _CURVE).public_key()
    except ValueError:
        raise KeyDeliveryError(f"{what} is not a point of secp256k1") from None


def _public_bytes(key: ec.EllipticCurvePublicKey) -> bytes:
    numbers = key.public_numbers()
    return numbers.x.to_bytes(32, "big") + numbers.y.to_bytes(32, "big")


def _private(secret: bytes) -> ec.EllipticCurvePrivateKey:
    value = int.from_bytes(bytes(secret), "big")
    if len(bytes(secret)) != 32 or not 0 < value < CURVE_ORDER:
        raise KeyDeliveryError("a purchase secret is a 32-byte scalar in [1, n-1]")
    return ec.derive_private_key(value, _CURVE)


def new_purchase_key() -> tuple[bytes, bytes]:
    """A fresh one-time key pair for one purchase: (secret, 32 bytes; public key x || y, 64 bytes)."""
    secret = (1 + secrets.randbelow(CURVE_ORDER - 1)).to_bytes(32, "big")
    return secret, public_key_of(secret)


def public_key_of(secret: bytes) -> bytes:
    """The public key x || y of a purchase secret."""
    return _public_bytes(_private(secret).public_key())


def check_public_key(public_key: bytes) -> bytes:
    """`public_key` if it is a 64-byte secp256k1 point, else KeyDeliveryError."""
    _point(public_key, "the buyer's public key")
    return bytes(public_key)


def buyer_key_hash(public_key: bytes) -> bytes:
    """keccak256(x || y): what a purchase records and a delivery names."""
    return keccak(bytes(public_key))


def _pad(context: DeliveryContext, key_hash: bytes, ephemeral_x: bytes, shared_x: bytes) -> bytes:
    market = bytes.fromhex(context.market.removeprefix("0x"))
    message = (_LABEL + context.chain_id.to_bytes(32, "big") + market.rjust(32, b"\0")
               + context.purchase_id.to_bytes(32, "big") + key_hash + ephemeral_x + shared_x)
    return hashlib.sha256(message).digest()


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def seal_key(data_key: bytes, buyer_public_key: bytes, context: DeliveryContext) -> Delivery:
    """Encrypt `data_key` (32 bytes) to the buyer's one-time public key, bound to `context`."""
    if len(bytes(data_key)) != 32:
        raise KeyDeliveryError("a data key is 32 bytes")
    buyer = _point(buyer_public_key, "the buyer's public key")
    while True:
        ephemeral = ec.generate_private_key(_CURVE)
        point = _public_bytes(ephemeral.public_key())
        if int.from_bytes(point[:32], "big") < CURVE_ORDER:  # the contract's ecrecover needs R.x < n
            break
    shared_x = ephemeral.exchange(ec.ECDH(), buyer)
    pad = _pad(context, buyer_key_hash(buyer_public_key), point[:32], shared_x)
    return Delivery(point[:32], point[32:], _xor(bytes(data_key), pad))


def open_delivery(delivery: Delivery, secret: bytes, context: DeliveryContext) -> bytes:
    """The key a delivery carries, opened with the purchase's one-time secret (unchecked: compare it with the
    key commitment before use)."""
    ephemeral = _point(delivery.ephemeral_x + delivery.ephemeral_y, "the delivery's ephemeral key")
    private = _private(secret)
    shared_x = private.exchange(ec.ECDH(), ephemeral)
    pad = _pad(context, buyer_key_hash(_public_bytes(private.public_key())), delivery.ephemeral_x, shared_x)
    return _xor(delivery.encrypted_key, pad)


def dispute_proof(delivery: Delivery, secret: bytes, *, generations: int = 0) -> DisputeProof:
    """The proof a buyer sends to `dispute`: S = b*R computed exactly as the contract checks it, by
    recovering the signer of the message hash 0 with r = R.x and s = b * R.x mod n."""
    private = _private(secret)
    b = int.from_bytes(bytes(secret), "big")
    rx = int.from_bytes(delivery.ephemeral_x, "big")
    parity = delivery.ephemeral_y[-1] & 1
    if not 0 < rx < CURVE_ORDER:
        raise KeyDeliveryError("the delivery's ephemeral key cannot be checked (x >= n)")
    signature = KeyAPI.Signature(vrs=(parity, rx, (b * rx) % CURVE_ORDER))
    shared = signature.recover_public_key_from_msg_hash(bytes(32)).to_bytes()
    return DisputeProof(_public_bytes(private.public_key()), delivery, bytes(secret), shared, generations)
