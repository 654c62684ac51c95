"""A state dict in the reference (pycls) key layout loads after the documented key mapping, and
the loaded model computes what the reference network computes with those weights."""
import pytest
import torch
import torch.nn.functional as F

import regnet
from regnet.models.convert import convert_pycls_state_dict, load_pycls, pycls_key_to_ours

# A small RegNetY-like AnyNet: projection and identity blocks, grouped 3x3s, SE.
ARGS = dict(depths=(1, 2, 1, 1), widths=(16, 32, 48, 64), group_widths=8, se_ratio=0.25,
            stem="cifar", input_size=(3, 16, 16))
NUM_CLASSES = 5


def _bn(sd, key, c, g):
    sd[f"{key}.weight"] = torch.rand(c, generator=g) + 0.5
    sd[f"{key}.bias"] = torch.randn(c, generator=g) * 0.1
    sd[f"{key}.running_mean"] = torch.randn(c, generator=g) * 0.1
    sd[f"{key}.running_var"] = torch.rand(c, generator=g) + 0.5
    sd[f"{key}.num_batches_tracked"] = torch.tensor(7)


def _conv(sd, key, c_out, c_in, k, g, bias=False):
    sd[f"{key}.weight"] = torch.randn(c_out, c_in, k, k, generator=g) * (2 / (c_in * k * k)) ** .5
    if bias:
        sd[f"{key}.bias"] = torch.randn(c_out, generator=g) * 0.1


def reference_state_dict():
    """Random weights under the reference's names, written from its layout, not from ours."""
    g = torch.Generator().manual_seed(0)
    sd = {}
    _conv(sd, "stem.conv", 32, 3, 3, g)
    _bn(sd, "stem.bn", 32, g)
    w_in = 32
    for i, (d, w) in enumerate(zip(ARGS["depths"], ARGS["widths"]), 1):
        for j in range(1, d + 1):
            p, groups, se = f"s{i}.b{j}", w // 8, round(0.25 * w_in)
            if w_in != w or j == 1:
                _conv(sd, f"{p}.proj", w, w_in, 1, g)
                _bn(sd, f"{p}.bn", w, g)
            _conv(sd, f"{p}.f.a", w, w_in, 1, g)
            _bn(sd, f"{p}.f.a_bn", w, g)
            _conv(sd, f"{p}.f.b", w, w // groups, 3, g)
            _bn(sd, f"{p}.f.b_bn", w, g)
            _conv(sd, f"{p}.f.se.f_ex.0", se, w, 1, g, bias=True)
            _conv(sd, f"{p}.f.se.f_ex.2", w, se, 1, g, bias=True)
            _conv(sd, f"{p}.f.c", w, w, 1, g)
            _bn(sd, f"{p}.f.c_bn", w, g)
            w_in = w
    sd["head.fc.weight"] = torch.randn(NUM_CLASSES, w_in, generator=g) * 0.1
    sd["head.fc.bias"] = torch.randn(NUM_CLASSES, generator=g) * 0.1
    return sd


def reference_forward(sd, x):
    """The reference network's eval-mode forward, read straight off its state dict."""
    def bn(x, k):
        return F.batch_norm(x, sd[f"{k}.running_mean"], sd[f"{k}.running_var"],
                            sd[f"{k}.weight"], sd[f"{k}.bias"], False)

    def conv(x, k, stride=1, groups=1):
        w = sd[f"{k}.weight"]
        return F.conv2d(x, w, sd.get(f"{k}.bias"), stride, w.shape[-1] // 2, 1, groups)

    x = F.relu(bn(conv(x, "stem.conv"), "stem.bn"))
    for i, d in enumerate(ARGS["depths"], 1):
        for j in range(1, d + 1):
            p, stride = f"s{i}.b{j}", 2 if j == 1 else 1
            groups = sd[f"{p}.f.b.weight"].shape[0] // sd[f"{p}.f.b.weight"].shape[1]
            f = F.relu(bn(conv(x, f"{p}.f.a"), f"{p}.f.a_bn"))
            f = F.relu(bn(conv(f, f"{p}.f.b", stride, groups), f"{p}.f.b_bn"))
            s = f.mean((2, 3), keepdim=True)
            f = f * torch.sigmoid(conv(F.relu(conv(s, f"{p}.f.se.f_ex.0")), f"{p}.f.se.f_ex.2"))
            f = bn(conv(f, f"{p}.f.c"), f"{p}.f.c_bn")
            short = bn(conv(x, f"{p}.proj", stride), f"{p}.bn") if f"{p}.proj.weight" in sd else x
            x = F.relu(short + f)
    return F.linear(x.mean((2, 3)), sd["head.fc.weight"], sd["head.fc.bias"])


def test_key_mapping_examples():
    assert pycls_key_to_ours("s1.b1.proj.weight") == "s1.b1.shortcut.conv.weight"
    assert pycls_key_to_ours("s1.b1.bn.running_var") == "s1.b1.shortcut.bn.running_var"
    assert pycls_key_to_ours("module.s3.b12.f.b_bn.bias") == "s3.b12.bn2.bias"
    assert pycls_key_to_ours("s2.b1.f.se.f_ex.2.weight") == "s2.b1.se.fc2.weight"
    assert pycls_key_to_ours("head.fc.bias") == "head.fc.bias"
    with pytest.raises(KeyError, match="no mapping"):
        pycls_key_to_ours("s1.b1.f.d.weight")


def test_reference_state_dict_loads_and_computes_the_same_function():
    sd = reference_state_dict()
    model = regnet.create_model("anynet", num_classes=NUM_CLASSES, **ARGS).eval()
    load_pycls(model, {"model_state": sd})  # reference checkpoints nest the weights
    assert set(model.state_dict()) == set(convert_pycls_state_dict(sd))
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference_forward(sd, x), rtol=1e-4, atol=1e-5)
        # The reference expects BGR; converted for RGB, the model sees the flipped channels.
        load_pycls(model, sd, bgr_to_rgb=True)
        torch.testing.assert_close(model(x.flip(1)), reference_forward(sd, x), rtol=1e-4,
                                   atol=1e-5)


def test_wrong_architecture_is_a_clear_error():
    sd = reference_state_dict()
    other = regnet.create_model("anynet", num_classes=NUM_CLASSES,
                                **{**ARGS, "widths": (16, 32, 48, 72)})
    with pytest.raises(ValueError, match=r"do not fit anynet: 24 of another shape \(file vs "
                                         r"model\): head.fc.weight \(5, 64\) vs \(5, 72\), s4"):
        load_pycls(other, sd)
