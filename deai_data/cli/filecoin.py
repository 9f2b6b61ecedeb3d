"""`deai-data piece FILE`: the Filecoin piece of a file (PieceCID v2 and v1, sizes) and its raw CID."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from ..errors import SourceError
from ..storage.base import sha256_file


def cmd_piece(args: argparse.Namespace) -> int:
    from ..storage.filecoin import piece_of_file
    from ..storage.ipfs.cid import CID, RAW, SHA2_256

    path = Path(args.file)
    if not path.is_file():
        raise SourceError(f"{path}: no such file", hint="pass the path of the file to commit to")
    try:
        piece = piece_of_file(path, workers=args.workers)
    except ValueError as exc:
        print(f"error: {path}: {exc}", file=sys.stderr)
        return 2
    digest = sha256_file(path)
    print(json.dumps({"piece_cid": str(piece.cid), "piece_cid_v1": str(piece.cid_v1),
                      "padded_size": piece.padded_size, "payload_size": piece.payload_size,
                      "cid": str(CID(1, RAW, SHA2_256, digest.digest()))}))
    return 0


def add_filecoin_commands(command: Callable[[str, str], argparse.ArgumentParser]) -> None:
    p = command("piece", "print a file's Filecoin piece as JSON: PieceCID v2 and v1, padded and payload size, "
                         "and its CIDv1 (raw)")
    p.add_argument("file")
    p.add_argument("--workers", type=int, help="hashing processes (default: one per CPU)")
    p.set_defaults(func=cmd_piece)
