"""`deai-data arweave wallet|status|find`: Arweave from the command line.

Wallets live encrypted in the keystore (kind `arweave-wallet`); no command prints a private key.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

from ..errors import DeaiError, StorageError
from .output import emit

WINSTON_PER_AR = 10**12


def _gateways(args: argparse.Namespace) -> list[str]:
    from ..storage.arweave.store import _env_gateways
    return args.gateway or _env_gateways()



def _ar(winston: int) -> str:
    return f"{Decimal(winston) / WINSTON_PER_AR:f}"


def cmd_wallet(args: argparse.Namespace) -> int:
    from ..crypto.keystore import Keystore
    from ..storage.arweave import GatewayClient, Wallet
    from ..storage.arweave.store import WALLET_KIND

    keystore = Keystore()
    if args.wallet_command in ("new", "import"):
        if keystore.has(WALLET_KIND, args.name) and not args.replace:
            raise StorageError(f"the keystore already holds an Arweave wallet named {args.name!r}",
                               hint="choose another --name, or pass --replace")
        wallet = Wallet.generate() if args.wallet_command == "new" else Wallet.load(args.file)
        keystore.put(WALLET_KIND, args.name, json.dumps(wallet.to_jwk()).encode(), {"address": wallet.address})
        emit(args, {"name": args.name, "address": wallet.address, "keystore": str(keystore.path)},
              [f"Arweave wallet {args.name!r}: address {wallet.address} (encrypted in {keystore.path})",
               f"use it with --store 'ar://?wallet=keystore:{args.name}' or DEAI_ARWEAVE_WALLET=keystore:{args.name}"])
        return 0
    entry = keystore.entry(WALLET_KIND, args.name)
    if entry is None:
        raise StorageError(f"no Arweave wallet named {args.name!r} in the keystore",
                           hint="create one with `deai-data arweave wallet new --name NAME`")
    address = entry.meta["address"]
    balance = GatewayClient(_gateways(args)).balance(address)
    emit(args, {"name": args.name, "address": address, "winston": balance, "ar": _ar(balance)},
          [f"{args.name}: {address}", f"balance {balance} winston ({_ar(balance)} AR)"])
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from ..storage.arweave import ArweaveStore
    status = ArweaveStore(_gateways(args)).status(args.locator)
    doc = {"id": status.id, "state": status.state, "block_height": status.block_height,
           "confirmations": status.confirmations}
    emit(args, doc, [f"{args.locator}: {status.state}" + (
        f" in block {status.block_height}, {status.confirmations} confirmations" if status.confirmed else "")])
    return 0


def cmd_find(args: argparse.Namespace) -> int:
    from ..storage.arweave import ArweaveStore
    tags: dict[str, list[str]] = {"App-Name": ["deai-data"]}
    for item in args.tag or []:
        name, sep, value = item.partition("=")
        if not sep:
            raise DeaiError(f"--tag {item!r} is not NAME=VALUE")
        tags.setdefault(name, []).append(value)
    if args.seal_id:
        tags["Seal-Id"] = [args.seal_id]
    found = list(ArweaveStore(_gateways(args)).find(tags))
    rows = [{"locator": o.locator, "size": o.size, "block_height": o.block_height, "tags": o.tags} for o in found]
    emit(args, {"objects": rows}, [f"{o.locator}  {o.size:>12}  {o.tags.get('Object-Type', '')} "
                                    f"{o.tags.get('Shard-Index', '')}".rstrip() for o in found]
          + [f"({len(found)} objects)"])
    return 0


def add_arweave_commands(command: Callable[[str, str], argparse.ArgumentParser]) -> None:
    def gateway(p: argparse.ArgumentParser) -> None:
        p.add_argument("--gateway", action="append",
                       help="Arweave gateway URL (repeat for failover; default DEAI_ARWEAVE_GATEWAYS or arweave.net)")

    p = command("arweave", "Arweave wallets, confirmations and discovery")
    sub = p.add_subparsers(dest="arweave_command", required=True, metavar="ACTION")
    wallet = sub.add_parser("wallet", help="create, import or show a wallet kept in the keystore")
    wallet_sub = wallet.add_subparsers(dest="wallet_command", required=True, metavar="ACTION")
    for name, text in (("new", "generate an RSA-4096 wallet into the keystore"),
                       ("import", "import a JWK wallet file into the keystore (then delete the file)"),
                       ("show", "address and balance")):
        action = wallet_sub.add_parser(name, help=text, description=text)
        action.add_argument("--name", default="default", help="keystore entry name (default: default)")
        action.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")
        if name == "import":
            action.add_argument("file", type=Path)
        if name != "show":
            action.add_argument("--replace", action="store_true", help="overwrite an entry of that name")
        gateway(action)
        action.set_defaults(func=cmd_wallet)

    text = "pending or confirmed, with depth"
    status = sub.add_parser("status", help=text, description=text)
    status.add_argument("locator", help="ar://ID")
    text = "deai-data objects on Arweave by tag (GraphQL)"
    find = sub.add_parser("find", help=text, description=text)
    find.add_argument("--seal-id", help="the manifest's seal id (hex): that version's shards and manifest")
    find.add_argument("--tag", action="append", metavar="NAME=VALUE", help="tag filter (repeatable)")
    for action, func in ((status, cmd_status), (find, cmd_find)):
        action.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")
        gateway(action)
        action.set_defaults(func=func)
