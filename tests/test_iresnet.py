"""iResNet family: block positions, the ReLU count on the main path, shortcuts, ResGroup widths,
the SSD trunk, feature extraction and the paper's FLOP convention."""
import math

import pytest
import torch
import torch.nn as nn

import regnet
from regnet.complexity import count_params
from regnet.layers import make_shortcut
from regnet.complexity import paper_flops
from regnet.models.blocks import StageBlock, stage_positions
from regnet.models.factory import ssd_trunk

TINY = dict(widths=(4, 8, 16))  # CIFAR iResNet / preact widths small enough for deep stages


def min_relus_on_any_path(out: torch.Tensor, x: torch.Tensor) -> int:
    """Fewest ReLUs the signal crosses from `x` to `out`, over every path of the autograd graph.

    The main path of a residual stage is the one through the shortcuts, so this is the number of
    ReLUs on it (a path through a residual branch crosses more, never fewer).
    """
    memo = {}  # node -> fewest ReLUs from x up to and including node (nodes kept alive here)
    stack = [(out.grad_fn, False)]
    while stack:  # iterative post-order: deep stages would overflow recursion
        node, expanded = stack.pop()
        if node in memo:
            continue
        children = [n for n, _ in node.next_functions if n is not None]
        if not expanded:
            stack.append((node, True))
            stack.extend((n, False) for n in children if n not in memo)
            continue
        if getattr(node, "variable", None) is x:
            memo[node] = 0
        else:
            memo[node] = min((memo[n] for n in children), default=math.inf) \
                + ("Relu" in type(node).__name__)
    return memo[out.grad_fn]


def stage_relus(name: str, depth: int, **overrides) -> int:
    model = regnet.create_model(name, depths=(depth, 2, 2), **overrides)
    x = model.stem(torch.randn(1, 3, 8, 8)).detach().requires_grad_()
    return min_relus_on_any_path(model.s1(x), x)


@pytest.mark.parametrize("depth", [2, 3, 5, 12])
def test_relus_on_the_main_path_do_not_grow_with_depth(depth):
    # The paper's text: one ReLU per stage (the End block's); the authors' code (the default)
    # also rectifies the identity of the block after Start: two. Neither grows with depth; the
    # plain ResNet crosses one per block.
    assert stage_relus("iresnet164", depth, stage_identity="raw", **TINY) == 1
    assert stage_relus("iresnet164", depth, **TINY) == 2
    # Pre-activation: a pure identity path (these widths need no projection in stage 1).
    assert stage_relus("preact_resnet164", depth, **TINY) == 0
    plain = regnet.create_model("resnet20", depths=(depth, 1, 1), widths=(4, 8, 16))
    x = plain.stem(torch.randn(1, 3, 8, 8)).detach().requires_grad_()
    assert min_relus_on_any_path(plain.s1(x), x) == depth


def test_block_positions_and_the_bn_count_of_the_plain_resnet():
    assert [stage_positions(i, 4) for i in range(4)] == [
        {"position": "start"}, {"position": "middle", "pre_bn": False},
        {"position": "middle", "pre_bn": True}, {"position": "end", "pre_bn": True}]
    # A two-block stage: the End block is the one without BN0.
    assert stage_positions(1, 2) == {"position": "end", "pre_bn": False}
    with pytest.raises(ValueError, match="at least 2 blocks"):
        stage_positions(0, 1)
    for ours, plain in (("iresnet50", "resnet50"), ("iresnet18", "resnet18"),
                        ("iresnet152", "resnet152")):
        count = [sum(isinstance(m, nn.BatchNorm2d) for m in regnet.create_model(n).modules())
                 for n in (ours, plain)]
        assert count[0] == count[1], (ours, count)
    s1 = regnet.create_model("iresnet50").s1
    assert isinstance(s1.b2.bn0, nn.Identity) and isinstance(s1.b3.bn0, nn.BatchNorm2d)
    assert not hasattr(s1.b2, "bn3") and s1.b3.bn3.num_features == 256


def test_start_middle_end_compute_what_the_paper_says():
    torch.manual_seed(0)
    x = torch.randn(2, 8, 6, 6)
    start = StageBlock(8, 16, 2, position="start", mid_chs=4).eval()
    y = start(x)
    b = start
    branch = b.bn3(b.conv3(b.act2(b.bn2(b.conv2(b.act1(b.bn1(b.conv1(x))))))))
    torch.testing.assert_close(y, branch + b.shortcut.bn(b.shortcut.conv(b.shortcut.pool(x))))
    assert (y < 0).any()  # no ReLU after a Start block's addition
    end = StageBlock(16, 16, 1, position="end", mid_chs=4).eval()
    z = end(y)
    inner = end.conv3(end.act2(end.bn2(end.conv2(end.act1(end.bn1(end.conv1(
        torch.relu(end.bn0(y)))))))))
    torch.testing.assert_close(z, torch.relu(end.bn3(y + inner)))
    with pytest.raises(ValueError, match="Start block"):
        StageBlock(8, 16, 1, position="middle", mid_chs=4)


