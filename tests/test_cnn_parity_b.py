"""NiN, GoogLeNet, MobileNets, EfficientNets and DenseNets: output parity with torchvision's
implementations (same weights, same outputs), parameter counts, GoogLeNet's auxiliary outputs,
and small inputs for every variant."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torchvision.models as tvm

import zoo
from zoo.models import densenet, efficientnet, googlenet, mobilenet, nin
from parity import load_and_compare
from zoo.registry import count_parameters, model_card

FAMILY_MODULES = {"densenet": densenet, "efficientnet": efficientnet, "googlenet": googlenet,
                  "mobilenet": mobilenet, "nin": nin}
NEW_MODELS = [n for n in zoo.list_models() if model_card(n).family in FAMILY_MODULES]
MAPPED_FAMILIES = ["densenet", "efficientnet", "googlenet", "mobilenet"]


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: these batches are tiny, and on a shared 2-core machine the
    synchronisation of a second thread costs far more than it saves (10x here)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _reference(name: str) -> nn.Module:
    if name == "googlenet":
        return tvm.googlenet(weights=None, aux_logits=True, init_weights=True, transform_input=False)
    return getattr(tvm, name)(weights=None)


def _randomise_batch_norm(net: nn.Module, gen: torch.Generator) -> None:
    """Move every batch norm away from its identity start, so that a wrong mapping of running
    statistics or affine parameters shows up in the outputs.

    Random affine parameters first; then the running statistics of one random batch (so that the
    eval-mode activations keep a sensible scale through a deep net whatever the initialisation),
    jittered.
    """
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        for m in bns:
            m.weight.uniform_(0.5, 1.5, generator=gen)
            m.bias.normal_(0.0, 0.2, generator=gen)
            m.reset_running_stats()
            m.momentum = None  # cumulative average: after one batch, the batch's statistics
        net.train()
        net(torch.randn(2, 3, 128, 128, generator=gen))
        for m in bns:
            m.momentum = 0.1
            m.running_mean.add_(0.1 * m.running_var.sqrt() * torch.randn(m.running_mean.shape, generator=gen))
            m.running_var.mul_(torch.empty_like(m.running_var).uniform_(0.8, 1.25, generator=gen))
    net.eval()


@pytest.mark.parametrize("name", ["googlenet", "mobilenet_v2", "efficientnet_b0", "densenet121"])
def test_torchvision_parity(name):
    torch.manual_seed(0)
    reference = _reference(name)
    _randomise_batch_norm(reference, torch.Generator().manual_seed(1))
    expected, got, diff = load_and_compare(name, reference, FAMILY_MODULES[model_card(name).family])
    assert isinstance(got, torch.Tensor) and got.shape == expected.shape == (1, 1000)
    assert expected.std() > 0.05  # the outputs are not vanishingly small
    assert diff <= 1e-4


@pytest.mark.parametrize("name", ["efficientnet_b1", "efficientnet_b2", "efficientnet_b3", "densenet169"])
def test_parameter_counts_match_torchvision(name):
    torch.manual_seed(0)
    reference = _reference(name)
    ours = zoo.create_model(name)
    assert count_parameters(ours) == count_parameters(reference)
    # the mapping covers every key and every shape matches
    ours.load_state_dict(FAMILY_MODULES[model_card(name).family].from_torchvision_state_dict(
        reference.state_dict()), strict=True)


def test_googlenet_auxiliary_outputs_match_torchvision():
    """Training mode, dropout off: both auxiliary heads and the main head agree with
    torchvision's (which orders them logits, aux2, aux1)."""
    torch.manual_seed(0)
    reference = _reference("googlenet")
    ours = zoo.create_model("googlenet")
    ours.load_state_dict(googlenet.from_torchvision_state_dict(reference.state_dict()), strict=True)
    for net in (reference, ours):
        for m in net.modules():
            if isinstance(m, nn.Dropout):
                m.p = 0.0
        net.train()
    x = torch.randn(2, 3, 96, 96, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected, got = reference(x), ours(x)
    assert isinstance(got, googlenet.GoogLeNetOutput)
    for a, b in [(got.logits, expected.logits), (got.aux1, expected.aux_logits1),
                 (got.aux2, expected.aux_logits2)]:
        assert a.shape == (2, 1000)
        assert (a - b).abs().max().item() <= 1e-4


def test_googlenet_output_contract():
    torch.manual_seed(0)
    x = torch.randn(2, 1, 28, 28)
    net = zoo.create_model("googlenet", num_classes=10, in_chans=1, small_input=True)
    out = net.train()(x)
    assert isinstance(out, tuple) and len(out) == 3
    logits, aux1, aux2 = out
    assert logits.shape == aux1.shape == aux2.shape == (2, 10)
    assert out.aux1 is aux1 and out.aux2 is aux2
    assert isinstance(net.eval()(x), torch.Tensor)  # eval: main logits only
    plain = zoo.create_model("googlenet", num_classes=10, in_chans=1, small_input=True, aux_logits=False)
    assert not hasattr(plain, "aux1") and not hasattr(plain, "aux2")
    y = plain.train()(x)
    assert isinstance(y, torch.Tensor) and y.shape == (2, 10)


@pytest.mark.parametrize("family", MAPPED_FAMILIES)
def test_mapping_refuses_unknown_keys(family):
    with pytest.raises(KeyError):
        FAMILY_MODULES[family].from_torchvision_state_dict({"no_such_layer.weight": torch.zeros(1)})


def test_every_new_family_is_registered():
    assert set(NEW_MODELS) == {
        "nin", "googlenet", "mobilenet_v1", "mobilenet_v2", "efficientnet_b0", "efficientnet_b1",
        "efficientnet_b2", "efficientnet_b3", "densenet121", "densenet169", "densenet_bc_100_cifar",
    }


@pytest.mark.parametrize("name", NEW_MODELS)
def test_small_inputs(name):
    """Every variant runs on a 28x28 single-channel image with ``small_input=True``
    (densenet_bc_100_cifar is a CIFAR net and has no such switch)."""
    torch.manual_seed(0)
    kwargs = {"num_classes": 10, "in_chans": 1}
    if "small_input" in model_card(name).defaults:
        kwargs["small_input"] = True
    net = zoo.create_model(name, **kwargs).eval()
    with torch.no_grad():
        out = net(torch.randn(1, 1, 28, 28))
    assert isinstance(out, torch.Tensor) and out.shape == (1, 10) and torch.isfinite(out).all()


@pytest.mark.parametrize("width_mult, millions", [(1.0, 4.2), (0.75, 2.6), (0.5, 1.3), (0.25, 0.5)])
def test_mobilenet_v1_parameter_counts(width_mult, millions):
    """Howard et al. 2017, table 6 (1000 classes): 4.2M, 2.6M, 1.3M and 0.5M parameters."""
    net = zoo.create_model("mobilenet_v1", width_mult=width_mult)
    assert round(count_parameters(net) / 1e6, 1) == millions


def test_depthwise_separable_costs_less():
    """A depthwise-separable 3x3 block has ``1/N + 1/9`` of the weights of a full 3x3 conv."""
    block = mobilenet.DepthwiseSeparable(256, 256)
    full = 3 * 3 * 256 * 256
    convs = sum(m.weight.numel() for m in block.modules() if isinstance(m, nn.Conv2d))
    assert convs == 3 * 3 * 256 + 256 * 256
    assert abs(convs / full - (1 / 256 + 1 / 9)) < 1e-12


def test_densenet_bc_100_cifar_matches_the_paper():
    """DenseNet-BC (L=100, k=12): 0.8M parameters, 3 blocks of 16 bottleneck layers."""
    net = zoo.create_model("densenet_bc_100_cifar", num_classes=10)
    assert round(count_parameters(net) / 1e6, 1) == 0.8
    assert [len(getattr(net, f"block{i}").layers) for i in (1, 2, 3)] == [16, 16, 16]
    assert net.fc.in_features == 342  # 24 + 16k -> 108 -> +16k -> 150 -> +16k


def test_efficientnet_stochastic_depth_schedule():
    net = zoo.create_model("efficientnet_b0")
    probs = [b.drop_path.p for stage in net.stages for b in stage if b.use_residual]
    assert probs == sorted(probs) and 0.0 < probs[-1] < 0.2
    assert net.resolution == 224 and zoo.create_model("efficientnet_b3").resolution == 300


def test_drop_path_keeps_the_expectation():
    from zoo.layers import DropPath
    drop = DropPath(0.25)
    x = torch.ones(20000, 1, 1, 1)
    y = drop.train()(x)
    kept = y[y != 0]
    assert torch.allclose(kept, torch.full_like(kept, 1 / 0.75))  # survivors rescaled (1/0.75 rounded once in float32)
    assert abs(y.mean().item() - 1.0) < 0.03 and abs((y == 0).float().mean().item() - 0.25) < 0.03
    assert torch.equal(drop.eval()(x), x)


def test_from_torchvision_state_dict_renames_the_keys():
    """The mappings write our own module names, not torchvision's."""
    torch.manual_seed(0)
    mapped = densenet.from_torchvision_state_dict(tvm.densenet121(weights=None).state_dict())
    assert "block1.layers.0.bn1.weight" in mapped and "fc.weight" in mapped
    assert not any(k.startswith("features.") for k in mapped)
