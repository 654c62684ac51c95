"""Fine-tuning: a run started from weights evaluates them before training, re-creates a head of
another class count and says so, and freezes or scales the learning rate of named parameters."""
import pytest
import torch

from regnet.cli import main
from regnet.train import train
from regnet.train.checkpoint import load_checkpoint
from test_benchmarks import tiny_folder  # noqa: F401  (a 2-class image folder fixture)
from train_helpers import tiny_cfg, tiny_flags


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("source") / "run"
    summary = train(tiny_cfg(out, epochs=2))
    return out, summary


def test_init_from_a_checkpoint_starts_at_its_accuracy(trained, tmp_path, capsys):
    source, summary = trained
    capsys.readouterr()
    assert main(["train", "resnet20", *tiny_flags(epochs=1), "--init-from",
                 str(source / "best.pt"), "--num-classes", "10",
                 "--out", str(tmp_path / "ft")]) == 0
    out = capsys.readouterr().out
    assert f"initialised from {source / 'best.pt'}" in out and "re-initialised" not in out
    line = next(l for l in out.splitlines() if l.startswith("epoch 0 (initial weights)"))
    assert f"top1 {summary['best_val_top1']:.2f}" in line
    assert load_checkpoint(str(tmp_path / "ft" / "last.pt"))["config"]["init_from"] == \
        str(source / "best.pt")


def test_another_class_count_recreates_the_head_and_says_so(  # noqa: F811 (the fixture)
        trained, tiny_folder, tmp_path, capsys):
    source, _ = trained
    capsys.readouterr()
    summary = train(tiny_cfg(tmp_path / "ft", dataset="imagefolder", data_dir=str(tiny_folder),
                             val_split=4, train_subset=None, init_from=str(source / "best.pt")))
    out = capsys.readouterr().out
    assert "re-initialised head.fc.weight, head.fc.bias for 2 classes" in out
    assert summary["num_classes"] == 2 and "init_val_top1" in summary


def test_freeze_and_lr_scale_keep_the_named_parameters(trained, tmp_path):
    source, _ = trained
    start = load_checkpoint(str(source / "best.pt"))["state_dict"]
    summary = train(tiny_cfg(tmp_path / "ft", init_from=str(source / "best.pt"),
                             freeze=["stem.*", "s1.*"], lr_scale=["s3.*=0"], optimizer="adamw",
                             weight_decay=0.0))
    end = load_checkpoint(str(tmp_path / "ft" / "last.pt"))["train_state"]["model"]
    params = [k for k in end if not k.endswith(("running_mean", "running_var",
                                                "num_batches_tracked"))]
    kept = [k for k in params if k.startswith(("stem.", "s1.", "s3."))]
    assert kept and all(torch.equal(end[k], start[k]) for k in kept)
    moved = [k for k in params if k.startswith(("s2.", "head."))]
    assert all(not torch.equal(end[k], start[k]) for k in moved)
    assert summary["frozen_params"] == sum(start[k].numel() for k in params
                                           if k.startswith(("stem.", "s1.")))


def test_bad_fine_tuning_flags_are_one_line_errors(capsys, tmp_path):
    for flags, message in ((["--freeze", "nothing.*"], "matches no parameter"),
                           (["--lr-scale", "s1.*"], "lr_scale wants PATTERN=F"),
                           (["--optimizer", "lbfgs"], "unknown optimizer 'lbfgs'"),
                           (["--num-classes", "7"], "the digits data has 10 classes"),
                           (["--init-from", str(tmp_path / "none.pt")], "not found")):
        assert main(["train", "resnet20", *tiny_flags(), *flags,
                     "--out", str(tmp_path / "x")]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, err
