#!/usr/bin/env python3
"""Rewrite the lock files with the sha256 of every pinned distribution, split into runtime and development sets.

Run after changing a pin (`python requirements/relock.py`, with the project's pip): the pins are kept as they are
in runtime.lock and dev.lock (edit them there); the runtime set is what `deai-data` with every extra and the
indexer resolve to under those pins; everything else pinned is development-only. `make setup` installs with
`--require-hashes` in effect, so a changed or substituted file on the index is refused.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RUNTIME, DEV = HERE / "runtime.lock", HERE / "dev.lock"
EXTRAS = ".[torch,catalog,embedded-chain,pandas,images,charts]"
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s\\;]+)")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins() -> dict[str, str]:
    found: dict[str, str] = {}
    for lock in (RUNTIME, DEV):
        for line in lock.read_text().splitlines() if lock.exists() else []:
            match = PIN.match(line.strip())
            if match:
                found[match.group(1)] = match.group(2)
    return found


def pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args], check=True, cwd=ROOT)


def main() -> None:
    pinned = pins()
    with tempfile.TemporaryDirectory() as scratch:
        constraints = Path(scratch, "constraints.txt")
        constraints.write_text("".join(f"{name}=={version}\n" for name, version in pinned.items()))
        report = Path(scratch, "report.json")
        pip("install", "--dry-run", "--ignore-installed", "--report", str(report), "-c", str(constraints),
            EXTRAS, "./indexer")
        runtime = {canonical(item["metadata"]["name"]) for item in json.loads(report.read_text())["install"]}
        files = Path(scratch, "files")
        pip("download", "--no-deps", "-d", str(files), "-r", str(constraints))
        digests = {name: [hashlib.sha256(path.read_bytes()).hexdigest() for path in files.iterdir()
                          if canonical(path.name).startswith(canonical(f"{name}-{version}-"))]
                   for name, version in pinned.items()}
        missing = [name for name, found in digests.items() if len(found) != 1]
        if missing:
            sys.exit(f"relock: expected one downloaded file for each of {missing}")

    def entry(name: str) -> str:
        hashes = " ".join(f"--hash=sha256:{h}" for h in sorted(digests[name]))
        return f"{name}=={pinned[name]} {hashes}\n"

    order = sorted(pinned, key=canonical)
    RUNTIME.write_text("# What deai-data (every extra) and deai-indexer need; regenerate with requirements/relock.py.\n"
                       + "".join(entry(n) for n in order if canonical(n) in runtime))
    DEV.write_text("# Tests, linters, type checker and fuzzer on top of the runtime set; requirements/relock.py.\n"
                   "-r runtime.lock\n" + "".join(entry(n) for n in order if canonical(n) not in runtime))


if __name__ == "__main__":
    main()
