"""U-Net and the multi-label CNN: output shapes (sizes that are and are not multiples of
``2**depth``, both upsampling modes), the skip connections' effect, the transposed convolution as
a scatter on hand-computed values, the paper's parameter count derived layer by layer, a few
steps of multi-label training, and the clear errors for bad arguments."""
from __future__ import annotations

import hydra
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import zoo
from zoo.models.unet import UNet, transposed_conv_output_size
from zoo.registry import count_parameters, model_card

from conftest import compose_train


# ----------------------------------------------------------------------------------- U-Net shapes

@pytest.mark.parametrize("upsample", ["transposed", "bilinear"])
@pytest.mark.parametrize("size", [(96, 96), (90, 90), (45, 77)])
def test_unet_output_has_the_input_size(size, upsample):
    """96 is a multiple of 2**3; 90 (90 -> 45 -> 22 -> 11) and 45x77 are not: the upsampled maps
    are zero-padded to their skip's size, and the output keeps the input's height and width."""
    torch.manual_seed(0)
    net = zoo.create_model("unet", upsample=upsample).eval()
    with torch.no_grad():
        out = net(torch.randn(2, 1, *size))
    assert out.shape == (2, 11, *size)
    assert torch.isfinite(out).all()


def test_unet_defaults_and_card():
    net = zoo.create_model("unet")
    assert (net.num_classes, net.in_chans, net.image_size, net.depth, net.base_width) == (11, 1, 96, 3, 16)
    (x,) = net.example_inputs(3)
    assert x.shape == (3, 1, 96, 96)
    card = model_card("unet")
    assert card.task == "segmentation" and "U-Net" in card.paper and card.family == "unet"
    assert model_card("multilabel_cnn").task == "multilabel" and "Caruana" in model_card("multilabel_cnn").paper


@pytest.mark.parametrize("name", ["unet", "multilabel_cnn"])
@pytest.mark.parametrize("overrides,side", [(["~experiment"], 28), ([], 32)])
def test_the_config_builds_with_the_default_data(tmp_path, name, overrides, side):
    """With the default data (MNIST, 28x28; 32x32 under the default experiment, which pads it as
    LeNet-5 wants) the YAML takes the data's image_size, which depth 3 handles (28 -> 14 -> 7 -> 3,
    then 6 padded to 7, 14, 28)."""
    cfg = compose_train([f"model={name}", *overrides], tmp_path)
    net = hydra.utils.instantiate(cfg.model, _convert_="all")
    assert net.image_size == side
    with torch.no_grad():
        out = net.eval()(*net.example_inputs(2))
    assert out.shape == ((2, 11, side, side) if name == "unet" else (2, 10))


def test_the_first_skip_connection_matters():
    """Zeroing the stem's map where the last decoder stage concatenates it (and only there: the
    encoder still pools the real map) changes the output."""
    torch.manual_seed(0)
    net = zoo.create_model("unet", image_size=32).eval()
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        ref = net(x)
        calls = []

        def zero_skip(module, args):
            calls.append(args[1].shape)
            return args[0], torch.zeros_like(args[1])

        handle = net.ups[-1].register_forward_pre_hook(zero_skip)
        try:
            cut = net(x)
        finally:
            handle.remove()
        again = net(x)
    assert calls == [torch.Size([2, 16, 32, 32])]  # the first skip: base_width channels, full size
    assert torch.equal(again, ref)
    assert (cut - ref).abs().max() > 1e-3


# ---------------------------------------------------------------------- the transposed convolution

