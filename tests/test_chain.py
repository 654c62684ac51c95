"""The design-space refinement chain: the rank subset trains first, a killed chain retrains
nothing that finished, later runs cannot change the budget, and the report's verdicts follow
the errors (fake trainings with known errors) and are withheld when the budget does not rank."""
import json
import os

import pytest

import regnet.design.study as study_mod
from regnet.cli import main as cli_main
from regnet.design.chain import (chain_report, create_chain, load_chain, rank_subset, run_chain,
                                 step_verdict)
from regnet.design.study import StudyError, create_study, load_study

SPACES = ("anynetx_a", "anynetx_d", "regnetx")
QUIET = dict(log=lambda *a: None)


def fake_training(monkeypatch, error_of):
    """Replace training by error_of(space, model id, seed); returns the list of trained jobs."""
    calls = []

    def fake(job):
        space = os.path.basename(os.path.normpath(job["study"]))
        mid = job["id"]
        if space.startswith("rank_seed"):
            space, mid = mid.split("-")
        calls.append((space, mid, job["train"]["seed"]))
        return {"id": job["id"], "status": "ok", "error": error_of(space, mid,
                                                                    job["train"]["seed"]),
                "seconds": 0.0}
    monkeypatch.setattr(study_mod, "train_job", fake)
    return calls


def make_chain(tmp_path, n=6, rank_models=6):
    return create_chain(str(tmp_path / "c"), n, preset="smoke", spaces=SPACES,
                        rank_models=rank_models, train={"dataset": "digits"})


def test_rank_subset_round_robin():
    assert rank_subset(["a", "b"], 3, 5) == [["a", "m0000"], ["b", "m0000"], ["a", "m0001"],
                                             ["b", "m0001"], ["a", "m0002"]]
    with pytest.raises(StudyError, match="at least"):
        rank_subset(["a", "b"], 2, 5)


def test_rank_subset_first_then_the_rest_and_resume(tmp_path, monkeypatch):
    calls = fake_training(monkeypatch, lambda s, m, seed: 50.0 + int(m[1:]) + SPACES.index(s))
    make_chain(tmp_path)
    out = str(tmp_path / "c")
    first = run_chain(out, rank_only=True, **QUIET)
    assert first["stopped"] == "rank subset only (asked)" and first["trained"] == 12
    subset = load_chain(out)["rank"]["models"]
    assert sorted(calls) == sorted([(s, m, 0) for s, m in subset] + [(s, m, 1) for s, m in subset])
    # seed-1 errors equal seed-0 errors here: a perfect rank correlation
    assert first["rank"]["rho"] == pytest.approx(1.0) and first["rank"]["n"] == 6
    calls.clear()
    second = run_chain(out, **QUIET)
    assert second["trained"] == 3 * 6 - 6 and all(seed == 0 for _, _, seed in calls)
    assert not set((s, m) for s, m, _ in calls) & set(map(tuple, subset))
    for space in SPACES:
        assert len(load_study(os.path.join(out, space))[2]) == 6
    calls.clear()
    assert run_chain(out, **QUIET)["trained"] == 0 and calls == []


def test_populations_train_one_model_of_each_space_in_turn(tmp_path, monkeypatch):
    # A chain spread over sessions is stopped many times: wherever it stops, every space
    # should hold about as many models as the others, so each step can already be looked at.
    calls = fake_training(monkeypatch, lambda s, m, seed: 50.0 + int(m[1:]))
    make_chain(tmp_path, n=4, rank_models=4)   # the subset: 2 of anynetx_a, 1 of each other
    out = str(tmp_path / "c")
    run_chain(out, rank_only=True, **QUIET)
    calls.clear()
    run_chain(out, **QUIET)
    order = [s for s, _, _ in calls]
    # the smallest space next, ties in the chain's order
    assert order == ["anynetx_d", "regnetx", "anynetx_a"] * 2 + ["anynetx_d", "regnetx"]
    for k in range(1, len(calls) + 1):   # cut after any k: sizes within one of each other
        sizes = [sum(1 for s, _, _ in calls[:k] if s == sp) + (2 if sp == "anynetx_a" else 1)
                 for sp in SPACES]
        assert max(sizes) - min(sizes) <= 1, (k, sizes)


def test_a_budget_that_does_not_rank_stops_the_chain(tmp_path, monkeypatch):
    # seed 1 reverses the order of seed 0: rho = -1
    calls = fake_training(monkeypatch, lambda s, m, seed: (int(m[1:]) + 10 * SPACES.index(s))
                          * (1 if seed == 0 else -1) + 100)
    make_chain(tmp_path)
    out = str(tmp_path / "c")
    result = run_chain(out, min_rank_corr=0.7, **QUIET)
    assert result["rank"]["rho"] == pytest.approx(-1.0)
    assert "does not rank models" in result["stopped"] and len(calls) == 12
    report = chain_report(out)
    assert all(st["verdict"].startswith("not judged") for st in report["steps"])


