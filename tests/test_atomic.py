"""atomic_write: readable permissions, and a failed write leaves the old file and no debris."""

import os
import stat

import pytest

from ssd_edu.atomic import atomic_write


def test_writes_content_with_ordinary_permissions(tmp_path):
    path = atomic_write(tmp_path / "sub" / "a.txt", lambda f: f.write("hello"), binary=False)
    assert path.read_text() == "hello"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "a.bin"
    atomic_write(path, lambda f: f.write(b"old"))

    def broken(f):
        f.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(path, broken)
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin"]
