"""`file://` store: a content-addressed directory (object name = SHA-256 of its bytes).

Writes are atomic (a staged file in `tmp/` + rename), so concurrent writers of the same object are safe
and a crash never leaves a partial object under its final name; a writer sweeps the staged files of dead ones.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import hashlib
import io
import os
import stat
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote
from urllib.request import url2pathname

from ..errors import NotFoundError, StorageError
from .base import Buffer, ObjectStat, check_range, content_path, parse_uri
from .staging import staged_name, sweep

_COPY_CHUNK = 8 << 20
_O_DIRECT = getattr(os, "O_DIRECT", 0)
_DIRECT_ALIGN = 4096
_DIRECT_MIN = 1 << 20


def _write_all(fd: int, view: memoryview) -> None:
    while view:
        view = view[os.write(fd, view):]


def _write_direct(fd: int, view: memoryview) -> int:
    """Write the page-aligned prefix of `view` with O_DIRECT (no page-cache copy: far less CPU, and
    the data is on its way to the disk at once); returns the bytes written, 0 where not possible
    (small, read-only or unaligned buffers, filesystems without O_DIRECT). The caller writes the rest."""
    size = len(view) & ~(_DIRECT_ALIGN - 1)
    if not _O_DIRECT or size < _DIRECT_MIN or view.readonly:
        return 0
    if ctypes.addressof(ctypes.c_char.from_buffer(view)) % _DIRECT_ALIGN:
        return 0
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    try:
        fcntl.fcntl(fd, fcntl.F_SETFL, flags | _O_DIRECT)
    except OSError:
        return 0
    try:
        _write_all(fd, view[:size])
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
        os.lseek(fd, 0, os.SEEK_SET)  # the filesystem refused direct I/O: start over, buffered
        size = 0
    finally:
        fcntl.fcntl(fd, fcntl.F_SETFL, flags)
    return size


@contextmanager
def _reading(locator: str) -> Iterator[io.FileIO]:
    """Open an object for reading; missing objects, anything but a regular file (a device such as /dev/zero, a
    pipe) and I/O failures become the store's errors."""
    try:
        with open(path_from_locator(locator), "rb", buffering=0) as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                raise StorageError("not a regular file", locator=locator,
                                   hint="a store's objects are regular files; a device or a pipe is refused")
            yield fh
    except FileNotFoundError:
        raise NotFoundError(locator) from None
    except IsADirectoryError:
        raise NotFoundError(locator, hint="the locator names a directory, not an object") from None
    except OSError as exc:
        raise StorageError(f"cannot read: {exc}", locator=locator) from exc


def path_from_locator(locator: str) -> Path:
    """The filesystem path of a `file://` locator (or a plain path)."""
    if "://" not in locator:
        return Path(locator)
    parsed = parse_uri(locator)
    if parsed.scheme != "file" or parsed.netloc not in ("", "localhost"):
        raise StorageError("not a local file URI", locator=locator)
    return Path(url2pathname(unquote(parsed.path)))


def locator_from_path(path: str | Path) -> str:
    return Path(path).absolute().as_uri()


class LocalStore:
    """Content-addressed directory store. `LocalStore()` without a root can only read."""

    schemes: tuple[str, ...] = ("file",)

    def __init__(self, root: str | Path | None = None, *, fsync: bool = True) -> None:
        self.root = None if root is None else path_from_locator(str(root)).absolute()
        self.fsync = fsync
        self._swept = False

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    @property
    def uri(self) -> str:
        return locator_from_path(self._require_root())

    def _require_root(self) -> Path:
        if self.root is None:
            raise StorageError("this LocalStore has no root directory and can only read",
                               hint="create it as LocalStore('/path/to/store') to write")
        return self.root

    def object_path(self, sha256: str) -> Path:
        return self._require_root() / content_path(sha256)

    def _commit(self, tmp: Path, sha256: str) -> str:
        final = self.object_path(sha256)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, final)
        return locator_from_path(final)

    def _tempfile(self) -> tuple[int, Path]:
        tmpdir = self._require_root() / "tmp"
        tmpdir.mkdir(parents=True, exist_ok=True)
        if not self._swept:  # what writers killed mid-put left behind (never a live writer's file)
            sweep(tmpdir, recursive=False)
            self._swept = True
        path = tmpdir / staged_name("put")
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644), path

    def put(self, data: Buffer, *, sha256: str | None = None, labels: Mapping[str, str] | None = None) -> str:
        view = memoryview(data).cast("B")
        digest = sha256 or hashlib.sha256(view).hexdigest()
        final = self.object_path(digest)
        if final.is_file() and final.stat().st_size == len(view):
            return locator_from_path(final)
        fd, tmp = self._tempfile()
        try:
            try:
                written = _write_direct(fd, view) if self.fsync else 0
                _write_all(fd, view[written:])
                if self.fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            return self._commit(tmp, digest)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise StorageError(f"cannot write object: {exc}", locator=locator_from_path(final)) from exc
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def put_file(self, path: str | Path, *, sha256: str | None = None,
                 labels: Mapping[str, str] | None = None) -> str:
        fd, tmp = self._tempfile()
        hasher = hashlib.sha256()
        try:
            with open(path, "rb") as src, os.fdopen(fd, "wb") as dst:
                while chunk := src.read(_COPY_CHUNK):
                    hasher.update(chunk)
                    dst.write(chunk)
                if self.fsync:
                    dst.flush()
                    os.fsync(dst.fileno())
            if sha256 and sha256 != hasher.hexdigest():
                raise StorageError(f"{path} changed while it was copied (hash differs)", hint="retry the upload")
            return self._commit(tmp, hasher.hexdigest())
        except OSError as exc:
            raise StorageError(f"cannot store {path}: {exc}") from exc
        finally:
            tmp.unlink(missing_ok=True)

    def get(self, locator: str, start: int = 0, end: int | None = None) -> bytes:
        """Bytes [start, end) of the object; never allocates more than the file holds."""
        check_range(start, end)
        with _reading(locator) as fh:
            size = os.fstat(fh.fileno()).st_size
            stop = size if end is None else min(end, size)
            if start:
                fh.seek(start)
            return fh.read(max(0, stop - start))

    def read_into(self, locator: str, buf: memoryview) -> int:
        """Read the object's first len(buf) bytes into `buf` (memory the caller reuses); returns
        how many bytes were read (fewer when the object is shorter)."""
        with _reading(locator) as fh:
            total = 0
            while total < len(buf) and (n := fh.readinto(buf[total:])):
                total += n
            return total

    def exists(self, locator: str) -> bool:
        return path_from_locator(locator).is_file()

    def stat(self, locator: str) -> ObjectStat:
        try:
            return ObjectStat(locator, path_from_locator(locator).stat().st_size)
        except FileNotFoundError:
            raise NotFoundError(locator) from None
