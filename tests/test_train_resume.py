"""A run killed mid-training (SIGKILL, no chance to clean up) and resumed ends with exactly the
metrics and weights of an uninterrupted run (deterministic mode)."""
import json
import os
import signal
import subprocess
import time

import pytest
import torch

from regnet.train import RunDirError, TrainConfig, train
from regnet.train import records
from regnet.train.checkpoint import load_checkpoint
from regnet.train.trainer import config_changes
from train_helpers import PYTHON, subprocess_env, tiny_cfg, tiny_flags

SETTINGS = tiny_flags(epochs=3, train_subset=256, deterministic=True)
COMPARED = ("epoch", "lr", "train_loss", "train_top1", "val_loss", "val_top1", "val_top5")


def run_cmd(out):
    return [PYTHON, "-m", "regnet", "train", "resnet20", *SETTINGS, "--out", str(out)]


def rows(out):
    path = out / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_killed_run_resumes_to_identical_metrics(tmp_path):
    env = subprocess_env()
    ref, cut = tmp_path / "ref", tmp_path / "cut"
    # The uninterrupted reference runs alongside (same settings, one thread each).
    reference = subprocess.Popen(run_cmd(ref), env=env, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE)
    proc = subprocess.Popen(run_cmd(cut), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while len(rows(cut)) < 1 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    time.sleep(0.4)  # into epoch 2 (about a second long)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    kept = torch.load(cut / "last.pt", weights_only=True)
    assert kept["epoch"] == 1, "the kill should land before epoch 2 was saved"
    assert not [f for f in os.listdir(cut) if f.startswith(".")], "a temporary file was left"

    done = subprocess.run(run_cmd(cut), env=env, check=True, capture_output=True, text=True,
                          timeout=300)
    assert "resuming" in done.stdout
    assert reference.wait(timeout=300) == 0, reference.stderr.read()
    got, want = rows(cut), rows(ref)
    assert [r["epoch"] for r in got] == [1, 2, 3]
    assert [{k: r[k] for k in COMPARED} for r in got] == [{k: r[k] for k in COMPARED} for r in want]
    a = torch.load(cut / "last.pt", weights_only=True)["state_dict"]
    b = torch.load(ref / "last.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in b)


def test_resume_with_a_changed_split_refuses_and_changes_nothing(tmp_path):
    # The reliability report's case: a run resumed with another split, seed and batch would
    # validate on images it trained on, and its config.yaml would no longer describe last.pt.
    out = tmp_path / "run"
    train(tiny_cfg(out, epochs=1))
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    with pytest.raises(RunDirError) as err:
        train(tiny_cfg(out, epochs=2, val_split=40, split_seed=5, batch_size=8))
    message = str(err.value)
    assert "\n" not in message
    for part in ("batch_size 16 -> 8", "split_seed 0 -> 5", "val_split 50 -> 40",
                 "choose another --out"):
        assert part in message
    assert "epochs" not in message.split("(")[1].split(")")[0]  # extending epochs is allowed
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before


def test_resume_may_extend_epochs_and_change_reporting(tmp_path):
    out = tmp_path / "run"
    train(tiny_cfg(out, epochs=1))
    summary = train(tiny_cfg(out, epochs=2, progress="line", threads=2))
    assert summary["epochs"] == 2
    saved = load_checkpoint(str(out / "last.pt"))["config"]
    assert saved["epochs"] == 2 and records.read_config(str(out))["epochs"] == 2


def test_config_changes_compares_data_folders_by_real_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    saved = TrainConfig(data_dir=str(tmp_path / "data")).to_dict()
    assert config_changes(saved, TrainConfig(data_dir="data").to_dict()) == {}
    assert config_changes({"lr": 0.1}, TrainConfig(lr=0.2, epochs=99).to_dict()) == \
        {"lr": (0.1, 0.2)}
