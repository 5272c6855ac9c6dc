"""AlexNet, VGG and ResNet: output parity with torchvision's implementations (same weights, same
outputs), small inputs for every variant, and the CIFAR ResNets' parameter counts."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torchvision.models as tvm

import zoo
from zoo.models import alexnet, resnet, vgg
from parity import load_and_compare
from zoo.registry import count_parameters, model_card

PARITY = ["alexnet", "vgg11", "vgg11_bn", "vgg16", "vgg16_bn", "resnet18", "resnet50"]
FAMILY_MODULES = {"alexnet": alexnet, "vgg": vgg, "resnet": resnet}
NEW_MODELS = [n for n in zoo.list_models() if model_card(n).family in FAMILY_MODULES]


def _randomise_batch_norm(net: nn.Module, gen: torch.Generator) -> None:
    """Move every batch norm away from its identity start, so that a wrong mapping of running
    statistics or affine parameters shows up in the outputs."""
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0.0, 0.2, generator=gen)
                m.running_var.uniform_(0.5, 2.0, generator=gen)
                m.weight.uniform_(0.5, 1.5, generator=gen)
                m.bias.normal_(0.0, 0.2, generator=gen)


def test_every_new_family_is_registered():
    assert {"alexnet", "vgg16_bn", "resnet50", "resnet110_cifar"} <= set(NEW_MODELS)
    assert len(NEW_MODELS) == 19


@pytest.mark.parametrize("name", PARITY)
def test_torchvision_parity(name):
    torch.manual_seed(0)
    reference = getattr(tvm, name)(weights=None).eval()
    _randomise_batch_norm(reference, torch.Generator().manual_seed(1))
    expected, got, diff = load_and_compare(name, reference, FAMILY_MODULES[model_card(name).family])
    assert got.shape == expected.shape == (1, 1000)
    assert expected.std() > 0
    assert diff <= 1e-4


@pytest.mark.parametrize("family", sorted(FAMILY_MODULES))
def test_mapping_refuses_unknown_keys(family):
    with pytest.raises(KeyError):
        FAMILY_MODULES[family].from_torchvision_state_dict({"no_such_layer.weight": torch.zeros(1)})


@pytest.mark.parametrize("name", NEW_MODELS)
def test_small_inputs(name):
    """Every variant runs on a 28x28 single-channel image (``small_input`` where the variant
    has a large-stride stem); 32x32 images are larger and pass through the same layers."""
    torch.manual_seed(0)
    kwargs = {"num_classes": 10, "in_chans": 1}
    if "small_input" in model_card(name).defaults:
        kwargs["small_input"] = True
    net = zoo.create_model(name, **kwargs).eval()
    with torch.no_grad():
        out = net(torch.randn(1, 1, 28, 28))
    assert out.shape == (1, 10) and torch.isfinite(out).all()


# He et al. 2016, table 6: parameters of the CIFAR-10 ResNets (10 classes)
CIFAR_PARAMS_M = {20: 0.27, 32: 0.46, 44: 0.66, 56: 0.85, 110: 1.7}


@pytest.mark.parametrize("depth", sorted(CIFAR_PARAMS_M))
def test_cifar_resnet_parameter_counts(depth):
    net = zoo.create_model(f"resnet{depth}_cifar", num_classes=10)
    millions = count_parameters(net) / 1e6
    assert float(f"{millions:.2g}") == CIFAR_PARAMS_M[depth]
    # option A: no projection anywhere; 3 stages of (depth - 2) / 6 basic blocks
    assert not any(isinstance(m, resnet.ProjectionShortcut) for m in net.modules())
    assert [len(s) for s in net.stages] == [(depth - 2) // 6] * 3


def test_zero_pad_shortcut():
    shortcut = resnet.ZeroPadShortcut(16, 32, 2)
    x = torch.randn(2, 16, 32, 32)
    y = shortcut(x)
    assert y.shape == (2, 32, 16, 16)
    assert torch.equal(y[:, :16], x[:, :, ::2, ::2]) and not y[:, 16:].any()
    assert count_parameters(shortcut) == 0


def test_imagenet_resnet_runs_on_32x32_without_small_input():
    net = zoo.create_model("resnet18", num_classes=10).eval()
    with torch.no_grad():
        assert net(torch.randn(1, 3, 32, 32)).shape == (1, 10)
