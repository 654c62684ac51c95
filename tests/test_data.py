"""Dataset readers (CIFAR pickles built here, image folders, digits), splits, the cache."""
import hashlib
import io
import os
import pickle
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from regnet.data import DatasetError, build_datasets
from regnet.data import cifar as cifar_mod
from regnet.data.arrays import balanced_split
from regnet.data.imagefolder import read_folder


def write_cifar10(root, n_per_batch=6, seed=0):
    """A tiny CIFAR-10 release in the official layout: pickled dicts with 'data' (N x 3072
    uint8, channel-planar) and 'labels', plus batches.meta."""
    rng = np.random.default_rng(seed)
    folder = os.path.join(root, "cifar-10-batches-py")
    os.makedirs(folder)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        batch = {"batch_label": name, "labels": list(rng.integers(0, 10, n_per_batch)),
                 "data": rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8),
                 "filenames": [f"{i}.png" for i in range(n_per_batch)]}
        with open(os.path.join(folder, name), "wb") as f:
            pickle.dump(batch, f)
    with open(os.path.join(folder, "batches.meta"), "wb") as f:
        pickle.dump({"label_names": [f"c{i}" for i in range(10)], "num_vis": 3072}, f)
    return folder


def test_cifar10_reader_layout(tmp_path):
    folder = write_cifar10(str(tmp_path))
    splits = build_datasets("cifar10", str(tmp_path))
    assert len(splits.train) == 30 and len(splits.test) == 6
    assert splits.train.images.shape == (30, 32, 32, 3) and splits.classes[3] == "c3"
    # Pixel (row 1, col 2) of image 0, channel 1 sits at 1024 + 32 * 1 + 2 in the planar row.
    with open(os.path.join(folder, "data_batch_1"), "rb") as f:
        raw = pickle.load(f)
    assert splits.train.images[0, 1, 2, 1] == raw["data"][0][1024 + 32 + 2]
    assert splits.train.labels[:6].tolist() == [int(v) for v in raw["labels"]]
    assert splits.eval_split == "test"


def test_cifar100_reader(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    for name, n in (("train", 8), ("test", 4)):
        with open(folder / name, "wb") as f:
            pickle.dump({"data": np.zeros((n, 3072), np.uint8), "fine_labels": [99] * n,
                         "coarse_labels": [0] * n}, f)
    with open(folder / "meta", "wb") as f:
        pickle.dump({"fine_label_names": [f"f{i}" for i in range(100)]}, f)
    splits = build_datasets("cifar100", str(tmp_path))
    assert splits.train.num_classes == 100 and splits.test.labels.tolist() == [99] * 4


def test_corrupt_cifar_batch_names_file(tmp_path):
    folder = write_cifar10(str(tmp_path))
    path = os.path.join(folder, "data_batch_3")
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 2])  # truncated
    with pytest.raises(DatasetError, match="corrupt CIFAR file .*data_batch_3.*delete"):
        build_datasets("cifar10", str(tmp_path))


