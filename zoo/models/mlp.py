"""Fully connected networks: the shallow (one hidden layer) network and the deep L-layer MLP.

Course 1 (shallow and deep networks) and course 2 (initialisation, dropout, batch norm) of the
notes. Initialisation follows He et al. 2015 (``Var[w] = 2 / n_in``, for ReLU-family
activations) or Glorot & Bengio 2010 (``Var[w] = 2 / (n_in + n_out)``, for tanh/sigmoid).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from zoo.layers import example_shape, get_activation
from zoo.registry import register_model


class MLP(nn.Module):
    """``[Linear -> (BatchNorm) -> act -> (Dropout)] * L -> Linear``.

    Args:
        in_features: inputs after flattening.
        num_classes: output logits (1 for a binary classifier).
        hidden: widths of the hidden layers (L = len(hidden)).
        activation: relu | leaky_relu | tanh | sigmoid | gelu.
        dropout: drop probability after each hidden activation (inverted dropout, as in the notes).
        batch_norm: batch normalisation between each hidden linear map and its activation.
        init: he | xavier | default (PyTorch's own).
        input_shape: shape of one example, for ``example_inputs``; defaults to ``(in_features,)``.
    Input: (B, *) with prod(*) == in_features. Output: (B, num_classes) logits.
    """

    def __init__(
        self,
        in_features: int = 784,
        num_classes: int = 10,
        hidden: Sequence[int] = (256, 128),
        activation: str = "relu",
        dropout: float = 0.0,
        batch_norm: bool = False,
        init: str = "he",
        input_shape: Sequence[int] | None = None,
    ):
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if init not in ("he", "xavier", "default"):
            raise ValueError(f"init must be he, xavier or default, got {init!r}")
        self.input_shape = tuple(input_shape) if input_shape else (in_features,)
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for h in hidden:
            layers.append(nn.Linear(width, h, bias=not batch_norm))  # BN's shift replaces the bias
            if batch_norm:
                layers.append(nn.BatchNorm1d(h))
            layers.append(get_activation(activation))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = h
        layers.append(nn.Linear(width, num_classes))
        self.net = nn.Sequential(*layers)
        if init != "default":
            self._init_weights(init, activation)

    def _init_weights(self, init: str, activation: str) -> None:
        nonlinearity = "leaky_relu" if activation == "leaky_relu" else "relu"
        for m in self.modules():
            if isinstance(m, nn.Linear):
                if init == "he":
                    nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity=nonlinearity)
                else:
                    nn.init.xavier_normal_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (B, num_classes)

    def example_inputs(self, batch_size: int = 2) -> tuple[torch.Tensor, ...]:
        return (torch.randn(batch_size, *self.input_shape),)



@register_model(task="classification", paper="Rumelhart, Hinton & Williams 1986 (one hidden layer)")
def shallow_nn(
    in_features: int = 784,
    num_classes: int = 10,
    hidden: int = 128,
    activation: str = "tanh",
    in_chans: int = 1,
    image_size: int = 28,
) -> MLP:
    """The notes' shallow network: one hidden layer (tanh by default, as in course 1)."""
    return MLP(in_features, num_classes, (hidden,), activation, 0.0, False, "xavier",
               example_shape(in_features, in_chans, image_size))


@register_model(task="classification", paper="Deep L-layer network (notes, course 1); He et al. 2015 init; Srivastava et al. 2014 dropout; Ioffe & Szegedy 2015 batch norm")
def mlp(
    in_features: int = 784,
    num_classes: int = 10,
    hidden: Sequence[int] = (512, 256, 128),
    activation: str = "relu",
    dropout: float = 0.0,
    batch_norm: bool = False,
    init: str = "he",
    in_chans: int = 1,
    image_size: int = 28,
) -> MLP:
    """Deep L-layer MLP with every regulariser of course 2 as an option."""
    return MLP(in_features, num_classes, tuple(hidden), activation, dropout, batch_norm, init,
               example_shape(in_features, in_chans, image_size))
