"""`regnet export`: each format written atomically and, with --check, equal to eager."""
import importlib.util
import json
import os

import pytest

from regnet.cli import main
from train_helpers import tiny_flags

FORMATS = ["pt2", "safetensors"] + (
    ["onnx"] if importlib.util.find_spec("onnxscript") else [])


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "run"
    assert main(["train", "resnet20", *tiny_flags(), "--out", str(out)]) == 0
    return out / "best.pt"


@pytest.mark.parametrize("fmt", FORMATS)
def test_export_checks_against_eager(ckpt, fmt, tmp_path, capsys):
    dst = tmp_path / f"m.{fmt}"
    capsys.readouterr()
    assert main(["export", str(ckpt), "--format", fmt, "--out", str(dst), "--dynamic-batch",
                 "--check", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert dst.exists() and result["max_abs_diff"] <= 1e-4, result
    assert result["input"] == [2, 3, 16, 16] and result["dynamic_batch"]
    assert not [n for n in os.listdir(tmp_path) if ".tmp-" in n]
    if fmt == "onnx" and importlib.util.find_spec("onnxruntime"):
        assert result["checked_with"].startswith("onnxruntime")


def test_export_prints_the_difference(ckpt, tmp_path, capsys):
    assert main(["export", str(ckpt), "--format", "pt2", "--out", str(tmp_path / "a.pt2"),
                 "--check"]) == 0
    text = capsys.readouterr().out
    assert "wrote" in text and "check: max |exported - eager| =" in text


def test_onnx_without_the_extra_says_which(ckpt, tmp_path, capsys, monkeypatch):
    import regnet.extras as extras
    real = extras.importlib.import_module

    def missing(name, *a):
        if name.startswith("onnx"):
            raise ImportError(name)
        return real(name, *a)
    monkeypatch.setattr(extras.importlib, "import_module", missing)
    assert main(["export", str(ckpt), "--format", "onnx", "--out", str(tmp_path / "a.onnx")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "regnet-lab[export]" in err, err
    assert not (tmp_path / "a.onnx").exists()
