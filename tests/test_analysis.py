"""`regnet analyze features / probe` on checkpoints in the training engine's format."""
import json
import os

import pytest
import torch
from PIL import Image

import regnet
from regnet.analysis import block_outputs, last_blocks
from regnet.cli import main

FORMAT = "regnet-ckpt-1"


def _checkpoint(tmp_path, name, **extra):
    torch.manual_seed(0)
    model = regnet.create_model(name)
    ckpt = {"format": FORMAT, "model": name, "model_args": {}, "num_classes": 10,
            "state_dict": model.state_dict(), "image_size": 32,
            "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], **extra}
    path = tmp_path / f"{name}.pt"
    torch.save(ckpt, path)
    return str(path)


def _png_ok(path):
    with Image.open(path) as im:
        assert im.format == "PNG" and im.width > 200 and im.height > 150
        # not a blank canvas
        assert len(set(im.convert("L").tobytes())) > 20


def test_block_outputs_and_memory():
    model = regnet.create_model("regnet20_gru").eval()
    recs = block_outputs(model, torch.randn(1, 3, 16, 16))
    assert [r.name for r in recs][:4] == ["s1.b1", "s1.b2", "s1.b3", "s2.b1"]
    assert all(r.hidden is not None and r.hidden.shape == r.output.shape for r in recs)
    assert (recs[0].hidden >= 0).all()   # after BN_h + ReLU
    plain = block_outputs(regnet.create_model("resnet20").eval(), torch.randn(1, 3, 16, 16),
                          ["s3.b3"], pool=True)
    assert plain[0].hidden is None and plain[0].output.shape == (1, 64)
    assert last_blocks(model, 2) == ["s3.b2", "s3.b3"]
    with pytest.raises(ValueError, match="has 9 blocks"):
        last_blocks(model, 10)


def test_analyze_features_writes_a_png(tmp_path, capsys):
    a = _checkpoint(tmp_path, "resnet20")
    b = _checkpoint(tmp_path, "regnet20_lstm")
    img = tmp_path / "x.png"
    Image.fromarray((torch.rand(40, 48, 3) * 255).to(torch.uint8).numpy()).save(img)
    out = tmp_path / "fig.png"
    assert main(["analyze", "features", a, "--compare", b, "--image", str(img),
                 "--out", str(out), "--stage", "2"]) == 0
    _png_ok(out)
    text = capsys.readouterr().out
    assert "resnet20: cosine" in text and "regnet20_lstm: cosine" in text
    # bad input: one clear line, exit 2
    assert main(["analyze", "features", a, "--image", str(tmp_path / "none.jpg"),
                 "--out", str(out)]) == 2
    assert main(["analyze", "features", a, "--image", str(img), "--out", str(out),
                 "--stage", "7"]) == 2
    err = capsys.readouterr().err
    assert "none.jpg not found" in err and "--stage 7" in err


def test_analyze_probe_writes_table_json_and_png(tmp_path, capsys):
    a = _checkpoint(tmp_path, "resnet20")
    b = _checkpoint(tmp_path, "regnet20_rnn")
    out = tmp_path / "probe"
    assert main(["analyze", "probe", a, "--compare", b, "--dataset", "digits",
                 "--val-split", "100", "--train-images", "120", "--eval-images", "60",
                 "--last", "2", "--out", str(out)]) == 0
    _png_ok(out / "probe.png")
    result = json.loads((out / "probe.json").read_text())
    assert [r["model"] for r in result["runs"]] == ["resnet20", "regnet20_rnn"]
    for run in result["runs"]:
        assert [blk["block"] for blk in run["blocks"]] == ["s3.b2", "s3.b3"]
        assert run["train_images"] == 120 and run["eval_images"] == 60
        for blk in run["blocks"]:
            assert 0.0 <= blk["probe_top1"] <= 1.0 and blk["head_top1"] is not None
    assert "| regnet20_rnn | s3.b3 | 64 |" in (out / "probe.md").read_text()
    assert main(["analyze", "probe", str(tmp_path / "missing.pt"), "--dataset", "digits",
                 "--out", str(out)]) == 2
    assert "not found" in capsys.readouterr().err


def test_not_a_checkpoint_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    torch.save({"weights": 1}, bad)
    img = tmp_path / "x.png"
    Image.new("RGB", (32, 32)).save(img)
    assert main(["analyze", "features", str(bad), "--image", str(img),
                 "--out", str(tmp_path / "o.png")]) == 2
    assert "not a regnet checkpoint" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "o.png")
