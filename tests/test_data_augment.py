"""Batched augmentation equals its per-sample definition; the loader shards and reseeds."""
import os

import pytest
import torch
import torch.nn.functional as F

from regnet.data import ArrayDataset, InMemoryLoader
from regnet.data.augment import (CropFlip, crop_flip, normalise, random_resized_crop,
                                 resize_centre_crop)


def test_crop_flip_matches_per_sample_definition():
    x = torch.randint(0, 256, (16, 8, 8, 3), dtype=torch.uint8)
    out = crop_flip(x, 2, True, torch.Generator().manual_seed(0))
    # Re-draw the same random numbers and build each sample the slow, obvious way.
    g = torch.Generator().manual_seed(0)
    dy = torch.randint(0, 5, (16,), generator=g)
    dx = torch.randint(0, 5, (16,), generator=g)
    mirrored = torch.rand(16, generator=g) < 0.5
    padded = F.pad(x, (0, 0, 2, 2, 2, 2))
    for i in range(16):
        ref = padded[i, dy[i]:dy[i] + 8, dx[i]:dx[i] + 8]
        if mirrored[i]:
            ref = ref.flip(1)
        assert torch.equal(out[i], ref)
    assert 0 < int(mirrored.sum()) < 16


def test_random_resized_crop_full_box_is_identity():
    x = torch.randint(0, 256, (4, 8, 8, 3), dtype=torch.uint8)
    out = random_resized_crop(x, 8, torch.Generator().manual_seed(0), scale=(1.0, 1.0),
                              ratio=(1.0, 1.0), flip=False)
    assert torch.allclose(out, x.permute(0, 3, 1, 2).float(), atol=1e-3)
    small = random_resized_crop(x, 5, torch.Generator().manual_seed(1))
    assert small.shape == (4, 3, 5, 5) and small.min() >= 0 and small.max() <= 255


def test_resize_centre_crop_shape():
    x = torch.randint(0, 256, (2, 20, 30, 3), dtype=torch.uint8)
    assert resize_centre_crop(x, 16).shape == (2, 3, 16, 16)


def test_normalise_is_channels_last_when_asked():
    x = torch.full((2, 3, 4, 4), 255.0)
    y = normalise(x, [0.5] * 3, [0.25] * 3, channels_last=True)
    assert y.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(y, torch.full_like(y, 2.0))
    assert normalise(x, [0.5] * 3, [0.25] * 3, channels_last=False).is_contiguous()


def _ds(n=10):
    return ArrayDataset(torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 4, 4, 3)
                        .contiguous(), torch.arange(n) % 2, ("a", "b"))


def test_loader_shards_are_disjoint_and_cover_everything():
    ds = _ds(10)
    kw = dict(augment="none", image_size=4, mean=[0, 0, 0], std=[1, 1, 1], seed=5)
    shards = [InMemoryLoader(ds, 2, train=True, rank=r, world_size=2, **kw) for r in range(2)]
    for s in shards:
        s.set_epoch(3)
    train_idx = [s.indices().tolist() for s in shards]
    assert len(train_idx[0]) == len(train_idx[1]) == 5
    assert sorted(train_idx[0] + train_idx[1]) == list(range(10))
    evals = [InMemoryLoader(ds, 4, train=False, rank=r, world_size=3, **kw) for r in range(3)]
    assert sorted(sum((e.indices().tolist() for e in evals), [])) == list(range(10))
    # Same (seed, epoch): same order; next epoch: another.
    again = InMemoryLoader(ds, 2, train=True, rank=0, world_size=2, **kw)
    again.set_epoch(3)
    assert again.indices().tolist() == train_idx[0]
    again.set_epoch(4)
    assert again.indices().tolist() != train_idx[0]
    batches = list(again)
    assert len(batches) == 2 and batches[0][0].shape == (2, 3, 4, 4)


