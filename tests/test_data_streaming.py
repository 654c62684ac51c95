"""Streamed image folders: per-image decoding in DataLoader workers, for data too large to hold
in memory. Checked against the in-memory path wherever the two must agree."""
import json
import os
import random

import numpy as np
import pytest
import torch
from PIL import Image

from regnet.cli import main
from regnet.data import (DatasetError, FileDataset, InMemoryLoader, StreamingLoader,
                         build_datasets, make_loader)
from regnet.data import imagefolder as imagefolder_mod
from regnet.data.streaming import inception_box
from train_helpers import tiny_cfg


def write_images(root, sizes, classes=("cat", "dog"), n=6, fmt="png", seed=0):
    """`n` images per class, cycling through `sizes` (w, h); smooth colour ramps plus noise so
    JPEG quantisation does not wash them out."""
    rng = np.random.default_rng(seed)
    for c in classes:
        os.makedirs(os.path.join(root, c), exist_ok=True)
        for i in range(n):
            w, h = sizes[i % len(sizes)]
            ramp = np.linspace(0, 255, w)[None, :, None] * rng.uniform(0.2, 1, 3)
            arr = np.clip(ramp + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(arr).save(os.path.join(root, c, f"{i}.{fmt}"))


def loader_kw(splits, **kw):
    return dict(image_size=16, mean=splits.info["mean"], std=splits.info["std"], seed=3, **kw)


def collect(loader, epoch=1):
    loader.set_epoch(epoch)
    xs, ys = zip(*loader)
    return torch.cat(xs), torch.cat(ys)


def test_streamed_folder_agrees_with_the_in_memory_one(tmp_path):
    write_images(str(tmp_path), [(16, 16)])
    mem = build_datasets("imagefolder", str(tmp_path), val_split=4, data_mode="memory",
                         cache_dir="")
    st = build_datasets("imagefolder", str(tmp_path), val_split=4, data_mode="stream")
    assert isinstance(st.train, FileDataset) and st.info["data_mode"] == "stream"
    assert mem.info["data_mode"] == "memory"
    assert st.classes == mem.classes and torch.equal(st.train.labels, mem.train.labels)
    assert st.train.image_size == (16, 16)  # the images' own side when they are square
    assert np.allclose(st.info["mean"], mem.info["mean"], atol=1e-5)
    assert np.allclose(st.info["std"], mem.info["std"], atol=1e-5)
    # Evaluation has no randomness: the same pixels in, the same normalised batch out.
    kw = loader_kw(mem, train=False, augment="cifar")
    x_mem, y_mem = collect(InMemoryLoader(mem.val, 3, **kw))
    x_st, y_st = collect(StreamingLoader(st.val, 3, **kw))
    assert torch.equal(y_mem, y_st) and torch.equal(x_mem, x_st)
    assert x_st.is_contiguous(memory_format=torch.channels_last)


def test_streamed_batches_are_fixed_by_seed_and_epoch_not_by_workers(tmp_path):
    write_images(str(tmp_path), [(16, 16)], fmt="jpg")
    st = build_datasets("imagefolder", str(tmp_path), data_mode="stream")
    kw = loader_kw(st, train=True, augment="cifar")
    x0, y0 = collect(StreamingLoader(st.train, 4, num_workers=0, **kw))
    x2, y2 = collect(StreamingLoader(st.train, 4, num_workers=2, **kw))
    assert x0.shape == (12, 3, 16, 16)  # 12 images, batch 4, nothing dropped
    assert torch.equal(x0, x2) and torch.equal(y0, y2)
    x_next, _ = collect(StreamingLoader(st.train, 4, num_workers=0, **kw), epoch=2)
    assert not torch.equal(x0, x_next)
    # Each image is augmented with pixels from itself only: labels follow images.
    assert sorted(y0.tolist()) == sorted(st.train.labels.tolist())


def test_distributed_shards_are_disjoint_and_cover_the_data(tmp_path):
    write_images(str(tmp_path), [(16, 16)], n=5)
    st = build_datasets("imagefolder", str(tmp_path), data_mode="stream")
    seen = []
    for rank in range(2):
        loader = StreamingLoader(st.train, 1, world_size=2, rank=rank,
                                 **loader_kw(st, train=False, augment="none"))
        seen += [i for batch in loader.batches() for i, _ in batch]
    assert sorted(seen) == list(range(10))


def test_inception_crops_from_full_size_jpegs(tmp_path):
    write_images(str(tmp_path), [(120, 90), (64, 100), (300, 200)], fmt="jpg")
    st = build_datasets("imagefolder", str(tmp_path), image_size=24, data_mode="stream")
    assert st.train.image_size == (24, 24)
    kw = dict(image_size=24, mean=st.info["mean"], std=st.info["std"])
    x, _ = collect(StreamingLoader(st.train, 6, train=True, augment="imagenet", **kw))
    assert x.shape == (12, 3, 24, 24) and torch.isfinite(x).all()
    x_eval, _ = collect(StreamingLoader(st.train, 6, train=False, augment="imagenet", **kw))
    assert x_eval.shape == (12, 3, 24, 24)
    # The crop rule keeps every box inside the image, for any size and draw.
    rng = random.Random(0)
    for _ in range(500):
        w, h = rng.randint(1, 400), rng.randint(1, 400)
        left, top, cw, ch = inception_box(w, h, rng)
        assert 0 <= left and left + cw <= w and 0 <= top and top + ch <= h and cw > 0 < ch


def test_streamed_folders_of_mixed_sizes_need_an_image_size(tmp_path):
    write_images(str(tmp_path), [(20, 12)])
    with pytest.raises(DatasetError, match=r"not square .*set image_size"):
        build_datasets("imagefolder", str(tmp_path), data_mode="stream")


def test_unreadable_streamed_image_is_one_line_naming_it(tmp_path):
    write_images(str(tmp_path), [(16, 16)])
    (tmp_path / "dog" / "7.jpg").write_bytes(b"not a jpeg at all")
    with pytest.raises(DatasetError, match=r"cannot read image .*7\.jpg"):
        build_datasets("imagefolder", str(tmp_path), data_mode="stream")  # the stats sample
    (tmp_path / "dog" / "7.jpg").unlink()
    st = build_datasets("imagefolder", str(tmp_path), data_mode="stream")
    (tmp_path / "dog" / "5.png").write_bytes(b"truncated")  # broken after the scan
    loader = StreamingLoader(st.train, 4, num_workers=2,
                             **loader_kw(st, train=False, augment="none"))
    with pytest.raises(DatasetError) as err:
        list(loader)
    assert "\n" not in str(err.value)
    assert str(err.value).startswith(f"cannot read image {tmp_path / 'dog' / '5.png'}")


def test_auto_mode_streams_what_does_not_fit(tmp_path, monkeypatch):
    write_images(str(tmp_path), [(16, 16)])
    assert build_datasets("imagefolder", str(tmp_path), cache_dir="").info["data_mode"] == "memory"
    monkeypatch.setattr(imagefolder_mod, "memory_budget", lambda: 16 * 16 * 3 * 11)
    auto = build_datasets("imagefolder", str(tmp_path), cache_dir="")
    assert auto.info["data_mode"] == "stream"  # 12 images of 768 bytes > an 11-image budget
    with pytest.raises(DatasetError, match="image folders only"):
        build_datasets("digits", None, data_mode="stream")
    assert isinstance(make_loader(auto.train, 4, **loader_kw(auto, train=True, augment="cifar")),
                      StreamingLoader)


def test_train_and_eval_on_a_streamed_folder(tmp_path, capsys, monkeypatch):
    data = tmp_path / "data"
    write_images(str(data / "train"), [(40, 30), (30, 40)], fmt="jpg", n=8)
    write_images(str(data / "val"), [(36, 36)], fmt="jpg", n=2)
    out = tmp_path / "run"
    from regnet.train import train
    cfg = tiny_cfg(out, dataset="imagefolder", data_dir=str(data), data_mode="stream",
                   val_split=0, train_subset=None, batch_size=4, num_workers=1, augment="imagenet")
    summary = train(cfg)
    assert summary["data_mode"] == "stream" and summary["eval_split"] == "val"
    assert summary["train_images"] == 16 and summary["eval_images"] == 4

    def no_stats(*a, **k):  # evaluation normalises with the checkpoint's mean / std
        raise AssertionError("regnet eval decoded training images for channel stats")
    monkeypatch.setattr("regnet.data.sample_channel_stats", no_stats)
    assert main(["eval", str(out / "best.pt"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["images"] == 4 and 0 <= result["top1"] <= 100


def test_streamed_run_resumed_between_epochs_matches_an_uninterrupted_one(tmp_path):
    write_images(str(tmp_path / "data"), [(20, 20)], fmt="jpg", n=8)
    from regnet.train import train

    def cfg(out, epochs):
        return tiny_cfg(out, dataset="imagefolder", data_dir=str(tmp_path / "data"),
                        data_mode="stream", val_split=4, train_subset=None, batch_size=4,
                        num_workers=1, epochs=epochs, deterministic=True)

    train(cfg(tmp_path / "whole", 2))
    train(cfg(tmp_path / "cut", 1))
    train(cfg(tmp_path / "cut", 2))  # the same --out: resumes from epoch 1
    keys = ("lr", "train_loss", "train_top1", "val_loss", "val_top1")

    def rows(out):
        return [{k: r[k] for k in keys} for r in map(json.loads, (out / "metrics.jsonl")
                                                     .read_text().splitlines())]
    assert rows(tmp_path / "cut") == rows(tmp_path / "whole") and len(rows(tmp_path / "cut")) == 2
