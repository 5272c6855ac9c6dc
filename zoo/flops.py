"""Floating-point operation counts of a model's forward pass and of one training step.

Counted with ``torch.utils.flop_counter.FlopCounterMode``: matrix multiplies and convolutions
(including their grouped/depthwise forms) at two FLOPs per multiply-accumulate; element-wise
operations (activations, batch norm, pooling, additions, the loss) are not counted, which is the
usual convention of papers and of torchvision's model tables (they report GFLOPS = 2 x GMACs of
the same operators).

Corrections to torch's own formulas, installed by :func:`flop_counter`:

* Convolution backward. torch's formula for the weight gradient of a grouped convolution leaves
  out the group count, so it counts ``groups`` times the multiplies that are done (for a
  depthwise convolution, ``channels`` times: 32x to 1536x in MobileNet and EfficientNet). Here
  each gradient of a convolution costs what its forward costs: the input gradient pairs every
  (output position, kernel tap, input channel of the group, output channel) once, and so does
  the weight gradient; the bias gradient is a sum and is not counted.
* Zero padding (optional, ``count_padding=False``). The nominal count, which papers quote and
  which is the default here, includes the multiplies of kernel taps that fall on the zero
  padding. Direct convolution kernels (oneDNN's, which torch uses on CPU) skip them. On small
  feature maps that is a large share: a 3x3 convolution with padding 1 on a 4x4 map has only
  (10/12)^2 = 69% of its nominal taps inside the input, on a 2x2 map (4/6)^2 = 44%. With
  ``count_padding=False`` a convolution counts only the taps inside the input, in the forward
  and in both gradients. Transposed convolutions are always counted nominally.

* Fused LSTM layers. On the CPU ``nn.LSTM`` runs as one ``aten.mkldnn_rnn_layer`` per layer
  and direction, for which torch has no formula (an LSTM counted 0 FLOPs); here it counts its
  two matrix multiplies per time step, as the GRU and RNN, which run as plain matrix
  multiplies, are counted by torch.

A training step (:func:`count_train_flops`) is counted by running the forward and the backward
under the counter, in training mode (auxiliary heads included), with gradients for the
parameters only, as a training step computes them; for a dense network that is a little under
three times the forward (the first layer's input gradient is not needed).

    >>> from zoo.flops import count_flops, count_train_flops
    >>> from zoo.registry import create_model
    >>> net = create_model("resnet20_cifar", num_classes=10)
    >>> count_flops(net, (3, 32, 32))                     # ~81 MFLOPs per example
    >>> count_flops(net, inputs=net.example_inputs(1))    # the net's own inputs
    >>> count_train_flops(net, inputs=net.example_inputs(2))
"""
from __future__ import annotations

import inspect
from math import prod
from typing import Callable, Sequence

import torch
from torch import nn
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import FlopCounterMode

from zoo.registry import create_model, model_card

aten = torch.ops.aten


