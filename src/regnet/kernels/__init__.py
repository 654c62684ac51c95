"""Native kernels, compiled on first use with the system C++ compiler and loaded with ctypes.

They use no torch headers, so a build takes a second or two (not the minute a torch C++
extension takes) and needs nothing but `g++`/`c++` (or `$CXX`). The shared object is cached
under `$REGNET_KERNEL_CACHE` (default ~/.cache/regnet/kernels), keyed by the source, the
compiler, its flags and this CPU's instruction-set flags (the build uses -march=native, so a
home folder shared by different nodes of a cluster keeps one build per kind of CPU). Where no
compiler is found or the build fails, `load` says why once and returns None, and the callers
run their eager PyTorch form instead. `REGNET_NATIVE=0` turns every native kernel off.
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

from regnet.log import warn_once

__all__ = ["cache_dir", "enabled", "load", "build_error"]

FLAGS = ("-O3", "-std=c++17", "-fPIC", "-shared", "-pthread", "-fno-math-errno",
         "-fno-trapping-math")  # the last two let the exp/select loops vectorise
_errors: dict[str, str] = {}


def enabled() -> bool:
    return os.environ.get("REGNET_NATIVE", "1").strip().lower() not in ("0", "false", "no", "off")


def cache_dir() -> Path:
    """Where builds are kept: $REGNET_KERNEL_CACHE, else ~/.cache/regnet/kernels, else (a home
    folder that cannot be written) a folder of this user's under the temp folder."""
    root = os.environ.get("REGNET_KERNEL_CACHE")
    if root:
        return Path(root)
    home = Path.home() / ".cache" / "regnet" / "kernels"
    try:
        home.mkdir(parents=True, exist_ok=True)
        if os.access(home, os.W_OK):
            return home
    except OSError:
        pass
    return Path(tempfile.gettempdir()) / f"regnet-kernels-{os.getuid()}"


def _compiler() -> str | None:
    for name in (os.environ.get("CXX"), "g++", "c++", "clang++"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _version(cxx: str) -> str:
    try:
        return subprocess.run([cxx, "--version"], capture_output=True, text=True,
                              timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def build_error(name: str) -> str | None:
    """Why kernel `name` is not available (None: it is, or was never asked for)."""
    return _errors.get(name)


@functools.lru_cache(maxsize=None)
def load(name: str) -> ctypes.CDLL | None:
    """The compiled kernel `name` (source `<name>.cpp` beside this file), or None."""
    if not enabled():
        _errors[name] = "native kernels are off (REGNET_NATIVE=0)"
        return None
    source = Path(__file__).with_name(f"{name}.cpp")
    root = cache_dir()
    cxx = _compiler()
    if cxx is None:
        return _fail(name, "no C++ compiler found (set CXX, or install g++)")
    text = source.read_bytes()
    for arch in (("-march=native",), ()):  # a compiler without -march=native: portable build
        flags = FLAGS + arch
        key = hashlib.sha256(b"\0".join([text, _version(cxx).encode(), " ".join(flags).encode(),
                                         _cpu_flags().encode(), platform.machine().encode()]))
        target = root / f"{name}-{key.hexdigest()[:16]}.so"
        if not target.exists():
            err = _build(cxx, source, flags, target)
            if err is not None:
                if arch:
                    continue
                return _fail(name, err)
        try:
            return ctypes.CDLL(str(target))
        except OSError as e:
            return _fail(name, f"cannot load {target}: {e}")
    return None


def _build(cxx: str, source: Path, flags: tuple[str, ...], target: Path) -> str | None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
    except OSError as e:
        return f"cannot write to the kernel cache {target.parent}: {e} (set REGNET_KERNEL_CACHE)"
    try:
        proc = subprocess.run([cxx, *flags, str(source), "-o", tmp], capture_output=True,
                              text=True, timeout=300)
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            return f"{Path(cxx).name} failed on {source.name}: " + " | ".join(tail)
        os.replace(tmp, target)  # whole file or none: concurrent builders race harmlessly
        return None
    except (OSError, subprocess.SubprocessError) as e:
        return f"{Path(cxx).name} could not run: {e}"
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _fail(name: str, why: str) -> None:
    _errors[name] = why
    warn_once(f"native kernel {name!r} unavailable, using the PyTorch form instead: {why}")
    return None
