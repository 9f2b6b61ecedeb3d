#!/usr/bin/env python
"""Coverage-guided fuzzing of deai-data's parsers with Atheris (libFuzzer): `FUZZ_TARGET=NAME fuzz/run.py
[libFuzzer flags] [CORPUS_DIR ...]` (the target comes from the environment: libFuzzer re-runs this script with
its own arguments when it merges or forks). `make fuzz`, `make fuzz-smoke`: fuzz/README.md.

    FUZZ_TARGET=manifest PATH=.venv/bin:$PATH fuzz/run.py -max_total_time=60 fuzz/corpus/manifest
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent))

with atheris.instrument_imports(include=["deai_data"]):
    import targets


def main() -> None:
    name = os.environ.get("FUZZ_TARGET", "")
    if name not in targets.TARGETS:
        sys.exit(f"usage: FUZZ_TARGET=NAME run.py [libFuzzer flags] [CORPUS ...]; names: {', '.join(targets.TARGETS)}")
    check = targets.TARGETS[name]
    atheris.Setup(sys.argv, lambda data: targets.run_one(check, data))
    atheris.Fuzz()


if __name__ == "__main__":
    main()
