"""Atomic file writes: a reader, or a run killed half-way, sees the old file or the new one,
never a part of one. Every file the package writes that something later reads goes through
here (checkpoints, configs, metrics, study records, benchmark results)."""
from __future__ import annotations

import os
import tempfile
from typing import BinaryIO, Callable

__all__ = ["atomic_write", "atomic_write_text"]


def atomic_write(path: str, write: Callable[[BinaryIO], object]) -> None:
    """Call `write(fileobj)` on a temporary file beside `path`, fsync it, then rename it into
    place; the temporary file is removed if anything fails."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode()))
