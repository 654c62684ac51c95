"""CIFAR-10 / CIFAR-100, the official python releases (pickled batches).

If the extracted folder is absent the official archive is downloaded (or taken from DIR when
already there), its MD5 checked, and it is extracted into a temporary folder that is renamed
into place only when complete, so an interrupted run never leaves half a dataset behind.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass

import numpy as np
import torch

from regnet.log import get_logger

from .arrays import ArrayDataset
from .errors import DatasetError


@dataclass(frozen=True)
class CifarSource:
    url: str
    archive: str
    md5: str
    folder: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    label_key: str
    meta_file: str
    names_key: str


# Module-level so tests can point a source at a tiny local archive (file:// URL and its MD5).
SOURCES = {
    "cifar10": CifarSource(
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "cifar-10-python.tar.gz",
        "c58f30108f718f92721af3b95e74349a", "cifar-10-batches-py",
        tuple(f"data_batch_{i}" for i in range(1, 6)), ("test_batch",), "labels",
        "batches.meta", "label_names"),
    "cifar100": CifarSource(
        "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz", "cifar-100-python.tar.gz",
        "eb9058c3a382ffc7106e4002c42a8d85", "cifar-100-python", ("train",), ("test",),
        "fine_labels", "meta", "fine_label_names"),
}


def md5sum(path: str, chunk: int = 1 << 20) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(src: CifarSource, data_dir: str) -> str:
    """The verified archive in `data_dir`, downloading it first if it is not there."""
    path = os.path.join(data_dir, src.archive)
    if not os.path.exists(path):
        fd, tmp = tempfile.mkstemp(prefix=".download-", dir=data_dir)
        os.close(fd)
        try:
            get_logger("data").info(f"downloading {src.url} -> {path}")
            with urllib.request.urlopen(src.url) as resp, open(tmp, "wb") as out:
                shutil.copyfileobj(resp, out)
        except OSError as err:
            os.unlink(tmp)
            raise DatasetError(f"cannot download {src.url}: {err}; download it by hand into "
                               f"{data_dir}") from None
        got = md5sum(tmp)
        if got != src.md5:
            os.unlink(tmp)
            raise DatasetError(f"MD5 mismatch for the download of {src.url}: expected {src.md5}, "
                               f"got {got}; nothing was kept, try again")
        os.replace(tmp, path)
        return path
    got = md5sum(path)
    if got != src.md5:
        raise DatasetError(f"MD5 mismatch for {path}: expected {src.md5}, got {got}; the file is "
                           f"corrupt or truncated: delete it and run again to download it afresh")
    return path


def _extract(archive: str, src: CifarSource, data_dir: str) -> None:
    tmp = tempfile.mkdtemp(prefix=".extract-", dir=data_dir)
    try:
        with tarfile.open(archive) as tar:
            # 'data' refuses absolute paths, links out of the folder and device files.
            tar.extractall(tmp, filter="data")
        inner = os.path.join(tmp, src.folder)
        if not os.path.isdir(inner):
            raise DatasetError(f"{archive} holds no {src.folder}/ folder; delete it and run again")
        os.replace(inner, os.path.join(data_dir, src.folder))
    except (tarfile.TarError, EOFError, OSError) as err:
        raise DatasetError(f"cannot extract {archive}: {err}; delete it and run again") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def ensure_cifar(name: str, data_dir: str, download: bool = True) -> str:
    """The path of the extracted release folder, fetching and extracting it when absent."""
    src = SOURCES[name]
    folder = os.path.join(data_dir, src.folder)
    if os.path.isdir(folder):
        return folder
    # Also accept DATA_DIR pointing at the release folder itself.
    if os.path.basename(os.path.normpath(data_dir)) == src.folder and os.path.isdir(data_dir):
        return data_dir
    if not download:
        raise DatasetError(f"{folder} not found (download is off)")
    os.makedirs(data_dir, exist_ok=True)
    _extract(_download(src, data_dir), src, data_dir)
    return folder


def _read_pickle(path: str, fix: str) -> dict:
    if not os.path.exists(path):
        raise DatasetError(f"missing CIFAR file {path}; {fix}")
    try:
        with open(path, "rb") as f:
            return pickle.load(f, encoding="latin1")
    except Exception as err:  # truncated/corrupt pickles raise many types
        raise DatasetError(f"corrupt CIFAR file {path} ({type(err).__name__}: {err}); {fix}") from None


def _read_batches(folder: str, files: tuple[str, ...], label_key: str, classes: tuple[str, ...]
                  ) -> ArrayDataset:
    fix = f"delete {folder} and run again to re-download and re-extract it"
    images, labels = [], []
    for name in files:
        path = os.path.join(folder, name)
        batch = _read_pickle(path, fix)
        try:
            data = np.asarray(batch["data"], dtype=np.uint8)
            y = np.asarray(batch[label_key], dtype=np.int64)
            data = data.reshape(len(y), 3, 32, 32)
        except (KeyError, TypeError, ValueError) as err:
            raise DatasetError(f"corrupt CIFAR file {path} (bad 'data'/{label_key!r}: {err}); "
                               f"{fix}") from None
        if len(y) and (y.min() < 0 or y.max() >= len(classes)):
            raise DatasetError(f"corrupt CIFAR file {path}: labels outside 0..{len(classes) - 1}; "
                               f"{fix}")
        images.append(data)
        labels.append(y)
    x = torch.from_numpy(np.concatenate(images)).permute(0, 2, 3, 1).contiguous()
    return ArrayDataset(x, torch.from_numpy(np.concatenate(labels)), classes)


def load_cifar(name: str, data_dir: str, download: bool = True
               ) -> tuple[ArrayDataset, ArrayDataset]:
    """(train, test) of CIFAR-10 or CIFAR-100 as uint8 N x 32 x 32 x 3."""
    src = SOURCES[name]
    folder = ensure_cifar(name, data_dir, download)
    meta = _read_pickle(os.path.join(folder, src.meta_file),
                        f"delete {folder} and run again to re-download it")
    try:
        classes = tuple(str(c) for c in meta[src.names_key])
    except (KeyError, TypeError):
        raise DatasetError(f"corrupt CIFAR file {os.path.join(folder, src.meta_file)}: no "
                           f"{src.names_key!r}; delete {folder} and run again") from None
    return (_read_batches(folder, src.train_files, src.label_key, classes),
            _read_batches(folder, src.test_files, src.label_key, classes))