def test_a_2x2_stride_2_transposed_convolution_doubles_the_size_by_scatter():
    """Each input value times the kernel, added into the output at twice its position: with a
    2x2 kernel at stride 2 the copies do not overlap, so every input value paints its own 2x2
    patch."""
    x = torch.tensor([[1.0, 2.0],
                      [3.0, 4.0]])
    k = torch.tensor([[1.0, 10.0],
                      [100.0, 1000.0]])
    expected = torch.tensor([
        [1.0, 10.0, 2.0, 20.0],          # 1 * k[0], 2 * k[0]
        [100.0, 1000.0, 200.0, 2000.0],  # 1 * k[1], 2 * k[1]
        [3.0, 30.0, 4.0, 40.0],          # 3 * k[0], 4 * k[0]
        [300.0, 3000.0, 400.0, 4000.0],  # 3 * k[1], 4 * k[1]
    ])
    up = nn.ConvTranspose2d(1, 1, kernel_size=2, stride=2)
    with torch.no_grad():
        up.weight.copy_(k.view(1, 1, 2, 2))  # (in_channels, out_channels, kH, kW)
        up.bias.zero_()
        out = up(x.view(1, 1, 2, 2))[0, 0]
    assert transposed_conv_output_size(2, kernel=2, stride=2, padding=0) == 4
    assert out.shape == (4, 4)
    assert torch.equal(out, expected)
    for n in (1, 3, 11, 45):  # (n - 1) * 2 + 2 = 2n
        assert transposed_conv_output_size(n, 2, 2, 0) == 2 * n


def _scatter(x: torch.Tensor, k: torch.Tensor, stride: int, padding: int) -> torch.Tensor:
    """The transposed convolution of one 2-D map with one kernel, written as its definition."""
    (h, w), (kh, kw) = x.shape, k.shape
    out = torch.zeros((h - 1) * stride + kh, (w - 1) * stride + kw, dtype=x.dtype)
    for i in range(h):
        for j in range(w):
            out[i * stride:i * stride + kh, j * stride:j * stride + kw] += x[i, j] * k
    return out[padding:out.shape[0] - padding, padding:out.shape[1] - padding]


@pytest.mark.parametrize("kernel,stride,padding", [(2, 2, 0), (3, 2, 0), (3, 2, 1), (4, 2, 1), (3, 1, 1)])
def test_the_scatter_and_the_size_formula_match_torch(kernel, stride, padding):
    """With overlapping copies (kernel > stride) the products add up; padding trims each side."""
    torch.manual_seed(0)
    x = torch.randn(3, 5, dtype=torch.float64)
    up = nn.ConvTranspose2d(1, 1, kernel, stride, padding, bias=False).double()
    with torch.no_grad():
        out = up(x.view(1, 1, 3, 5))[0, 0]
    ref = _scatter(x, up.weight.detach()[0, 0], stride, padding)
    assert out.shape == (transposed_conv_output_size(3, kernel, stride, padding),
                         transposed_conv_output_size(5, kernel, stride, padding))
    assert torch.allclose(out, ref, atol=1e-12)


def test_the_unet_upsampling_is_a_2x2_stride_2_transposed_convolution():
    net = zoo.create_model("unet")
    up = net.ups[0].up
    assert isinstance(up, nn.ConvTranspose2d)
    assert (up.kernel_size, up.stride, up.padding) == ((2, 2), (2, 2), (0, 0))
    assert (up.in_channels, up.out_channels) == (128, 64)  # halves the channels
    bilinear = zoo.create_model("unet", upsample="bilinear").ups[0].up
    assert isinstance(bilinear[0], nn.Upsample) and bilinear[1].kernel_size == (1, 1)


# ------------------------------------------------------------------------- the paper's parameters

