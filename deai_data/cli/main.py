"""The `deai-data` command line: publish, get, verify, inspect, keys, market, serve-keys, catalog, estimate,
arweave, piece, demo.

Exit codes: 0 success, 1 other deai-data error, 2 usage or unsupported locator, 3 integrity failure,
4 wrong key, 5 malformed manifest, 6 storage failure, 7 not found, 8 keystore, 9 source, 10 publish,
11 chain unreachable or transaction failed, 12 refused by a contract, 13 key delivery, 14 catalog,
15 over a limit, 70 internal error, 130 interrupted (the table: docs/cli.md).
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from ..crypto.keystore import DATA_KEY, Keystore
from ..crypto.sealing import DEFAULT_SEGMENT_SIZE
from ..dataset.publish import PublishProgress, PublishResult, publish
from ..dataset.reader import Dataset, fetch_manifest, open_dataset
from ..dataset.sources import folder, parquet, read_source
from ..display import ProgressLine
from ..errors import DeaiError, KeystoreError, UsageError
from ..formats.license import license_reference
from ..formats.manifest import is_hex_digest
from ..formats.shard import DEFAULT_SHARD_SIZE
from ..version import __version__
from .arweave import add_arweave_commands
from .catalog import add_catalog_commands
from .entry import run_command
from .estimate import add_estimate_command
from .filecoin import add_filecoin_commands
from .market import add_market_commands
from .output import emit
from .sizes import human_bytes, parse_size


def _open(args: argparse.Namespace) -> Dataset:
    return open_dataset(args.manifest, manifest_hash=args.manifest_hash, mirrors=args.mirror or ())


# ---- commands -----------------------------------------------------------------------------------
def cmd_publish(args: argparse.Namespace) -> int:
    if args.engine == "ray":
        source, run = _ray_publishing(args)
    else:
        run = publish
        if args.format == "folder":
            source = folder(args.source)
        elif args.format == "parquet":
            source = parquet(args.source)
        else:
            source = read_source(args.source)
    bar = ProgressLine(enabled=False if args.json or args.quiet else None)

    def progress(p: PublishProgress) -> None:
        rate = p.plaintext_bytes / p.elapsed / 1e6 if p.elapsed else 0.0
        bar.update(f"publishing: {p.shards} shards ({p.reused_shards} reused, {p.inherited_shards} inherited), "
                   f"{p.records} records, "
                   f"{human_bytes(p.plaintext_bytes)}, {rate:.0f} MB/s")

    metadata = dict(args.meta or ())
    licence = args.license
    if args.license_text:
        if "://" not in licence:
            raise UsageError("--license-text needs --license URI: the address where the licence text is published")
        try:
            text = Path(args.license_text).read_bytes()
        except OSError as exc:
            raise UsageError(f"cannot read the licence text {args.license_text}: {exc.strerror}") from None
        licence = license_reference(licence, text)
    author = None
    if args.sign:
        from ..chain import load_account
        author = load_account()
    with bar:
        result = run(source, store=args.store, name=args.name or Path(args.source).stem,
                         description=args.description, license=licence, metadata=metadata,
                         shard_size=args.shard_size, segment_size=args.segment_size,
                         compression=None if args.compression == "none" else args.compression,
                         previous_manifest=args.previous_manifest, author=author, owner=args.owner,
                         resume=not args.no_resume, workers=args.workers, progress=progress,
                         previous=args.previous)
    if args.quiet and not args.json:
        print(result.manifest_uri)  # for scripts: MANIFEST=$(deai-data publish ... -q)
        return 0
    m = result.manifest
    doc = {"manifest_uri": result.manifest_uri, "manifest_uris": list(result.manifest_uris),
           "manifest_hash": result.manifest_hash, "content_root": result.content_root,
           "key_commitment": m.key_commitment, "records": m.records, "shards": len(m.shards),
           "plaintext_size": m.plaintext_size, "sealed_size": m.sealed_size,
           "sealed_shards": result.sealed_shards, "reused_shards": result.reused_shards,
           "inherited_shards": result.inherited_shards, "seconds": round(result.seconds, 3)}
    emit(args, doc, [
        f"published {m.name!r}: {m.records} records in {len(m.shards)} shards "
        f"({human_bytes(m.sealed_size)} sealed) in {result.seconds:.2f} s"
        + (f", {result.reused_shards} shards reused from an interrupted publish" if result.reused_shards else "")
        + (f", {result.inherited_shards} unchanged shards inherited from the previous version (not stored again)"
           if result.inherited_shards else ""),
        f"manifest uri   {result.manifest_uri}",
        f"manifest hash  {result.manifest_hash}",
        f"content root   {result.content_root}",
        "the data key is in the keystore under the manifest hash (deai-data keys list)",
    ])
    return 0


def _ray_publishing(args: argparse.Namespace) -> tuple[Any, Callable[..., PublishResult]]:
    """`--engine ray`: the source as a Ray dataset, and the cluster's publish (connected to `--ray-address`)."""
    try:
        import ray

        from .. import ray as deai_ray
    except ImportError as exc:
        raise UsageError(f"--engine ray needs Ray: {exc}", hint="pip install 'deai-data[ray]'") from None
    if not ray.is_initialized():
        try:
            ray.init(address=args.ray_address, log_to_driver=False, configure_logging=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise UsageError(f"cannot start or reach the Ray cluster: {exc}",
                             hint="--ray-address HOST:PORT of a running cluster (`ray start --head`)") from None
    return deai_ray.ray_source(args.source, args.format), deai_ray.publish


def key_value(text: str) -> tuple[str, str]:
    """argparse type for KEY=VALUE (a usage error, not a traceback, when the `=` is missing)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    return key, value


def manifest_hash_arg(text: str) -> str:
    """argparse type for a manifest hash: 64 hex digits (a usage error, not an integrity failure, otherwise)."""
    if not is_hex_digest(text.lower()):
        raise argparse.ArgumentTypeError(f"{text!r} is not a manifest hash (64 hex digits, as `publish` prints)")
    return text.lower()


def manifest_arg(text: str) -> str:
    """argparse type for a manifest URI or path; a bare manifest hash (as `keys list` prints) is a usage error
    that says what to pass instead."""
    if is_hex_digest(text.lower()) and not Path(text).exists():
        raise argparse.ArgumentTypeError(
            f"{text[:12]}... is a manifest hash, not a manifest URI or path: pass the URI `publish` printed (for "
            f"a local store: file://STORE/objects/sha256/{text[:2].lower()}/{text.lower()}), and the hash as "
            "--manifest-hash to pin it")
    return text


def _authorship_line(manifest: Any) -> str:
    if manifest.authorship is None:
        return f"- (unsigned, manifest version {manifest.version})"
    checked = manifest.signed_author()
    how = "signature checked" if checked else "contract-wallet signature: checked by the market at registration"
    owner = "" if manifest.authorship.owner == manifest.authorship.author else \
        f", listing to be owned by {manifest.authorship.owner}"
    return f"{manifest.authorship.author} ({how}{owner})"


def cmd_inspect(args: argparse.Namespace) -> int:
    manifest, uri = fetch_manifest(args.manifest, manifest_hash=args.manifest_hash)
    doc = manifest.to_dict()
    doc["schema"] = doc["schema"]["fields"]  # the readable form; the Arrow bytes are for programs
    doc["manifest_hash"] = manifest.hash
    doc["manifest_uri"] = uri
    lines = [
        f"name           {manifest.name}",
        f"description    {manifest.description}",
        f"license        {manifest.license}",
        f"manifest hash  {manifest.hash}",
        f"seal id        {manifest.seal_id}",
        f"author         {_authorship_line(manifest)}",
        f"content root   {manifest.content_root}",
        f"key commitment {manifest.key_commitment}",
        f"records        {manifest.records}",
        f"shards         {len(manifest.shards)} ({human_bytes(manifest.plaintext_size)} plaintext, "
        f"{human_bytes(manifest.sealed_size)} sealed, compression {manifest.compression or 'none'})",
        f"previous       {manifest.previous_manifest or '-'}",
        "schema         " + ", ".join(f"{f['name']}: {f['type']}" for f in doc["schema"]),
    ]
    emit(args, doc, lines)
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    dataset = _open(args)
    with ProgressLine(enabled=False if args.json else None) as bar:
        report = dataset.verify(strict=False, progress=lambda r, done: bar.update(
            f"verifying: {done}/{dataset.num_shards} shards, {human_bytes(r.sealed_bytes)} checked, "
            f"{len(r.errors)} failed"))
    doc = {"ok": report.ok, "manifest_hash": dataset.manifest_hash, "shards_verified": report.shards,
           "shards": dataset.num_shards, "records": report.records, "sealed_bytes": report.sealed_bytes,
           "seconds": round(report.seconds, 3), "errors": [str(e) for e in report.errors]}
    lines = [f"{'OK' if report.ok else 'FAILED'}: {report.shards}/{dataset.num_shards} shards verified "
             f"({report.records} records, {human_bytes(report.sealed_bytes)}) in {report.seconds:.2f} s"]
    lines += [f"  {e}" for e in report.errors]
    emit(args, doc, lines)
    return 0 if report.ok else 3


def _safe_relative(path: str) -> Path:
    rel = Path(path)
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise DeaiError(f"refusing to write the unsafe path {path!r} from the dataset",
                        hint="get the dataset as Parquet instead")
    return rel


def cmd_get(args: argparse.Namespace) -> int:
    dataset = _open(args)
    out = Path(args.out)
    fmt = args.format
    if fmt == "auto":
        fmt = "parquet" if out.suffix.lower() in (".parquet", ".pq") else "files"
    total = dataset.manifest.records
    with ProgressLine(enabled=False if args.json else None) as bar:
        written = 0
        for written in _write_records(dataset, out, fmt):
            bar.update(f"decrypting: {written}/{total} records written to {out}")
    emit(args, {"records": written, "out": str(out), "format": fmt, "manifest_hash": dataset.manifest_hash},
          [f"wrote {written} records of {dataset.manifest.name!r} to {out} ({fmt})"])
    return 0


def _write_records(dataset: Any, out: Path, fmt: str) -> Iterator[int]:
    """Write the dataset to `out` as one Parquet file, its original files, or Parquet per shard; yields
    the records written so far."""
    written = 0
    if fmt == "parquet":
        out.parent.mkdir(parents=True, exist_ok=True)
        with pq.ParquetWriter(out, dataset.schema) as writer:
            for batch in dataset.iter_batches():
                writer.write_batch(batch)
                written += batch.num_rows
                yield written
    elif all(n in dataset.schema.names for n in ("path", "bytes")):
        for batch in dataset.iter_batches():
            for path, blob in zip(batch.column("path").to_pylist(), batch.column("bytes").to_pylist(), strict=False):
                target = out / _safe_relative(path)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(blob)
                written += 1
            yield written
    else:
        out.mkdir(parents=True, exist_ok=True)
        for index in range(dataset.num_shards):
            table = dataset.read_shard(index)
            pq.write_table(table, out / f"part-{index:05d}.parquet")
            written += table.num_rows
            yield written


def _export_passphrase(confirm: bool) -> str:
    env = os.environ.get("DEAI_EXPORT_PASSWORD")
    if env:
        return env
    if not sys.stdin.isatty():
        raise KeystoreError("no export passphrase: DEAI_EXPORT_PASSWORD is not set and there is no terminal",
                            hint="set DEAI_EXPORT_PASSWORD")
    first = getpass.getpass("export passphrase: ")
    if confirm and getpass.getpass("repeat: ") != first:
        raise KeystoreError("the two passphrases differ")
    return first


def cmd_keys(args: argparse.Namespace) -> int:
    keystore = Keystore()
    if args.keys_command == "list":
        entries = keystore.entries()
        doc = {"keystore": str(keystore.path),
               "entries": [{"kind": e.kind, "name": e.name, "meta": e.meta} for e in entries]}
        lines = [f"keystore {keystore.path}: {len(entries)} entries"]
        lines += [f"  {e.kind:<17} {e.name}  {e.meta.get('name', '')}" for e in entries]
        emit(args, doc, lines)
    elif args.keys_command == "export":
        bundle = keystore.export(args.kind, args.manifest_hash, _export_passphrase(confirm=True))
        fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(bundle)
        emit(args, {"exported": args.manifest_hash, "out": args.out},
              [f"exported the key of {args.manifest_hash} to {args.out} (encrypted with the export passphrase)"])
    else:
        entry = keystore.import_(Path(args.file).read_bytes(), _export_passphrase(confirm=False))
        emit(args, {"imported": entry.name, "kind": entry.kind},
              [f"imported {entry.kind} {entry.name} into {keystore.path}"])
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import demo_passed, run_demo

    summary = run_demo(args.dir, records=args.records, store=args.store, rpc=args.rpc, train_steps=args.steps,
                       say=(lambda _s: None) if args.json else print)
    if args.json:
        print(json.dumps(summary, indent=2, sort_keys=True))
    return 0 if demo_passed(summary) else 1


# ---- parser -------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="deai-data", description=__doc__.split("\n")[0],
                                     epilog=__doc__[__doc__.index("Exit codes:"):].strip())
    parser.add_argument("--version", action="version", version=f"deai-data {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--json", action="store_true", help="print one JSON document instead of text")
        return p

    def reading(p: argparse.ArgumentParser) -> None:
        p.add_argument("manifest", type=manifest_arg, help="manifest URI (file://, http://...) or path")
        p.add_argument("--manifest-hash", type=manifest_hash_arg,
                       help="expected SHA-256 of the manifest (e.g. from the chain)")
        p.add_argument("--mirror", action="append", help="base URI of a content-addressed mirror (repeatable)")

    p = command("publish", "pack, seal and store a dataset; print its manifest URI and hash")
    p.add_argument("source", help="a folder of files or a Parquet file")
    p.add_argument("--store", action="append", required=True, help="store directory or URI (repeat for mirrors)")
    p.add_argument("--name", help="dataset name (default: the source's name)")
    p.add_argument("--description", default="")
    p.add_argument("--license", default="", help="SPDX licence expression (CC-BY-4.0, MIT OR Apache-2.0), or the "
                   "URI of the licence text: with --license-text, or ending #sha256=HEX")
    p.add_argument("--license-text", metavar="FILE", help="the licence text published at the --license URI "
                   "(its SHA-256 goes into the manifest)")
    p.add_argument("--meta", action="append", metavar="KEY=VALUE", type=key_value, help="extra metadata (repeatable)")
    p.add_argument("--format", choices=("auto", "folder", "parquet"), default="auto")
    p.add_argument("--shard-size", type=parse_size, default=DEFAULT_SHARD_SIZE, help="target shard size (64MiB)")
    p.add_argument("--segment-size", type=parse_size, default=DEFAULT_SEGMENT_SIZE, help="AEAD segment (1MiB)")
    p.add_argument("--compression", choices=("none", "zstd", "lz4"), default="none")
    p.add_argument("--previous-manifest", metavar="HASH", help="manifest hash of the version this one follows")
    p.add_argument("--previous", metavar="HASH", help="manifest hash of the version this one follows, its key in the "
                   "keystore: unchanged shards are inherited, not stored again (docs/versions.md)")
    p.add_argument("--sign", action="store_true",
                   help="sign the manifest as its author with the market account (needed to sell it)")
    p.add_argument("--owner", metavar="ADDRESS", help="with --sign: the account to own the listing (default: "
                   "the author)")
    p.add_argument("--workers", type=int, help="sealing threads (default: min(8, CPUs)); with --engine ray, shard "
                   "tasks at a time (default: the cluster's CPUs)")
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="ray: pack, seal and store on a Ray cluster (the `ray` extra); the same manifest")
    p.add_argument("--ray-address", help="with --engine ray: the cluster (default: RAY_ADDRESS, else a local one)")
    p.add_argument("--no-resume", action="store_true", help="ignore the journal of an interrupted publish")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the manifest URI (for scripts)")
    p.set_defaults(func=cmd_publish)

    p = command("get", "decrypt a dataset to a folder of files or a Parquet file")
    reading(p)
    p.add_argument("--out", required=True, help="output folder, or a .parquet file")
    p.add_argument("--format", choices=("auto", "files", "parquet"), default="auto")
    p.set_defaults(func=cmd_get)

    p = command("verify", "fetch every shard and check hashes, tags and decoding")
    reading(p)
    p.set_defaults(func=cmd_verify)

    p = command("inspect", "show a manifest's summary (needs no key)")
    p.add_argument("manifest", type=manifest_arg, help="manifest URI (file://, http://...) or path")
    p.add_argument("--manifest-hash", type=manifest_hash_arg, help="expected SHA-256 of the manifest")
    p.set_defaults(func=cmd_inspect)

    p = command("keys", "list, export or import keystore entries")
    keys = p.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    actions = {name: keys.add_parser(name, help=text, description=text) for name, text in (
        ("list", "list entries (no passphrase needed)"),
        ("export", "export a data key, encrypted with DEAI_EXPORT_PASSWORD or a prompt"),
        ("import", "import an exported key"))}
    for action in actions.values():
        action.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")
    actions["export"].add_argument("manifest_hash", metavar="NAME",
                                   help="entry name: a manifest hash (data keys) or a public key (purchase keys)")
    actions["export"].add_argument("--kind", default=DATA_KEY, help="entry kind (default data-key; see keys list)")
    actions["export"].add_argument("--out", required=True)
    actions["import"].add_argument("file")
    p.set_defaults(func=cmd_keys)

    p = command("demo", "the whole lifecycle: publish generated images sealed, sell them, buy, deliver the key, "
                        "index the market, train a tiny model on the stream")
    p.add_argument("--dir", help="work in this folder and keep it (default: a temporary folder)")
    p.add_argument("--records", type=int, default=2000, help="images to generate (default 2000)")
    p.add_argument("--steps", type=int, default=40, help="training steps of 64 images (default 40)")
    p.add_argument("--store", help="store URI (ar://?gateway=...&wallet=..., ipfs://?api=..., a folder) "
                                   "instead of a local store in the work folder")
    p.add_argument("--rpc", help="JSON-RPC URL of a development node (anvil; its published dev accounts "
                                 "play owner and buyers) instead of the in-process chain")
    p.set_defaults(func=cmd_demo)

    add_market_commands(command)
    add_catalog_commands(command)
    add_estimate_command(command)
    add_arweave_commands(command)
    add_filecoin_commands(command)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_command(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
