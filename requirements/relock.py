#!/usr/bin/env python3
"""Rewrite the lock files with the sha256 of every pinned distribution, the project's pins split into runtime
and development sets.

Run after changing a pin (`.venv/bin/python requirements/relock.py`): the pins stay as written in the lock files
(edit them there); the runtime set is what `deai-data` with every extra and the indexer resolve to under those
pins, everything else the project pins is development-only; analysis.lock (slither, in a virtualenv of its own:
it needs web3 7) keeps its own pins. Installing from a lock with hashes refuses a changed or substituted file.
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
RUNTIME, DEV, ANALYSIS = HERE / "runtime.lock", HERE / "dev.lock", HERE / "analysis.lock"
EXTRAS = ".[torch,catalog,embedded-chain,pandas,images,charts,s3,ray,hf,polars]"
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s\\;]+)")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(*locks: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    for lock in locks:
        for line in lock.read_text().splitlines() if lock.exists() else []:
            match = PIN.match(line.strip())
            if match:
                found[match.group(1)] = match.group(2)
    return found


def pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args], check=True, cwd=ROOT)


def hashed(pinned: dict[str, str], scratch: Path) -> dict[str, str]:
    """name -> its lock line (`name==version --hash=sha256:...`), from the file pip downloads for this platform."""
    scratch.mkdir()
    constraints = scratch / "pins.txt"
    constraints.write_text("".join(f"{name}=={version}\n" for name, version in pinned.items()))
    files = scratch / "files"
    pip("download", "--no-deps", "-d", str(files), "-r", str(constraints))
    lines = {}
    for name, version in pinned.items():
        prefix = re.escape(canonical(f"{name}-{version}")) + "[-+]"
        digests = [hashlib.sha256(p.read_bytes()).hexdigest() for p in files.iterdir()
                   if re.match(prefix, canonical(p.name))]
        if len(digests) != 1:
            sys.exit(f"relock: expected one downloaded file for {name}=={version}, found {len(digests)}")
        lines[name] = f"{name}=={version} --hash=sha256:{digests[0]}\n"
    return lines


def runtime_names(pinned: dict[str, str], scratch: Path) -> set[str]:
    constraints, report = scratch / "constraints.txt", scratch / "report.json"
    constraints.write_text("".join(f"{name}=={version}\n" for name, version in pinned.items()))
    pip("install", "--dry-run", "--ignore-installed", "--report", str(report), "-c", str(constraints),
        EXTRAS, "./indexer")
    return {canonical(item["metadata"]["name"]) for item in json.loads(report.read_text())["install"]}


def write(lock: Path, header: str, lines: dict[str, str], names: list[str]) -> None:
    lock.write_text(header + "".join(lines[n] for n in sorted(names, key=canonical)))


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        project = read_pins(RUNTIME, DEV)
        runtime = runtime_names(project, Path(scratch))
        lines = hashed(project, Path(scratch, "project"))
        analysis = read_pins(ANALYSIS)
        analysis_lines = hashed(analysis, Path(scratch, "analysis"))
    write(RUNTIME, "# What deai-data (every extra) and deai-indexer need; regenerate with requirements/relock.py.\n",
          lines, [n for n in project if canonical(n) in runtime])
    write(DEV, "# Tests, linters, type checker and fuzzer, on top of the runtime set; requirements/relock.py.\n"
          "-r runtime.lock\n", lines, [n for n in project if canonical(n) not in runtime])
    write(ANALYSIS, "# slither (`make analyse`), in .venv-analysis: it needs web3 7; requirements/relock.py.\n",
          analysis_lines, list(analysis))


if __name__ == "__main__":
    main()