def test_unet_parameter_count_matches_the_paper_network():
    """The paper's network (Ronneberger et al. 2015, figure 1): 1 input channel, 2 classes, 64
    channels doubled at 4 poolings up to 1024, biases, no batch norm. The paper does not state a
    count; derived layer by layer (3x3 conv a->b: 9ab + b; 2x2 up-conv a->a/2: 4a(a/2) + a/2; the
    convolutions are unpadded there and padded here, which changes no weight):

        contracting path
          1->64, 64->64         640 +    36,928 =     37,568
          64->128, 128->128   73,856 +   147,584 =    221,440
          128->256, 256->256 295,168 +   590,080 =    885,248
          256->512, 512->512 1,180,160 + 2,359,808 =  3,539,968
          512->1024, 1024->1024 4,719,616 + 9,438,208 = 14,157,824   (sum 18,842,048)
        expanding path (up-conv, then 3x3 on the concatenation, then 3x3)
          1024: 2,097,664 + 4,719,104 + 2,359,808 = 9,176,576
          512:    524,544 + 1,179,904 +   590,080 = 2,294,528
          256:    131,200 +   295,040 +   147,584 =   573,824
          128:     32,832 +    73,792 +    36,928 =   143,552       (sum 12,188,480)
        1x1 conv 64->2: 130

    total 18,842,048 + 12,188,480 + 130 = 31,030,658 (about 31.0 million).
    """
    net = zoo.create_model("unet", in_chans=1, num_classes=2, base_width=64, depth=4, batch_norm=False,
                           upsample="transposed")
    assert count_parameters(net.stem) == 37_568
    assert [count_parameters(d) for d in net.downs] == [221_440, 885_248, 3_539_968, 14_157_824]
    assert [count_parameters(u) for u in net.ups] == [9_176_576, 2_294_528, 573_824, 143_552]
    assert count_parameters(net.head) == 130
    assert count_parameters(net) == 31_030_658


# -------------------------------------------------------------------------------------- multi-label

def test_multilabel_output_shape():
    net = zoo.create_model("multilabel_cnn")
    (x,) = net.example_inputs(3)
    assert x.shape == (3, 1, 96, 96)
    assert net(x).shape == (3, 10)
    assert net.head_name == "head" and net.head.out_features == 10
    assert zoo.create_model("multilabel_cnn", num_classes=4, in_chans=3).eval()(torch.randn(2, 3, 50, 37)).shape == (2, 4)


def test_multilabel_bce_with_logits_trains_on_a_tiny_batch():
    """Eight 32x32 images with 1 to 3 classes each (a fixed multi-hot): the loss, one binary
    cross-entropy per class on the raw logits, falls in a few Adam steps."""
    torch.manual_seed(0)
    net = zoo.create_model("multilabel_cnn", image_size=32, widths=[8, 16, 32]).train()
    x = torch.randn(8, 1, 32, 32)
    target = torch.zeros(8, 10)
    for i in range(8):
        target[i, torch.randperm(10)[:1 + i % 3]] = 1.0
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(8):
        opt.zero_grad()
        loss = F.binary_cross_entropy_with_logits(net(x), target)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0], losses


# ------------------------------------------------------------------------------------- bad inputs

@pytest.mark.bad_input
@pytest.mark.parametrize("kwargs,words", [
    ({"depth": 0}, ["depth must be >= 1", "depth=0"]),
    ({"base_width": 0}, ["base_width must be >= 1", "base_width=0"]),
    ({"upsample": "nearest"}, ["upsample must be one of", "'transposed'", "'bilinear'", "upsample='nearest'"]),
    ({"image_size": 4}, ["image_size=4", "2**depth=8"]),
])
def test_unet_refuses_bad_arguments(kwargs, words):
    with pytest.raises(ValueError) as err:
        zoo.create_model("unet", **kwargs)
    for w in words:
        assert w in str(err.value), str(err.value)


@pytest.mark.bad_input
def test_unet_refuses_an_input_smaller_than_2_to_the_depth():
    net = UNet(depth=3, image_size=8)
    with pytest.raises(ValueError) as err:
        net(torch.randn(1, 1, 7, 32))
    msg = str(err.value)
    assert "input of 7x32 pixels" in msg and "2**depth=8" in msg and "depth=3" in msg


@pytest.mark.bad_input
@pytest.mark.parametrize("kwargs,words", [
    ({"widths": []}, ["widths must be", "widths=[]"]),
    ({"dropout": 1.0}, ["dropout must be in [0, 1)", "dropout=1.0"]),
    ({"num_classes": 0}, ["num_classes and in_chans must be >= 1", "num_classes=0"]),
])
def test_multilabel_refuses_bad_arguments(kwargs, words):
    with pytest.raises(ValueError) as err:
        zoo.create_model("multilabel_cnn", **kwargs)
    for w in words:
        assert w in str(err.value), str(err.value)
