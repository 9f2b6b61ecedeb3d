"""LocalStore: content addressing, ranges, atomic writes, direct I/O for large aligned buffers."""

from __future__ import annotations

import hashlib
import os
import threading

import pytest

from deai_data import LocalStore, NotFoundError
from deai_data.buffers import page_aligned
from deai_data.storage import content_path


@pytest.mark.parametrize("size", [0, 1, 4095, 1 << 20, (3 << 20) + 123, 4 << 20])
@pytest.mark.parametrize("kind", ["aligned", "bytearray", "bytes"])
def test_put_get_every_size_and_buffer_kind(tmp_path, size, kind):
    payload = os.urandom(size)
    if kind == "aligned":
        buf = page_aligned(size + 4096)
        buf[:size] = payload
        data = memoryview(buf)[:size]
    else:
        data = bytearray(payload) if kind == "bytearray" else payload
    store = LocalStore(tmp_path / "s")
    locator = store.put(data)
    digest = hashlib.sha256(payload).hexdigest()
    assert locator == (tmp_path / "s" / content_path(digest)).as_uri()
    assert store.get(locator) == payload
    assert store.stat(locator).size == size and store.exists(locator)
    assert store.get(locator, 5, 17) == payload[5:17]
    assert not list((tmp_path / "s" / "tmp").iterdir()), "no temporary file is left behind"


def test_unbuffered_store_and_put_file(tmp_path):
    store = LocalStore(tmp_path / "s", fsync=False)
    src = tmp_path / "f.bin"
    src.write_bytes(b"x" * 10_000)
    locator = store.put_file(src)
    assert store.get(locator) == b"x" * 10_000
    assert store.put(b"x" * 10_000) == locator


def test_concurrent_writers_of_the_same_object(tmp_path):
    payload = os.urandom(2 << 20)
    store = LocalStore(tmp_path / "s")
    results = []
    threads = [threading.Thread(target=lambda: results.append(store.put(payload))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1 and store.get(results[0]) == payload


def test_missing_and_readonly(tmp_path):
    store = LocalStore()
    with pytest.raises(NotFoundError):
        store.get((tmp_path / "nothing").as_uri())
    with pytest.raises(Exception, match="can only read"):
        store.put(b"x")


def test_direct_io_writes_the_aligned_prefix(tmp_path):
    from deai_data.storage.local import _write_direct

    buf = page_aligned(4 << 20)
    buf[:] = os.urandom(4 << 20)
    fd = os.open(tmp_path / "probe", os.O_WRONLY | os.O_CREAT)
    try:
        written = _write_direct(fd, memoryview(buf)[: (3 << 20) + 5])
        if written == 0:
            pytest.skip("this filesystem refuses O_DIRECT (the buffered path is then used)")
        assert written == 3 << 20
        assert _write_direct(fd, memoryview(bytes(buf))) == 0  # read-only: buffered
        assert _write_direct(fd, memoryview(buf)[1:]) == 0  # unaligned: buffered
        assert _write_direct(fd, memoryview(buf)[:4096]) == 0  # small: buffered
    finally:
        os.close(fd)