def test_reference_loader_matches_fast_loader_in_eval():
    from regnet.data import ReferenceLoader
    ds = ArrayDataset(torch.randint(0, 256, (10, 8, 8, 3), dtype=torch.uint8), torch.arange(10) % 2,
                      ("a", "b"))
    kw = dict(train=False, augment="cifar", image_size=8, mean=[0.4] * 3, std=[0.2] * 3)
    fast = list(InMemoryLoader(ds, 4, **kw))
    slow = list(ReferenceLoader(ds, 4, **kw))
    assert len(fast) == len(slow) == 3
    for (xf, yf), (xs, ys) in zip(fast, slow):
        assert torch.allclose(xf, xs, atol=1e-5) and torch.equal(yf, ys)
    train = ReferenceLoader(ds, 4, **{**kw, "train": True})
    train.set_epoch(1)
    assert len(train) == 2 and next(iter(train))[0].shape == (4, 3, 8, 8)


def _dataset(tmp_path, loader_name, images):
    """`images` (N x H x W x 3 uint8, labels alternating) in memory, or as PNG files for the
    streamed loader (each file written once per test)."""
    from PIL import Image

    from regnet.data import FileDataset
    labels = torch.arange(len(images)) % 2
    if loader_name != "stream":
        return ArrayDataset(images, labels, ("a", "b"))
    paths = tuple(str(tmp_path / f"{i}.png") for i in range(len(images)))
    for path, img in zip(paths, images):
        if not os.path.exists(path):
            Image.fromarray(img.numpy()).save(path)
    return FileDataset(paths, labels, ("a", "b"), images.shape[1])


def _train_loader(ds, loader_name, batch_size, **kw):
    """One loader kind over `ds`, training views, unnormalised (x / 255)."""
    from regnet.data import ReferenceLoader, StreamingLoader
    cls = {"memory": InMemoryLoader, "reference": ReferenceLoader,
           "stream": StreamingLoader}[loader_name]
    return cls(ds, batch_size, train=True, image_size=ds.image_size[0], mean=[0.0] * 3,
               std=[1.0] * 3, **kw)


def _dot_images(tmp_path, loader_name, n=400):
    """`n` black 16 x 16 images with one white dot at (8, 8)."""
    images = torch.zeros(n, 16, 16, 3, dtype=torch.uint8)
    images[:, 8, 8] = 255
    return _dataset(tmp_path, loader_name, images)


def _dot_offsets(ds, loader_name, crop_pad):
    """Every (dy, dx) by which training crops moved the dot, for one loader kind."""
    loader = _train_loader(ds, loader_name, 40, augment="crop", crop=CropFlip(crop_pad))
    loader.set_epoch(1)
    offsets = set()
    for x, _ in loader:
        for img in x[:, 0]:
            where = (img > 0.5).nonzero()
            assert len(where) <= 1  # the dot may leave the frame at most
            if len(where):
                offsets.add((int(where[0, 0]) - 8, int(where[0, 1]) - 8))
    return offsets


@pytest.mark.parametrize("loader_name", ["memory", "reference", "stream"])
def test_crop_pad_sets_the_translation_of_every_loader(tmp_path, loader_name):
    ds = _dot_images(tmp_path, loader_name)
    grid = {(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)}
    assert _dot_offsets(ds, loader_name, 2) == grid
    assert _dot_offsets(ds, loader_name, 0) == {(0, 0)}
    # Default: 4 px per 32, i.e. 2 px at 16 x 16.
    assert _dot_offsets(ds, loader_name, None) == grid


def test_crop_pad_from_the_command_line():
    from regnet.cli import build_parser
    from regnet.cli.train import resolve_config
    parse = build_parser().parse_args
    assert resolve_config(parse(["train", "resnet20", "--crop-pad", "2"])).crop_pad == 2
    assert resolve_config(parse(["train", "resnet20"])).crop_pad is None
    with pytest.raises(ValueError, match="crop_pad"):
        resolve_config(parse(["train", "resnet20", "--crop-pad", "-1"]))


def test_reflect_padding_mirrors_without_repeating_the_edge():
    from regnet.data.augment import pad_images
    x = torch.randint(0, 256, (3, 6, 7, 3), dtype=torch.uint8)
    want = F.pad(x.permute(0, 3, 1, 2).float(), (2, 2, 2, 2), mode="reflect")
    assert torch.equal(pad_images(x, 2, "reflect"), want.permute(0, 2, 3, 1).to(torch.uint8))
    assert torch.equal(pad_images(x, 2, "zeros")[:, :2], torch.zeros(3, 2, 11, 3,
                                                                      dtype=torch.uint8))
    with pytest.raises(ValueError, match="pad mode"):
        pad_images(x, 2, "edge")
    with pytest.raises(ValueError, match="larger than"):
        pad_images(x, 6, "reflect")


