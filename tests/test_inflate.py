"""2D -> 3D inflation: Table V's parameter counts, exactness of the per-frame (C2D) case, weight
bootstrapping, temporal strides, and inflating one net of every registered family."""
import pytest
import torch
import torch.nn as nn

import regnet
from regnet.complexity import count_params
from regnet.models.inflate import InflationRule, inflate

C2D = InflationRule(stem_kt=1, spatial_kt=1, stage_st=())  # every frame on its own


@pytest.mark.parametrize("classes,paper_m", [(400, 47.00), (174, 46.54)])
def test_table_v_parameter_counts(classes, paper_m):
    model = regnet.create_model("iresnet3d50", num_classes=classes)
    assert round(count_params(model) / 1e6, 2) == paper_m
    assert count_params(regnet.create_model("resnet3d50", num_classes=classes)) == \
        count_params(model)


def test_other_stem_inflations_miss_table_v():
    for kt, params in ((7, 47_018_576), (3, 46_980_944)):
        model = regnet.create_model("iresnet3d50", rule=InflationRule(stem_kt=kt))
        assert count_params(model) == params and round(params / 1e6, 2) != 47.00


def test_per_frame_inflation_averages_the_2d_logits():
    # With no temporal extent the clip net is the 2-D net on each frame, pooled over time too.
    torch.manual_seed(0)
    net2d = regnet.create_model("resnet20", num_classes=4).eval()
    net3d = inflate(regnet.create_model("resnet20", num_classes=4), C2D).eval()
    net3d.load_state_dict({k: v.unsqueeze(2) if v.dim() == 4 else v
                           for k, v in net2d.state_dict().items()})
    clip = torch.randn(2, 3, 5, 16, 16)
    with torch.no_grad():
        per_frame = torch.stack([net2d(clip[:, :, t]) for t in range(5)]).mean(0)
        torch.testing.assert_close(net3d(clip), per_frame, rtol=1e-4, atol=1e-5)


def test_weights_are_spread_over_time_and_keys_kept():
    net2d = regnet.create_model("iresnet18", num_classes=3)
    keys = list(net2d.state_dict())
    w2d = net2d.s2.b1.conv1.weight.detach().clone()
    net3d = inflate(net2d)
    assert list(net3d.state_dict()) == keys
    conv = net3d.s2.b1.conv1
    assert isinstance(conv, nn.Conv3d) and conv.kernel_size == (3, 3, 3)
    assert conv.stride == (1, 2, 2)  # stage 2 keeps time (default rule)
    torch.testing.assert_close(conv.weight.sum(2), w2d)
    assert net3d.stem.conv.kernel_size == (5, 7, 7)
    assert net3d.s3.b1.conv1.stride == (2, 2, 2) and net3d.s3.b1.shortcut.pool.stride == (2, 2, 2)
    assert not any(isinstance(m, (nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d))
                   for m in net3d.modules())


def test_video_net_temporal_layout():
    model = regnet.create_model("iresnet3d50", num_classes=7).eval()
    assert model.default_input_size == (3, 16, 224, 224)
    with torch.no_grad():
        feats = model.forward_intermediates(torch.zeros(1, 3, 16, 32, 32), intermediates_only=True)
    assert [tuple(f.shape[1:3]) for f in feats] == [(64, 16), (256, 16), (512, 16), (1024, 8),
                                                    (2048, 4)]  # the stem, then s1..s4


def _smallest_cifar_net(family):
    names = [n for n in regnet.list_models(family=family)
             if regnet.registry.get_entry(n).input_size == (3, 32, 32)
             and not any(t in n for t in ("1001", "2000", "3002"))]
    return min(names, key=lambda n: (count_params(regnet.create_model(n)), n)) if names else None


FAMILIES = sorted({regnet.registry.get_entry(n).family for n in regnet.list_models()})


@pytest.mark.parametrize("family", FAMILIES)
def test_inflates_a_net_of_every_family(family):
    name = _smallest_cifar_net(family)
    if name is None:
        pytest.skip(f"no CIFAR-sized net in family {family}")
    model = regnet.create_model(name, num_classes=3)
    if family == "self_regulated":  # custom 2-D gate convs: refused, and nothing is changed
        before = [type(m) for m in model.modules()]
        with pytest.raises(ValueError, match="cannot inflate"):
            inflate(model)
        assert [type(m) for m in model.modules()] == before
        return
    model = inflate(model)
    out = model(torch.randn(2, 3, 4, 16, 16))
    assert out.shape == (2, 3)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_inflate_needs_a_conv():
    with pytest.raises(ValueError, match="no Conv2d"):
        inflate(nn.Sequential(nn.ReLU()))
