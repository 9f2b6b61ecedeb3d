"""Running one parsed command: typed errors become their exit codes and a one-line message on stderr."""

from __future__ import annotations

import argparse
import os
import sys
import traceback

from ..errors import DeaiError, LimitError

INTERNAL_ERROR = 70  # EX_SOFTWARE: a bug, not bad input


def run_command(args: argparse.Namespace) -> int:
    """Call `args.func(args)`; a DeaiError exits with its code, running out of memory as a limit (15), Ctrl-C
    with 130, anything else (a bug) with 70 and a one-line message (DEAI_DEBUG=1 prints the traceback)."""
    try:
        return args.func(args)
    except DeaiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except MemoryError:
        print("error: out of memory (an input larger than this machine can hold)", file=sys.stderr)
        return LimitError.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if os.environ.get("DEAI_DEBUG"):
            traceback.print_exc()
        print(f"internal error: {type(exc).__name__}: {str(exc)[:300]} (a bug in deai-data; DEAI_DEBUG=1 shows the "
              "traceback)", file=sys.stderr)
        return INTERNAL_ERROR
