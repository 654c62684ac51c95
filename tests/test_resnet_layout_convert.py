"""State dicts in torchvision's ResNet layout (torchvision, timm, the iResNet authors' code) load
strictly after the documented key mapping, and the loaded model computes what the source's own
forward computes with those weights: a functional forward written here from the source's
definition, not from our model code."""
import pytest
import torch
import torch.nn.functional as F

import regnet
from regnet.models.convert import convert_resnet_layout_state_dict, load_resnet_layout
from test_anynet_convert import _bn, _conv

DEPTHS = (2, 3, 2, 2)          # a 2-block stage (End without BN0) and a 3-block one
WIDTHS = (8, 16, 24, 32)       # planes; small so the test is fast
STEM, CLASSES = 16, 5


def _bnf(sd, key, x):
    return F.batch_norm(x, sd[f"{key}.running_mean"], sd[f"{key}.running_var"],
                        sd[f"{key}.weight"], sd[f"{key}.bias"], False, 0.0, 1e-5)


def _fc(sd, g, c_in):
    sd["fc.weight"] = torch.randn(CLASSES, c_in, generator=g) * 0.1
    sd["fc.bias"] = torch.randn(CLASSES, generator=g) * 0.1


def _stem(seed):
    g = torch.Generator().manual_seed(seed)
    sd = {}
    _conv(sd, "conv1", STEM, 3, 7, g)
    _bn(sd, "bn1", STEM, g)
    return sd, g


def _blocks():
    """(stage, index, depth, planes, key prefix) of every block, in order."""
    return [(i, j, d, planes, f"layer{i}.{j}")
            for i, (d, planes) in enumerate(zip(DEPTHS, WIDTHS), 1) for j in range(d)]


def iresnet_state_dict():
    """The iResNet authors' bottleneck iResNet (iresnet.py): a Start block with a max-pool
    projection, BN0 in every later block but the first after Start, BN3 in Start and End."""
    sd, g = _stem(0)
    c_in = STEM
    for i, j, d, planes, p in _blocks():
        if j > 1:
            _bn(sd, f"{p}.bn0", planes * 4, g)
        _conv(sd, f"{p}.conv1", planes, c_in if j == 0 else planes * 4, 1, g)
        _bn(sd, f"{p}.bn1", planes, g)
        _conv(sd, f"{p}.conv2", planes, planes, 3, g)
        _bn(sd, f"{p}.bn2", planes, g)
        _conv(sd, f"{p}.conv3", planes * 4, planes, 1, g)
        if j in (0, d - 1):
            _bn(sd, f"{p}.bn3", planes * 4, g)
        if j == 0:  # downsample = (max-pool, conv1x1, BN)
            _conv(sd, f"{p}.downsample.1", planes * 4, c_in, 1, g)
            _bn(sd, f"{p}.downsample.2", planes * 4, g)
        if j == d - 1:
            c_in = planes * 4
    _fc(sd, g, c_in)
    return sd


def iresnet_forward(sd, x):
    """iResNet as the authors' code runs it (eval mode)."""
    x = F.relu(_bnf(sd, "bn1", F.conv2d(x, sd["conv1.weight"], stride=2, padding=3)))
    for i, d in enumerate(DEPTHS, 1):
        for j in range(d):
            p = f"layer{i}.{j}"
            identity = x
            if j == 0:
                out = F.conv2d(x, sd[f"{p}.conv1.weight"])
            elif j == 1:
                # `out = self.relu(x)` with an in-place ReLU: the identity is rectified too
                x = F.relu(x)
                identity = x
                out = F.conv2d(x, sd[f"{p}.conv1.weight"])
            else:
                out = F.conv2d(F.relu(_bnf(sd, f"{p}.bn0", x)), sd[f"{p}.conv1.weight"])
            out = F.relu(_bnf(sd, f"{p}.bn1", out))
            out = F.conv2d(out, sd[f"{p}.conv2.weight"], stride=2 if j == 0 else 1, padding=1)
            out = F.conv2d(F.relu(_bnf(sd, f"{p}.bn2", out)), sd[f"{p}.conv3.weight"])
            if j == 0:
                out = _bnf(sd, f"{p}.bn3", out)
                pooled = F.max_pool2d(x, 3, 2, 1)
                identity = _bnf(sd, f"{p}.downsample.2",
                                F.conv2d(pooled, sd[f"{p}.downsample.1.weight"]))
            out = out + identity
            if j == d - 1:
                out = F.relu(_bnf(sd, f"{p}.bn3", out))
            x = out
    return F.linear(x.mean((2, 3)), sd["fc.weight"], sd["fc.bias"])