def _taps_inside(in_size: int, out_size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    """Along one spatial axis: the (output position, kernel tap) pairs whose input index
    ``o * stride - padding + k * dilation`` lies inside ``[0, in_size)``, i.e. not on padding."""
    return sum(1 for o in range(out_size) for k in range(kernel)
               if 0 <= o * stride - padding + k * dilation < in_size)


def conv_macs(x_shape: Sequence[int], w_shape: Sequence[int], out_shape: Sequence[int], transposed: bool,
              stride: Sequence[int], padding: Sequence[int], dilation: Sequence[int],
              count_padding: bool = True) -> int:
    """Multiply-accumulates of one convolution (forward), from the shapes torch passes to
    ``aten.convolution``: ``x_shape`` (N, C_in, *spatial), ``w_shape`` (C_out, C_in/groups, *k)
    (transposed: (C_in, C_out/groups, *k)), ``out_shape`` (N, C_out, *spatial_out).

    Nominal: N x C_out x C_in/groups x prod(out spatial) x prod(k) (transposed: N x C_in x
    C_out/groups x prod(in spatial) x prod(k)). With ``count_padding=False`` the product over
    output positions and taps keeps only the pairs whose input lies inside the input (the count
    factorises over the spatial axes); transposed convolutions stay nominal.
    """
    n = x_shape[0]
    c_a, c_b, *kernel = w_shape  # (C_out, C_in/groups) or, transposed, (C_in, C_out/groups)
    if transposed:
        return n * c_a * c_b * prod(x_shape[2:]) * prod(kernel)
    if count_padding:
        positions = prod(out_shape[2:]) * prod(kernel)
    else:
        positions = prod(_taps_inside(i, o, k, s, p, d) for i, o, k, s, p, d in
                         zip(x_shape[2:], out_shape[2:], kernel, stride, padding, dilation))
    return n * c_a * c_b * positions


def _conv_forward_formula(count_padding: bool) -> Callable:
    def formula(x_shape, w_shape, _bias, stride, padding, dilation, transposed, *args, out_shape=None, **kwargs):
        return 2 * conv_macs(x_shape, w_shape, out_shape, transposed, stride, padding, dilation, count_padding)
    return formula


def _conv_backward_formula(count_padding: bool) -> Callable:
    def formula(grad_out_shape, x_shape, w_shape, _bias_sizes, stride, padding, dilation, transposed,
                _output_padding, _groups, output_mask, out_shape=None, **kwargs):
        # each of the input and weight gradients does the forward's multiplies once; the bias
        # gradient (output_mask[2]) is a sum
        forward = 2 * conv_macs(x_shape, w_shape, grad_out_shape, transposed, stride, padding, dilation,
                                count_padding)
        return forward * (int(bool(output_mask[0])) + int(bool(output_mask[1])))
    return formula


def _lstm_layer_forward(x_shape, w_ih_shape, w_hh_shape, *args, out_shape=None, **kwargs) -> int:
    """``aten.mkldnn_rnn_layer``, torch's fused LSTM layer on the CPU (one direction of one
    layer), which ``FlopCounterMode`` has no formula for, so an ``nn.LSTM`` counted 0: every
    step multiplies the input by ``W_ih`` (4H x I) and the state by ``W_hh`` (4H x H), for every
    (time step, sequence) of the input (T x B, either order)."""
    return 2 * prod(x_shape[:2]) * (prod(w_ih_shape) + prod(w_hh_shape))


def _lstm_layer_backward(x_shape, w_ih_shape, w_hh_shape, *args, out_shape=None, **kwargs) -> int:
    """Its backward: the input and state gradients do the forward's multiplies once, and so do
    the two weight gradients."""
    return 2 * _lstm_layer_forward(x_shape, w_ih_shape, w_hh_shape)


def flop_counter(count_padding: bool = True) -> FlopCounterMode:
    """A ``FlopCounterMode`` (no display) with the corrected convolution formulas of this module
    (see the module docstring): grouped-convolution backward counted right always, and with
    ``count_padding=False`` only the kernel taps inside the input counted. Formulas that take the
    argument layout of ``aten.convolution`` replace torch's; the others are torch's own."""
    mapping = {aten.convolution_backward: _conv_backward_formula(count_padding)}
    if hasattr(aten, "mkldnn_rnn_layer"):  # torch's fused CPU LSTM
        mapping[aten.mkldnn_rnn_layer] = _lstm_layer_forward
        mapping[aten.mkldnn_rnn_layer_backward] = _lstm_layer_backward
    # same argument layout: (input, weight, bias, stride, padding, dilation, transposed, ...)
    for op in (aten.convolution, aten._convolution, aten.convolution_overrideable):
        mapping[op] = _conv_forward_formula(count_padding)
    return FlopCounterMode(display=False, custom_mapping=mapping)


def _prepare_inputs(model: nn.Module, input_shape, inputs, batch_size: int | None,
                    default_batch: int) -> tuple[tuple[torch.Tensor, ...], int]:
    """The tensors to call ``model`` with and the number of examples they hold."""
    if (input_shape is None) == (inputs is None):
        raise ValueError("give exactly one of input_shape (a per-example shape) or inputs (a tuple of tensors)")
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    if inputs is not None:
        if isinstance(inputs, torch.Tensor):
            inputs = (inputs,)
        # floating inputs take the parameters' dtype; integer inputs (token ids, indices) stay
        xs = tuple(t.to(device=device, dtype=dtype if t.is_floating_point() else t.dtype) for t in inputs)
        return xs, batch_size if batch_size is not None else xs[0].shape[0]
    n = batch_size if batch_size is not None else default_batch
    return (torch.zeros(n, *input_shape, device=device, dtype=dtype),), n


def count_flops(model: nn.Module, input_shape: Sequence[int] | None = None, batch_size: int | None = None, *,
                inputs: Sequence[torch.Tensor] | None = None, count_padding: bool = True) -> int:
    """Forward FLOPs per example, counted in eval mode (no auxiliary heads, no dropout).

    Give either ``input_shape``, one per-example shape (``(C, H, W)`` or any other): the model is
    called on one float tensor of zeros of shape ``(batch_size, *input_shape)`` (batch_size
    defaults to 1); or ``inputs``, the tensors to call ``model(*inputs)`` with, e.g.
    ``net.example_inputs(1)``, for nets with several inputs or integer inputs (token ids).
    Inputs are batch-first: the count is divided by ``batch_size``, which defaults to the
    leading dimension of the first input. ``count_padding`` as in :func:`flop_counter`.

    The model's training flag is restored afterwards; parameters and buffers are not changed.
    """
    xs, n = _prepare_inputs(model, input_shape, inputs, batch_size, default_batch=1)
    was_training = model.training
    model.eval()
    try:
        counter = flop_counter(count_padding)
        with torch.no_grad(), counter:
            model(*xs)
        total = counter.get_total_flops()
    finally:
        model.train(was_training)
    return int(total) // n


def _sum_outputs(out) -> torch.Tensor:
    """Default training loss for counting: the sum of every floating output (its FLOPs are not
    counted, like any loss without a matrix multiply, and every output gets a gradient)."""
    leaves = [t for t in tree_leaves(out) if isinstance(t, torch.Tensor) and t.is_floating_point()]
    return sum(t.sum() for t in leaves)


def count_train_flops(model: nn.Module, input_shape: Sequence[int] | None = None, batch_size: int | None = None,
                      *, inputs: Sequence[torch.Tensor] | None = None,
                      loss_fn: Callable[[object], torch.Tensor] | None = None, count_padding: bool = True) -> int:
    """FLOPs per example of one training step: forward and backward, both run under the counter
    (not estimated as a multiple of the forward). The optimizer update is not counted (it is
    element-wise).

    Inputs as in :func:`count_flops`, except that with ``input_shape`` the batch defaults to 2:
    batch norm in training mode needs more than one value per channel, which one example does
    not give after global pooling or in an MLP. The model runs in training mode (dropout,
    batch statistics, auxiliary heads, as in a training step); ``loss_fn(outputs)`` makes the
    scalar to differentiate (default: the sum of all floating outputs; a loss without a matrix
    multiply does not change the count). Gradients are taken for the parameters that require
    them, not for the inputs, as in training.

    Afterwards the training flag, the buffers (batch-norm running statistics) and torch's CPU
    random state (and the model's CUDA device's) are as before; no parameter or ``.grad`` is changed.
    """
    xs, n = _prepare_inputs(model, input_shape, inputs, batch_size, default_batch=2)
    params = [p for p in model.parameters() if p.requires_grad]
    cuda = [xs[0].device.index if xs[0].device.index is not None else torch.cuda.current_device()] \
        if xs[0].device.type == "cuda" else []
    saved_buffers = [b.detach().clone() for b in model.buffers()]
    was_training = model.training
    model.train()
    try:
        with torch.random.fork_rng(devices=cuda):  # dropout's draws leave no trace
            counter = flop_counter(count_padding)
            with counter:
                out = model(*xs)
                loss = (loss_fn or _sum_outputs)(out)
                if params:
                    torch.autograd.grad(loss, params, allow_unused=True)
            total = counter.get_total_flops()
    finally:
        model.train(was_training)
        with torch.no_grad():
            for b, s in zip(model.buffers(), saved_buffers):
                b.copy_(s)
    return int(total) // n


def reference_input_shape(name: str, in_chans: int | None = None) -> tuple[int, int, int]:
    """The input a registered model is usually quoted at: 224x224 for ImageNet-style models
    (those with a ``small_input`` switch, in their default large-input layout), otherwise the
    model's own example input (32x32 for the CIFAR nets and LeNet-5, 28x28 for the MNIST MLPs)."""
    card = model_card(name)
    params = inspect.signature(card.builder).parameters
    chans = in_chans if in_chans is not None else (params["in_chans"].default if "in_chans" in params else 1)
    if "small_input" in params:
        return (chans, 224, 224)
    net = create_model(name)
    if hasattr(net, "example_inputs"):
        return tuple(net.example_inputs(batch_size=1)[0].shape[1:])
    return (chans, 28, 28)


def format_flops(flops: float) -> str:
    """1234567 -> '1.23M'; 4.1e9 -> '4.10G'."""
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if flops >= scale:
            return f"{flops / scale:.2f}{unit}"
    return f"{flops:.0f}"
