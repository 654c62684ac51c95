"""`feature_info` speaks timm's interface: a detection neck written against timm backbones
(channels and reductions read off `feature_info`, an FPN on top) runs on every family."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import regnet
from regnet.models.features import FeatureInfo

# One network per family (small input sizes keep each case well under a second).
FAMILIES = [("resnet20", 32), ("regnet20_lstm", 32), ("se_regnet20_gru", 32),
            ("regnetx_200mf_cifar", 32), ("regnety_200mf", 64), ("resnet18", 64),
            ("iresnet18", 64), ("iresgroup50", 64)]


class TimmStyleFPN(nn.Module):
    """What a detection library does with a timm backbone: `features_only`, `out_indices`,
    lateral 1x1 convs sized by `feature_info.channels()`, a top-down pathway whose upsampling
    factors come from `feature_info.reduction()`."""

    def __init__(self, name: str, out_indices=(-3, -2, -1), width: int = 16):
        super().__init__()
        self.body = regnet.create_model(name, features_only=True, out_indices=out_indices)
        info = self.body.feature_info
        self.reductions = info.reduction()
        self.lateral = nn.ModuleList(nn.Conv2d(c, width, 1) for c in info.channels())
        self.smooth = nn.ModuleList(nn.Conv2d(width, width, 3, padding=1)
                                    for _ in info.channels())

    def forward(self, x):
        feats = [lat(f) for lat, f in zip(self.lateral, self.body(x))]
        outs = [feats[-1]]
        for i in range(len(feats) - 2, -1, -1):
            factor = self.reductions[i + 1] // self.reductions[i]
            up = F.interpolate(outs[0], scale_factor=factor, mode="nearest") if factor > 1 \
                else outs[0]
            outs.insert(0, feats[i] + up[..., :feats[i].shape[-2], :feats[i].shape[-1]])
        return [s(o) for s, o in zip(self.smooth, outs)]


@pytest.mark.parametrize("name,size", FAMILIES)
def test_a_timm_style_fpn_runs_on_every_family(name, size):
    torch.manual_seed(0)
    neck = TimmStyleFPN(name)
    x = torch.randn(2, 3, size, size)
    outs = neck(x)
    info = neck.body.feature_info
    for out, r in zip(outs, info.reduction()):
        assert out.shape == (2, 16, -(-size // r), -(-size // r)), (name, r)
    sum(o.float().pow(2).mean() for o in outs).backward()
    assert all(p.grad is not None for p in neck.lateral.parameters())
    # module_name() names the modules that produce those maps.
    for module in info.module_name():
        neck.body.get_submodule(module)


def test_index_zero_is_the_stem_as_in_timm():
    model = regnet.create_model("resnet50")
    info = model.feature_info
    assert isinstance(info, FeatureInfo) and len(info) == 5
    assert info[0] == {"num_chs": 64, "reduction": 4, "module": "stem", "index": 0}
    assert info.channels() == [64, 256, 512, 1024, 2048]
    assert info.reduction() == [4, 4, 8, 16, 32]
    assert info.module_name() == ["stem", "s1", "s2", "s3", "s4"]
    assert info.channels(2) == 512 and info.get("reduction", [1, 4]) == [4, 32]
    assert [d["module"] for d in info][-1] == "s4" and info[-1]["num_chs"] == 2048
    backbone = regnet.create_model("resnet50", features_only=True).eval()
    assert backbone.feature_info.out_indices == (0, 1, 2, 3, 4)  # timm's default: all
    with torch.no_grad():
        outs = backbone(torch.zeros(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == backbone.feature_info.channels()
    last2 = regnet.create_model("resnet50", features_only=True, out_indices=(-2, -1))
    assert last2.feature_info.channels() == [1024, 2048] and len(last2.feature_info) == 5
    with pytest.raises(ValueError, match="0 = the stem"):
        regnet.create_model("resnet50", features_only=True, out_indices=(5,))


def test_forward_intermediates_uses_the_same_indices():
    model = regnet.create_model("resnet20").eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        stem_only = model.forward_intermediates(x, indices=[0], intermediates_only=True)
        final, every = model.forward_intermediates(x)
    assert len(every) == len(model.feature_info) == 4
    torch.testing.assert_close(stem_only[0], every[0])
    assert [f.shape[1] for f in every] == model.feature_info.channels()