def test_improved_shortcut_cases():
    x = torch.randn(1, 8, 8, 8)
    both = make_shortcut(8, 16, 2, "improved")
    assert [type(m).__name__ for m in (both.pool, both.conv, both.bn)] == \
        ["MaxPool2d", "Conv2d", "BatchNorm2d"]
    assert both.conv.stride == (1, 1) and both(x).shape == (1, 16, 4, 4)
    channels = make_shortcut(8, 16, 1, "improved")
    assert isinstance(channels.pool, nn.Identity) and channels(x).shape == (1, 16, 8, 8)
    stride = make_shortcut(8, 8, 2, "improved")
    torch.testing.assert_close(stride(x), nn.functional.max_pool2d(x, 3, 2, 1))
    assert count_params(stride) == 0
    assert count_params(make_shortcut(8, 16, 2, "improved")) == \
        count_params(make_shortcut(8, 16, 2, "B"))  # the max-pool is free


def test_resgroup_puts_the_widest_channels_on_the_grouped_3x3():
    for name, groups in (("resgroup50", (8, 16, 32, 64)), ("resgroupfix50", (64,) * 4),
                         ("iresgroup50", (8, 16, 32, 64)), ("iresgroupfix50", (64,) * 4)):
        model = regnet.create_model(name)
        assert [i["num_chs"] for i in model.feature_info[1:]] == [128, 256, 512, 1024]
        for stage, g, w in zip(model.stages(), groups, (256, 512, 1024, 2048)):
            conv2 = stage.b2.conv2
            assert (conv2.in_channels, conv2.out_channels, conv2.groups) == (w, w, g), name
            assert stage.b2.conv3.out_channels == w // 2
        assert model.head.fc.in_features == 1024


def test_ssd_trunk_shape_and_params():
    trunk = ssd_trunk("iresnet50").eval()
    assert count_params(trunk) == 8_543_296
    with torch.no_grad():
        (out,) = trunk(torch.zeros(1, 3, 300, 300))
    assert out.shape == (1, 1024, 38, 38)
    assert trunk.feature_info.reduction() == [8] and trunk.feature_info.channels() == [1024]
    # A classifier checkpoint loads into it; only the dropped stage 4 and head are left over.
    full = regnet.create_model("iresnet50")
    missing, unexpected = trunk.load_state_dict(full.state_dict(), strict=False)
    assert not missing and {k.split(".")[0] for k in unexpected} == {"s4", "head"}


def test_features_only_every_stage():
    model = regnet.create_model("iresnet50", features_only=True, out_indices=(1, 2, 3, 4)).eval()
    with torch.no_grad():
        outs = model(torch.zeros(1, 3, 64, 64))
    assert [tuple(o.shape[1:]) for o in outs] == [(256, 16, 16), (512, 8, 8), (1024, 4, 4),
                                                  (2048, 2, 2)]
    assert model.feature_info.reduction() == [4, 8, 16, 32]


def test_grad_checkpointing_same_gradients_in_training_mode():
    x = torch.randn(4, 3, 16, 16)
    grads = []
    for ckpt in (False, True):
        torch.manual_seed(1)
        model = regnet.create_model("iresnet164", depths=(4, 3, 2), grad_checkpointing=ckpt,
                                    **TINY)
        model(x).square().mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    torch.testing.assert_close(grads[0], grads[1])


@pytest.mark.parametrize("name,paper,relu", [("iresnet50", 4.18, False),
                                             ("resgroup50", 5.43, False),
                                             ("iresnet164", 0.26, True)])
def test_paper_flop_convention(name, paper, relu):
    model = regnet.create_model(name)
    macs = regnet.complexity(model)["macs"] / 1e9
    ours = paper_flops(model, count_relu=relu) / 1e9
    assert abs(ours - paper) <= 0.005 + 0.003 * paper  # the paper prints 2 decimals
    assert macs < paper * 0.99  # plain multiply-adds are clearly below the paper's figure


def test_config_errors_are_clear():
    with pytest.raises(ValueError, match="needs >= 2 blocks"):
        regnet.create_model("iresnet50", depths=(1, 2, 2, 2))
    with pytest.raises(ValueError, match="unknown layout"):
        regnet.create_model("iresnet50", layout="zigzag")