def test_later_runs_may_not_change_the_budget(tmp_path, monkeypatch):
    fake_training(monkeypatch, lambda s, m, seed: 50.0)
    make_chain(tmp_path, n=3, rank_models=3)
    with pytest.raises(StudyError, match="epochs would change what the chain trains"):
        run_chain(str(tmp_path / "c"), overrides={"epochs": 3}, **QUIET)
    assert run_chain(str(tmp_path / "c"), overrides={"threads": 1}, **QUIET)["trained"] == 12
    with pytest.raises(StudyError, match="already holds a chain"):
        make_chain(tmp_path)


def test_step_verdicts_follow_the_errors():
    base = [50.0 + i for i in range(40)]
    assert step_verdict(base, [e - 20 for e in base])["verdict"].startswith("confirmed: the "
                                                                            "refined space's EDF "
                                                                            "improves")
    assert step_verdict(base, [e + 20 for e in base])["verdict"].startswith("contradicted")
    assert step_verdict(base, list(base))["verdict"].startswith("confirmed: the EDF is kept")
    # much narrower around the same centre: better at the top, worse at the bottom
    narrow = [69.5 + 0.025 * i for i in range(40)]
    assert step_verdict(base, narrow)["verdict"].startswith("mixed")


def test_report_judges_a_chain_that_ranks(tmp_path, monkeypatch):
    # each refinement 5 points better, models of one space 0.5 apart: the budget ranks
    fake_training(monkeypatch, lambda s, m, seed: 80.0 - 5 * SPACES.index(s) + 0.5 * int(m[1:]))
    make_chain(tmp_path, n=20, rank_models=6)
    out = str(tmp_path / "c")
    run_chain(out, **QUIET)
    report = chain_report(out, str(tmp_path / "report"))
    assert [s["n"] for s in report["spaces"]] == [20, 20, 20]
    assert [st["verdict"].split(":")[0] for st in report["steps"]] == ["confirmed", "confirmed"]
    assert all("improves" in st["verdict"] for st in report["steps"])
    few = chain_report(out, str(tmp_path / "few"), min_models=21)
    assert all(st["verdict"] == "not judged yet: 20 and 20 models finished (needs 21 a side)"
               for st in few["steps"])
    md = open(tmp_path / "report" / "report.md").read()
    assert "anynetx_a -> anynetx_d" in md and "**1.000**" in md
    assert os.path.getsize(tmp_path / "report" / "edf.png") > 1000
    with open(tmp_path / "report" / "report.json") as f:
        assert json.load(f)["rank"]["n"] == 6


def test_cli_chain_trains_for_real_and_reports(tmp_path, capsys):
    out = str(tmp_path / "c")
    args = ["study", "chain", out, "--preset", "smoke", "-n", "1", "--dataset", "digits",
            "--rank-models", "3", "--set", "val_split=100", "--set", "train_subset=48",
            "--set", "image_size=null", "--set", "augment=none", "--set", "epochs=1",
            "--set", "batch_size=16", "--set", "threads=1"]
    # 1 epoch on 48 digits does not rank models: the default bar stops after the rank subset
    assert cli_main(args) == 0
    text = capsys.readouterr().out
    assert '"stopped": "' in text and "does not rank models" in text
    assert len(load_study(os.path.join(out, "regnetx"))[2]) == 0
    assert cli_main(["study", "chain", out, "--min-rank-corr", "-1"]) == 0
    text += capsys.readouterr().out
    assert "rank subset 3 models at seed 1" in text and "wrote" in text
    for space in ("anynetx_a", "anynetx_e", "regnetx"):
        assert len(load_study(os.path.join(out, space))[2]) == 1
    assert len(load_study(os.path.join(out, "rank_seed1"))[2]) == 3
    # the recorded budget is the one trained, and a later run cannot change it
    assert load_study(os.path.join(out, "regnetx"))[0]["train"]["train_subset"] == 48
    assert cli_main(["study", "chain", out, "--set", "epochs=2"]) == 2
    assert "would change what the chain trains" in capsys.readouterr().err
    assert cli_main(["study", "chain", out, "-n", "5", "--report-only"]) == 2
    assert "created with -n 1; -n 5 needs a new chain folder" in capsys.readouterr().err
    assert cli_main(["study", "chain", out, "--report-only"]) == 0
    assert os.path.exists(os.path.join(out, "report", "report.md"))


