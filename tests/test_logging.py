"""Output a cluster job log can use: step lines with an ETA off a terminal, a train.log in the
run folder, a one-line warning for a requested logger that is not installed."""
import subprocess
import sys

from train_helpers import PYTHON, subprocess_env, tiny_flags


def test_log_every_prints_step_lines_with_eta_off_a_terminal(tmp_path):
    out = tmp_path / "r"
    cmd = [PYTHON, "-m", "regnet", "train", "resnet20", *tiny_flags(epochs=2),
           "--progress", "auto", "--log-every", "2", "--out", str(out)]
    with open(tmp_path / "log.txt", "w") as f:  # `> log.txt`: stdout is a file, not a terminal
        done = subprocess.run(cmd, env=subprocess_env(), stdout=f, stderr=subprocess.PIPE,
                              text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    text = (tmp_path / "log.txt").read_text()
    steps = [line for line in text.splitlines() if " step " in line]
    # 64 images / batch 16 = 4 steps per epoch; every 2nd, the last one left to the epoch line.
    assert [line.split("  ")[0] for line in steps] == ["epoch 1/2 step 2/4", "epoch 2/2 step 2/4"]
    assert all(" eta " in line and " run" in line and "lr " in line for line in steps)
    log = (out / "train.log").read_text()
    assert "epoch 1/2 step 2/4" in log and "done" not in log  # the CLI's summary is not a log
    assert "\r" not in text and "\x1b" not in text  # no bar escape codes in a file


def test_missing_tensorboard_is_one_warning_line(tmp_path):
    code = (
        "import sys, builtins\n"
        "real = builtins.__import__\n"
        "def fake(name, *a, **k):\n"
        "    if name.startswith('tensorboard') or name == 'torch.utils.tensorboard':\n"
        "        raise ImportError(name)\n"
        "    return real(name, *a, **k)\n"
        "builtins.__import__ = fake\n"
        "from regnet.cli import main\n"
        f"sys.exit(main(['train', 'resnet20', *{tiny_flags()!r}, '--tensorboard', "
        f"'--out', {str(tmp_path / 'r')!r}]))\n")
    done = subprocess.run([sys.executable, "-c", code], env=subprocess_env(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    warnings = [line for line in done.stderr.splitlines() if "tensorboard" in line.lower()]
    assert len(warnings) == 1 and warnings[0].startswith("warning: ") and \
        "--no-tensorboard" in warnings[0], done.stderr
