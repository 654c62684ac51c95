"""Atomic file writes: a reader, or a run killed half-way, sees the old file or the new one,
never a part of one. Every file the package writes that something later reads goes through
here (checkpoints, configs, metrics, study records, benchmark results).

A temporary file is named `.NAME.tmp-HOST-PID-XXXX` beside its target: a failed write removes
its own, and `sweep_stale` removes those whose process on this host is gone (a run killed with
-9 during a save), so no half-written file outlives the next start. Files get the permissions
the umask gives (mkstemp alone would make every output 0600).
"""
from __future__ import annotations

import errno
import os
import socket
import tempfile
import threading
from typing import BinaryIO, Callable

__all__ = ["WriteError", "atomic_write", "atomic_write_text", "sweep_stale"]

_HOST = socket.gethostname().replace("-", "_")[:32] or "host"
_umask_lock = threading.Lock()


class WriteError(OSError):
    """A write failed (disk full, permissions); `str(err)` names the file and what to do."""

    def __str__(self) -> str:
        return self.args[0] if self.args else super().__str__()


def _umask() -> int:
    with _umask_lock:  # os.umask only reads by writing; restore at once
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def _explain(path: str, err: BaseException) -> str:
    code = getattr(err, "errno", None)
    text = " ".join(str(err).split())
    if code in (errno.ENOSPC, errno.EDQUOT) or "No space left" in text:
        return (f"cannot write {path}: no space left on the device of {os.path.dirname(path)}; "
                f"free space or write elsewhere (the previous file, if any, is unchanged)")
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot write {path}: permission denied; choose a writable folder"
    return f"cannot write {path}: {text[:200]}"


def atomic_write(path: str, write: Callable[[BinaryIO], object]) -> None:
    """Call `write(fileobj)` on a temporary file beside `path`, fsync it, then rename it into
    place. On any failure the temporary file is removed and the target is left as it was; an
    OS-level failure (ENOSPC, EACCES, ...) is raised as `WriteError` naming `path`."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.tmp-{_HOST}-{os.getpid()}-",
                                   dir=folder)
    except OSError as err:
        raise WriteError(_explain(path, err)) from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException as err:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(err, OSError) and not isinstance(err, WriteError):
            raise WriteError(_explain(path, err)) from None
        raise


def atomic_write_text(path: str, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode()))


def sweep_stale(folder: str) -> list[str]:
    """Remove temporary files of atomic writes in `folder` left by processes of this host that
    no longer run; returns their paths. Files of live processes (another lane writing into a
    shared cache) and of other hosts (a shared filesystem) are left alone."""
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        if not name.startswith(".") or ".tmp-" not in name:
            continue
        parts = name.rsplit(".tmp-", 1)[1].split("-")
        if len(parts) < 3 or parts[0] != _HOST or not parts[1].isdigit():
            continue
        pid = int(parts[1])
        if pid == os.getpid() or _alive(pid):  # our own write in flight, or a live writer's
            continue
        try:
            os.unlink(os.path.join(folder, name))
            removed.append(os.path.join(folder, name))
        except OSError:
            pass
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
