"""The core install (torch, numpy, Pillow, PyYAML, safetensors) trains, evaluates and converts
without the optional packages; a command that needs one names its extra in one line."""
import subprocess
import sys

from train_helpers import SRC, subprocess_env, tiny_flags

# Importing any of these fails in the child, as if it were not installed.
BLOCK = "import sys\nfor m in ('matplotlib', 'sklearn', 'scipy', 'tensorboard', 'ray'):\n" \
        "    sys.modules[m] = None\n"


def run_without_extras(code: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCK + code], cwd=cwd, env=subprocess_env(),
                          capture_output=True, text=True, timeout=300)


def test_training_and_eval_need_no_optional_package(tmp_path):
    flags = tiny_flags(tensorboard=True) + ["--out", str(tmp_path / "run")]
    code = ("from regnet.cli import main\n"
            f"assert main(['train', 'resnet20', *{flags!r}]) == 0\n"
            f"assert main(['eval', {str(tmp_path / 'run' / 'best.safetensors')!r}]) == 0\n")
    proc = run_without_extras(code, tmp_path)
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning:")]
    assert any("pip install 'regnet-lab[plots]'" in w for w in warnings), proc.stderr
    assert any("regnet-lab[tensorboard]" in w and "--no-tensorboard" in w for w in warnings)
    assert len(warnings) == 2  # each said once, not once per epoch
    assert not (tmp_path / "run" / "curves.png").exists()
    assert (tmp_path / "run" / "metrics.csv").exists()


def test_a_command_that_needs_an_extra_says_which(tmp_path):
    code = ("from regnet.cli import main\n"
            "raise SystemExit(main(['study', 'analyze', 'nowhere', '--out', 'x']))\n")
    proc = run_without_extras(code, tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert "needs matplotlib" in proc.stderr and "regnet-lab[plots]" in proc.stderr


def test_the_package_ships_its_data_files():
    import pathlib
    package = pathlib.Path(SRC) / "regnet"
    text = (package.parent.parent / "pyproject.toml").read_text()
    for data in ("recipes/*.yaml", "pretrained.yaml", "data/digits.npz", "py.typed",
                 "kernels/*.cpp"):
        assert f'"{data}"' in text and list(package.glob(data)), data
