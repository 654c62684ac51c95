"""The trained CIFAR zoo: pretrained tags whose files are committed in this repository
(`repo:` urls), checked by sha256, loading strictly, reporting what their runs measured; and,
where the cifar10-jpg data is on this machine, reproducing that val top-1 with `regnet eval`."""
import dataclasses
import json
import os

import pytest
import torch

import regnet
from regnet.complexity import complexity
from regnet.design.study import load_study
from regnet.pretrained import PretrainedError, _table, fetch, repo_root
from regnet.registry import get_entry

ZOO = [t for t in _table().values() if t.url.startswith("repo:")]
DATA = os.path.join(repo_root() or ".", "..", "shared", "data", "cifar10-jpg", "train")


def test_the_zoo_has_the_finished_table3_nets():
    assert {t.model for t in ZOO} >= {"resnet20", "se_resnet20", "regnet20_gru"}


def _same_network(name: str, trained_model: str, trained_args: dict) -> bool:
    """Whether the registered `name` builds what a run of `trained_model(**trained_args)`
    trained: the same name; a registered net with its config overridden (the depth campaign
    trains `iresnet164` with `depths=[6,6,6]`, which is `iresnet56`); or (a network found by a
    design study, trained as `anynet` with its sampled stages) the same AnyNet stages."""
    if trained_model == name and not trained_args:
        return True
    if trained_model != "anynet":
        overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in trained_args.items()}
        return dataclasses.replace(get_entry(trained_model).cfg, **overrides) \
            == get_entry(name).cfg
    cfg = get_entry(name).cfg
    stages = dataclasses.asdict(cfg.to_anynet() if hasattr(cfg, "to_anynet") else cfg)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in stages.items()} == trained_args


def test_a_registered_net_with_overridden_depths_is_the_net_of_that_depth():
    assert _same_network("iresnet56", "iresnet164", {"depths": [6, 6, 6]})
    assert not _same_network("iresnet110", "iresnet164", {"depths": [6, 6, 6]})
    assert not _same_network("iresnet56", "preact_resnet164", {"depths": [6, 6, 6]})
    overridden = regnet.create_model("iresnet164", depths=(6, 6, 6))
    assert complexity("iresnet56")["params"] == complexity(overridden)["params"]


@pytest.mark.parametrize("name, study, model_id", [
    ("regnetx_3_6mf_cifar", ("cifar_chain", "regnetx"), "m0055"),
    ("regnety_3_5mf_cifar", ("regnety",), "m0004")])
def test_a_cifar_regnet_found_by_a_design_study_is_the_sampled_network(name, study, model_id):
    folder = os.path.join(repo_root() or ".", "benchmarks", "results", "design_chain", *study)
    rec = next(r for r in load_study(folder)[1] if r["id"] == model_id)
    assert _same_network(name, rec["model"], rec["model_args"])
    assert not _same_network("regnetx_200mf_cifar", rec["model"], rec["model_args"])
    counted = complexity(name)
    assert (counted["params"], counted["flops"]) == (rec["complexity"]["params"],
                                                      rec["complexity"]["flops"])
    size = float(name.split("_", 1)[1].split("mf")[0].replace("_", "."))    # "3_6mf" -> 3.6
    assert round(counted["flops"] / 1e6, 1) == size


@pytest.mark.parametrize("tag", ZOO, ids=[t.name for t in ZOO])
def test_a_zoo_tag_is_a_checked_repository_file_that_loads(tag):
    path = fetch(tag)
    sidecar = json.load(open(os.path.splitext(path)[0] + ".json"))
    assert _same_network(tag.model, sidecar["model"], sidecar["model_args"])
    assert sidecar["val_top1"] == pytest.approx(tag.top1)
    assert sidecar["recipe"] in tag.recipe and "split_seed 0" in tag.split
    assert sidecar["config"]["val_split"] == 5000 and sidecar["config"]["split_seed"] == 0
    assert tuple(sidecar["mean"]) == pytest.approx(tag.mean, abs=1e-6)
    model = regnet.create_model(tag.model, num_classes=10, pretrained=tag.name).eval()
    with torch.no_grad():
        out = model(torch.zeros(2, 3, 32, 32))
    assert out.shape == (2, 10) and torch.isfinite(out).all()


def test_a_changed_or_missing_zoo_file_is_refused(tmp_path, monkeypatch):
    tag = ZOO[0]
    wrong = dataclasses.replace(tag, sha256="0" * 64)
    with pytest.raises(PretrainedError, match="does not match the sha256.*git checkout"):
        fetch(wrong)
    gone = dataclasses.replace(tag, url="repo:benchmarks/results/nowhere/best.safetensors")
    with pytest.raises(PretrainedError, match="missing from this checkout"):
        fetch(gone)
    import regnet.pretrained as pretrained
    monkeypatch.setattr(pretrained, "repo_root", lambda: None)
    with pytest.raises(PretrainedError, match="not a source checkout"):
        fetch(tag)


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir(DATA), reason="../shared/data/cifar10-jpg not here")
@pytest.mark.parametrize("tag", ZOO, ids=[t.name for t in ZOO])
def test_a_zoo_tag_reproduces_its_val_top1_with_regnet_eval(tag, capsys):
    from regnet.cli import main
    assert main(["eval", fetch(tag), "--data-dir", DATA, "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["images"] == 5000 and result["split"] == "val"
    assert abs(result["top1"] - tag.top1) <= 0.05, result
