"""File hygiene shared by every floor: temporary names that say who wrote them, removal of the ones a
killed process left behind, and the process's normal file mode for files made with ``mkstemp``.

A temporary file (a checkpoint being written, a download, an extraction folder) is named
``.<target>.<pid>.<random><suffix>`` beside its target. The next run removes those whose writer is
no longer alive on this machine, so a SIGKILL mid-download does not leave gigabytes behind; a file
whose name carries no pid (written by an older srlearn) is removed once it is older than an hour.
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from pathlib import Path

LEGACY_MAX_AGE = 3600.0   # seconds: a temporary file without a pid older than this is an orphan


def temp_prefix(name: str) -> str:
    """The ``prefix=`` for ``tempfile.mkstemp``/``mkdtemp`` of a temporary sibling of ``name``."""
    return f".{name}.{os.getpid()}."


def pid_alive(pid: int) -> bool:
    """True if a process ``pid`` exists on this machine (we may not be allowed to signal it)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def remove_orphans(folder, name: str | None, suffix: str, legacy_max_age: float = LEGACY_MAX_AGE) -> list[Path]:
    """Remove ``folder/.<name>.*<suffix>`` files or folders left by dead writers; return what was removed.

    A name ``.<name>.<pid>.<rest>`` is an orphan when no process ``pid`` is alive (our own pid is alive,
    so a file this process is writing is never touched); any other match is an orphan when it was last
    modified more than ``legacy_max_age`` seconds ago. With ``name=None`` every target in ``folder`` is
    considered, but only temporary names that carry a pid (``.<target>.<pid>[.<8 chars>]<suffix>``).
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    if name is None:
        any_re = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)(?:\.[a-z0-9_]{8})?" + re.escape(suffix) + "$")
    pid_re = re.compile(r"^(\d+)\.")
    for p in folder.iterdir():
        if name is None:
            m = any_re.match(p.name)
            if m is None:
                continue
            pid = int(m.group("pid"))
        else:
            head = f".{name}."
            if not (p.name.startswith(head) and p.name.endswith(suffix)):
                continue
            m = pid_re.match(p.name[len(head):])
            pid = int(m.group(1)) if m is not None else None
        try:
            if pid is not None:
                orphan = not pid_alive(pid)
            else:
                orphan = time.time() - p.lstat().st_mtime > legacy_max_age
            if not orphan:
                continue
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
            removed.append(p)
        except FileNotFoundError:   # removed by someone else meanwhile
            continue
    return removed


def current_umask() -> int:
    """The process's umask (read without changing it where /proc allows, else set and restored)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def normal_mode(path) -> None:
    """Give a file made by ``mkstemp`` (mode 0600) the mode ``open()`` would have given it (0666 & ~umask),
    or a folder made by ``mkdtemp`` (0700) the mode ``mkdir`` would have given it (0777 & ~umask)."""
    try:
        base = 0o777 if os.path.isdir(path) else 0o666
        os.chmod(path, base & ~current_umask())
    except OSError:   # e.g. a file system without modes: keep what mkstemp gave
        pass


def atomic_write(path, data, *, fsync: bool = False, suffix: str = ".tmp") -> Path:
    """Write ``data`` to ``path`` so that ``path`` is either the old file or the whole new one, never a part.

    ``data`` is ``str`` (written as UTF-8), ``bytes``, or a function ``write(fileobj)`` that writes into a
    binary file object (``torch.save``, ``PIL.Image.save``). The bytes go to a temporary sibling
    (``.<name>.<pid>.*<suffix>``, removed on failure; one left by a killed process is removed by the next
    write to the same name), which gets the process's normal file mode and then replaces ``path``
    (``os.replace``: atomic on POSIX and Windows within one file system). ``fsync=True`` also flushes the
    file and its folder to disk (checkpoints). The package's one way to write a file it makes.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_orphans(path.parent, path.name, suffix)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=temp_prefix(path.name), suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            if isinstance(data, str):
                f.write(data.encode("utf-8"))
            elif isinstance(data, (bytes, bytearray, memoryview)):
                f.write(data)
            elif callable(data):
                data(f)
            else:
                raise TypeError(f"atomic_write writes str, bytes or a function of a file object, got {type(data).__name__}")
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        normal_mode(tmp)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    if fsync:
        try:
            dfd = os.open(path.parent, os.O_RDONLY)
        except OSError:
            return path
        try:
            os.fsync(dfd)
        except OSError:
            pass
        finally:
            os.close(dfd)
    return path
