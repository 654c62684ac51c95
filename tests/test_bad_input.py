"""Bad input, as a new user or a reliability tester gives it: every case exits 2 with one line
that says what is wrong, and leaves every file already written exactly as it was (and writes
none). One finished run, one image folder and a few broken files are made once; each case is
then checked against a snapshot of the whole folder."""
import hashlib
import os

import numpy as np
import pytest
import torch
from PIL import Image

from regnet.cli import main
from train_helpers import tiny_flags

pytestmark = pytest.mark.xdist_group("bad_input")


def _snapshot(root):
    out = {}
    for folder, dirs, files in os.walk(root):
        for d in dirs:
            out[os.path.relpath(os.path.join(folder, d), root) + "/"] = None
        for name in files:
            path = os.path.join(folder, name)
            st = os.stat(path)
            with open(path, "rb") as f:
                digest = hashlib.sha1(f.read()).hexdigest()
            out[os.path.relpath(path, root)] = (st.st_size, st.st_mtime_ns, digest)
    return out


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad_input")
    cwd = os.getcwd()
    os.chdir(root)
    try:
        assert main(["train", "resnet20", *tiny_flags(), "--out", "run"]) == 0
    finally:
        os.chdir(cwd)
    rng = np.random.default_rng(0)
    for folder, classes in (("imgs", 2), ("emptycls", 1), ("corrupt", 1)):
        for c in range(classes):
            (root / folder / f"c{c}").mkdir(parents=True)
    for c in range(2):
        for i in range(6):
            Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(
                root / "imgs" / f"c{c}" / f"{i}.png")
    (root / "corrupt" / "c0" / "x.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    (root / "garbage.pt").write_bytes(b"PK\x03\x04 this is not a checkpoint")
    ckpt = torch.load(root / "run" / "best.pt", weights_only=True)
    ckpt["model"] = "resnet32"  # its weights are resnet20's
    torch.save(ckpt, root / "mismatch.pt")
    (root / "lonely.safetensors").write_bytes((root / "run" / "best.safetensors").read_bytes())
    (root / "unknown_key.yaml").write_text("epochs: 2\nlearning_rate: 0.1\n")
    (root / "broken.yaml").write_text("epochs: [2\nlr: 0.1\n")
    (root / "notes.txt").write_text("not a study\n")
    from regnet.design.spaces import Constraints, ModelBase
    from regnet.design.study import create_study
    create_study(str(root / "study"), "regnetx", n=2, base=ModelBase((3, 32, 32), "cifar", 10),
                 constraints=Constraints((2e6, 4e6)))
    return root


T = tiny_flags()
NEW = ["--out", "new"]  # a folder that must not appear

CASES = [
    # (id, argv, what the one line must say)
    ("unknown_model", ["train", "resnet21", *T, *NEW],
     "unknown model 'resnet21'; closest: resnet32, resnet20"),
    ("epochs_negative", ["train", "resnet20", *T, *NEW, "--epochs", "-1"], "--epochs must be"),
    ("batch_zero", ["train", "resnet20", *T, *NEW, "--batch-size", "0"], "--batch-size must be"),
    ("batch_not_a_number", ["train", "resnet20", *T, *NEW, "--batch-size", "abc"],
     "invalid int value: 'abc'"),
    ("lr_negative", ["train", "resnet20", *T, *NEW, "--lr", "-1"], "--lr must be"),
    ("lr_nan", ["train", "resnet20", *T, *NEW, "--lr", "nan"], "--lr must be a finite number"),
    ("lr_inf", ["train", "resnet20", *T, *NEW, "--lr", "inf"], "--lr must be a finite number"),
    ("weight_decay_negative", ["train", "resnet20", *T, *NEW, "--weight-decay", "-0.1"],
     "--weight-decay must be >= 0"),
    ("eval_every_zero", ["train", "resnet20", *T, *NEW, "--eval-every", "0"],
     "--eval-every must be an epoch count >= 1"),
    ("step_size_zero", ["train", "resnet20", *T, *NEW, "--schedule", "step", "--step-size", "0"],
     "--step-size must be an epoch count >= 1"),
    ("threads_negative", ["train", "resnet20", *T, *NEW, "--threads", "-1"],
     "--threads must be >= 0"),
    ("device_tpu", ["train", "resnet20", *T, *NEW, "--device", "tpu"], "unknown device 'tpu'"),
    ("val_split_negative", ["train", "resnet20", *T, *NEW, "--val-split", "-3"],
     "--val-split must be"),
    ("val_split_below_classes", ["train", "resnet20", *T, *NEW, "--val-split", "5"],
     "smaller than the 10 classes"),
    ("val_split_everything", ["train", "resnet20", *T, *NEW, "--val-split", "5000"],
     "leaves no training images"),
    ("train_subset_zero", ["train", "resnet20", *T, *NEW, "--train-subset", "0"],
     "--train-subset must be"),
    ("optimizer_unknown", ["train", "resnet20", *T, *NEW, "--optimizer", "lion"],
     "unknown optimizer 'lion'"),
    ("schedule_unknown", ["train", "resnet20", *T, *NEW, "--schedule", "warp"],
     "unknown schedule 'warp'"),
    ("amp_unknown", ["train", "resnet20", *T, *NEW, "--amp", "fp8"], "unknown amp 'fp8'"),
    ("momentum_above_one", ["train", "resnet20", *T, *NEW, "--momentum", "1.5"],
     "--momentum must be in [0, 1)"),
    ("label_smoothing_one", ["train", "resnet20", *T, *NEW, "--label-smoothing", "1"],
     "--label-smoothing must be in [0, 1)"),
    ("ema_decay_one", ["train", "resnet20", *T, *NEW, "--ema-decay", "1"],
     "--ema-decay must be in [0, 1)"),
    ("crop_pad_negative", ["train", "resnet20", *T, *NEW, "--crop-pad", "-1"], "crop_pad"),
    ("crop_pad_mode_unknown", ["train", "resnet20", *T, *NEW, "--crop-pad-mode", "wrap"],
     "wrap"),
    ("augment_unknown", ["train", "resnet20", *T, *NEW, "--augment", "mixup"], "mixup"),
    ("data_mode_unknown", ["train", "resnet20", *T, *NEW, "--data-mode", "disk"],
     "unknown data_mode 'disk'"),
    ("progress_unknown", ["train", "resnet20", *T, *NEW, "--progress", "fancy"],
     "unknown progress 'fancy'"),
    ("log_every_negative", ["train", "resnet20", *T, *NEW, "--log-every", "-1"],
     "--log-every must be"),
    ("seed_negative", ["train", "resnet20", *T, *NEW, "--seed", "-1"], "--seed must be >= 0"),
    ("milestones_decreasing", ["train", "resnet20", *T, *NEW, "--milestones", "5", "3"],
     "--milestones must be increasing"),
    ("num_classes_zero", ["train", "resnet20", *T, *NEW, "--num-classes", "0"],
     "--num-classes must be >= 1"),
    ("num_classes_wrong", ["train", "resnet20", *T, *NEW, "--num-classes", "7"],
     "has 10 classes"),
    ("num_workers_negative", ["train", "resnet20", *T, *NEW, "--num-workers", "-2"],
     "--num-workers must be >= 0"),
    ("image_size_zero", ["train", "resnet20", *T, *NEW, "--image-size", "0"],
     "--image-size must be"),
    ("warmup_negative", ["train", "resnet20", *T, *NEW, "--warmup-epochs", "-1"],
     "--warmup-epochs must be >= 0"),
    ("grad_clip_negative", ["train", "resnet20", *T, *NEW, "--grad-clip", "-1"],
     "--grad-clip must be"),
    ("unknown_flag", ["train", "resnet20", *T, *NEW, "--lerning-rate", "0.1"],
     "unrecognized arguments: --lerning-rate"),
    ("dataset_unknown", ["train", "resnet20", *T, *NEW, "--dataset", "mnist"],
     "unknown dataset 'mnist'"),
    ("cifar_without_dir", ["train", "resnet20", *T, *NEW, "--dataset", "cifar10"],
     "needs --data-dir"),
    ("folder_missing", ["train", "resnet20", *T, *NEW, "--dataset", "imagefolder",
                        "--data-dir", "nowhere"], "image folder nowhere not found"),
    ("folder_empty_class", ["train", "resnet20", *T, *NEW, "--dataset", "imagefolder",
                            "--data-dir", "emptycls"], "holds no .jpg/.jpeg/.png images"),
    ("folder_corrupt_image", ["train", "resnet20", *T, *NEW, "--val-split", "0",
                              "--dataset", "imagefolder", "--data-dir", "corrupt",
                              "--cache-dir", ""], "cannot read image corrupt/c0/x.jpg"),
    ("recipe_unknown", ["train", "resnet20", *NEW, "--recipe", "nosuch"], "nosuch"),
    ("recipe_unknown_key", ["train", "resnet20", *NEW, "--recipe", "unknown_key.yaml"],
     "unknown config key(s) learning_rate"),
    ("recipe_bad_yaml", ["train", "resnet20", *NEW, "--recipe", "broken.yaml"], "broken.yaml"),
    ("model_arg_without_value", ["train", "resnet20", *T, *NEW, "--model-arg", "drop"],
     "--model-arg wants KEY=VALUE"),
    ("model_arg_unknown", ["train", "resnet20", *T, *NEW, "--model-arg", "wings=2"], "wings"),
    ("lr_scale_malformed", ["train", "resnet20", *T, *NEW, "--lr-scale", "stem"],
     "lr_scale wants PATTERN=F"),
    ("init_from_missing", ["train", "resnet20", *T, *NEW, "--init-from", "nothing.pt"],
     "nothing.pt"),
    ("resume_changed_split", ["train", "resnet20", *tiny_flags(val_split=100), "--out", "run"],
     "val_split 50 -> 100"),
    ("resume_changed_batch", ["train", "resnet20", *tiny_flags(batch_size=8, epochs=2),
                              "--out", "run"], "batch_size 16 -> 8"),
    ("other_model_in_run", ["train", "resnet32", *T, "--out", "run"],
     "holds a run of resnet20 on digits"),
    ("resume_without_run", ["train", "resnet20", *T, *NEW, "--resume"], "no checkpoint"),
    ("eval_missing", ["eval", "nothing.pt"], "checkpoint nothing.pt not found"),
    ("eval_garbage", ["eval", "garbage.pt"], "cannot load checkpoint garbage.pt"),
    ("eval_mismatched_weights", ["eval", "mismatch.pt"], "weights do not fit resnet32"),
    ("eval_no_sidecar", ["eval", "lonely.safetensors"], "has no sidecar"),
    ("eval_batch_zero", ["eval", "run/best.pt", "--batch-size", "0"], "--batch-size must be"),
    ("eval_other_classes", ["eval", "run/best.pt", "--dataset", "imagefolder",
                            "--data-dir", "imgs"], "imagefolder has 2 classes"),
    ("info_size_zero", ["info", "resnet20", "--input-size", "0"], "positive sizes"),
    ("info_size_negative", ["info", "resnet20", "--input-size", "-5"], "positive sizes"),
    ("info_size_one", ["info", "resnet20", "--input-size", "1"], "must be at least 8"),
    ("info_size_five_numbers", ["info", "resnet20", "--input-size", "3", "32", "32", "1", "1"],
     "does not fit"),
    ("info_unknown_model", ["info", "regnetx_401mf"], "closest: regnetx_400mf"),
    ("info_num_classes_zero", ["info", "resnet20", "--num-classes", "0"], "--num-classes"),
    ("study_run_without_dataset", ["study", "run", "study"], "records no dataset"),
    ("study_run_not_a_study", ["study", "run", "imgs"], "not a study folder"),
    ("study_sample_bad_band", ["study", "sample", "--space", "regnetx", "--flops", "lots",
                               "--out", "new"], "lots"),
    ("study_sample_unknown_space", ["study", "sample", "--space", "regnetz", "--flops",
                                    "1M:2M", "-n", "2", "--out", "new"], "regnetz"),
    ("convert_missing", ["convert", "nothing.pth", "new/x.pt", "--model", "resnet50"],
     "nothing.pth"),
    ("convert_not_weights", ["convert", "notes.txt", "new/x.pt", "--model", "resnet50"],
     "notes.txt"),
]


@pytest.mark.parametrize("argv,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_changes_nothing(base, argv, expected, capsys, monkeypatch):
    monkeypatch.chdir(base)
    before = _snapshot(base)
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err and expected in err, err
    assert _snapshot(base) == before


def test_the_table_is_large_enough():
    assert len(CASES) >= 40 and len({c[0] for c in CASES}) == len(CASES)


def test_device_cuda_on_a_cpu_build(base, capsys, monkeypatch):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: --device cuda is valid here")
    monkeypatch.chdir(base)
    assert main(["train", "resnet20", *T, *NEW, "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--device cuda:" in err and "--device cpu" in err, err
    assert not os.path.exists(base / "new")
