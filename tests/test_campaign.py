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
    assert listing.split() == ["resnet20_s0", "done", "resnet20_s1", "done"]


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
    path = write_campaign(tmp_path, [{"model": "resnet20", "seed": 3, "epochs": 2}])
    out = subprocess.run(campaign_cmd(path, tmp_path), env=env, check=True,
                         capture_output=True, text=True, timeout=300).stdout
    assert "(resuming epoch 1)" in out
    rows = [json.loads(line) for line in (results / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    assert not (results / "partial").exists()


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
