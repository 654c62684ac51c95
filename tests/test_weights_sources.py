"""Weights of every supported source load through one call, `create_model(name,
pretrained=path)`, with the source told from the keys, and compute the source's outputs.

The timm and torchvision RegNets compute pycls's network under other names: their state dicts
are written here from pycls's (the names read off each source's module tree), and the loaded
model is held to the functional pycls forward of test_anynet_convert."""
import logging

import pytest
import torch
from safetensors.torch import save_file

import regnet
from regnet.models.convert import convert_state_dict, detect_source
from test_anynet_convert import ARGS, NUM_CLASSES, reference_forward, reference_state_dict
from test_resnet_layout_convert import CLASSES, DEPTHS, STEM, WIDTHS, iresnet_forward, \
    iresnet_state_dict

# pycls part -> timm's RegNet part (ConvNormAct: .conv / .bn), torchvision's (Conv2dNormActivation:
# .0 / .1 inside f.a / f.b / f.c / proj; SqueezeExcitation fc1 / fc2).
TIMM = {"proj": "downsample.conv", "bn": "downsample.bn", "f.a": "conv1.conv",
        "f.a_bn": "conv1.bn", "f.b": "conv2.conv", "f.b_bn": "conv2.bn", "f.se.f_ex.0": "se.fc1",
        "f.se.f_ex.2": "se.fc2", "f.c": "conv3.conv", "f.c_bn": "conv3.bn"}
TORCHVISION = {"proj": "proj.0", "bn": "proj.1", "f.a": "f.a.0", "f.a_bn": "f.a.1",
               "f.b": "f.b.0", "f.b_bn": "f.b.1", "f.se.f_ex.0": "f.se.fc1",
               "f.se.f_ex.2": "f.se.fc2", "f.c": "f.c.0", "f.c_bn": "f.c.1"}


def _in_layout(sd, parts, block_prefix, top):
    out = {}
    for key, value in sd.items():
        if key.startswith(("stem.", "head.")):
            out[top.get(key.rsplit(".", 1)[0], key.rsplit(".", 1)[0]) + "." +
                key.rsplit(".", 1)[1]] = value
            continue
        stage, block, rest = key.split(".", 2)
        part, leaf = rest.rsplit(".", 1)
        out[f"{block_prefix(int(stage[1:]), int(block[1:]))}.{parts[part]}.{leaf}"] = value
    return out


def timm_state_dict():
    return _in_layout(reference_state_dict(), TIMM, lambda i, j: f"s{i}.b{j}", {})


def torchvision_state_dict():
    top = {"stem.conv": "stem.0", "stem.bn": "stem.1", "head.fc": "fc"}
    return _in_layout(reference_state_dict(), TORCHVISION,
                      lambda i, j: f"trunk_output.block{i}.block{i}-{j - 1}", top)


@pytest.mark.parametrize("layout,source", [(timm_state_dict, "timm_regnet"),
                                           (torchvision_state_dict, "torchvision_regnet"),
                                           (reference_state_dict, "pycls")])
def test_regnet_layouts_load_by_path_and_compute_pycls_outputs(tmp_path, layout, source):
    sd = layout()
    assert detect_source(sd) == source
    path = tmp_path / "weights.pth"
    torch.save({"model_state": sd} if source == "pycls" else sd, path)
    model = regnet.create_model("anynet", num_classes=NUM_CLASSES, pretrained=str(path),
                                **ARGS).eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference_forward(reference_state_dict(), x),
                                   rtol=1e-4, atol=1e-5)


def test_the_iresnet_authors_file_and_our_safetensors_export_load_by_path(tmp_path):
    kw = dict(num_classes=CLASSES, depths=DEPTHS, widths=WIDTHS, stem_chs=STEM)
    torch.save(iresnet_state_dict(), tmp_path / "iresnet.pth")
    model = regnet.create_model("iresnet50", pretrained=str(tmp_path / "iresnet.pth"),
                                **kw).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        want = iresnet_forward(iresnet_state_dict(), x)
        torch.testing.assert_close(model(x), want, rtol=1e-4, atol=1e-5)
        save_file({k: v.contiguous() for k, v in model.state_dict().items()},
                  str(tmp_path / "ours.safetensors"))
        again = regnet.create_model("iresnet50", pretrained=str(tmp_path / "ours.safetensors"),
                                    **kw).eval()
        torch.testing.assert_close(again(x), want, rtol=1e-4, atol=1e-5)


def test_another_class_count_reinitialises_the_head_and_says_so(tmp_path, caplog):
    path = tmp_path / "w.pth"
    torch.save(timm_state_dict(), path)
    with caplog.at_level(logging.WARNING, logger="regnet"):
        model = regnet.create_model("anynet", num_classes=3, pretrained=str(path), **ARGS)
    assert model.head.fc.out_features == 3
    assert "re-initialised head.fc.weight, head.fc.bias for 3 classes" in caplog.text
    ref = convert_state_dict(timm_state_dict())
    assert torch.equal(model.state_dict()["s4.b1.conv3.weight"], ref["s4.b1.conv3.weight"])


def test_bad_weights_files_are_one_line_errors(tmp_path):
    good = tmp_path / "w.pth"
    torch.save(timm_state_dict(), good)
    cut = tmp_path / "cut.pth"
    cut.write_bytes(good.read_bytes()[:1000])
    cases = [(str(cut), ValueError, "cannot read weights file .*cut.pth"),
             (str(tmp_path / "nope.pth"), FileNotFoundError, "weights file .*nope.pth not found"),
             (True, ValueError, "no pretrained weights are registered for anynet")]
    foreign = tmp_path / "foreign.pth"
    torch.save({"encoder.weight": torch.zeros(2)}, foreign)
    cases.append((str(foreign), ValueError, "cannot tell which implementation"))
    cases.append(("nope_tag", ValueError, "unknown weights tag 'nope_tag' for anynet; its tags: "
                                          "none"))
    for pretrained, error, message in cases:
        with pytest.raises(error, match=message) as err:
            regnet.create_model("anynet", num_classes=NUM_CLASSES, pretrained=pretrained, **ARGS)
        assert "\n" not in str(err.value)
    # a file of another architecture names what does not fit
    with pytest.raises(ValueError, match="do not fit resnet18: .* missing: "):
        regnet.create_model("resnet18", pretrained=str(good))


