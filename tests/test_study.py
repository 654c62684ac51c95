"""Population studies end to end on tiny data: sample, train (in-process, worker processes,
Ray), resume without retraining, record divergence, analyse."""
import json
import os

import pytest

import regnet.design.study as study_mod
from regnet.cli import main as cli_main
from regnet.design.analysis import analyze
from regnet.design.study import create_study, load_study, run_study

# 8x8 digits shipped with scikit-learn: 1 epoch on 48 images, 100 held out.
TINY = dict(dataset="digits", data_dir=None, val_split=100, train_subset=48, image_size=None,
            augment="none", epochs=1, batch_size=16, threads=1)


def _results(path):
    with open(os.path.join(path, "results.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip().endswith("}")]


@pytest.fixture
def counting(monkeypatch):
    """Count the models actually trained by the in-process (workers=1) path."""
    calls = []
    real = study_mod.train_job

    def wrapped(job):
        calls.append(job["id"])
        return real(job)
    monkeypatch.setattr(study_mod, "train_job", wrapped)
    return calls


def test_study_resumes_after_a_kill_without_retraining(tmp_path, counting):
    path = str(tmp_path / "s")
    meta = create_study(path, "regnetx", n=3, preset="smoke", seed=0)
    assert meta["n"] == 3 and meta["base"]["stem"] == "cifar"
    first = run_study(path, overrides=TINY, limit=2, log=lambda *a: None)
    assert first["trained"] == 2 and counting == ["m0000", "m0001"]
    # A kill while a result was being appended leaves a torn line; m0002 never finished.
    with open(os.path.join(path, "results.jsonl"), "a") as f:
        f.write('{"id": "m0002", "sta')
    _, _, results = load_study(path)
    assert sorted(results) == ["m0000", "m0001"]
    again = run_study(path, overrides=TINY, log=lambda *a: None)
    assert again["already_done"] == 2 and again["trained"] == 1
    assert counting == ["m0000", "m0001", "m0002"]
    assert sorted(r["id"] for r in _results(path)) == ["m0000", "m0001", "m0002"]
    done = run_study(path, overrides=TINY, log=lambda *a: None)
    assert done["trained"] == 0 and len(counting) == 3
    for r in _results(path):
        assert r["status"] == "ok" and 0 <= r["error"] <= 100
        assert os.path.exists(os.path.join(path, "runs", r["id"], "summary.json"))
    # the study recorded the settings it trained with
    with open(os.path.join(path, "run.json")) as f:
        assert json.load(f)["train"]["dataset"] == "digits"


def test_diverged_models_are_recorded_and_crashes_are_retried(tmp_path, monkeypatch):
    import regnet.train as train_pkg
    path = str(tmp_path / "s")
    create_study(path, "anynetx_e", n=2, preset="smoke", seed=1)
    crash = run_study(path, overrides={**TINY, "dataset": "imagefolder",
                                       "data_dir": str(tmp_path / "missing")},
                      log=lambda *a: None)
    assert crash["failed"] == 2 and not os.path.exists(os.path.join(path, "results.jsonl"))

    def diverge(cfg):
        raise train_pkg.NonFiniteLossError("loss is nan at epoch 1")
    monkeypatch.setattr(train_pkg, "train", diverge)
    counts = run_study(path, overrides=TINY, log=lambda *a: None)
    assert counts["diverged"] == 2
    assert {r["status"] for r in _results(path)} == {"diverged"}
    assert run_study(path, overrides=TINY, log=lambda *a: None)["diverged"] == 0
    with pytest.raises(ValueError, match="no finished models"):
        analyze([path], str(tmp_path / "a"))


def test_cli_sample_run_parallel_and_analyze(tmp_path, capsys):
    a, b, out = str(tmp_path / "a"), str(tmp_path / "b"), str(tmp_path / "report")
    sets = sum((["--set", f"{k}={'null' if v is None else v}"] for k, v in TINY.items()), [])
    assert cli_main(["study", "sample", "--space", "regnetx", "--preset", "smoke", "-n", "2",
                     "--out", a]) == 0
    assert cli_main(["study", "sample", "--space", "anynetx_a", "--flops", "2M:4M", "-n", "2",
                     "--preset", "smoke", "--seed", "3", "--out", b]) == 0
    assert "2 regnetx models in 2-4MF" in capsys.readouterr().out
    # two spawned worker processes train the two models at once
    assert cli_main(["study", "run", a, "--workers", "2"] + sets) == 0
    assert cli_main(["study", "run", b] + sets) == 0
    assert len(_results(a)) == len(_results(b)) == 2
    assert cli_main(["study", "analyze", a, b, "--out", out]) == 0
    report = open(os.path.join(out, "report.md")).read()
    assert "n=2" in capsys.readouterr().out
    assert "![error EDF](edf.png)" in report and "anynetx_a" in report and "e_fit" in report
    for name in ("edf.png", "trends_0_regnetx.png", "trends_1_anynetx_a.png"):
        with open(os.path.join(out, name), "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert "data:image/png;base64," in open(os.path.join(out, "report.html")).read()
    # user errors: one line, exit 2
    assert cli_main(["study", "sample", "--space", "regnetx", "--flops", "4M:2M", "-n", "1",
                     "--out", str(tmp_path / "c")]) == 2
    assert cli_main(["study", "run", str(tmp_path / "nothing")]) == 2
    assert cli_main(["study", "run", a, "--set", "epochs"]) == 2
    assert "error:" in capsys.readouterr().err


def test_cli_fit(capsys):
    assert cli_main(["study", "fit", "RegNetX-200MF", "--json"]) == 0
    fit = json.loads(capsys.readouterr().out)
    assert fit["model"] == "regnetx_200mf" and fit["error"] == 0.0 and len(fit["widths"]) == 13


def test_ray_backend_on_a_local_cluster(tmp_path):
    pytest.importorskip("ray")
    path = str(tmp_path / "s")
    create_study(path, "regnetx", n=2, preset="smoke", seed=4)
    counts = run_study(path, overrides=TINY, workers=2, backend="ray", log=lambda *a: None)
    assert counts["trained"] == 2 and counts["failed"] == 0
    assert sorted(r["id"] for r in _results(path)) == ["m0000", "m0001"]
    assert run_study(path, overrides=TINY, backend="ray", log=lambda *a: None)["trained"] == 0


def test_two_populations_sharing_draws_are_compared_pair_by_pair():
    # RegNetX and RegNetY sampled with one seed share most networks (SE moves a few out of the
    # FLOP band): the paired test over those sees a 1-point gain that the EDFs, with a spread of
    # 10 points, do not.
    from regnet.design.analysis import _against_first_table, compare_studies

    def row(i, error):
        return {"error": error, "sampled": {"d": i, "w0": 8}}
    spread = [40.0 + (i * 7) % 10 + i / 100 for i in range(30)]
    first = [row(i, e) for i, e in enumerate(spread)]
    other = [row(i, e - 1.0 + (0.1 if i % 2 else -0.1)) for i, e in enumerate(spread[:25])]
    other += [row(100 + i, 45.0) for i in range(5)]          # drawn only in the second space
    c = compare_studies(first, other)
    assert c["paired"]["n"] == 25 and c["paired"]["diff"] == pytest.approx(-1.0, abs=0.01)
    assert c["paired"]["p"] < 1e-10 and c["welch"]["p"] > 0.05
    assert c["verdict"] == "no EDF difference detected at this n"
    lines = _against_first_table([{"label": "regnetx"},
                                  {"label": "regnety", "against_first": c}])
    assert lines[0].startswith("Against regnetx") and "| regnety |" in lines[-2]
    assert "(n=25)" in lines[-2]
    # too few shared networks: no paired test
    assert "paired" not in compare_studies(first, [row(200 + i, 40.0) for i in range(9)]
                                           + other[:9])
