"""Every registered network answers the same calls: forward, backward, head reset, features."""
import math

import pytest
import torch

import regnet
from regnet.complexity import count_params

ALL = regnet.list_models()
# Very deep or very wide variants: their siblings cover the code; counts are tested elsewhere.
HEAVY = {n for n in ALL if any(tag in n for tag in (
    "1001", "2000", "3002", "regnetx_32gf", "regnety_32gf", "regnetx_16gf", "regnety_16gf",
    "resnet200", "iresnet404", "iresnet302"))}
LIGHT = [n for n in ALL if n not in HEAVY]


def small_input(model, batch=2):
    size = tuple(model.default_input_size)
    spatial = tuple(min(s, 64) for s in size[-2:])
    temporal = tuple(min(s, 4) for s in size[1:-2])
    return torch.randn((batch,) + size[:1] + temporal + spatial)


def test_registry_is_not_empty_and_names_are_normalised():
    assert len(ALL) >= 20
    assert all(n == regnet.registry.normalize_name(n) for n in ALL)


@pytest.mark.parametrize("name", LIGHT)
def test_forward_backward_every_parameter_gets_a_gradient(name):
    model = regnet.create_model(name, num_classes=5)
    x = small_input(model)
    out = model(x)
    assert out.shape == (x.shape[0], 5)
    out.square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"no gradient for {missing[:5]}"


@pytest.mark.parametrize("name", LIGHT)
def test_head_reset_and_feature_shapes(name):
    model = regnet.create_model(name).eval()
    x = small_input(model, batch=1)
    model.reset_classifier(3)
    assert model(x).shape == (1, 3)
    assert model.forward_head(model.forward_features(x), pre_logits=True).shape == \
        (1, model.num_features)
    model.reset_classifier(0)
    assert model(x).shape == (1, model.num_features)
    final, feats = model.forward_intermediates(x)
    assert len(feats) == len(model.feature_info)
    for info, f in zip(model.feature_info, feats):
        assert f.shape[1] == info["num_chs"]
        assert f.shape[-1] == math.ceil(x.shape[-1] / info["reduction"]), info
    assert torch.allclose(final, model.forward_features(x))
    backbone = regnet.create_model(name, features_only=True, out_indices=(-2, -1)).eval()
    outs = backbone(x)
    assert [o.shape[1] for o in outs] == [i["num_chs"] for i in model.feature_info[-2:]]


@pytest.mark.parametrize("name", ALL)
def test_registry_entries_declare_classes_and_input_size(name):
    entry = regnet.registry.get_entry(name)
    assert entry.num_classes > 0 and len(entry.input_size) >= 3
    assert entry.family and entry.name == name


def test_unknown_model_names_close_matches():
    with pytest.raises(regnet.UnknownModelError, match="resnet20"):
        regnet.create_model("resnet_2O")
    with pytest.raises(regnet.UnknownModelError, match="closest: "):
        regnet.create_model("no_such_model")


def test_aliases_and_overrides():
    assert regnet.create_model("ResNet-20").model_name == "resnet20"
    a = regnet.create_model("resnet20", shortcut="A")
    assert count_params(a) == 269722  # the option-A count of the self-regulated reference
    with pytest.raises(TypeError, match="valid options"):
        regnet.create_model("resnet20", no_such_knob=1)


def test_grad_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 32)
    grads = []
    for ckpt in (False, True):
        torch.manual_seed(1)
        model = regnet.create_model("resnet20", grad_checkpointing=ckpt).eval()
        model(x).sum().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    torch.testing.assert_close(grads[0], grads[1])


def test_complexity_matches_torch_flop_counter_on_bias_free_nets():
    # torch counts 2 FLOPs per multiply-add and no bias adds; our `macs` is the same quantity.
    from torch.utils.flop_counter import FlopCounterMode
    model = regnet.create_model("resnet18").eval()
    x = torch.zeros(1, 3, 64, 64)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    assert counter.get_total_flops() == 2 * regnet.complexity(model, 64)["macs"]
