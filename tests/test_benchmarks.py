"""Smoke tests of the benchmark scripts on tiny settings: they run end to end, write the JSON
they promise, and every ratio is a positive finite number. No timing thresholds (the machine is
shared; speed claims belong in docs/PERFORMANCE.md with their commands)."""
import json
import math
import os

import pytest
from PIL import Image

from train_helpers import load_script


def positive(x):
    return isinstance(x, float) and math.isfinite(x) and x > 0


@pytest.fixture
def tiny_folder(tmp_path, monkeypatch):
    """A 2-class image folder of 12 16x16 JPEGs per class; decode cache kept in tmp."""
    monkeypatch.setenv("REGNET_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "images"
    for c, colour in enumerate([(200, 30, 30), (30, 30, 200)]):
        (root / f"class{c}").mkdir(parents=True)
        for i in range(12):
            Image.new("RGB", (16, 16), tuple(v + 3 * i for v in colour)).save(
                root / f"class{c}" / f"{i}.jpg")
    return root


def test_train_throughput_keys_and_ratios(tmp_path):
    out = tmp_path / "tt.json"
    result = load_script("train_throughput").main(
        ["--models", "resnet20,regnet20_lstm", "--amp", "auto,off", "--steps", "1",
         "--warmup", "0", "--repeats", "1", "--batch-size", "8", "--images", "16",
         "--image-size", "16", "--threads", "1", "--quiet", "--out", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    assert set(result["models"]) == {"resnet20", "regnet20_lstm"}
    for entry in result["models"].values():
        for kind in ("reference", "fast", "fast_amp_off"):
            phase = entry[kind]
            assert positive(phase["images_per_s"]) and positive(phase["ms_per_step"])
            assert phase["peak_rss_mib"] > 0 and phase["batch_size"] == 8
        assert entry["reference"]["dtype"] == "float32"
        assert entry["reference"]["memory_format"] == "contiguous"
        assert entry["fast"]["memory_format"] == "channels_last"
        assert entry["fast_amp_off"]["dtype"] == "float32"
        assert positive(entry["fast_over_reference"])
        assert positive(entry["fast_amp_off_over_fast"])
    assert positive(result["fast_ratio_vs_first_model"]["regnet20_lstm/resnet20"])
    for key in ("cpu", "cores", "torch", "threads", "date", "load_avg_1_5_15"):
        assert key in result["machine"]
    assert result["settings"]["threads"] == 1


def test_train_throughput_reads_an_image_folder(tiny_folder, tmp_path):
    result = load_script("train_throughput").main(
        ["--data-dir", str(tiny_folder), "--images", "0", "--image-size", "16", "--steps", "1",
         "--warmup", "0", "--repeats", "1", "--batch-size", "8", "--threads", "1", "--quiet",
         "--no-reference", "--amp", "off", "--no-channels-last"])
    entry = result["models"]["resnet20"]
    assert "reference" not in entry and "fast_over_reference" not in entry
    assert entry["fast"]["dtype"] == "float32" and entry["fast"]["memory_format"] == "contiguous"
    assert "24 images" in result["data"]


def test_train_throughput_rejects_bad_amp():
    with pytest.raises(SystemExit):
        load_script("train_throughput").parse_args(["--amp", "fp8"])


def test_inference_keys_and_ratios(tmp_path):
    out = tmp_path / "inf.json"
    result = load_script("inference").main(
        ["--models", "resnet20", "--steps", "1", "--warmup", "0", "--repeats", "1",
         "--batch-size", "4", "--latency-runs", "2", "--image-size", "16", "--threads", "1",
         "--quiet", "--out", str(out)])
    assert json.loads(out.read_text())["benchmark"] == "inference"
    entry = result["models"]["resnet20"]
    assert set(entry) == {"reference", "channels_last", "bf16_channels_last"}
    assert entry["reference"]["dtype"] == "float32"
    assert entry["bf16_channels_last"]["dtype"] == "bfloat16"
    for setting, e in entry.items():
        assert positive(e["images_per_s"]) and positive(e["latency_ms_median"])
        if setting != "reference":
            assert positive(e["throughput_over_reference"])
            assert positive(e["latency_speedup_over_reference"])


def test_time_to_accuracy_stops_at_target(tiny_folder, tmp_path):
    out = tmp_path / "tta.json"
    # Target 0%: reached at the first evaluation, so both runs stop after one epoch of two.
    result = load_script("time_to_accuracy").main(
        ["--data-dir", str(tiny_folder), "--target", "0", "--reference", "--poll", "0.2",
         "--runs-dir", str(tmp_path / "runs"), "--quiet", "--out", str(out), "--",
         "--epochs", "2", "--val-split", "4", "--batch-size", "4", "--threads", "1"])
    assert json.loads(out.read_text())["benchmark"] == "time_to_accuracy"
    for name in ("fast", "reference"):
        run = result["runs"][name]
        assert run["reached"] and run["epoch"] == 1
        assert positive(float(run["run_wall_seconds"])) and positive(run["process_seconds"])
        assert os.path.exists(os.path.join(run["out"], "metrics.jsonl"))
    assert "--no-fast-data" in result["runs"]["reference"]["command"]
    assert positive(result["reference_over_fast_seconds"])


def test_time_to_accuracy_refuses_an_existing_run(tiny_folder, tmp_path):
    runs = tmp_path / "runs"
    (runs / "fast").mkdir(parents=True)
    (runs / "fast" / "config.yaml").write_text("model: resnet20\n")
    with pytest.raises(SystemExit, match="already holds a run"):
        load_script("time_to_accuracy").main(["--data-dir", str(tiny_folder), "--runs-dir",
                                              str(runs), "--quiet"])


def test_time_to_accuracy_reads_an_existing_run(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    rows = [{"epoch": e, "val_top1": top1, "wall_seconds": 10.0 * e, "images_per_sec": 100.0}
            for e, top1 in ((1, 50.0), (2, 91.5), (3, 92.0))]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    tta = load_script("time_to_accuracy")
    result = tta.main(["--from-run", str(run), "--target", "91", "--quiet"])
    hit = result["runs"]["from_run"]
    assert (hit["epoch"], hit["run_wall_seconds"], hit["epochs_run"]) == (2, 20.0, 3)
    missed = tta.main(["--from-run", str(run), "--target", "95", "--quiet"])["runs"]["from_run"]
    assert not missed["reached"] and missed["best_val_top1"] == 92.0


def test_train_throughput_data_only():
    result = load_script("train_throughput").main(
        ["--data-only", "--steps", "2", "--repeats", "1", "--batch-size", "8", "--images", "32",
         "--threads", "1", "--quiet"])
    entry = result["data_only"]
    assert positive(entry["reference"]["images_per_s"]) and positive(entry["fast"]["images_per_s"])
    assert positive(entry["fast_over_reference"])


def test_profile_step_families_add_up(tmp_path):
    bench = load_script("profile_step")
    assert bench.family("aten::convolution_backward") == "convolution"
    assert bench.family("aten::native_batch_norm_backward") == "batch norm"
    assert bench.family("aten::addmm") == "pooling / head"
    assert bench.family("aten::addcmul") == "elementwise / activations"
    assert bench.family("aten::cat") == "copies / concat / layout"
    assert bench.family("aten::_foreach_add_") == "optimiser"
    out = tmp_path / "prof.json"
    result = bench.main(["--models", "resnet20", "--steps", "1", "--warmup", "0",
                         "--batch-size", "4", "--images", "8", "--image-size", "16",
                         "--threads", "1", "--out", str(out)])
    (entry,) = json.loads(out.read_text())["results"]
    assert entry["model"] == "resnet20" and entry == result["results"][0]
    assert math.isclose(sum(entry["families"].values()), entry["self_cpu_ms_per_step"],
                        rel_tol=1e-6)
    assert entry["families"]["convolution"] > 0
    assert any(o["op"] == "aten::convolution_backward" for o in entry["ops"])


def test_streaming_data_keys_and_ratios(tmp_path):
    bench = load_script("streaming_data")
    out = tmp_path / "s.json"
    assert bench.main(["--synthetic", "24", "--image-size", "32", "--batch-size", "4",
                       "--batches", "2", "--workers", "0,1", "--repeats", "1",
                       "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert [r["workers"] for r in result["rows"]] == [0, 1]
    for row in result["rows"]:
        assert positive(row["reference_images_per_sec"]) and positive(row["ratio"])
    assert result["settings"]["images"] == 24


def test_sweep_flags_parse_back_to_the_same_config():
    """The sweep scripts launch `regnet train` with flags built from config dicts: those flags
    must give the trainer exactly the config the dict describes."""
    common = load_script("common")
    from regnet.cli import build_parser
    from regnet.cli.train import resolve_config
    sets = dict(common.parse_set(t) for t in ["epochs=3", "nesterov=false", "milestones=[2, 3]",
                                              "lr=0.05", "data_dir=some/dir"])
    assert sets["epochs"] == 3 and sets["nesterov"] is False and sets["milestones"] == [2, 3]
    wanted = {**sets, "schedule": "multistep", "eval_flip": True, "image_size": None,
              "model_args": {"depths": [2, 2, 2], "shortcut": "improved"}, "out": "runs/x"}
    args = build_parser().parse_args(["train", "iresnet164", *common.train_flags(wanted)])
    cfg = resolve_config(args)
    for key, value in wanted.items():
        got = getattr(cfg, key)
        assert (list(got) if isinstance(got, tuple) else got) == value, key
    with pytest.raises(Exception, match="KEY=VALUE"):
        common.parse_set("epochs")


def test_ensemble_averages_checkpoints_of_one_split(tmp_path):
    from regnet.train import train
    from train_helpers import tiny_cfg
    for seed in (0, 1):
        train(tiny_cfg(tmp_path / f"s{seed}", seed=seed))
    train(tiny_cfg(tmp_path / "other", val_split=40))
    ensemble = load_script("experiments/ensemble")
    ckpts = [str(tmp_path / f"s{seed}" / "best.pt") for seed in (0, 1)]
    result = ensemble.main(ckpts)
    assert result["images"] == 50 and len(result["single"]) == 2
    assert all(abs(t * 50 / 100 - round(t * 50 / 100)) < 1e-6 for t in result["single"])
    assert set(result["ensemble_mean_top1"]) == {1, 2}
    assert result["ensemble_mean_top1"][1] == pytest.approx(sum(result["single"]) / 2, abs=0.01)
    with pytest.raises(SystemExit, match="different splits"):
        ensemble.main([ckpts[0], str(tmp_path / "other" / "best.pt")])


def test_view_averaging_scores_what_the_run_itself_scored(tmp_path):
    """tta_views' "flip" and ensemble's single net average a net's two views the way the trainer
    and `regnet eval --flip` do (logits), so on a run that evaluated with its mirror they give
    that run's own best val top-1 exactly."""
    import json as json_
    from regnet.train import train
    from train_helpers import tiny_cfg
    # long enough to leave chance, where the two ways of averaging can part
    train(tiny_cfg(tmp_path / "r", eval_flip=True, epochs=3, train_subset=400))
    best = json_.loads((tmp_path / "r" / "summary.json").read_text())["best_val_top1"]
    views = load_script("experiments/tta_views").main([str(tmp_path / "r" / "best.pt"),
                                                         "--shifts", "1"])
    assert views["flip"] == pytest.approx(best, abs=1e-6)
    assert set(views["softmax"]) == {"flip", "flip_x_shift1"}
    single = load_script("experiments/ensemble").main([str(tmp_path / "r" / "best.pt")])
    assert single["single"] == [pytest.approx(best, abs=1e-6)]


def test_roofline_counts_the_bytes_and_flops_of_real_tensors():
    import torch
    import torch.nn.functional as F
    roofline = load_script("roofline")
    counter = roofline._Counter(bandwidth=1e10, rate=1e11)
    a, b = torch.randn(64, 32), torch.randn(64, 32)
    x, w = torch.randn(2, 4, 8, 8), torch.randn(6, 4, 3, 3)
    with counter:
        torch.add(a, b)                  # reads 2, writes 1
        a.t()                            # a view: nothing moves
        a.mul_(2.0)                      # in place: read and write the same tensor
        F.conv2d(x, w, padding=1)        # 2 * out * (4 * 3 * 3) flops
    c = counter.classes
    n = a.numel() * 4
    assert c["elementwise"]["bytes"] == 3 * n + 2 * n and c["views"]["bytes"] == 0
    out = 2 * 6 * 8 * 8
    assert c["conv"]["flops"] == 2 * out * 4 * 9
    assert c["conv"]["bytes"] == (x.numel() + w.numel() + out) * 4
    assert c["conv"]["bound_s"] == pytest.approx(max(c["conv"]["bytes"] / 1e10,
                                                     c["conv"]["flops"] / 1e11))


def test_roofline_of_a_regulated_net_has_every_class(tmp_path):
    roofline = load_script("roofline")
    out = tmp_path / "roof.json"
    result = roofline.main(["--models", "resnet20,regnet20_gru", "--batch-size", "2",
                            "--warmup", "1", "--out", str(out), "--quiet"])
    assert json.loads(out.read_text())["benchmark"] == "roofline"
    plain, regulated = result["models"]
    assert {"conv", "batch norm", "elementwise", "optimizer"} <= set(plain["classes"])
    from regnet.kernels import regcell
    if regcell.available():
        cell = regulated["classes"]["fused cell"]
        assert cell["bytes"] > 0 and cell["ops"] == 2 * 9  # 9 cells, forward and backward
    for r in result["models"]:
        assert 0 < r["bound_step_s"] and r["gbytes"] > 0 and r["gflops"] > 0
