"""Running one parsed command: typed errors become their exit codes and a one-line message on stderr."""

from __future__ import annotations

import argparse
import sys

from ..errors import DeaiError


def run_command(args: argparse.Namespace) -> int:
    """Call `args.func(args)`; a DeaiError exits with its code, Ctrl-C with 130."""
    try:
        return args.func(args)
    except DeaiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
