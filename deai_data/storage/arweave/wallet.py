"""Arweave wallets: RSA-4096 keys as JWK, addresses, RSA-PSS signatures (SHA-256).

Signing uses the maximum salt length, as arweave-js does, so every verifier that accepts arweave-js
accepts us; verifying accepts any salt length (other clients sign with 32).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from ...errors import StorageError
from .merkle import b64url, unb64url

_JWK_FIELDS = ("n", "e", "d", "p", "q", "dp", "dq", "qi")
PUBLIC_EXPONENT = 65537


def _int(text: str) -> int:
    return int.from_bytes(unb64url(text), "big")


def _field(value: int) -> str:
    return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def address_of(owner: bytes) -> str:
    """The address of an owner (the RSA modulus bytes): base64url SHA-256."""
    return b64url(hashlib.sha256(owner).digest())


def verify(owner: bytes, message: bytes, signature: bytes) -> bool:
    """True when `signature` over `message` was made by `owner`'s key (any PSS salt length)."""
    try:
        key = rsa.RSAPublicNumbers(PUBLIC_EXPONENT, int.from_bytes(owner, "big")).public_key()
        key.verify(signature, message, padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.AUTO),
                   hashes.SHA256())
    except (InvalidSignature, ValueError):
        return False
    return True


class Wallet:
    """An Arweave key pair. Never printed: `repr` shows the address only."""

    def __init__(self, key: rsa.RSAPrivateKey) -> None:
        if key.key_size < 2048 or key.public_key().public_numbers().e != PUBLIC_EXPONENT:
            raise StorageError("an Arweave wallet is an RSA key with exponent 65537 (4096 bits)")
        self._key = key
        numbers = key.public_key().public_numbers()
        self.owner = numbers.n.to_bytes((key.key_size + 7) // 8, "big")
        self.address = address_of(self.owner)

    def __repr__(self) -> str:
        return f"Wallet(address={self.address})"

    @classmethod
    def generate(cls) -> Wallet:
        return cls(rsa.generate_private_key(PUBLIC_EXPONENT, 4096))

    @classmethod
    def from_jwk(cls, jwk: dict[str, Any] | str | bytes) -> Wallet:
        """A wallet from a JWK (a dict or its JSON), as arweave-js and the Arweave apps export it."""
        try:
            doc = json.loads(jwk) if isinstance(jwk, (str, bytes)) else jwk
            if doc.get("kty") != "RSA":
                raise ValueError("kty is not RSA")
            n, e, d, p, q, dp, dq, qi = (_int(doc[f]) for f in _JWK_FIELDS)
            key = rsa.RSAPrivateNumbers(p, q, d, dp, dq, qi, rsa.RSAPublicNumbers(e, n)).private_key()
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            raise StorageError(f"not an Arweave JWK wallet: {exc}",
                               hint="pass the JSON key file exported by an Arweave wallet") from None
        return cls(key)

    @classmethod
    def load(cls, path: str | Path) -> Wallet:
        try:
            return cls.from_jwk(Path(path).read_bytes())
        except OSError as exc:
            raise StorageError(f"cannot read the wallet file: {exc}", locator=str(path)) from None

    def to_jwk(self) -> dict[str, str]:
        """The private key as a JWK dict (secret: store it encrypted, e.g. in the keystore)."""
        private = self._key.private_numbers()
        public = private.public_numbers
        values = (public.n, public.e, private.d, private.p, private.q, private.dmp1, private.dmq1, private.iqmp)
        return {"kty": "RSA", **{name: _field(v) for name, v in zip(_JWK_FIELDS, values, strict=True)}}

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message, padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.MAX_LENGTH),
                              hashes.SHA256())
