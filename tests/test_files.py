"""srlearn._files.atomic_write: the package's one way to write a file it makes."""
import os

import pytest

from srlearn._files import atomic_write


def test_atomic_write_text_bytes_and_writer(tmp_path):
    p = tmp_path / "sub" / "a.json"
    atomic_write(p, "héllo")
    assert p.read_text(encoding="utf-8") == "héllo"
    atomic_write(p, b"\x00\x01")
    assert p.read_bytes() == b"\x00\x01"
    atomic_write(p, lambda f: f.write(b"xyz"), fsync=True)
    assert p.read_bytes() == b"xyz"
    assert oct(p.stat().st_mode & 0o777) == oct(0o666 & ~_umask())      # not mkstemp's 0600
    assert sorted(x.name for x in p.parent.iterdir()) == ["a.json"]      # no temporary file left


def test_a_failed_write_keeps_the_old_file_and_leaves_nothing(tmp_path):
    p = tmp_path / "report.md"
    atomic_write(p, "old")

    def broken(f):
        f.write(b"half of the new")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(p, broken)
    assert p.read_text() == "old" and sorted(x.name for x in tmp_path.iterdir()) == ["report.md"]
    with pytest.raises(TypeError, match="str, bytes or a function"):
        atomic_write(p, 42)
    assert p.read_text() == "old"


def _umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m
