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
           "--out", str(out), "--progress", "line", "--log-every", "1"]
    done = subprocess.run(cmd, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    # Only rank 0 prints and writes: one line per step logged and per epoch, one "done".
    assert done.stdout.count("epoch 1/2  lr") == 1 and done.stdout.count("done:") == 1
    step = [line for line in done.stdout.splitlines() if line.startswith("epoch 2/2 step 2/4")]
    assert len(step) == 1 and "eta 0:00:" in step[0] and "img/s" in step[0], done.stdout
    log = (out / "train.log").read_text()
    assert log.count("epoch 2/2 step 2/4") == 1 and log.count("epoch 2/2  lr") == 1
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["eval_images"] == 50
    # Validation counts every one of the 50 images once, across both ranks: top-1 is k/50.
    assert abs(rows[-1]["val_top1"] * 50 / 100 - round(rows[-1]["val_top1"] * 50 / 100)) < 1e-6
    ckpt = torch.load(out / "last.pt", weights_only=True)
    assert ckpt["train_state"]["step"] == 2 * (64 // 16)


def test_torchrun_two_processes_streamed_folder(tmp_path):
    """The streamed image-folder path under torchrun: each rank decodes its own shard in its
    own worker; validation still counts every image once."""
    import numpy as np
    from PIL import Image
    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (tmp_path / "data" / c).mkdir(parents=True)
        for i in range(13):
            Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(
                tmp_path / "data" / c / f"{i}.jpg")
    out = tmp_path / "ddp"
    cmd = [PYTHON, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "regnet", "train", "resnet20", "--dataset", "imagefolder",
           "--data-dir", str(tmp_path / "data"), "--data-mode", "stream", "--num-workers", "1",
           "--val-split", "6", "--epochs", "1", "--batch-size", "8", "--threads", "1",
           "--no-tensorboard", "--progress", "none", "--out", str(out)]
    done = subprocess.run(cmd, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["data_mode"] == "stream" and summary["world_size"] == 2
    assert summary["train_images"] == 20 and summary["eval_images"] == 6
    top1 = summary["final_val_top1"]
    assert abs(top1 * 6 / 100 - round(top1 * 6 / 100)) < 1e-6  # k of the 6 images
    # 20 training images, 10 per rank, batch 4 per rank: 2 steps, the partial batch dropped.
    assert torch.load(out / "last.pt", weights_only=True)["train_state"]["step"] == 2
