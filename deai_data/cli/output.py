"""A command's result on stdout: its document as JSON with `--json`, else the lines written for people."""

from __future__ import annotations

import argparse
import json
from typing import Any


def emit(args: argparse.Namespace, doc: dict[str, Any], lines: list[str]) -> None:
    print(json.dumps(doc, indent=2, sort_keys=True, default=str) if args.json else "\n".join(lines))
