"""`deai-indexer run|backfill|status|rebuild|push|probe`: index a DataMarket's events into Parquet + DuckDB.

Logs are structured (key=value) on stderr; `--json` prints machine-readable results on stdout.
Exit codes: 0 success, 1 error, 3 a probe flagged a dataset, 11 chain unreachable, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from deai_data import DeaiError, catalog_mirror, fetch_policy, run_command

from .catalog import build_catalog
from .indexer import Indexer, Progress
from .probe import probe_storage


def _indexer(args: argparse.Namespace) -> Indexer:
    rpc = args.rpc or os.environ.get("DEAI_RPC_URL")
    market = args.market or os.environ.get("DEAI_MARKET")
    if not rpc or not market:
        raise DeaiError("the chain and the market are needed", hint="pass --rpc and --market (or set "
                                                                     "DEAI_RPC_URL and DEAI_MARKET)")
    confirmations = None if args.finality == "tag" else args.confirmations
    if not hasattr(args, "chunk"):  # `status` reads the chain and the checkpoint only
        return Indexer(rpc, market, args.root, confirmations=confirmations)
    _widen_fetch_policy(args)
    return Indexer(rpc, market, args.root, confirmations=confirmations, chunk=args.chunk,
                   enrich=not args.no_enrich, check_availability=args.check_availability)


def _widen_fetch_policy(args: argparse.Namespace) -> None:
    """--allow-private-networks / --allow-local-files: widen the policy for registered (untrusted) URIs."""
    if args.allow_private_networks or args.allow_local_files:
        base = fetch_policy.configured()
        fetch_policy.configure(replace(base, private_networks=base.private_networks or args.allow_private_networks,
                                       local_files=base.local_files or args.allow_local_files))


def _progress(args: argparse.Namespace) -> Callable[[Progress], None] | None:
    if args.json or not sys.stderr.isatty():
        return None

    def show(p: Progress) -> None:
        rate = p.events / p.seconds if p.seconds else 0.0
        print(f"\rindexed to block {p.next_block - 1} of {p.target}: {p.events} events, {rate:,.0f} events/s",
              end="", file=sys.stderr, flush=True)
    return show


def _pusher(args: argparse.Namespace) -> Callable[[], None] | None:
    """With --push-to: copy the index folder there (what changed) after every pass."""
    if not args.push_to:
        return None

    def push() -> None:
        report = catalog_mirror.push(args.root, args.push_to)
        logging.getLogger("deai_indexer").info("pushed to=%s files=%d copied=%d deleted=%d bytes=%d", args.push_to,
                                               report.files, report.copied, report.deleted, report.bytes_copied)
    return push


def cmd_run(args: argparse.Namespace) -> int:
    indexer = _indexer(args)
    logging.getLogger("deai_indexer").info("following head=%s root=%s", indexer.head()[0], args.root)
    indexer.follow(poll=args.poll, stop=threading.Event(), progress=_progress(args), after_pass=_pusher(args))
    return 0


def cmd_backfill(args: argparse.Namespace) -> int:
    indexer = _indexer(args)
    written = indexer.sync(args.to_block, start_block=args.from_block, progress=_progress(args))
    push = _pusher(args)
    if push is not None:
        push()
    status = indexer.status()
    if not args.json and sys.stderr.isatty():
        print(file=sys.stderr)
    print(json.dumps({"events": written, **status}) if args.json else
          f"{written} events; indexed blocks {status['start_block']}-{status['indexed']} (head {status['head']})")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    status = _indexer(args).status()
    print(json.dumps(status) if args.json else "\n".join(f"{k:<12} {v}" for k, v in status.items()))
    return 0


def cmd_rebuild(args: argparse.Namespace) -> int:
    path = build_catalog(args.root)
    print(json.dumps({"catalog": str(path)}) if args.json else f"rebuilt {path} from the Parquet files")
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    report = catalog_mirror.push(args.root, args.uri)
    doc = {"uri": args.uri, "files": report.files, "copied": report.copied, "deleted": report.deleted,
           "bytes": report.bytes_copied, "seconds": round(report.seconds, 3)}
    print(json.dumps(doc) if args.json else f"pushed {args.root} to {args.uri}: {report.copied} of {report.files} "
          f"files copied ({report.bytes_copied} bytes), {report.deleted} deleted")
    return 0


def cmd_probe(args: argparse.Namespace) -> int:
    _widen_fetch_policy(args)
    push = _pusher(args)
    stop = threading.Event()
    while True:
        found = probe_storage(args.root, concurrency=args.concurrency, hash_shards=args.hash_shards,
                              deadline=args.deadline)
        if found.path is not None and len(list(found.path.parent.glob("*.parquet"))) == 1:
            build_catalog(args.root)  # the first observations: the storage views switch to reading them
        if push is not None:
            push()
        doc = {"manifests": found.manifests, "objects": found.objects, "flagged": found.flagged,
               "file": None if found.path is None else str(found.path)}
        print(json.dumps(doc) if args.json else
              f"checked {found.manifests} manifests ({found.objects} objects): "
              + (f"{len(found.flagged)} flagged: {', '.join(found.flagged)}" if found.flagged else "none flagged"),
              flush=True)
        if not args.every or stop.wait(args.every):
            return 3 if found.flagged and not args.every else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="deai-indexer", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str, func: Callable[[argparse.Namespace], int], *,
                chain: bool = True, indexing: bool = True) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--root", type=Path, default=Path("deai-index"), help="index folder (default ./deai-index)")
        p.add_argument("--json", action="store_true", help="print JSON")
        if chain:
            p.add_argument("--rpc", help="JSON-RPC URL (default $DEAI_RPC_URL)")
            p.add_argument("--market", help="DataMarket address (default $DEAI_MARKET)")
            p.add_argument("--confirmations", type=int, default=12,
                           help="blocks below head - N are final (default 12)")
            p.add_argument("--finality", choices=("depth", "tag"), default="depth",
                           help="finality from --confirmations, or the node's `finalized` tag (default depth)")
        if chain and indexing:
            p.add_argument("--chunk", type=int, default=2000,
                           help="first getLogs range in blocks (adapts; default 2000)")
            p.add_argument("--no-enrich", action="store_true", help="do not fetch manifests")
            p.add_argument("--check-availability", action="store_true",
                           help="with enrichment, count the shards their locators serve")
        if indexing:
            p.add_argument("--allow-private-networks", action="store_true",
                           help="let registered manifest URIs reach loopback and private addresses (default: "
                                "public only; $DEAI_FETCH_ALLOW=private does the same)")
            p.add_argument("--allow-local-files", action="store_true",
                           help="let registered manifest URIs name local files (file://; development only)")
            p.add_argument("--push-to", metavar="URI",
                           help="after every pass, copy the index folder to URI (s3://BUCKET/PREFIX or a folder; "
                                "analysts open it with Catalog(URI))")
        p.set_defaults(func=func)
        return p

    p = command("run", "index to the head, then follow it", cmd_run)
    p.add_argument("--poll", type=float, default=2.0, help="seconds between polls (default 2)")
    p = command("backfill", "index blocks FROM..TO (inclusive) and stop", cmd_backfill)
    p.add_argument("from_block", type=int)
    p.add_argument("to_block", type=int, nargs="?", help="default: the head")
    command("status", "head, indexed, finalized and lag", cmd_status, indexing=False)
    command("rebuild", "recreate the DuckDB catalog from the Parquet files only", cmd_rebuild, chain=False,
            indexing=False)
    p = command("push", "copy the index folder (what changed) to object storage or another folder", cmd_push,
                chain=False, indexing=False)
    p.add_argument("uri", help="s3://BUCKET/PREFIX (endpoint: ?endpoint=URL or $DEAI_S3_ENDPOINT), or a folder")
    p = command("probe", "check that every registered dataset is still stored (exit 3 when one is flagged)",
                cmd_probe, chain=False)
    p.add_argument("--every", type=float, default=0, metavar="SECONDS",
                   help="probe again every SECONDS until interrupted (default: once)")
    p.add_argument("--concurrency", type=int, default=8, help="checks at a time (default 8)")
    p.add_argument("--hash-shards", type=int, default=1, metavar="N",
                   help="shards per dataset, picked at random, read whole and hashed (default 1; 0: none)")
    p.add_argument("--deadline", type=float, default=300.0, metavar="SECONDS",
                   help="per dataset: checks not done by then are recorded as timed out (default 300)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="ts=%(asctime)s level=%(levelname)s logger=%(name)s msg=%(message)r")
    return run_command(args)


if __name__ == "__main__":
    sys.exit(main())
