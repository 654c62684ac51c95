"""A run killed mid-training (SIGKILL, no chance to clean up) and resumed ends with exactly the
metrics and weights of an uninterrupted run (deterministic mode)."""
import json
import os
import signal
import subprocess
import time

import torch

from train_helpers import PYTHON, subprocess_env, tiny_flags

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