def resnet_state_dict():
    """torchvision's BasicBlock ResNet (resnet.py): 7x7 stem + max-pool, projection shortcut
    downsample = (strided 1x1, BN)."""
    sd, g = _stem(1)
    c_in = STEM
    for i, j, d, planes, p in _blocks():
        _conv(sd, f"{p}.conv1", planes, c_in if j == 0 else planes, 3, g)
        _bn(sd, f"{p}.bn1", planes, g)
        _conv(sd, f"{p}.conv2", planes, planes, 3, g)
        _bn(sd, f"{p}.bn2", planes, g)
        if j == 0 and (i > 1 or c_in != planes):
            _conv(sd, f"{p}.downsample.0", planes, c_in, 1, g)
            _bn(sd, f"{p}.downsample.1", planes, g)
        if j == d - 1:
            c_in = planes
    _fc(sd, g, c_in)
    return sd


def resnet_forward(sd, x):
    x = F.relu(_bnf(sd, "bn1", F.conv2d(x, sd["conv1.weight"], stride=2, padding=3)))
    x = F.max_pool2d(x, 3, 2, 1)
    for i, d in enumerate(DEPTHS, 1):
        for j in range(d):
            p, stride = f"layer{i}.{j}", 2 if (j == 0 and i > 1) else 1
            out = F.relu(_bnf(sd, f"{p}.bn1", F.conv2d(x, sd[f"{p}.conv1.weight"],
                                                       stride=stride, padding=1)))
            out = _bnf(sd, f"{p}.bn2", F.conv2d(out, sd[f"{p}.conv2.weight"], padding=1))
            identity = x
            if f"{p}.downsample.0.weight" in sd:
                identity = _bnf(sd, f"{p}.downsample.1",
                                F.conv2d(x, sd[f"{p}.downsample.0.weight"], stride=stride))
            x = F.relu(out + identity)
    return F.linear(x.mean((2, 3)), sd["fc.weight"], sd["fc.bias"])


def _ours(name, **kw):
    return regnet.create_model(name, num_classes=CLASSES, depths=DEPTHS, widths=WIDTHS,
                               stem_chs=STEM, **kw).eval()


def test_iresnet_authors_weights_compute_their_outputs():
    sd = iresnet_state_dict()
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        want = iresnet_forward(sd, x)
        model = _ours("iresnet50")
        load_resnet_layout(model, sd)
        torch.testing.assert_close(model(x), want, rtol=1e-4, atol=1e-5)
        # The paper's text (x + F(ReLU(x)) after each Start block), the form this library
        # computed before, does not compute the authors' outputs with their weights.
        raw = _ours("iresnet50", stage_identity="raw")
        load_resnet_layout(raw, sd)
        assert not torch.allclose(raw(x), want, rtol=1e-2, atol=1e-3)


def test_torchvision_resnet_weights_compute_its_outputs():
    sd = resnet_state_dict()
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    model = _ours("resnet18")
    load_resnet_layout(model, {"state_dict": {f"module.{k}": v for k, v in sd.items()}})
    with torch.no_grad():
        torch.testing.assert_close(model(x), resnet_forward(sd, x), rtol=1e-4, atol=1e-5)


def test_weights_of_another_architecture_name_what_does_not_fit():
    model = _ours("resnet18")
    with pytest.raises(ValueError) as err:
        load_resnet_layout(model, iresnet_state_dict())
    text = str(err.value)
    assert "\n" not in text and "do not fit resnet18" in text
    assert "unexpected: " in text and "of another shape" in text
    with pytest.raises(KeyError, match="no mapping for key 'layer1.0.se.fc1.weight'"):
        convert_resnet_layout_state_dict({"layer1.0.se.fc1.weight": torch.zeros(1)})
