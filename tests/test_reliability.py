"""Failures that would otherwise be silent or leave garbage: image modes, full disks, stale
temporary files, the umask, relative data folders, studies without data, busy cores."""
import errno
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from regnet import atomic
from regnet.cli import main
from regnet.data.imagefolder import read_folder
from regnet.train.checkpoint import load_checkpoint, save_checkpoint
from train_helpers import tiny_flags


def _png16(path, values):
    Image.fromarray(np.asarray(values, dtype=np.uint16)).save(path)


def test_16_bit_png_decodes_to_its_scaled_values_and_modes_are_reported(tmp_path, caplog):
    root = tmp_path / "imgs"
    (root / "a").mkdir(parents=True)
    ramp = (np.arange(64, dtype=np.uint32).reshape(8, 8) * 1040).clip(0, 65535)
    _png16(root / "a" / "gray16.png", ramp)
    with Image.open(root / "a" / "gray16.png") as im:
        assert im.mode.startswith("I")  # Pillow's 16-bit mode: what convert("RGB") clips
    Image.fromarray(np.full((8, 8, 4), (10, 20, 30, 0), np.uint8), "RGBA").save(
        root / "a" / "rgba.png")
    Image.fromarray(np.full((8, 8), 77, np.uint8), "L").save(root / "a" / "gray8.png")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "a" / "rgb.png")
    with caplog.at_level("WARNING", logger="regnet"):
        ds = read_folder(str(root), cache_dir="")
    names = sorted(os.listdir(root / "a"))
    images = {n: ds.images[i].numpy() for i, n in enumerate(names)}
    expected = np.rint(ramp / 257.0).astype(np.uint8)
    assert (images["gray16.png"] == expected[..., None]).all()
    assert images["gray16.png"].max() == expected.max() > 200  # not solid white
    assert (images["rgba.png"] == (10, 20, 30)).all()  # alpha dropped, colour kept
    assert (images["gray8.png"] == 77).all()
    lines = [r.getMessage() for r in caplog.records if "converted to 8-bit RGB" in r.getMessage()]
    assert len(lines) == 1, lines  # said once for the dataset
    assert "3 image(s)" in lines[0] and "16-bit, scaled to 8 bits" in lines[0]
    assert "alpha dropped" in lines[0] and "grayscale" in lines[0]


def test_a_full_disk_keeps_the_previous_checkpoint_and_no_temporary_file(tmp_path, monkeypatch,
                                                                          capsys):
    path = tmp_path / "last.pt"
    save_checkpoint(str(path), {"format": "regnet-ckpt-1", "epoch": 1, "w": torch.ones(3)})
    real_fdopen = os.fdopen

    class Full:
        def __init__(self, f):
            self.f = f

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    monkeypatch.setattr(atomic.os, "fdopen", lambda fd, mode: Full(real_fdopen(fd, mode)))
    with pytest.raises(atomic.WriteError) as err:
        save_checkpoint(str(path), {"format": "regnet-ckpt-1", "epoch": 2, "w": torch.zeros(3)})
    assert "no space left" in str(err.value) and str(path) in str(err.value)
    monkeypatch.undo()
    assert load_checkpoint(str(path))["epoch"] == 1
    assert os.listdir(tmp_path) == ["last.pt"]


