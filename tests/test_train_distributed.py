"""`torchrun --nproc_per_node 2 -m regnet train ...` on CPU (gloo): finishes, logs once, and the
ranks' metrics are reduced over the whole validation split."""
import json
import subprocess

import torch

from train_helpers import PYTHON, subprocess_env, tiny_flags


def test_torchrun_two_processes_cpu(tmp_path):
    out = tmp_path / "ddp"
    cmd = [PYTHON, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "regnet", "train", "resnet20", *tiny_flags(epochs=2, batch_size=16),
           "--out", str(out)]
    done = subprocess.run(cmd, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    # Only rank 0 prints and writes: one line per epoch, one "done".
    assert done.stdout.count("epoch 1/2") == 1 and done.stdout.count("done:") == 1
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["eval_images"] == 50
    # Validation counts every one of the 50 images once, across both ranks: top-1 is k/50.
    assert abs(rows[-1]["val_top1"] * 50 / 100 - round(rows[-1]["val_top1"] * 50 / 100)) < 1e-6
    ckpt = torch.load(out / "last.pt", weights_only=True)
    assert ckpt["train_state"]["step"] == 2 * (64 // 16)
