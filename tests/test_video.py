"""Folder-of-frames clip reader on tiny generated videos: sampling, ordering, errors, a batch
through the inflated iResNet."""
import os

import numpy as np
import pytest
import torch
from PIL import Image

import regnet
from regnet.data.errors import DatasetError
from regnet.data.video import ClipConfig, VideoFolder, segment_indices

PLAIN = dict(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))  # clip values = pixel / 255


def write_video(path, n, size=8, ext=".png", stem="img_"):
    """Frame k is a flat image of grey level 10*k (+ a bright left column, to see flips)."""
    os.makedirs(path, exist_ok=True)
    for k in range(n):
        img = np.full((size, size, 3), 10 * k, np.uint8)
        img[:, 0] = 250
        Image.fromarray(img).save(os.path.join(path, f"{stem}{k}{ext}"))


@pytest.fixture
def clips(tmp_path):
    write_video(tmp_path / "jump" / "v1", 12)
    write_video(tmp_path / "jump" / "v2", 3)             # shorter than a clip: frames repeat
    write_video(tmp_path / "run" / "a", 20, ext=".jpg")
    os.makedirs(tmp_path / "run" / "empty")              # no frames: skipped
    return str(tmp_path)


def frame_numbers(clip):
    """Recover frame indices from the grey level of a plain clip (C, T, H, W)."""
    mid = clip.shape[-1] // 2  # away from the bright edge column, wherever a flip put it
    return [round(float(clip[0, t, :, mid - 1:mid + 1].mean()) * 255 / 10)
            for t in range(clip.shape[1])]


def test_segment_indices():
    assert segment_indices(10, 5) == [1, 3, 5, 7, 9]
    assert segment_indices(3, 6) == [0, 0, 1, 1, 2, 2]
    g = torch.Generator().manual_seed(0)
    picks = segment_indices(100, 4, "random", g)
    assert all(25 * k <= i < 25 * (k + 1) for k, i in enumerate(picks))
    assert picks != segment_indices(100, 4, "random", g)  # a new draw
    with pytest.raises(DatasetError, match="sampling"):
        segment_indices(10, 2, "dense")


def test_reads_clips_in_natural_frame_order(clips):
    ds = VideoFolder(clips, ClipConfig(frames=4, **PLAIN))
    assert ds.classes == ["jump", "run"] and len(ds) == 3 and ds.skipped == 1
    assert ds.targets == [0, 0, 1]
    clip, label = ds[0]
    assert clip.shape == (3, 4, 8, 8) and clip.dtype == torch.float32 and label == 0
    assert frame_numbers(clip) == [1, 4, 7, 10]           # 'img_10' comes after 'img_9'
    assert frame_numbers(ds[1][0]) == [0, 1, 1, 2]        # 3 frames stretched over 4
    assert frame_numbers(ds[2][0]) == [2, 7, 12, 17]      # JPEG frames read too


def test_random_sampling_resize_flip_and_normalisation(clips):
    torch.manual_seed(0)
    ds = VideoFolder(clips, ClipConfig(frames=5, sampling="random", size=16, flip=True, **PLAIN))
    seen, flips = set(), set()
    for _ in range(12):
        clip, _ = ds[0]
        assert clip.shape == (3, 5, 16, 16)
        picks = frame_numbers(clip)
        assert all(12 * k // 5 <= i < 12 * (k + 1) // 5 + 1 for k, i in enumerate(picks))
        seen.add(tuple(picks))
        flips.add(bool(clip[0, 0, 0, -1] > 0.9))
    assert len(seen) > 1 and flips == {True, False}
    norm = VideoFolder(clips, ClipConfig(frames=2))[0][0]  # ImageNet mean / std by default
    plain = VideoFolder(clips, ClipConfig(frames=2, **PLAIN))[0][0]
    torch.testing.assert_close(norm[1], (plain[1] - 0.456) / 0.224)


def test_clear_errors(tmp_path, clips):
    with pytest.raises(DatasetError, match="does not exist"):
        VideoFolder(str(tmp_path / "missing"))
    os.makedirs(tmp_path / "none" / "cls" / "vid")
    with pytest.raises(DatasetError, match="no videos"):
        VideoFolder(str(tmp_path / "none"))
    with pytest.raises(DatasetError, match="frames must be"):
        ClipConfig(frames=0)
    with open(os.path.join(clips, "run", "a", "img_5.jpg"), "wb") as f:
        f.write(b"not a jpeg")
    ds = VideoFolder(clips, ClipConfig(frames=20))
    with pytest.raises(DatasetError, match="cannot read frame .*img_5.jpg"):
        ds[2]


def test_a_batch_through_the_video_net(clips):
    ds = VideoFolder(clips, ClipConfig(frames=4, size=32))
    clips_, labels = next(iter(torch.utils.data.DataLoader(ds, batch_size=3)))
    model = regnet.create_model("iresnet3d50", num_classes=ds.num_classes).eval()
    with torch.no_grad():
        assert model(clips_).shape == (3, 2)
    assert labels.tolist() == [0, 0, 1]
