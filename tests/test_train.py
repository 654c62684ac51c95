"""The training API: config validation, schedules, optimiser groups, checkpoints, outputs,
and the errors that must stop a run cleanly."""
import json
import os

import pytest
import torch
import yaml

from regnet.train import (NonFiniteLossError, RunDirError, TrainConfig, load_model, load_recipe,
                          train)
from regnet.train.checkpoint import load_checkpoint
from regnet.train.optim import lr_at, param_groups
from regnet.train.recipes import list_recipes
from train_helpers import tiny_cfg


def test_from_dict_rejects_unknown_keys_naming_valid_ones():
    with pytest.raises(ValueError, match=r"unknown config key\(s\) learning_rate; valid keys: "
                                         r"model, model_args, dataset"):
        TrainConfig.from_dict({"learning_rate": 0.1})


def test_bad_values():
    with pytest.raises(ValueError, match="epochs must be >= 0, got -1"):
        TrainConfig(epochs=-1)
    with pytest.raises(ValueError, match="unknown schedule 'poly'"):
        TrainConfig(schedule="poly")


def test_every_shipped_recipe_is_a_valid_config():
    names = list_recipes()
    assert {"self_regulated_cifar", "self_regulated_imagenet", "iresnet_imagenet", "iresnet_cifar",
            "regnet_zoo", "design_space", "cifar10_fast", "demo"} <= set(names)
    for name in names:
        cfg = TrainConfig.from_dict(load_recipe(name))
        assert cfg.recipe == name and cfg.epochs > 0
    sr = TrainConfig.from_dict(load_recipe("self_regulated_cifar"))
    assert (sr.batch_size, sr.epochs, sr.lr, sr.milestones, sr.weight_decay) == (
        64, 150, 0.1, (80,), 1e-4)
    ir = TrainConfig.from_dict(load_recipe("iresnet_imagenet"))
    assert (ir.batch_size, ir.epochs, ir.milestones) == (256, 90, (30, 60, 80))
    zoo = TrainConfig.from_dict({**load_recipe("regnet_zoo"), "batch_size": 1024})
    assert zoo.effective_lr == pytest.approx(0.8) and zoo.nesterov and zoo.warmup_epochs == 5


def test_recipe_with_unknown_key(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("epochs: 3\nlr_decay: 0.1\n")
    with pytest.raises(ValueError, match="unknown config key.*lr_decay; valid keys: model"):
        load_recipe(str(path))
    with pytest.raises(FileNotFoundError, match="unknown recipe 'nope'; shipped recipes: "):
        load_recipe("nope")


def test_schedules():
    cfg = TrainConfig(lr=1.0, epochs=10, schedule="multistep", milestones=(5, 8))
    assert [lr_at(cfg, s * 10, 10) for s in (0, 4, 5, 7, 8, 9)] == pytest.approx(
        [1, 1, 0.1, 0.1, 0.01, 0.01])
    warm = TrainConfig(lr=1.0, epochs=10, schedule="cosine", warmup_epochs=2, warmup_factor=0.0)
    assert lr_at(warm, 0, 10) == 0 and lr_at(warm, 10, 10) == pytest.approx(0.5)
    assert lr_at(warm, 20, 10) == pytest.approx(1.0)
    assert lr_at(warm, 60, 10) == pytest.approx(0.5) and lr_at(warm, 100, 10) == pytest.approx(0)
    lin = TrainConfig(lr=1.0, epochs=4, schedule="linear")
    assert lr_at(lin, 20, 10) == pytest.approx(0.5)
    step = TrainConfig(lr=1.0, epochs=9, schedule="step", step_size=3, gamma=0.5)
    assert lr_at(step, 65, 10) == pytest.approx(0.25)


def test_weight_decay_exempts_norm_and_bias():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4),
                                torch.nn.Flatten(), torch.nn.Linear(4, 2))
    decay, free = param_groups(model, 5e-4, True)
    assert [p.ndim for p in decay["params"]] == [4, 2] and free["weight_decay"] == 0
    assert len(free["params"]) == 4
    (only,) = param_groups(model, 5e-4, False)
    assert len(only["params"]) == 6