def test_a_full_disk_during_training_is_one_line(tmp_path, monkeypatch, capsys):
    import regnet.train.trainer as trainer

    def full(path, ckpt):
        raise atomic.WriteError(atomic._explain(path, OSError(errno.ENOSPC, "No space")))
    monkeypatch.setattr(trainer, "save_checkpoint", full)
    assert main(["train", "resnet20", *tiny_flags(), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no space left" in err and "best.pt" in err, err


def test_stale_temporary_files_are_swept_and_live_ones_kept(tmp_path):
    dead = tmp_path / f".last.pt.tmp-{atomic._HOST}-999999999-abc"
    live = tmp_path / f".last.pt.tmp-{atomic._HOST}-{os.getppid()}-abc"
    other_host = tmp_path / ".last.pt.tmp-elsewhere-1-abc"
    for p in (dead, live, other_host):
        p.write_bytes(b"")
    assert atomic.sweep_stale(str(tmp_path)) == [str(dead)]
    assert live.exists() and other_host.exists() and not dead.exists()


def test_a_killed_save_leaves_nothing_after_the_next_start(tmp_path):
    out = tmp_path / "r"
    out.mkdir()
    stale = out / f".last.pt.tmp-{atomic._HOST}-999999999-x1"
    stale.write_bytes(b"")  # what kill -9 during a save leaves
    assert main(["train", "resnet20", *tiny_flags(), "--out", str(out)]) == 0
    assert not [n for n in os.listdir(out) if ".tmp-" in n]


def test_files_respect_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        atomic.atomic_write_text(str(tmp_path / "a.txt"), "x")
        os.umask(0o077)
        atomic.atomic_write_text(str(tmp_path / "b.txt"), "x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "b.txt").stat().st_mode & 0o777 == 0o600


def test_a_run_with_a_relative_data_dir_evaluates_from_elsewhere(tmp_path, monkeypatch, capsys):
    rng = np.random.default_rng(0)
    work = tmp_path / "work"
    for c in range(2):
        (work / "data" / f"c{c}").mkdir(parents=True)
        for i in range(12):
            Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(
                work / "data" / f"c{c}" / f"{i}.png")
    monkeypatch.chdir(work)
    flags = tiny_flags(dataset="imagefolder", val_split=8, train_subset=None, image_size=16)
    assert main(["train", "resnet20", *flags, "--data-dir", "data", "--cache-dir", "",
                 "--out", "run", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    monkeypatch.chdir(tmp_path)
    assert main(["eval", "work/run/best.pt", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["images"] == 8 and result["own_data"]
    assert result["top1"] == pytest.approx(summary["final_val_top1"], abs=1e-9)


def test_the_readme_study_example_runs_on_a_small_image_folder(tmp_path, monkeypatch, capsys):
    """`regnet study sample --space regnetx --flops 360M:400M -n N --out S` then `regnet study
    run S --data-dir FOLDER` (the README's commands): the study records the paper's ImageNet
    regime, so the folder is read as an image folder at 224 px and each model trains."""
    rng = np.random.default_rng(1)
    for split in ("train", "val"):  # ImageNet's layout: DIR/train/<class>, DIR/val/<class>
        for c in range(2):
            (tmp_path / "imagenet" / split / f"n{c}").mkdir(parents=True)
            for i in range(4 if split == "train" else 2):
                Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(
                    tmp_path / "imagenet" / split / f"n{c}" / f"{i}.jpg")
    monkeypatch.chdir(tmp_path)
    assert main(["study", "sample", "--space", "regnetx", "--flops", "360M:400M", "-n", "1",
                 "--out", "studies/regnetx"]) == 0
    meta = json.loads((tmp_path / "studies/regnetx/study.json").read_text())
    assert meta["train"]["dataset"] == "imagefolder" and meta["train"]["image_size"] == 224
    capsys.readouterr()
    assert main(["study", "run", "studies/regnetx", "--data-dir", "imagenet", "--set",
                 "epochs=1", "--set", "batch_size=4", "--set", "cache_dir=", "--set",
                 "threads=1"]) == 0
    counts = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert counts["trained"] == 1 and counts["failed"] == 0, counts


def test_threads_fit_the_cores_other_work_leaves_free(monkeypatch, caplog):
    import regnet.train.trainer as trainer
    from train_helpers import tiny_cfg

    monkeypatch.setattr(trainer.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    monkeypatch.setattr(trainer.os, "getloadavg", lambda: (2.9, 1.0, 1.0))
    cfg = tiny_cfg("unused", threads=0)
    with caplog.at_level("INFO", logger="regnet"):
        assert trainer.configure_runtime(cfg, trainer.DistInfo()) == 1
    assert "3 of 4 cores are busy" in caplog.text
    monkeypatch.setattr(trainer.os, "getloadavg", lambda: (0.1, 0.0, 0.0))
    assert trainer.configure_runtime(cfg, trainer.DistInfo()) == 4
    assert trainer.configure_runtime(cfg.replace(threads=2), trainer.DistInfo()) == 2
    torch.set_num_threads(1)