def _tiny_archive(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    write_cifar10(str(src))
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    return archive


def test_md5_mismatch_is_an_error_and_extracts_nothing(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    archive = _tiny_archive(tmp_path)
    os.replace(archive, data / archive.name)
    with pytest.raises(DatasetError, match="MD5 mismatch for .*cifar-10-python.tar.gz"):
        build_datasets("cifar10", str(data))
    assert sorted(os.listdir(data)) == ["cifar-10-python.tar.gz"]


def test_download_verifies_and_extracts_atomically(tmp_path, monkeypatch):
    archive = _tiny_archive(tmp_path)
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    src = cifar_mod.SOURCES["cifar10"]
    monkeypatch.setitem(cifar_mod.SOURCES, "cifar10", cifar_mod.CifarSource(
        **{**src.__dict__, "url": archive.as_uri(), "md5": md5}))
    data = tmp_path / "data"
    splits = build_datasets("cifar10", str(data))
    assert len(splits.train) == 30
    assert sorted(os.listdir(data)) == ["cifar-10-batches-py", "cifar-10-python.tar.gz"]
    # A download whose bytes do not match is discarded, not kept half-way.
    monkeypatch.setitem(cifar_mod.SOURCES, "cifar10", cifar_mod.CifarSource(
        **{**src.__dict__, "url": archive.as_uri(), "md5": "0" * 32}))
    other = tmp_path / "other"
    with pytest.raises(DatasetError, match="MD5 mismatch"):
        build_datasets("cifar10", str(other))
    assert os.listdir(other) == []


def write_folder(root, classes=("cat", "dog"), n=4, size=8, fmt="png"):
    rng = np.random.default_rng(0)
    for c in classes:
        os.makedirs(os.path.join(root, c), exist_ok=True)
        for i in range(n):
            arr = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            Image.fromarray(arr).save(os.path.join(root, c, f"{i}.{fmt}"))


def test_imagefolder_reads_sorted_classes_and_caches(tmp_path):
    root = tmp_path / "imgs"
    write_folder(str(root), classes=("zebra", "ant"))
    cache = tmp_path / "cache"
    ds = read_folder(str(root), cache_dir=str(cache))
    assert ds.classes == ("ant", "zebra") and ds.images.shape == (8, 8, 8, 3)
    expect = np.asarray(Image.open(root / "ant" / "0.png").convert("RGB"))
    assert np.array_equal(ds.images[0].numpy(), expect) and ds.labels.tolist() == [0] * 4 + [1] * 4
    assert len(os.listdir(cache)) == 1
    again = read_folder(str(root), cache_dir=str(cache))
    assert torch.equal(again.images, ds.images)
    # Changing a file changes the key: the cache never serves stale pixels.
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "ant" / "0.png")
    os.utime(root / "ant" / "0.png", ns=(1, 1))
    assert read_folder(str(root), cache_dir=str(cache)).images[0].sum() == 0


def test_imagefolder_train_val_dirs_and_resize(tmp_path):
    write_folder(str(tmp_path / "train"), size=10, fmt="jpg")
    write_folder(str(tmp_path / "val"), n=2, size=12)
    splits = build_datasets("imagefolder", str(tmp_path), image_size=8, cache_dir="")
    assert splits.train.images.shape == (8, 8, 8, 3) and splits.val.images.shape == (4, 8, 8, 3)
    assert splits.eval_split == "val"
    big = build_datasets("imagefolder", str(tmp_path), image_size=70, cache_dir="")
    assert big.train.image_size == (80, 80)  # stored at 70 / 0.875 for crops to sample from


def test_unreadable_image_names_its_path(tmp_path):
    write_folder(str(tmp_path))
    (tmp_path / "dog" / "broken.jpg").write_bytes(b"not a jpeg at all")
    with pytest.raises(DatasetError, match=r"cannot read image .*dog[/\\]broken\.jpg"):
        build_datasets("imagefolder", str(tmp_path), cache_dir="")


def test_empty_image_folder(tmp_path):
    with pytest.raises(DatasetError, match="no class folders"):
        build_datasets("imagefolder", str(tmp_path), cache_dir="")
    (tmp_path / "cat").mkdir()
    with pytest.raises(DatasetError, match="cat holds no .jpg"):
        build_datasets("imagefolder", str(tmp_path), cache_dir="")


def test_unknown_dataset_and_missing_dir():
    with pytest.raises(DatasetError, match="unknown dataset 'mnist'; valid: cifar10"):
        build_datasets("mnist", "x")
    with pytest.raises(DatasetError, match="needs --data-dir"):
        build_datasets("cifar10", None)


def test_digits_and_balanced_seeded_split():
    a = build_datasets("digits", None, val_split=100, seed=3)
    b = build_datasets("digits", None, val_split=100, seed=3)
    c = build_datasets("digits", None, val_split=100, seed=4)
    assert a.train.images.shape[1:] == (32, 32, 3) and len(a.train) + len(a.val) == 1797
    assert torch.equal(a.val.labels, b.val.labels) and torch.equal(a.val.images, b.val.images)
    assert not torch.equal(a.val.images, c.val.images)
    assert torch.bincount(a.val.labels).tolist() == [10] * 10
    sub = build_datasets("digits", None, val_split=100, seed=3, train_subset=64)
    assert len(sub.train) == 64


def test_balanced_split_remainder_and_errors():
    labels = torch.tensor([0] * 5 + [1] * 5 + [2] * 5)
    train, val = balanced_split(labels, 3, 7, seed=0)
    assert torch.bincount(labels[val]).tolist() == [3, 2, 2]
    assert sorted(train.tolist() + val.tolist()) == list(range(15))
    with pytest.raises(DatasetError, match="leaves no training images"):
        balanced_split(labels, 3, 15, seed=0)
