"""Atomic file writes: a reader sees the old file or the new one, never half of either.

Checkpoints, figures, executed notebooks and student notebooks are all written the same way: into
a temporary file in the target's folder (so the final rename never crosses file systems), flushed
to disk, given ordinary permissions, then renamed over the target with ``os.replace``. Any failure,
Ctrl-C included, removes the temporary file and leaves the old target untouched.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def atomic_write(
    path: str | os.PathLike,
    write: Callable[[IO[Any]], object],
    binary: bool = True,
    mode: int = 0o644,
) -> Path:
    """Call ``write(f)`` on a temporary file, then move it to ``path`` in one step.

    Args:
        path: the file to (re)write; its folder is created if missing.
        write: writes the whole content to the open file it is given.
        binary: open the temporary file in binary (``"wb"``) or text (``"w"``, UTF-8) mode.
        mode: permissions of the new file (``mkstemp`` would otherwise leave it at 0600).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        opened = os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8")
        with opened as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())  # the bytes are on disk before the name points at them
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path
