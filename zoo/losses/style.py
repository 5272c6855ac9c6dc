"""Neural style transfer's costs (Gatys, Ecker & Bethge 2016, "Image style transfer using
convolutional neural networks", CVPR) and the feature network they are measured with.

Notation of the course notes: ``a`` is a layer's activation of shape (n_C, n_H, n_W), ``C``
the content image, ``S`` the style image, ``G`` the generated image.

* content cost at one layer: ``J_content(C, G) = 1 / (4 n_H n_W n_C) * sum (a_C - a_G)^2``;
* Gram matrix (style matrix) of a layer: ``G = A A^T`` with ``A`` the activation unrolled to
  (n_C, n_H n_W): ``G_kk' = sum_ij a_ijk a_ijk'``, the correlation of channels k and k';
* style cost at one layer: ``J_style^[l](S, G) = 1 / (4 n_C^2 (n_H n_W)^2) * sum_kk' (G_S - G_G)_kk'^2``;
* style cost over several layers: ``J_style(S, G) = sum_l lambda_l J_style^[l](S, G)``;
* total cost: ``J(G) = alpha J_content(C, G) + beta J_style(S, G) (+ gamma TV(G))``.

The content normalisation ``1 / (4 n_H n_W n_C)`` is the course notes' choice; the paper writes
``1/2 sum (F - P)^2`` (no normalisation by the layer's size). The style normalisation is the
paper's equation 4 (``1 / (4 N_l^2 M_l^2)``). Every cost is computed per example and averaged
over the batch (``reduction="none"`` returns the per-example values).

The feature network is the zoo's VGG (``zoo.models.vgg``): :class:`LayerActivations` reads the
activations after the ReLU of named convolutions (``conv<stage>_<k>``, both from 1: ``conv4_2``
is the second convolution of the fourth stage), without changing the net. :func:`feature_network`
builds it from one of three sources: random weights, the zoo's own published weights, or
torchvision's ImageNet weights when they are on disk.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

# Gatys et al. 2016: content at conv4_2, style at conv1_1 ... conv5_1 with equal weights
DEFAULT_CONTENT_LAYER = "conv4_2"
DEFAULT_STYLE_LAYERS: tuple[str, ...] = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class FeatureNetworkError(ValueError):
    """A feature network that cannot be built or used: unknown source, missing weights, bad layer."""


def _reduce(per_example: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return per_example.mean()
    if reduction == "none":
        return per_example
    raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")


def _batched(a: torch.Tensor) -> torch.Tensor:
    if a.dim() == 3:
        return a[None]
    if a.dim() != 4:
        raise ValueError(f"an activation is (n_C, n_H, n_W) or (B, n_C, n_H, n_W), got shape {tuple(a.shape)}")
    return a


def content_cost(a_C: torch.Tensor, a_G: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """``J_content = 1 / (4 n_H n_W n_C) * sum (a_C - a_G)^2`` per example (the course notes'
    normalisation; Gatys et al. use ``1/2 sum``). Activations (n_C, n_H, n_W) or (B, n_C, n_H, n_W);
    ``a_C`` broadcasts over the batch of ``a_G``."""
    a_C, a_G = _batched(a_C), _batched(a_G)
    _, n_C, n_H, n_W = a_G.shape
    diff = (a_C - a_G).pow(2).flatten(1).sum(1)  # (B,)
    return _reduce(diff / (4.0 * n_H * n_W * n_C), reduction)


def gram_matrix(a: torch.Tensor) -> torch.Tensor:
    """``G = A A^T``, A the activation unrolled to (n_C, n_H n_W): (n_C, n_C), or (B, n_C, n_C)
    for a batch. Not normalised (the style cost divides by the layer's size)."""
    batched = a.dim() == 4
    a = _batched(a)
    A = a.flatten(2)                          # (B, n_C, n_H * n_W)
    G = A @ A.transpose(1, 2)                 # (B, n_C, n_C)
    return G if batched else G[0]


def layer_style_cost(G_S: torch.Tensor, a_G: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """``J_style^[l] = 1 / (4 n_C^2 (n_H n_W)^2) * sum (G_S - G_G)^2`` (Gatys et al. 2016,
    equation 4), from the style image's Gram matrix ``G_S`` ((n_C, n_C) or (B, n_C, n_C)) and
    the generated image's activation ``a_G``."""
    a_G = _batched(a_G)
    _, n_C, n_H, n_W = a_G.shape
    G_G = gram_matrix(a_G)                    # (B, n_C, n_C)
    if G_S.shape[-2:] != (n_C, n_C):
        raise ValueError(f"the style Gram matrix is {tuple(G_S.shape)} but the layer has {n_C} channels")
    diff = (G_S - G_G).pow(2).flatten(1).sum(1)  # (B,)
    return _reduce(diff / (4.0 * n_C ** 2 * (n_H * n_W) ** 2), reduction)


def style_cost(grams_S: Mapping[str, torch.Tensor], acts_G: Mapping[str, torch.Tensor],
               weights: Mapping[str, float] | None = None, reduction: str = "mean") -> torch.Tensor:
    """``J_style = sum_l lambda_l J_style^[l]`` over the layers of ``grams_S`` (equal weights
    ``1 / L`` by default, as in Gatys et al.)."""
    layers = list(grams_S)
    if not layers:
        raise ValueError("style_cost needs at least one style layer")
    weights = dict(weights) if weights is not None else {name: 1.0 / len(layers) for name in layers}
    missing = [n for n in layers if n not in weights or n not in acts_G]
    if missing:
        raise ValueError(f"no weight or activation for the style layer(s) {missing}")
    return sum(weights[n] * layer_style_cost(grams_S[n], acts_G[n], reduction) for n in layers)


def total_variation(x: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Squared total variation of images (B, C, H, W): the mean squared difference between
    vertical neighbours plus that between horizontal neighbours, per image. It favours smooth
    images (Mahendran & Vedaldi 2015; Johnson et al. 2016 use it as a regulariser)."""
    x = _batched(x)
    dy = (x[:, :, 1:, :] - x[:, :, :-1, :]).pow(2).flatten(1).mean(1)
    dx = (x[:, :, :, 1:] - x[:, :, :, :-1]).pow(2).flatten(1).mean(1)
    return _reduce(dy + dx, reduction)


def total_cost(j_content: torch.Tensor, j_style: torch.Tensor, alpha: float = 1.0, beta: float = 1.0,
               tv: torch.Tensor | None = None, tv_weight: float = 0.0) -> torch.Tensor:
    """``J(G) = alpha J_content + beta J_style (+ tv_weight TV(G))`` (Gatys et al. 2016, equation 7)."""
    j = alpha * j_content + beta * j_style
    if tv is not None and tv_weight:
        j = j + tv_weight * tv
    return j


# -- the feature network ------------------------------------------------------------------------

_LAYER = re.compile(r"^(?:conv|relu)(\d+)_(\d+)$")


def vgg_layer_names(vgg: nn.Module) -> list[str]:
    """The layer names a VGG offers, ``conv<stage>_<k>`` in forward order."""
    _check_vgg(vgg)
    return [f"conv{s + 1}_{k + 1}" for s, stage in enumerate(vgg.stages) for k in range(len(stage))]


def _check_vgg(vgg: nn.Module) -> None:
    if not (isinstance(getattr(vgg, "stages", None), nn.ModuleList) and hasattr(vgg, "pool")):
        raise FeatureNetworkError(f"the feature network must be one of the zoo's VGG nets (stages of "
                                  f"convolutions and a pool), got a {type(vgg).__name__}; "
                                  "build it with zoo.create_model('vgg19') or feature_network(...)")


def parse_layer(name: str, vgg: nn.Module) -> tuple[int, int]:
    """``conv<s>_<k>`` (or ``relu<s>_<k>``, the same activation: after the ReLU) -> (stage, unit)
    indices from 0; an unknown name is a :class:`FeatureNetworkError` listing the net's names."""
    names = vgg_layer_names(vgg)
    m = _LAYER.match(str(name))
    if m:
        s, k = int(m.group(1)) - 1, int(m.group(2)) - 1
        if 0 <= s < len(vgg.stages) and 0 <= k < len(vgg.stages[s]):
            return s, k
    close = difflib.get_close_matches(str(name), names, n=3, cutoff=0.5)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    raise FeatureNetworkError(f"unknown layer {name!r} for this VGG.{hint} Its layers are: {', '.join(names)} "
                              "(conv<stage>_<k>: the k-th convolution of a stage, read after its ReLU)")


class LayerActivations:
    """The activations of a VGG at named layers: ``LayerActivations(vgg, ["conv1_1", "conv4_2"])(x)``
    returns ``{"conv1_1": (B, C1, H, W), "conv4_2": (B, C4, H/8, W/8)}``.

    It reads the net's own modules in forward order (stage by stage, the 2x2 pool between stages)
    and stops after the deepest layer asked for; the net is not changed, nor kept as a submodule
    (a task that trains with it holds the net itself, so a checkpoint holds it once).

    Args:
        vgg: one of the zoo's VGG nets; frozen and put in evaluation mode by the caller.
        layers: ``conv<stage>_<k>`` names.
        mean, std: the normalisation the net was trained with, applied to images in [0, 1]
            (one value per channel, or one for all).
        pool: ``max`` (the net's) or ``avg`` (Gatys et al. report smoother results with average
            pooling in the feature network).
    Input: images (B, 3, H, W) in [0, 1]. A net trained on grey images (``in_chans=1``) reads each
    colour channel as a grey image and the three channels' activations are concatenated
    (B, 3 C, h, w): the Gram matrices then hold the correlations within and across colours.
    """

    def __init__(self, vgg: nn.Module, layers: Sequence[str], mean: Sequence[float] = (0.0,),
                 std: Sequence[float] = (1.0,), pool: str = "max"):
        if pool not in ("max", "avg"):
            raise FeatureNetworkError(f"pool must be 'max' or 'avg', got {pool!r}")
        if not layers:
            raise FeatureNetworkError("ask for at least one layer")
        self.vgg = vgg
        self.positions = {name: parse_layer(name, vgg) for name in layers}
        self.last = max(self.positions.values())
        self.mean, self.std, self.pool = tuple(float(v) for v in mean), tuple(float(v) for v in std), pool
        self.in_chans = int(getattr(vgg, "in_chans", 3))

    def __call__(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"the feature network reads RGB images (B, 3, H, W), got {tuple(x.shape)}")
        b = x.shape[0]
        mean = x.new_tensor(self.mean).view(1, -1, 1, 1)
        std = x.new_tensor(self.std).view(1, -1, 1, 1)
        x = (x - mean) / std
        if self.in_chans == 1:
            x = x.reshape(b * 3, 1, *x.shape[-2:])  # each colour channel as a grey image
        elif self.in_chans != 3:
            raise FeatureNetworkError(f"the feature network takes {self.in_chans} channels; only 1 or 3 can read RGB")
        wanted = {pos: name for name, pos in self.positions.items()}
        out: dict[str, torch.Tensor] = {}
        for s, stage in enumerate(self.vgg.stages):
            if s > 0:
                x = self.vgg.pool(x) if self.pool == "max" else F.avg_pool2d(x, 2, 2)  # halves H, W
            for k, unit in enumerate(stage):
                x = unit(x)                                      # conv -> [bn] -> ReLU
                if (s, k) in wanted:
                    a = x
                    if self.in_chans == 1:                       # (3B, C, h, w) -> (B, 3C, h, w)
                        a = a.reshape(b, 3 * a.shape[1], *a.shape[-2:])
                    out[wanted[(s, k)]] = a
                if (s, k) == self.last:
                    return out
        return out


@dataclass
class FeatureSource:
    """A feature network ready to use, and what it is (said in reports)."""

    net: nn.Module
    source: str                     # as given: random, random:<arch>, zoo:<weight>, imagenet[:<arch>]
    description: str                # e.g. "vgg11_bn trained on mnist5k (the zoo's vgg11_bn.mnist5k)"
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    info: dict = field(default_factory=dict)

    def activations(self, layers: Sequence[str], pool: str = "max") -> LayerActivations:
        return LayerActivations(self.net, layers, self.mean, self.std, pool)


RANDOM_DEFAULT = "vgg11_bn"
RANDOM_KWARGS = {"width_mult": 0.25, "small_input": True, "num_classes": 10}  # the zoo weights' shape, RGB in
IMAGENET_DEFAULT = "vgg19"  # the network of Gatys et al.


def _freeze(net: nn.Module) -> nn.Module:
    net.eval()
    net.requires_grad_(False)
    return net


def feature_network(source: str = "random", seed: int = 0, imagenet_path: str | None = None,
                    download: bool = False) -> FeatureSource:
    """A frozen VGG to measure the costs with, from ``source``:

    * ``random`` or ``random:<vgg>``: random weights (He initialisation, seeded by ``seed``);
      random convolutional features are known to synthesise textures (Ustyuzhaninov et al.
      2017, "What does it take to generate natural textures?"). ``random`` is a VGG-11 with
      batch norm at a quarter of the width, the shape of the zoo's own trained VGG;
    * ``zoo:<weight>``: one of the zoo's published VGG weights (``zoo-weights`` lists them), e.g.
      ``zoo:vgg11_bn.mnist5k``, with the normalisation of the data it was trained on;
    * ``imagenet`` or ``imagenet:<vgg>``: torchvision's ImageNet weights (VGG-19 by default, the
      paper's), read from ``imagenet_path`` or torch's hub cache; downloaded only with
      ``download=True``. Missing weights raise :class:`FeatureNetworkError` saying how to get them.
    """
    from zoo.registry import create_model, model_card

    kind, _, arg = str(source).partition(":")
    if kind == "random":
        name = arg or RANDOM_DEFAULT
        _check_vgg_name(name, source)
        kwargs = dict(RANDOM_KWARGS) if name == RANDOM_DEFAULT else {}
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = create_model(name, **kwargs)
        return FeatureSource(_freeze(net), source, f"{name} with random weights (seed {seed}), never trained",
                             (0.5,), (0.5,), {"architecture": name, "kwargs": kwargs, "trained_on": None})
    if kind == "zoo":
        from zoo.weights import WeightsError, weight_card

        if not arg:
            raise FeatureNetworkError(f"zoo:<weight> names a published weight; VGG weights: {', '.join(_vgg_weights())}")
        try:
            card = weight_card(arg)
        except WeightsError as err:
            raise FeatureNetworkError(f"{err} VGG weights usable as features: {', '.join(_vgg_weights())}") from None
        if model_card(card.architecture).family != "vgg":
            raise FeatureNetworkError(f"{arg} is a {card.architecture}, not a VGG; the feature network must be a VGG: "
                                      f"use one of {', '.join(_vgg_weights()) or '(none published)'}")
        try:
            net = create_model(card.architecture, pretrained=card.tag)
        except WeightsError as err:
            raise FeatureNetworkError(str(err)) from None
        mean, std = _training_normalisation(card)
        return FeatureSource(_freeze(net), source,
                             f"{card.architecture} trained on {card.dataset} (the zoo's {card.name}, "
                             f"test accuracy {card.metrics.get('test/acc', float('nan')):.3f})",
                             mean, std, {"architecture": card.architecture, "kwargs": card.model_kwargs,
                                         "trained_on": card.dataset, "weight": card.name})
    if kind == "imagenet":
        name = arg or IMAGENET_DEFAULT
        _check_vgg_name(name, source)
        state = _imagenet_state_dict(name, imagenet_path, download)  # first: a missing file fails fast
        net = create_model(name)
        from zoo.weights.torchvision import map_torchvision_state_dict

        net.load_state_dict(map_torchvision_state_dict(name, state), strict=True)
        return FeatureSource(_freeze(net), source, f"{name} trained on ImageNet (torchvision's weights)",
                             IMAGENET_MEAN, IMAGENET_STD, {"architecture": name, "trained_on": "ImageNet-1k"})
    raise FeatureNetworkError(f"unknown feature network {source!r}: use random, random:<vgg>, zoo:<weight> "
                              f"(VGG weights: {', '.join(_vgg_weights())}) or imagenet[:<vgg>] (torchvision's "
                              "weights, when they are on disk)")


def _vgg_weights() -> list[str]:
    from zoo.registry import model_card
    from zoo.weights import list_weights, weight_card

    return [n for n in list_weights() if model_card(weight_card(n).architecture).family == "vgg"]


def _check_vgg_name(name: str, source: str) -> None:
    from zoo.registry import list_models, model_card

    vggs = [n for n in list_models() if model_card(n).family == "vgg"]
    if name not in vggs:
        raise FeatureNetworkError(f"{source!r}: {name!r} is not one of the zoo's VGG nets ({', '.join(vggs)})")


def _training_normalisation(card) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The (mean, std) the weights' training data was normalised with: the datamodule's own
    statistics, or the ``normalize`` its config set."""
    pre = card.preprocessing or {}
    if pre.get("normalize"):
        mean, std = pre["normalize"]
        return tuple(mean), tuple(std)
    target = pre.get("_target_")
    if target:
        from hydra.utils import get_class

        try:
            cls = get_class(target)
            return tuple(cls.mean), tuple(cls.std)
        except Exception:  # an unknown or moved datamodule: say so below
            pass
    raise FeatureNetworkError(f"{card.name}: its card records no input normalisation; it cannot be used as features")


def _imagenet_state_dict(name: str, path: str | None, download: bool) -> dict:
    from zoo.weights.torchvision import read_torchvision_state_dict, torchvision_weights, torchvision_weights_file

    try:
        return read_torchvision_state_dict(name, path, download=download)
    except (FileNotFoundError, ValueError) as err:
        url = torchvision_weights(name).url
        file = torchvision_weights_file(name)
        raise FeatureNetworkError(
            f"torchvision's ImageNet weights of {name} are not available here ({err}). To use them: on a "
            f"machine that is online, run `python -c \"import torchvision; torchvision.models.{name}"
            f"(weights='DEFAULT')\"` (it saves {file.name} into torch's hub cache, {file.parent}) and copy that "
            f"file to the same place here, or download {url} and pass its path (--imagenet-path), or allow "
            "the download (--download). Offline, use --features random or --features zoo:<weight>.") from None