def _tag(tmp_path, url, sha256, model="anynet"):
    from regnet.pretrained import PretrainedTag
    return PretrainedTag(name=f"{model}.test", model=model, url=url, sha256=sha256,
                         source="timm_regnet", dataset="synthetic", top1=None, evidence="a test",
                         input_size=(3, 16, 16), mean=(0.5,) * 3, std=(0.5,) * 3, license="MIT")


def test_a_tag_downloads_once_checks_its_sha256_and_loads(tmp_path, monkeypatch):
    import hashlib

    import regnet.pretrained as pretrained
    src = tmp_path / "served" / "regnet_test-1234.pth"
    src.parent.mkdir()
    torch.save(timm_state_dict(), src)
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    tag = _tag(tmp_path, src.as_uri(), digest)
    monkeypatch.setattr(pretrained, "_table", lambda: {tag.name: tag})
    monkeypatch.setenv("REGNET_WEIGHTS", str(tmp_path / "cache"))
    assert regnet.list_pretrained("anynet") == ["anynet.test"]
    for spec in (True, "test", "anynet.test"):
        model = regnet.create_model("anynet", num_classes=NUM_CLASSES, pretrained=spec,
                                    **ARGS).eval()
        x = torch.randn(1, 3, 16, 16)
        with torch.no_grad():
            torch.testing.assert_close(model(x), reference_forward(reference_state_dict(), x),
                                       rtol=1e-4, atol=1e-5)
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["regnet_test-1234.pth"]
    src.unlink()  # cached: no second download
    regnet.create_model("anynet", num_classes=NUM_CLASSES, pretrained="test", **ARGS)


def test_a_bad_download_leaves_nothing_in_the_cache(tmp_path):
    from regnet.pretrained import PretrainedError, fetch
    src = tmp_path / "w.pth"
    torch.save(timm_state_dict(), src)
    cache = tmp_path / "cache"
    with pytest.raises(PretrainedError, match="has sha256 .*, not 0000beef...; nothing was kept"):
        fetch(_tag(tmp_path, src.as_uri(), "0000beef"), str(cache))
    assert list(cache.iterdir()) == []
    with pytest.raises(PretrainedError, match=r"cannot download anynet.test from .* put the file "
                                              r"there by hand as .*cache.w.pth") as err:
        fetch(_tag(tmp_path, "http://127.0.0.1:9/w.pth", "00"), str(cache), timeout=5)
    assert "\n" not in str(err.value) and list(cache.iterdir()) == []


@pytest.mark.parametrize("layout", [timm_state_dict, torchvision_state_dict, reference_state_dict])
def test_regnet_convert_writes_a_checkpoint_that_computes_what_pretrained_path_computes(
        tmp_path, capsys, layout):
    from regnet.cli import main
    from regnet.train import load_model
    src = tmp_path / "w.pyth"
    torch.save({"model_state": layout()} if layout is reference_state_dict else layout(), src)
    args = [f"{k}={v}" for k, v in ARGS.items()]
    argv = ["convert", str(src), str(tmp_path / "ours.pt"), "--model", "anynet"]
    for a in args:
        argv += ["--model-arg", a.replace("(", "[").replace(")", "]")]
    assert main(argv) == 0
    assert "wrote" in capsys.readouterr().out
    x = torch.randn(2, 3, 16, 16)
    direct = regnet.create_model("anynet", num_classes=NUM_CLASSES, pretrained=str(src),
                                 **ARGS).eval()
    with torch.no_grad():
        for path in ("ours.pt", "ours.safetensors"):
            model, meta = load_model(str(tmp_path / path))
            assert meta["num_classes"] == NUM_CLASSES
            torch.testing.assert_close(model(x), direct(x), rtol=0, atol=0)


def test_regnet_convert_of_the_iresnet_authors_file_and_bad_files(tmp_path, capsys):
    from regnet.cli import main
    from regnet.train import load_model
    src = tmp_path / "iresnet50.pth"
    torch.save(iresnet_state_dict(), src)
    overrides = ["--model-arg", f"depths={list(DEPTHS)}", "--model-arg", f"widths={list(WIDTHS)}",
                 "--model-arg", f"stem_chs={STEM}"]
    assert main(["convert", str(src), str(tmp_path / "i.pt"), "--model", "iresnet50",
                 *overrides]) == 0
    model, _ = load_model(str(tmp_path / "i.pt"))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), iresnet_forward(iresnet_state_dict(), x),
                                   rtol=1e-4, atol=1e-5)
    capsys.readouterr()
    cut = tmp_path / "cut.pth"
    cut.write_bytes(src.read_bytes()[:500])
    for argv, message in (([str(cut), str(tmp_path / "o.pt"), "--model", "iresnet50"],
                           "cannot read weights file"),
                          ([str(src), str(tmp_path / "o.pt"), "--model", "resnet18"],
                           "do not fit resnet18"),
                          (["resnet50.nope", str(tmp_path / "o.pt"), "--model", "resnet50"],
                           "unknown weights tag 'resnet50.nope' for resnet50; its tags: "
                           "resnet50.tv_in1k")):
        assert main(["convert", *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "o.pt").exists()
