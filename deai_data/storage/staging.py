"""Staged writes: temporary files named after their writer (host and pid), renamed into place when complete,
and the sweep that removes those whose writer died (never a live writer's).

`.<name>.<host>.<pid>.<random>.tmp`: a writer on this host is judged by whether its pid is alive; a file
written on another host (a shared disk) only once it is older than `foreign_age`.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
import time
from collections.abc import Iterator
from functools import cache
from pathlib import Path

_STAGED = re.compile(r"^\.(?P<name>.+)\.(?P<host>[A-Za-z0-9-]+)\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp$")
FOREIGN_AGE = 24 * 3600.0


@cache
def _host() -> str:
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:63] or "host"


def staged_name(name: str, *, pid: int | None = None, host: str | None = None) -> str:
    """The temporary name under which this process (or `pid` on `host`) writes `name` before renaming it."""
    return f".{name}.{host or _host()}.{os.getpid() if pid is None else pid}.{secrets.token_hex(4)}.tmp"


def staged_path(final: Path) -> Path:
    """A temporary path beside `final` for this process."""
    return final.with_name(staged_name(final.name))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def abandoned(directory: Path, *, recursive: bool = True, foreign_age: float = FOREIGN_AGE) -> Iterator[Path]:
    """Staged files under `directory` whose writer is gone: its pid is dead on this host, or it was written on
    another host more than `foreign_age` seconds ago."""
    if not directory.is_dir():
        return
    candidates = directory.rglob(".*.tmp") if recursive else directory.glob(".*.tmp")
    now = time.time()
    for path in candidates:
        match = _STAGED.match(path.name)
        if match is None:
            continue
        if match["host"] == _host():
            if not _alive(int(match["pid"])):
                yield path
        else:
            try:
                if now - path.stat().st_mtime > foreign_age:
                    yield path
            except FileNotFoundError:
                continue


def sweep(directory: Path, *, recursive: bool = True) -> int:
    """Delete the staged files of dead writers under `directory`; returns how many."""
    removed = 0
    for path in abandoned(directory, recursive=recursive):
        try:
            path.unlink()
            removed += 1
        except FileNotFoundError:
            continue
    return removed
