"""`deai-data estimate SIZE|MANIFEST_URI`: what keeping the bytes costs on Arweave, Filecoin PDP and S3 over a term."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from decimal import Decimal, InvalidOperation

from ..errors import UsageError
from .output import emit
from .sizes import parse_size


def _size_of(target: str) -> tuple[int, str]:
    """Bytes from a size (`64MiB`) or from a manifest (its sealed size), and what they are."""
    try:
        return parse_size(target), target
    except argparse.ArgumentTypeError:
        if "://" not in target and not os.path.exists(target):
            raise UsageError(f"{target!r} is neither a size (4096, 64MiB, 1TB) nor a manifest URI") from None
        from ..dataset.reader import fetch_manifest
        manifest, _ = fetch_manifest(target)
        return manifest.sealed_size, f"{manifest.name!r} ({manifest.sealed_size} sealed bytes)"


def _money(value: Decimal | None) -> str:
    return "-" if value is None else f"{value:,.6f}".rstrip("0").rstrip(".")


def cmd_estimate(args: argparse.Namespace) -> int:
    from ..storage.arweave.store import _env_gateways
    from ..storage.costs import compare

    size, what = _size_of(args.target)
    try:
        s3_price = None if args.s3_price is None else Decimal(args.s3_price)
    except InvalidOperation:
        raise UsageError(f"--s3-price must be a number of USD per GB-month, not {args.s3_price!r}") from None
    quotes = compare(size, args.months, backends=args.backend or ("arweave", "filecoin", "s3"),
                     gateways=args.gateway or _env_gateways(),
                     filecoin_rpc=args.filecoin_rpc or os.environ.get("DEAI_FILECOIN_RPC"),
                     warm_storage=args.warm_storage or os.environ.get("DEAI_WARM_STORAGE"),
                     s3_price=s3_price, offline=args.offline)
    rows = [("backend", "payment", f"{args.months:g} months", "per month", "unit", "price from")]
    rows += [(q.backend, q.payment, _money(q.total), _money(q.per_month), q.unit, q.source) for q in quotes]
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = [f"keeping {what} for {args.months:g} months (one copy each):"]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r[:5], widths, strict=True)) + "  " + r[5] for r in rows]
    emit(args, {"bytes": size, "months": args.months, "quotes": [q.to_dict() for q in quotes]}, lines)
    return 0


def add_estimate_command(command: Callable[[str, str], argparse.ArgumentParser]) -> None:
    p = command("estimate", "what keeping SIZE bytes (or a dataset) costs on Arweave, Filecoin and S3 over a term")
    p.add_argument("target", metavar="SIZE|MANIFEST_URI", help="bytes (e.g. 64MiB, 1TB) or a dataset's manifest")
    p.add_argument("--months", type=float, default=12.0, help="how long to keep the bytes (default 12)")
    p.add_argument("--backend", action="append", choices=("arweave", "filecoin", "s3"),
                   help="only these (repeatable; default all three)")
    p.add_argument("--gateway", action="append",
                   help="Arweave gateway URL (repeat for failover; default DEAI_ARWEAVE_GATEWAYS or arweave.net)")
    p.add_argument("--filecoin-rpc", help="Filecoin (FEVM) JSON-RPC URL (default $DEAI_FILECOIN_RPC)")
    p.add_argument("--warm-storage", metavar="ADDRESS",
                   help="FilecoinWarmStorageService contract (default $DEAI_WARM_STORAGE)")
    p.add_argument("--s3-price", metavar="USD", help="S3 price per GB-month (default: AWS S3 Standard's list price)")
    p.add_argument("--offline", action="store_true",
                   help="ask no service: the last remembered quotes (and the documented defaults)")
    p.set_defaults(func=cmd_estimate)
