"""benchmarks/campaign.py: a campaign killed part-way and run again trains only what is missing,
and a run's kept checkpoint resumes it on another machine."""
import json
import os
import signal
import subprocess
import time

import pytest
import yaml

from train_helpers import PYTHON, TINY, subprocess_env

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")
SETTINGS = {k: v for k, v in TINY.items() if k not in ("model", "threads")}


def write_campaign(tmp_path, runs, **defaults):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"name": "tiny", "defaults": {**SETTINGS, **defaults},
                                    "runs": runs}))
    return path


def campaign_cmd(path, tmp_path, *extra):
    return [PYTHON, os.path.join(BENCH, "campaign.py"), str(path), "--results",
            str(tmp_path / "results"), "--runs-dir", str(tmp_path / "runs"), *extra]


def test_a_killed_campaign_trains_only_the_missing_run(tmp_path):
    path = write_campaign(tmp_path, [{"model": "resnet20", "seed": 0},
                                     {"model": "resnet20", "seed": 1, "epochs": 30}])
    results, runs = tmp_path / "results", tmp_path / "runs"
    proc = subprocess.Popen(campaign_cmd(path, tmp_path, "--lanes", "1"), env=subprocess_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 240
    while not (results / "resnet20_s0" / "summary.json").exists():
        assert proc.poll() is None and time.monotonic() < deadline, "the first run never finished"
        time.sleep(0.05)
    while not (runs / "resnet20_s1").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the runner and the training it started
    proc.wait()
    done = results / "resnet20_s0"
    assert {p.name for p in done.iterdir()} == {"summary.json", "metrics.jsonl", "config.yaml",
                                                "best.safetensors", "best.json", "run.json"}
    record = json.loads((done / "run.json").read_text())
    assert record["command"].startswith("regnet train resnet20 ") and "--seed 0" in \
        record["command"]
    # the record names the CPU's kernel level: one model name covers AVX2-only and bf16 parts
    assert record["machine"]["cpu_capability"] and "bf16_native" in record["machine"]
    kept = {p.name: p.read_bytes() for p in done.iterdir()}
    assert not (results / "resnet20_s1" / "summary.json").exists()

    # Again, as on a fresh machine (no run folders), with the second run made short.
    import shutil
    shutil.rmtree(runs)
    path = write_campaign(tmp_path, [{"model": "resnet20", "seed": 0},
                                     {"model": "resnet20", "seed": 1, "epochs": 2}])
    out = subprocess.run(campaign_cmd(path, tmp_path), env=subprocess_env(), check=True,
                         capture_output=True, text=True, timeout=300).stdout
    assert "1 of 2 runs done, 1 to run" in out and "2 of 2 runs done" in out
    assert not (runs / "resnet20_s0").exists(), "the finished run trained again"
    assert {p.name: p.read_bytes() for p in done.iterdir()} == kept
    summary = json.loads((results / "resnet20_s1" / "summary.json").read_text())
    assert summary["epochs"] == 2
    listing = subprocess.run(campaign_cmd(path, tmp_path, "--list"), env=subprocess_env(),
                             check=True, capture_output=True, text=True).stdout
    assert listing.splitlines() == ["resnet20_s0                  done",
                                    "resnet20_s1                  done", "2 of 2 done"]


def test_a_kept_checkpoint_resumes_the_run_on_a_fresh_machine(tmp_path):
    path = write_campaign(tmp_path, [{"model": "resnet20", "seed": 3, "epochs": 1}])
    env = subprocess_env()
    subprocess.run(campaign_cmd(path, tmp_path), env=env, check=True, capture_output=True,
                   timeout=300)
    # What a session that was stopped after epoch 1 of a 2-epoch run leaves committed.
    results = tmp_path / "results" / "resnet20_s3"
    (results / "partial").mkdir()
    os.replace(tmp_path / "runs" / "resnet20_s3" / "last.pt", results / "partial" / "last.pt")
    os.remove(results / "summary.json")
    import shutil
    shutil.rmtree(tmp_path / "runs")
    # A run listed before it that has not started: the started one goes first.
    path = write_campaign(tmp_path, [{"model": "resnet20", "seed": 4, "epochs": 1},
                                     {"model": "resnet20", "seed": 3, "epochs": 2}])
    listing = subprocess.run(campaign_cmd(path, tmp_path, "--list"), env=env, check=True,
                             capture_output=True, text=True).stdout
    # The missing run's pace is its model's finished runs' (none here); the partial's, its own.
    lines = listing.splitlines()
    assert lines[0].split() == ["resnet20_s4", "missing"]
    assert lines[1].startswith("resnet20_s3                  partial (epoch 1 of 2)  ~")
    assert lines[1].endswith(" min left")
    assert lines[2].startswith("0 of 2 done; 2 to train, ~")
    assert lines[2].endswith("for the 1 with a pace (their own last epochs, or their model's "
                             "finished runs)")
    out = subprocess.run(campaign_cmd(path, tmp_path, "--lanes", "1"), env=env, check=True,
                         capture_output=True, text=True, timeout=300).stdout
    assert "(resuming epoch 1)" in out
    assert out.index("start resnet20_s3") < out.index("start resnet20_s4")
    rows = [json.loads(line) for line in (results / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    assert not (results / "partial").exists()


def test_stop_after_ends_the_run_at_an_epoch_boundary_with_its_checkpoint_kept(tmp_path):
    path = write_campaign(tmp_path, [{"model": "resnet20", "seed": 0, "epochs": 200},
                                     {"model": "resnet20", "seed": 1}])
    out = subprocess.run(campaign_cmd(path, tmp_path, "--lanes", "1", "--stop-after", "0.01"),
                         env=subprocess_env(), check=True, capture_output=True, text=True,
                         timeout=300).stdout
    assert "stopped resnet20_s0 after epoch " in out, out
    assert "0 of 2 runs done; stopped part-way: resnet20_s0" in out
    assert "start resnet20_s1" not in out and not (tmp_path / "runs" / "resnet20_s1").exists()
    results = tmp_path / "results" / "resnet20_s0"
    assert not (results / "summary.json").exists()
    import torch
    epoch = torch.load(results / "partial" / "last.pt", map_location="cpu",
                       weights_only=False)["epoch"]
    assert 1 <= epoch < 200
    assert f"after epoch {epoch} " in out
    listing = subprocess.run(campaign_cmd(path, tmp_path, "--list"), env=subprocess_env(),
                             check=True, capture_output=True, text=True).stdout
    assert listing.splitlines()[0].startswith(
        f"resnet20_s0                  partial (epoch {epoch} of 200)")


def test_a_campaign_file_is_checked_before_anything_runs(tmp_path):
    bad = write_campaign(tmp_path, [{"model": "resnet20", "seed": 0, "learning_rate": 1}])
    proc = subprocess.run(campaign_cmd(bad, tmp_path), env=subprocess_env(),
                          capture_output=True, text=True)
    assert proc.returncode != 0 and "run resnet20_s0: unknown config key(s) learning_rate" in \
        proc.stderr
    twice = write_campaign(tmp_path, [{"model": "resnet20"}, {"model": "resnet20"}])
    proc = subprocess.run(campaign_cmd(twice, tmp_path), env=subprocess_env(),
                          capture_output=True, text=True)
    assert "two runs are named 'resnet20_s0'" in proc.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("text,cores", [("0-1", [0, 1]), ("0,2-3", [0, 2, 3])])
def test_cores(text, cores):
    import importlib.util
    spec = importlib.util.spec_from_file_location("campaign", os.path.join(BENCH, "campaign.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module._parse_cores(text) == cores


def _load(name):
    import importlib.util
    spec = importlib.util.spec_from_file_location(name, os.path.join(BENCH, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_welch_against_published_t_values():
    import regnet.stats as welch
    # Student's t: two-sided p of t = 2 at 5 df, and the 97.5% quantiles at 4 and 30 df
    # (statistical tables: 0.1019, 2.776, 2.042).
    assert abs(welch.t_sf2(2.0, 5) - 0.10194) < 1e-5
    assert abs(welch.t_quantile(0.975, 4) - 2.77645) < 1e-4
    assert abs(welch.t_quantile(0.975, 30) - 2.04227) < 1e-4
    r = welch.welch([89.0, 89.5, 88.8], [88.1, 88.7, 88.4])
    assert abs(r["t"] - 2.58492) < 1e-4 and abs(r["df"] - 3.872) < 1e-3
    assert abs(r["p"] - 0.06301) < 1e-4 and r["ci95"][0] < 0 < r["ci95"][1]
    assert welch.verdict(r).startswith("not confirmed")
    assert welch.verdict({**r, "p": 0.01}) == "confirmed at this budget"
    assert welch.verdict({**r, "p": 0.01, "diff": -1}) == "contradicted at this budget"


def test_the_report_compares_groups_of_seeds(tmp_path):
    campaign = _load("campaign")
    results = tmp_path / "results"
    runs = [{"model": m, "seed": s} for m in ("resnet20", "regnet20_gru") for s in (0, 1, 2)]
    path = write_campaign(tmp_path, runs)
    spec = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**spec, "paper": {"resnet20": "91.62",
                                                      "regnet20_gru": "92.58"}}))
    finals = {"resnet20": [88.0, 88.5, 88.2], "regnet20_gru": [89.0, 89.4, 89.1]}
    for m, values in finals.items():
        for s, v in enumerate(values):
            (results / f"{m}_s{s}").mkdir(parents=True)
            (results / f"{m}_s{s}" / "summary.json").write_text(json.dumps(
                {"final_val_top1": v, "best_val_top1": v + 0.1, "wall_seconds": 600,
                 "params": 1}))
            (results / f"{m}_s{s}" / "metrics.jsonl").write_text("".join(
                json.dumps({"epoch": e, "val_top1": v - 2 + e + s}) + "\n" for e in (1, 2)))
    camp = campaign.Campaign(campaign.load_campaign(str(path)), str(results), str(tmp_path))
    out = campaign.report(camp, "resnet20", str(tmp_path / "report"))
    gru = out["groups"][1]
    assert gru["label"] == "regnet20_gru" and gru["welch"]["diff"] > 0.9
    text = (tmp_path / "report.md").read_text()
    assert "| regnet20_gru | 3 |" in text and "confirmed at this budget" in text
    assert "| 92.58 (+0.96) |" in text and "| baseline | 91.62 |" in text
    # The figure beside the table (the `plots` extra is part of `dev`).
    assert "![tiny](report.png)" in text
    assert (tmp_path / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_groups_of_one_model_with_other_arguments_are_named_by_their_runs(tmp_path):
    # A design study's best nets all train as `anynet`; the report must tell them apart.
    campaign = _load("campaign")
    results = tmp_path / "results"
    nets = {"regnetx_m0055": [1, 3, 8, 1], "regnetx_m0089": [1, 2, 6, 3]}
    runs = [{"model": "anynet", "model_args": {"depths": d}, "seed": s, "name": f"{n}_s{s}"}
            for n, d in nets.items() for s in (0, 1)]
    path = write_campaign(tmp_path, runs)
    for i, run in enumerate(runs):
        (results / run["name"]).mkdir(parents=True)
        (results / run["name"] / "summary.json").write_text(json.dumps(
            {"final_val_top1": 80.0 + i, "best_val_top1": 80.0 + i, "wall_seconds": 60,
             "params": 1}))
    camp = campaign.Campaign(campaign.load_campaign(str(path)), str(results), str(tmp_path))
    out = campaign.report(camp, None, str(tmp_path / "report"))
    assert [g["label"] for g in out["groups"]] == ["regnetx_m0055", "regnetx_m0089"]
    assert [g["final"] for g in out["groups"]] == [[80.0, 81.0], [82.0, 83.0]]
    assert "| regnetx_m0089 | 2 |" in (tmp_path / "report.md").read_text()


def test_the_figures_curve_is_the_mean_over_the_seeds_that_reached_each_epoch(tmp_path):
    figure = _load("campaign_figure")
    for seed, rows in enumerate(([(1, 50.0), (2, 60.0)], [(1, 52.0)])):
        (tmp_path / f"r{seed}").mkdir()
        (tmp_path / f"r{seed}" / "metrics.jsonl").write_text("".join(
            json.dumps({"epoch": e, "val_top1": v}) + "\n" for e, v in rows) + "{torn")
    epochs, curve = figure.mean_curve([str(tmp_path / "r0"), str(tmp_path / "r1")])
    assert epochs == [1, 2] and curve == [51.0, 60.0]


def test_the_verdict_says_where_the_papers_gap_lies_outside_the_interval():
    campaign = _load("campaign")
    w = {"ci95": [-0.50, 0.84]}
    assert campaign.against_paper(w, 0.96) == "; the paper's gap (+0.96) lies above the interval"
    assert campaign.against_paper(w, -0.60).endswith("lies below the interval")
    assert campaign.against_paper(w, 0.36) == "" and campaign.against_paper(w, None) == ""
    paper, base = {"resnet20": "91.62", "se_resnet20": "91.98", "x": "n/a"}, {"label": "resnet20"}
    assert abs(campaign.paper_gap(paper, "se_resnet20", base) - 0.36) < 1e-9
    assert campaign.paper_gap(paper, "x", base) is None
    assert campaign.paper_gap(paper, "se_resnet20", None) is None


def test_one_run_is_reported_without_a_spread():
    common = _load("common")
    assert common.mean_std([88.72]) == "88.72"
    assert common.mean_std([88.72], with_n=True) == "88.72 (n=1)"
    assert common.mean_std([88.0, 88.5]) == "88.25 ± 0.35"


def test_a_missing_run_is_paced_by_its_models_finished_runs(tmp_path, capsys):
    campaign = _load("campaign")
    results = tmp_path / "results"
    path = write_campaign(tmp_path, [{"model": "resnet20", "seed": 0},
                                     {"model": "resnet20", "seed": 1, "epochs": 4},
                                     {"model": "regnet20_gru", "seed": 0, "epochs": 4}])
    (results / "resnet20_s0").mkdir(parents=True)
    (results / "resnet20_s0" / "summary.json").write_text("{}")
    (results / "resnet20_s0" / "metrics.jsonl").write_text(
        "".join(json.dumps({"epoch": i + 1, "seconds": s}) + "\n"
                for i, s in enumerate([60, 120, 90])))
    camp = campaign.Campaign(campaign.load_campaign(str(path)), str(results), str(tmp_path))
    rows = camp.progress()
    assert [r["state"] for r in rows] == ["done", "missing", "missing"]
    # The median epoch (90 s) times 4 epochs; no finished regnet20_gru run, so no estimate.
    assert rows[1]["minutes_left"] == 6.0 and rows[2]["minutes_left"] is None
    campaign.print_progress(rows)
    out = capsys.readouterr().out.splitlines()
    assert out[1] == "resnet20_s1                  missing  ~6 min left"
    assert out[-1].startswith("1 of 3 done; 2 to train, ~0.1 lane-hours for the 1 with a pace")


def test_the_report_tests_the_campaigns_own_pairs(tmp_path):
    # A depth study compares two families at each depth: one baseline does not fit the question.
    campaign = _load("campaign")
    results = tmp_path / "results"
    finals = {"preact56": [85.0, 85.4], "iresnet56": [86.0, 86.3], "preact110": [86.0, 86.2]}
    runs = [{"model": "resnet20", "model_args": {"width": 16 + i}, "seed": s,
             "name": f"{n}_s{s}"} for i, n in enumerate(finals) for s in (0, 1)]
    path = write_campaign(tmp_path, runs)
    spec = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**spec, "paper": {"iresnet56": "95.00", "preact56": "94.46"},
                                    "compare": [["iresnet56", "preact56"],
                                                ["iresnet110", "preact110"]]}))
    for n, values in finals.items():
        for s, v in enumerate(values):
            (results / f"{n}_s{s}").mkdir(parents=True)
            (results / f"{n}_s{s}" / "summary.json").write_text(json.dumps(
                {"final_val_top1": v, "best_val_top1": v, "wall_seconds": 60, "params": 1}))
    camp = campaign.Campaign(campaign.load_campaign(str(path)), str(results), str(tmp_path))
    out = campaign.report(camp, None, str(tmp_path / "report"))
    ires = next(g for g in out["groups"] if g["label"] == "iresnet56")
    assert abs(ires["pairs"]["preact56"]["diff"] - 0.95) < 1e-9
    text = (tmp_path / "report.md").read_text()
    assert "| iresnet56 | preact56 | 2 / 2 | +0.95 [" in text and "| +0.54 |" in text
    assert "| iresnet110 | preact110 | 0 / 2 | - | - | needs n >= 2 finished" in text


def test_a_compare_entry_that_is_not_a_pair_is_refused(tmp_path):
    campaign = _load("campaign")
    path = write_campaign(tmp_path, [{"model": "resnet20", "seed": 0}])
    spec = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**spec, "compare": [["a", "b", "c"]]}))
    with pytest.raises(campaign.CampaignError, match="pairs"):
        campaign.load_campaign(str(path))