@pytest.mark.parametrize("loader_name", ["memory", "reference", "stream"])
@pytest.mark.parametrize("mode", ["zeros", "reflect"])
def test_crop_pad_mode_sets_the_border_of_every_loader(tmp_path, loader_name, mode):
    """Pixel values code their (row, col), so each crop names the window it came from: every
    crop is one of the 25 windows of the padded image, and 160 crops reach all of them."""
    import numpy as np
    code = (torch.arange(16)[:, None] * 16 + torch.arange(16)[None, :]).to(torch.uint8)
    images = code[None, :, :, None].expand(160, 16, 16, 3).contiguous()
    ds = _dataset(tmp_path, loader_name, images)
    loader = _train_loader(ds, loader_name, 40, augment="crop", crop=CropFlip(2, mode))
    padded = np.pad(code.numpy(), 2, mode="constant" if mode == "zeros" else "reflect")
    windows = {padded[dy:dy + 16, dx:dx + 16].tobytes(): (dy, dx)
               for dy in range(5) for dx in range(5)}
    seen = set()
    for x, _ in loader:
        for img in (x[:, 0] * 255).round().to(torch.uint8).numpy():
            assert img.tobytes() in windows
            seen.add(windows[img.tobytes()])
    assert len(seen) == 25


def test_crop_pad_mode_from_the_command_line():
    from regnet.cli import build_parser
    from regnet.cli.train import resolve_config
    parse = build_parser().parse_args
    cfg = resolve_config(parse(["train", "resnet20", "--crop-pad-mode", "reflect"]))
    assert cfg.crop_pad_mode == "reflect"
    assert resolve_config(parse(["train", "resnet20"])).crop_pad_mode == "zeros"
    with pytest.raises(ValueError, match="crop_pad_mode 'edge'; valid: zeros, reflect"):
        resolve_config(parse(["train", "resnet20", "--crop-pad-mode", "edge"]))


def _flips_by_image(tmp_path, loader_name, epoch, n=64):
    """{image id: mirrored?} over one training epoch of `n` 8 x 8 images whose left column
    holds id + 1 and whose right column holds 250, so a view names its image and its flip."""
    images = torch.zeros(n, 8, 8, 3, dtype=torch.uint8)
    images[:, :, 0] = (torch.arange(n) + 1)[:, None, None]
    images[:, :, 7] = 250
    ds = _dataset(tmp_path, loader_name, images)
    loader = _train_loader(ds, loader_name, 16, augment="cifar", seed=3,
                           crop=CropFlip(0, flip_mode="alternate"))
    loader.set_epoch(epoch)
    seen = {}
    for x, _ in loader:
        for img in (x[:, 0] * 255).round().long():
            mirrored = bool(img[0, 0] == 250)
            seen[int(img[0, 7 if mirrored else 0]) - 1] = mirrored
    assert len(seen) == n
    return seen


@pytest.mark.parametrize("loader_name", ["memory", "reference", "stream"])
def test_alternating_flip_mirrors_each_image_every_other_epoch(tmp_path, loader_name):
    e0, e1, e2 = (_flips_by_image(tmp_path, loader_name, e) for e in (0, 1, 2))
    assert all(e1[i] != e0[i] for i in e0)  # the opposite of the epoch before
    assert e2 == e0
    assert 16 <= sum(e0.values()) <= 48    # a coin per image, not all one way
    # Every loader computes the same coins, so the three paths train on the same views.
    assert e0 == _flips_by_image(tmp_path, "memory", 0)


def test_flip_mode_from_the_command_line():
    from regnet.cli import build_parser
    from regnet.cli.train import resolve_config
    parse = build_parser().parse_args
    cfg = resolve_config(parse(["train", "resnet20", "--flip-mode", "alternate"]))
    assert cfg.crop_flip == CropFlip(None, "zeros", "alternate")
    assert resolve_config(parse(["train", "resnet20"])).flip_mode == "random"
    with pytest.raises(ValueError, match="flip_mode 'never'; valid: random, alternate"):
        resolve_config(parse(["train", "resnet20", "--flip-mode", "never"]))