def test_train_writes_outputs_and_loadable_checkpoints(tmp_path):
    out = tmp_path / "run"
    summary = train(tiny_cfg(out, epochs=2, ema_decay=0.9, grad_clip=1.0, tensorboard=True))
    for name in ("config.yaml", "metrics.jsonl", "metrics.csv", "summary.json", "curves.png",
                 "last.pt", "best.pt", "best.safetensors", "best.json", "tb"):
        assert (out / name).exists(), name
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    assert {"lr", "train_loss", "train_top1", "val_loss", "val_top1", "val_top5",
            "images_per_sec", "seconds"} <= set(rows[0])
    assert summary == json.loads((out / "summary.json").read_text())
    assert summary["params"] == 272570 and summary["epochs"] == 2
    assert summary["best_val_top1"] == max(r["val_top1"] for r in rows)
    assert yaml.safe_load((out / "config.yaml").read_text())["ema_decay"] == 0.9
    raw = torch.load(out / "last.pt", weights_only=True)
    assert raw["format"] == "regnet-ckpt-1" and raw["train_state"]["epoch"] == 2
    model, meta = load_model(str(out / "best.pt"))
    assert not model.training and meta["model"] == "resnet20" and meta["num_classes"] == 10
    from safetensors.torch import load_file
    st = load_file(str(out / "best.safetensors"))
    assert torch.equal(st["head.fc.weight"], model.state_dict()["head.fc.weight"])
    side = json.loads((out / "best.json").read_text())
    assert side["model"] == "resnet20" and side["dataset"] == "digits"
    # A finished run re-run into the same folder returns its summary without training more.
    assert train(tiny_cfg(out, epochs=2, ema_decay=0.9, grad_clip=1.0))["epochs"] == 2


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    out = tmp_path / "run"
    # lr x 1e30 from epoch 2 on: epoch 1 trains, epoch 2 diverges (a resumed run keeps its
    # config, so the blow-up is in the schedule, not in a changed --lr).
    blow_up = dict(schedule="multistep", milestones=[1], gamma=1e30)
    train(tiny_cfg(out, **blow_up))
    before = load_checkpoint(str(out / "last.pt"))["train_state"]["step"]
    with pytest.raises(NonFiniteLossError, match=r"loss became nan at step \d+ \(epoch 2.*last "
                                                 r"good checkpoint is .*last.pt \(epoch 1\)"):
        train(tiny_cfg(out, epochs=2, **blow_up))
    ckpt = load_checkpoint(str(out / "last.pt"))
    assert ckpt["epoch"] == 1 and ckpt["train_state"]["step"] == before
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values()
               if v.dtype.is_floating_point)


def test_out_dir_of_another_model_is_refused(tmp_path):
    out = tmp_path / "run"
    train(tiny_cfg(out, epochs=0))
    with pytest.raises(RunDirError, match="holds a run of resnet20 on digits, not se_resnet20"):
        train(tiny_cfg(out, model="se_resnet20"))


def test_batch_larger_than_dataset(tmp_path):
    with pytest.raises(ValueError, match="batch size 128 is larger than the training set "
                                         r"\(64 images\)"):
        train(tiny_cfg(tmp_path / "run", batch_size=128))


def test_validation_split_does_not_move_with_the_run_seed(monkeypatch, tmp_path):
    # Runs of several seeds must be scored on one fixed split: `seed` varies initialisation
    # and batch order, `split_seed` alone chooses the validation / subset images.
    import regnet.train.trainer as trainer
    from regnet.train import TrainConfig

    seen = []

    class Stop(Exception):
        pass

    def record(name, data_dir, val_split, seed, **kw):
        seen.append(seed)
        raise Stop

    monkeypatch.setattr(trainer, "build_datasets", record)
    for seed in (0, 3):
        with pytest.raises(Stop):
            trainer.train(TrainConfig(dataset="digits", val_split=50, seed=seed,
                                      out=str(tmp_path / f"s{seed}"), tensorboard=False))
    with pytest.raises(Stop):
        trainer.train(TrainConfig(dataset="digits", val_split=50, split_seed=7,
                                  out=str(tmp_path / "split7"), tensorboard=False))
    assert seen == [0, 0, 7]
