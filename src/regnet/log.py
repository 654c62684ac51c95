"""The package's messages go through the standard `logging` module, under the `regnet` logger.

`setup_logging` (called by the command line, and by `train` when nobody configured logging)
prints INFO on stdout as plain lines and warnings on stderr as `warning: ...`; under torchrun
only rank 0 prints INFO (other ranks print their warnings, prefixed with the rank).
`log_to_file` adds a run's `train.log` (timestamped) for as long as the run lasts.
Library users who configure `logging` themselves keep their own handlers: nothing here runs
unless asked, except that `train` attaches a console handler when the `regnet` logger and the
root logger both have none (so a notebook still sees its epochs).
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys

__all__ = ["get_logger", "setup_logging", "log_to_file", "warn_once"]

ROOT = "regnet"
_OURS = "_regnet_handler"   # marks the handlers this module added (so setup is idempotent)
_warned: set[str] = set()


def get_logger(name: str | None = None) -> logging.Logger:
    return logging.getLogger(ROOT if not name else f"{ROOT}.{name}")


def _rank() -> int:
    return int(os.environ.get("RANK", "0"))


class _Console(logging.Filter):
    """INFO and below to stdout as they are; warnings and errors to stderr, labelled."""

    def __init__(self, stream_is_err: bool, rank: int):
        super().__init__()
        self.err, self.rank = stream_is_err, rank

    def filter(self, record: logging.LogRecord) -> bool:
        if (record.levelno >= logging.WARNING) != self.err:
            return False
        if record.levelno < logging.WARNING and self.rank != 0:
            return False  # one copy of every progress line, from rank 0
        return True


class _ConsoleFormatter(logging.Formatter):
    def __init__(self, rank: int):
        super().__init__("%(message)s")
        self.rank = rank

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if record.levelno >= logging.WARNING:
            text = f"{record.levelname.lower()}: {text}"
        return f"[rank {self.rank}] {text}" if self.rank else text


def setup_logging(level: int = logging.INFO, rank: int | None = None) -> logging.Logger:
    """Console handlers on the `regnet` logger (replacing ones set up before)."""
    rank = _rank() if rank is None else rank
    logger = get_logger()
    for h in [h for h in logger.handlers if getattr(h, _OURS, "") == "console"]:
        logger.removeHandler(h)
    for stream, is_err in ((sys.stdout, False), (sys.stderr, True)):
        h = _StreamHandler(stream)
        h.addFilter(_Console(is_err, rank))
        h.setFormatter(_ConsoleFormatter(rank))
        setattr(h, _OURS, "console")
        logger.addHandler(h)
    logger.setLevel(level)
    logger.propagate = False
    return logger


class _StreamHandler(logging.StreamHandler):
    """Looks `sys.stdout` / `sys.stderr` up at each message, so redirected streams (pytest's
    capture, a caller's contextlib.redirect_stdout) receive what is logged."""

    def __init__(self, stream):
        super().__init__(stream)
        self._name = "stdout" if stream is sys.stdout else "stderr"

    @property
    def stream(self):
        return getattr(sys, self._name)

    @stream.setter
    def stream(self, value):
        pass


def ensure_console() -> None:
    """Console output for callers of the Python API who configured no logging."""
    logger = get_logger()
    if not logger.handlers and not logging.getLogger().handlers:
        setup_logging()


class _RunLog(logging.Handler):
    """Appends records to a run's log file once its folder exists; until then they are held
    (a run that fails before writing anything leaves no folder behind)."""

    def __init__(self, path: str):
        super().__init__(logging.INFO)
        self.path, self.file, self.held = path, None, []
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s",
                                            "%Y-%m-%d %H:%M:%S"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if self.file is None:
                if not os.path.isdir(os.path.dirname(os.path.abspath(self.path))):
                    self.held.append(record)
                    return
                self.file = open(self.path, "a", encoding="utf-8")
                for old in self.held:
                    self.file.write(self.format(old) + "\n")
                self.held = []
            self.file.write(self.format(record) + "\n")
            self.file.flush()
        except Exception:  # a log line must never stop training (e.g. a full disk)
            self.handleError(record)

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
        super().close()


@contextlib.contextmanager
def log_to_file(path: str | None):
    """Append the `regnet` logger's records to `path` (timestamped) while the block runs, on
    rank 0 only, from the moment its folder exists. `path=None` does nothing."""
    if path is None or _rank() != 0:
        yield
        return
    handler = _RunLog(path)
    setattr(handler, _OURS, "file")
    logger = get_logger()
    logger.addHandler(handler)
    if logger.level == logging.NOTSET or logger.level > logging.INFO:
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        handler.close()


def warn_once(message: str, logger: logging.Logger | None = None) -> None:
    """A warning said once per process, however often its cause recurs."""
    if message not in _warned:
        _warned.add(message)
        (logger or get_logger()).warning(message)