def test_chain_top_writes_a_campaign_of_the_best_models(tmp_path, monkeypatch):
    import torch
    import yaml
    from train_helpers import load_script

    from regnet.models.factory import create_model
    # regnetx's errors fall with the model id, and its best (m0004) diverges: m0003, m0002
    fake_training(monkeypatch, lambda s, m, seed: 60.0 - int(m[1:]) if s == "regnetx" else 55.0)
    make_chain(tmp_path, n=5, rank_models=3)
    out = str(tmp_path / "c")
    run_chain(out, **QUIET)
    results = os.path.join(out, "regnetx", "results.jsonl")
    rows = [json.loads(line) for line in open(results)]
    for r in rows:
        if r["id"] == "m0004":
            r.update(status="diverged", error=None)
    with open(results, "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    # two samples that quantise to one network are trained once: m0001 becomes m0003's twin
    configs_file = os.path.join(out, "regnetx", "configs.jsonl")
    recs = [json.loads(line) for line in open(configs_file)]
    twin = next(r for r in recs if r["id"] == "m0003")["model_args"]
    next(r for r in recs if r["id"] == "m0001")["model_args"] = twin
    with open(configs_file, "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in recs)
    like = tmp_path / "like.yaml"
    like.write_text(yaml.safe_dump({"name": "x", "defaults": {"recipe": "smoke", "lr": 0.2},
                                    "runs": [{"model": "resnet20"}]}))
    target = tmp_path / "best.yaml"
    top = load_script("chain_top")
    assert top.main([out, "--space", "regnetx", "--top", "2", "--seeds", "0,1", "--like",
                     str(like), "--name", "best", "--out", str(target)]) == 0
    spec = load_script("campaign").load_campaign(str(target))
    assert spec["name"] == "best"
    assert [r["name"] for r in spec["runs"]] == ["regnetx_m0003_s0", "regnetx_m0003_s1",
                                                 "regnetx_m0002_s0", "regnetx_m0002_s1"]
    configs = {r["id"]: r for r in load_study(os.path.join(out, "regnetx"))[1]}
    run = spec["runs"][0]["config"]
    assert run["model_args"] == configs["m0003"]["model_args"] and run["seed"] == 0
    assert run["recipe"] == "smoke" and run["lr"] == 0.2   # the recipe of --like
    net = create_model(run["model"], **run["model_args"])
    assert net(torch.zeros(1, 3, 32, 32)).shape[-1] == 1000
    assert "regnetx/m0003: chain error 57.00%" in target.read_text()
    assert "(the same network as m0001)" in target.read_text()
    assert [r["id"] for r in top.top_models(out, "regnetx", 3)] == ["m0003", "m0002", "m0000"]
    with pytest.raises(SystemExit, match="no space"):
        top.main([out, "--space", "regnety", "--like", str(like), "--name", "b", "--out",
                  str(target)])
    # one study folder (a space sampled beside the chain, as the CIFAR RegNetY population is)
    study = os.path.join(out, "regnetx")
    assert top.main([study, "--space", "regnetx", "--top", "1", "--like", str(like), "--name",
                     "b", "--out", str(target)]) == 0
    spec = load_script("campaign").load_campaign(str(target))
    assert [r["name"] for r in spec["runs"]] == ["regnetx_m0003_s0"]
    assert "regnetx/m0003: study error 57.00%" in target.read_text()
    with pytest.raises(SystemExit, match="a study of 'regnetx', not of 'regnety'"):
        top.main([study, "--space", "regnety", "--like", str(like), "--name", "b", "--out",
                  str(target)])
    # --twins: the best RegNetY's draw without SE (the same sampled parameters in RegNetX)
    # trains beside it and the report compares the two
    ys = str(tmp_path / "y")
    create_study(ys, "regnety", n=5, preset="smoke", seed=0, train={"dataset": "digits"})
    x_params = {json.dumps(r["params"], sort_keys=True): r["id"] for r in recs}
    y_recs = load_study(ys)[1]
    best = next(r for r in y_recs if json.dumps(r["params"], sort_keys=True) in x_params)
    twin_id = x_params[json.dumps(best["params"], sort_keys=True)]
    with open(os.path.join(ys, "results.jsonl"), "w") as f:
        f.writelines(json.dumps({"id": r["id"], "status": "ok", "seconds": 0.0,
                                 "error": 40.0 if r is best else 50.0}) + "\n" for r in y_recs)
    assert top.main([ys, "--space", "regnety", "--seeds", "0,1", "--twins", study, "--like",
                     str(like), "--name", "y", "--out", str(target)]) == 0
    spec = load_script("campaign").load_campaign(str(target))
    names = [r["name"] for r in spec["runs"]]
    assert names == [f"regnety_{best['id']}_s0", f"regnety_{best['id']}_s1",
                     f"regnetx_{twin_id}_s0", f"regnetx_{twin_id}_s1"]
    x_run, y_run = spec["runs"][2]["config"], spec["runs"][0]["config"]
    assert x_run["model_args"] == {**y_run["model_args"], "se_ratio": 0.0}
    assert y_run["model_args"]["se_ratio"] == 0.25
    assert spec["compare"] == [[f"regnety_{best['id']}", f"regnetx_{twin_id}"]]
    assert f"twin: regnetx/{twin_id} (the same draw)" in target.read_text()
