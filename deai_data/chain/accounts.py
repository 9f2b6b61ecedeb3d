"""Ethereum accounts: from an encrypted keystore file (eth-account's scrypt format) or an environment variable.

Nothing else reads a private key; no private key is ever written unencrypted.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

from ..errors import KeystoreError
from ..home import deai_home

PRIVATE_KEY_ENV = "DEAI_ETH_PRIVATE_KEY"
ACCOUNT_ENV = "DEAI_ACCOUNT"
PASSWORD_ENV = "DEAI_ACCOUNT_PASSWORD"


def default_account_path() -> Path:
    return deai_home() / "account.json"


def _password(password: str | None) -> str:
    if password is not None:
        return password
    if PASSWORD_ENV in os.environ:
        return os.environ[PASSWORD_ENV]
    import getpass
    import sys
    if not sys.stdin.isatty():
        raise KeystoreError(f"no password for the account file: set {PASSWORD_ENV} or run on a terminal")
    return getpass.getpass("account password: ")


def save_account(account: LocalAccount, path: str | Path | None = None, *, password: str | None = None) -> Path:
    """Write `account` encrypted (scrypt + AES-128-CTR, the Ethereum keystore v3 format), mode 0600."""
    target = Path(path) if path else default_account_path()
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    doc = Account.encrypt(account.key, _password(password), kdf="scrypt")
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(doc, fh)
    return target


def load_account(path: str | Path | None = None, *, password: str | None = None) -> LocalAccount:
    """The signing account: `$DEAI_ETH_PRIVATE_KEY` if set, else the keystore file at `path`,
    `$DEAI_ACCOUNT` or `$DEAI_HOME/account.json`."""
    if path is None and os.environ.get(PRIVATE_KEY_ENV):
        try:
            return Account.from_key(os.environ[PRIVATE_KEY_ENV])
        except (ValueError, TypeError) as exc:
            raise KeystoreError(f"{PRIVATE_KEY_ENV} is not a valid private key") from exc
    source = Path(path or os.environ.get(ACCOUNT_ENV) or default_account_path())
    if not source.is_file():
        raise KeystoreError(f"no account file at {source}",
                            hint=f"create one with `deai-data market account new`, or set {PRIVATE_KEY_ENV}")
    try:
        key = Account.decrypt(json.loads(source.read_text()), _password(password))
    except ValueError as exc:
        raise KeystoreError(f"cannot decrypt the account file {source}: wrong password or corrupt file") from exc
    return Account.from_key(key)
