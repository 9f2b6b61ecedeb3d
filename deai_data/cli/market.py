"""`deai-data market ...` and `deai-data serve-keys`: the data market from the command line.

The chain comes from `--rpc` or $DEAI_RPC_URL, the market from `--market` or $DEAI_MARKET, the signing
account from $DEAI_ETH_PRIVATE_KEY or an encrypted account file (`market account new`).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import ChainError, UsageError
from ..market.defaults import DEFAULT_CHALLENGE_PERIOD, DEFAULT_CONFIRMATIONS
from .output import emit

if TYPE_CHECKING:
    from ..market import Market

_AMOUNT_UNITS = {"": 1, "wei": 1, "gwei": 10**9, "ether": 10**18, "eth": 10**18}


def parse_amount(text: str) -> int:
    """'1000', '2.5gwei', '0.1ether' -> wei (or the token's smallest unit when no unit is given)."""
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*", text)
    if not match or match.group(2).lower() not in _AMOUNT_UNITS:
        raise argparse.ArgumentTypeError(f"not an amount: {text!r} (examples: 1000, 2gwei, 0.1ether)")
    whole, _, frac = match.group(1).partition(".")
    unit = _AMOUNT_UNITS[match.group(2).lower()]
    value = int(whole) * unit + (int(frac) * unit // 10 ** len(frac) if frac else 0)
    return value



_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3_600, "d": 86_400}


def parse_duration(text: str) -> int:
    """'3600', '12h', '30d' -> seconds."""
    match = re.fullmatch(r"\s*([0-9]+)\s*([smhd]?)\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (examples: 3600, 12h, 30d)")
    return int(match.group(1)) * _DURATION_UNITS[match.group(2)]


def _rpc(args: argparse.Namespace) -> str:
    rpc = args.rpc or os.environ.get("DEAI_RPC_URL")
    if not rpc:
        raise ChainError("no chain given", hint="pass --rpc URL or set DEAI_RPC_URL (the CLI needs a node that "
                                                "outlives it; the embedded chain is for Python programs)")
    return rpc


def _market(args: argparse.Namespace, *, signing: bool = True) -> Market:
    from ..chain import connect, load_account
    from ..market import Market

    address = args.market or os.environ.get("DEAI_MARKET")
    if not address:
        raise ChainError("no market address", hint="pass --market ADDRESS or set DEAI_MARKET")
    return Market(connect(_rpc(args)), address, load_account() if signing else None)


# ---- commands -----------------------------------------------------------------------------------
def cmd_account(args: argparse.Namespace) -> int:
    from eth_account import Account

    from ..chain import load_account, save_account

    if args.account_command == "new":
        account = Account.create()
        path = save_account(account, args.out)
        emit(args, {"address": account.address, "file": str(path)},
              [f"new account {account.address}, encrypted in {path}", "fund it before sending transactions"])
    else:
        account = load_account()
        emit(args, {"address": account.address}, [account.address])
    return 0


def cmd_deploy(args: argparse.Namespace) -> int:
    from ..chain import connect, load_account
    from ..market import Market

    market = Market.deploy(connect(_rpc(args)), load_account(), treasury=args.treasury, fee_bps=args.fee_bps)
    emit(args, {"market": market.address, "chain_id": market.chain_id, "fee_bps": args.fee_bps},
          [f"DataMarket deployed at {market.address} on chain {market.chain_id} (fee {args.fee_bps} bps)",
           f"export DEAI_MARKET={market.address}"])
    return 0


def cmd_register(args: argparse.Namespace) -> int:
    market = _market(args)
    dataset_id = market.register(args.manifest, price=args.price, payment_token=args.token,
                                 delivery_window=args.window, challenge_period=args.challenge_period,
                                 license_uri=args.license_uri, supersedes=args.supersedes,
                                 manifest_uris=tuple(args.uri or ()), split=dict(args.split or ()),
                                 lock_split=args.lock_split)
    emit(args, {"dataset_id": dataset_id, "market": market.address},
          [f"registered dataset {dataset_id} on {market.address}",
           "run `deai-data serve-keys` so that buyers receive the key"])
    return 0


def cmd_buy(args: argparse.Namespace) -> int:
    market = _market(args)
    purchase = market.purchase(args.dataset_id, max_price=args.max_price, referrer=args.referrer,
                               referrer_bps=args.referrer_bps, permit=args.permit)
    doc: dict[str, Any] = {"purchase_id": purchase.purchase_id, "dataset_id": purchase.dataset_id,
                           "amount": purchase.amount, "deadline": purchase.deadline, "key_received": False}
    lines = [f"purchase {purchase.purchase_id}: {purchase.amount} paid into escrow; the owner must deliver "
             f"the key before {purchase.deadline} (unix time) or you can refund"]
    if args.wait:
        market.receive_key(purchase.purchase_id, timeout=args.wait, dispute=not args.no_dispute)
        doc["key_received"] = True
        lines.append(f"key received and checked; open it with deai_data.Market(...).open_dataset({args.dataset_id})")
    emit(args, doc, lines)
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    market = _market(args, signing=args.price is not None or args.withdraw)
    if args.withdraw:
        market.set_subscription_plan(args.dataset_id, 0, 0)
    elif args.price is not None:
        if args.term is None:
            raise UsageError("a plan needs its term: --term 30d")
        market.set_subscription_plan(args.dataset_id, args.price, args.term)
    plan = market.subscription_plan(args.dataset_id)
    price, term = plan or (None, None)
    emit(args, {"dataset_id": args.dataset_id, "price": price, "term": term},
         [f"dataset {args.dataset_id}: {price} for {term} s of every version registered in the term" if plan else
          f"dataset {args.dataset_id}: no subscription plan"])
    return 0


def cmd_subscribe(args: argparse.Namespace) -> int:
    sub = _market(args).subscribe(args.dataset_id, max_price=args.max_price, renews=args.renews)
    emit(args, {"subscription_id": sub.subscription_id, "dataset_id": sub.dataset_id, "price": sub.price,
                "expires": sub.expires},
         [f"subscription {sub.subscription_id}: {sub.price} paid into escrow; claim each version of dataset "
          f"{sub.dataset_id} registered before {sub.expires} (unix time) with `deai-data market claim "
          f"{sub.subscription_id}`"])
    return 0


def cmd_claim(args: argparse.Namespace) -> int:
    market = _market(args)
    claims = [market.claim(args.subscription_id, version) for version in args.dataset_id] if args.dataset_id \
        else market.claim_new(args.subscription_id)
    for claim in claims if args.wait else ():
        market.receive_key(claim.purchase_id, timeout=args.wait, dispute=not args.no_dispute)
    doc = {"subscription_id": args.subscription_id, "keys_received": bool(args.wait),
           "claims": [{"purchase_id": c.purchase_id, "dataset_id": c.dataset_id} for c in claims]}
    lines = [f"dataset {c.dataset_id}: purchase {c.purchase_id}" + (", key received and checked" if args.wait else
                                                                    f"; receive its key with `deai-data market "
                                                                    f"receive {c.purchase_id}`") for c in claims]
    emit(args, doc, lines or [f"subscription {args.subscription_id}: no new version to claim"])
    return 0


def cmd_receive(args: argparse.Namespace) -> int:
    market = _market(args)
    market.receive_key(args.purchase_id, timeout=args.wait, dispute=not args.no_dispute)
    emit(args, {"purchase_id": args.purchase_id, "key_received": True},
          [f"key of purchase {args.purchase_id} received, checked against the commitment and kept in the keystore"])
    return 0


def cmd_refund(args: argparse.Namespace) -> int:
    amount = _market(args).refund(args.purchase_id)
    emit(args, {"purchase_id": args.purchase_id, "refunded": amount},
          [f"purchase {args.purchase_id} refunded: {amount} withdrawn to your account"])
    return 0


def cmd_dispute(args: argparse.Namespace) -> int:
    refunded = _market(args).dispute(args.purchase_id, generations=args.generations)
    line = (f"purchase {args.purchase_id}: the contract found the delivered key wrong and refunded {refunded} "
            "(withdrawn to your account)") if refunded else \
        f"purchase {args.purchase_id}: the contract found the delivered key right; the seller has been paid"
    emit(args, {"purchase_id": args.purchase_id, "buyer_won": bool(refunded), "refunded": refunded}, [line])
    return 0


def cmd_settle(args: argparse.Namespace) -> int:
    settled = _market(args).settle(args.purchase_id)
    emit(args, {"requested": args.purchase_id, "settled": settled},
          [f"settled {settled} of {len(args.purchase_id)} purchases (the others are not past their challenge "
           "period, or already settled)"])
    return 0


def cmd_withdraw(args: argparse.Namespace) -> int:
    amount = _market(args).withdraw(args.token, to=args.to)
    emit(args, {"withdrawn": amount, "token": args.token, "to": args.to},
          [f"withdrew {amount}" + (f" to {args.to}" if args.to else "")])
    return 0


def cmd_price(args: argparse.Namespace) -> int:
    market = _market(args)
    if args.pause or args.resume:
        market.set_paused(args.dataset_id, bool(args.pause))
    if args.price is not None:
        market.set_price(args.dataset_id, args.price)
    listing = market.listing(args.dataset_id)
    emit(args, {"dataset_id": args.dataset_id, "price": listing.price, "paused": listing.paused},
          [f"dataset {args.dataset_id}: price {listing.price}, sales {'paused' if listing.paused else 'open'}"])
    return 0


def parse_share(text: str) -> tuple[str, int]:
    """'0xADDRESS=2500' -> (address, basis points)."""
    address, _, bps = text.partition("=")
    if not re.fullmatch(r"0x[0-9a-fA-F]{40}", address) or not bps.isdigit():
        raise argparse.ArgumentTypeError(f"not a share: {text!r} (ADDRESS=BASIS_POINTS, e.g. 0xabc...=2500)")
    return address, int(bps)


def cmd_split(args: argparse.Namespace) -> int:
    if args.lock and not args.share:
        raise UsageError("--lock needs the shares to lock (ADDRESS=BPS ...)")
    market = _market(args)
    if args.share or args.clear:
        market.set_revenue_split(args.dataset_id, dict(args.share or ()), lock=args.lock)
    split = market.revenue_split(args.dataset_id)
    lines = [f"{payee} {bps / 100:g} %" for payee, bps in split.shares.items()] or ["the owner takes all proceeds"]
    lines.append("locked: it can never change" if split.locked else "the owner can change it for later sales")
    emit(args, {"dataset_id": args.dataset_id, "shares": split.shares, "locked": split.locked}, lines)
    return 0


def cmd_royalty(args: argparse.Namespace) -> int:
    market = _market(args)
    if args.bps is not None:
        market.set_royalty(args.dataset_id, args.receiver, args.bps)
    receiver, per_10k = market.royalty(args.dataset_id, 10_000)
    emit(args, {"dataset_id": args.dataset_id, "receiver": receiver, "bps": per_10k},
          [f"dataset {args.dataset_id}: royalty {per_10k / 100:g} % to {receiver}" if receiver else
           f"dataset {args.dataset_id}: no royalty"])
    return 0


def cmd_agent(args: argparse.Namespace) -> int:
    _market(args).set_key_agent(args.agent, not args.revoke)
    verb = "may no longer" if args.revoke else "may now"
    emit(args, {"agent": args.agent, "allowed": not args.revoke},
          [f"{args.agent} {verb} deliver keys for your datasets"])
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    market = _market(args, signing=False)
    if args.purchase or args.subscription:
        p = market.subscription(args.id) if args.subscription else market.purchase_info(args.id)
        doc = {k: getattr(p, k) for k in p.__dataclass_fields__}
        lines = [f"{k:<16} {v}" for k, v in doc.items()]
    else:
        lineage = market.lineage(args.id) if args.latest else [args.id]
        listing = market.listing(lineage[-1])
        doc = {k: getattr(listing, k) for k in listing.__dataclass_fields__}
        doc["manifest_uris"] = list(listing.manifest_uris)
        if args.latest:
            doc["lineage"] = lineage
        lines = [f"{k:<16} {v}" for k, v in doc.items()]
    emit(args, doc, lines)
    return 0


def cmd_serve_keys(args: argparse.Namespace) -> int:
    from ..market import KeyAgent

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    agent = KeyAgent(_market(args), owners=args.owner, state_path=args.state, confirmations=args.confirmations,
                     start_block=args.start_block, poll_interval=args.poll)
    if args.once:
        delivered = agent.run_once()
        emit(args, {"delivered": delivered}, [f"delivered {len(delivered)} keys: {delivered}"])
        return 0
    print(f"serving keys for {', '.join(sorted(agent.owners))} as {agent.me} on {agent.market.address}; "
          "Ctrl-C to stop", flush=True)
    agent.run(threading.Event())
    return 0


# ---- parser -------------------------------------------------------------------------------------
def add_market_commands(command: Callable[[str, str], argparse.ArgumentParser]) -> None:
    """Add `market` (with its actions) and `serve-keys` through the CLI's `command(name, help)` factory."""

    def chain_options(p: argparse.ArgumentParser, *, json_flag: bool = True, rpc: bool = True,
                      market: bool = True) -> None:
        if rpc:
            p.add_argument("--rpc", help="JSON-RPC URL (default $DEAI_RPC_URL)")
        if market:
            p.add_argument("--market", help="DataMarket address (default $DEAI_MARKET)")
        if json_flag:
            p.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")

    p = command("market", "deploy the market, register datasets, buy, refund, withdraw, set prices")
    actions = p.add_subparsers(dest="market_command", required=True, metavar="ACTION")

    def action(name: str, help_text: str, func: Callable[[argparse.Namespace], int], *, rpc: bool = True,
               market: bool = True) -> argparse.ArgumentParser:
        a = actions.add_parser(name, help=help_text, description=help_text)
        chain_options(a, rpc=rpc, market=market)
        a.set_defaults(func=func)
        return a

    a = action("account", "create or show the signing account (an encrypted eth-account file)", cmd_account,
               rpc=False, market=False)
    a.add_argument("account_command", choices=("new", "show"))
    a.add_argument("--out", help="account file (default $DEAI_HOME/account.json)")
    a = action("deploy", "deploy a DataMarket contract", cmd_deploy, market=False)
    a.add_argument("--fee-bps", type=int, default=0, help="protocol fee in basis points (at most 1000)")
    a.add_argument("--treasury", help="fee recipient (default: the deploying account)")
    a = action("register", "register a published dataset version for sale", cmd_register)
    a.add_argument("manifest", help="manifest URI printed by `deai-data publish`")
    a.add_argument("--price", type=parse_amount, required=True, help="price (wei, or e.g. 0.1ether)")
    a.add_argument("--token", help="ERC-20 payment token address (default: native currency)")
    a.add_argument("--window", type=int, default=86_400, help="delivery window in seconds (default 1 day)")
    a.add_argument("--challenge-period", type=int, default=DEFAULT_CHALLENGE_PERIOD,
                   help="seconds a buyer may dispute a delivered key before the seller is paid (default 3 days)")
    a.add_argument("--license-uri", help="licence, SPDX or URI#sha256=HEX (default: the manifest's)")
    a.add_argument("--supersedes", type=int, metavar="DATASET_ID", help="dataset id of the version this one replaces")
    a.add_argument("--uri", action="append", help="manifest URI to record (repeat for mirrors)")
    a.add_argument("--split", action="append", type=parse_share, metavar="ADDRESS=BPS",
                   help="share sales with these payees (repeat; basis points summing to 10000)")
    a.add_argument("--lock-split", action="store_true", help="make the split permanent, even for later owners")
    a = action("buy", "pay a dataset's price into escrow with a fresh sealing key", cmd_buy)
    a.add_argument("dataset_id", type=int)
    a.add_argument("--max-price", type=parse_amount, help="refuse to pay more (default: the current price)")
    a.add_argument("--wait", type=float, default=0, help="wait up to this many seconds for the key")
    a.add_argument("--no-dispute", action="store_true", help="do not dispute a wrong key automatically")
    a.add_argument("--referrer", metavar="ADDRESS", help="the front-end you came through (paid on settlement)")
    a.add_argument("--referrer-bps", type=int, default=0, help="its fee on top of the price (at most 500)")
    a.add_argument("--permit", action="store_true", help="ERC-20: sign an EIP-2612 permit instead of approving")
    a = action("plan", "show or set (owner) a dataset's subscription plan: a price for a term of every new "
               "version", cmd_plan)
    a.add_argument("dataset_id", type=int)
    a.add_argument("price", type=parse_amount, nargs="?")
    a.add_argument("--term", type=parse_duration, help="the term: seconds, or e.g. 12h, 30d")
    a.add_argument("--withdraw", action="store_true", help="sell no more subscriptions (sold ones run on)")
    a = action("subscribe", "pay a dataset's subscription price into escrow for its term", cmd_subscribe)
    a.add_argument("dataset_id", type=int)
    a.add_argument("--max-price", type=parse_amount, help="refuse to pay more (default: the current plan price)")
    a.add_argument("--renews", type=int, metavar="SUBSCRIPTION_ID",
                   help="extend this subscription of yours: the new term starts where it ends")
    a = action("claim", "claim the versions registered in a subscription's term (default: every new one)",
               cmd_claim)
    a.add_argument("subscription_id", type=int)
    a.add_argument("dataset_id", type=int, nargs="*", help="claim these versions only")
    a.add_argument("--wait", type=float, default=0, help="wait up to this many seconds for each key")
    a.add_argument("--no-dispute", action="store_true", help="do not dispute a wrong key automatically")
    a = action("receive", "fetch, open and check the key of a purchase (a wrong key is disputed at once)",
               cmd_receive)
    a.add_argument("purchase_id", type=int)
    a.add_argument("--wait", type=float, default=0, help="wait up to this many seconds for the delivery")
    a.add_argument("--no-dispute", action="store_true", help="do not dispute a wrong key automatically")
    a = action("dispute", "prove a delivered key wrong on-chain; the contract refunds if it is", cmd_dispute)
    a.add_argument("purchase_id", type=int)
    a.add_argument("--generations", type=int, metavar="N", help="also check the keys of the N earlier versions the "
                   "dataset inherits shards from (default: as deep as its manifest inherits)")
    a = action("settle", "pay sellers of delivered purchases whose challenge period is over (and of subscriptions "
               "whose term is)", cmd_settle)
    a.add_argument("purchase_id", type=int, nargs="+")
    a = action("refund", "take back the price of an undelivered purchase after its deadline", cmd_refund)
    a.add_argument("purchase_id", type=int)
    a = action("withdraw", "pull your balance (sales revenue or refunds)", cmd_withdraw)
    a.add_argument("--token", help="ERC-20 token address (default: native currency)")
    a.add_argument("--to", metavar="ADDRESS", help="send it to this address (default: your account)")
    a = action("price", "show or change a dataset's price; pause or resume sales", cmd_price)
    a.add_argument("dataset_id", type=int)
    a.add_argument("price", type=parse_amount, nargs="?")
    group = a.add_mutually_exclusive_group()
    group.add_argument("--pause", action="store_true")
    group.add_argument("--resume", action="store_true")
    a = action("split", "show or set how a dataset's sales are shared (later sales only)", cmd_split)
    a.add_argument("dataset_id", type=int)
    a.add_argument("share", type=parse_share, nargs="*", help="ADDRESS=BASIS_POINTS, summing to 10000")
    a.add_argument("--lock", action="store_true", help="never changeable again, even by a later owner")
    a.add_argument("--clear", action="store_true", help="pay the owner again")
    a = action("royalty", "show or set (author only) the ERC-2981 royalty on resales of a dataset's token",
               cmd_royalty)
    a.add_argument("dataset_id", type=int)
    a.add_argument("receiver", nargs="?")
    a.add_argument("--bps", type=int, help="royalty in basis points (at most 1000; 0 removes it)")
    a = action("set-agent", "allow an address to deliver keys for your sales (it must list you with "
               "serve-keys --owner)", cmd_agent)
    a.add_argument("agent")
    a.add_argument("--revoke", action="store_true")
    a = action("show", "show a dataset version (or, with --purchase, a purchase)", cmd_show)
    a.add_argument("id", type=int)
    kind = a.add_mutually_exclusive_group()
    kind.add_argument("--purchase", action="store_true", help="ID is a purchase id")
    kind.add_argument("--subscription", action="store_true", help="ID is a subscription id")
    kind.add_argument("--latest", action="store_true",
                      help="show the newest version descending from dataset ID (with the lineage)")

    p = command("serve-keys", "deliver keys to buyers of your datasets (the owner's key agent)")
    chain_options(p, json_flag=False)
    p.add_argument("--confirmations", type=int, default=DEFAULT_CONFIRMATIONS,
                   help="act on purchases this many blocks deep (default %(default)s)")
    p.add_argument("--owner", action="append", metavar="ADDRESS",
                   help="a seller this agent serves (repeatable; default: the agent's own account)")
    p.add_argument("--poll", type=float, default=2.0, help="seconds between passes (default %(default)s)")
    p.add_argument("--state", help="checkpoint file (default under $DEAI_HOME/agents)")
    p.add_argument("--start-block", type=int, default=0, help="first block to scan on a fresh start")
    p.add_argument("--once", action="store_true", help="one pass, then exit")
    p.set_defaults(func=cmd_serve_keys)

