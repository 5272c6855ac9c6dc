"""Fast style transfer (Johnson, Alahi & Fei-Fei 2016): a feed-forward network learns to paint
any content image in one style, trained with the perceptual loss of a frozen feature network.

For a content image ``C`` the net outputs ``G = net(C)``; the loss is Gatys et al.'s cost
(``zoo.losses.style``) between ``G`` and the content image at ``content_layer``, and between
``G`` and the one style image ``S`` at ``style_layers``, plus a total-variation term:

    J(G) = alpha J_content(C, G) + beta J_style(S, G) + tv_weight TV(G)

The feature network is the task's second net (``feature_net``, a VGG of the registry, frozen and
always in evaluation mode); a checkpoint rebuilds it by name like the transformation net. The
style image's Gram matrices are computed once, from ``style_image`` (``skimage:<name>`` or a
path) resized to ``style_size``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
import torch.nn as nn
from torchmetrics import Metric, MetricCollection

from zoo.losses.style import (DEFAULT_CONTENT_LAYER, DEFAULT_STYLE_LAYERS, LayerActivations, content_cost,
                              gram_matrix, style_cost, total_variation)
from zoo.tasks.base import OptimizerFactory, SchedulerFactory, ZooTask


class ColumnMean(Metric):
    """The mean over examples of one column of the outputs (B, K); the target is not used."""

    full_state_update = False

    def __init__(self, column: int, **kwargs):
        super().__init__(**kwargs)
        self.column = column
        self.add_state("total", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, target: torch.Tensor | None = None) -> None:
        col = preds[:, self.column].detach().double()
        self.total = self.total + col.sum()
        self.count = self.count + col.numel()

    def compute(self) -> torch.Tensor:
        return (self.total / self.count).float()


class StyleTransferTask(ZooTask):
    """Train a feed-forward style network with the perceptual loss.

    Args:
        net: the image transformation network, (B, 3, H, W) in [0, 1] -> the same shape.
        feature_net: a VGG of the registry (``zoo.models.vgg``), frozen here.
        style_image: ``skimage:<name>`` or an image file.
        style_size: the style image's longer side, in pixels, when its Gram matrices are taken.
        content_layer, style_layers, style_weights: where the costs are measured (``conv<s>_<k>``),
            and the weight of each style layer (equal by default).
        alpha, beta, tv_weight: the weights of the content, style and total-variation costs.
        feature_normalize: ``[mean, std]`` of the feature network's training data (per channel,
            or one value each) applied to images in [0, 1] before it.
        feature_pool: ``max`` or ``avg`` between the feature network's stages.
        optimizer, scheduler, ...: as in every task (``zoo.tasks.base``).
    """

    family = "Style transfer"
    batch_contract = "(images,): content images float32 (B, 3, H, W) in [0, 1]"
    nets = ("net", "feature_net")
    primary_metric = "loss"
    higher_is_better = False
    test_pictures = ("stylised_test_images.png",)

    def __init__(self, net: nn.Module, feature_net: nn.Module, style_image: str = "skimage:gravel",
                 style_size: int = 128, content_layer: str = DEFAULT_CONTENT_LAYER,
                 style_layers: Sequence[str] = DEFAULT_STYLE_LAYERS, style_weights: Sequence[float] | None = None,
                 alpha: float = 1.0, beta: float = 10.0, tv_weight: float = 0.0,
                 feature_normalize: Sequence[Sequence[float]] | None = None, feature_pool: str = "max",
                 optimizer: OptimizerFactory | None = None, scheduler: SchedulerFactory | None = None,
                 scheduler_interval: str = "epoch", gradient_clip_val: float | None = None,
                 gradient_clip_algorithm: str = "norm", accumulate_grad_batches: int = 1):
        super().__init__(net, optimizer, scheduler, scheduler_interval, gradient_clip_val,
                         gradient_clip_algorithm, accumulate_grad_batches)
        from datamodules.vision.style_images import load_image

        self.feature_net = feature_net.eval().requires_grad_(False)
        self.style_layers = list(style_layers)
        if style_weights is not None and len(style_weights) != len(self.style_layers):
            raise ValueError(f"style_weights has {len(style_weights)} values for {len(self.style_layers)} style layers")
        weights = list(style_weights) if style_weights is not None else [1.0 / len(self.style_layers)] * len(self.style_layers)
        self.style_weight_of = dict(zip(self.style_layers, (float(w) for w in weights)))
        self.content_layer = content_layer
        self.alpha, self.beta, self.tv_weight = float(alpha), float(beta), float(tv_weight)
        mean, std = feature_normalize if feature_normalize is not None else ((0.0,), (1.0,))
        self.features = LayerActivations(self.feature_net, [content_layer, *self.style_layers], mean, std, feature_pool)
        style = load_image(style_image, style_size)[None]  # (1, 3, h, w)
        with torch.no_grad():
            acts = self.features(style)
        for i, name in enumerate(self.style_layers):  # recomputed from the image, so not in checkpoints
            self.register_buffer(f"_gram_{i}", gram_matrix(acts[name])[0], persistent=False)
        self.save_hyperparameters(ignore=["net", "feature_net", "optimizer", "scheduler"])
        self.init_metrics()

    def train(self, mode: bool = True):
        super().train(mode)
        self.feature_net.eval()  # frozen: its batch norm keeps its running statistics
        return self

    def style_grams(self) -> dict[str, torch.Tensor]:
        return {name: getattr(self, f"_gram_{i}") for i, name in enumerate(self.style_layers)}

    def build_metrics(self, prefix: str) -> MetricCollection:
        return MetricCollection({"content_cost": ColumnMean(0), "style_cost": ColumnMean(1), "tv": ColumnMean(2)},
                                prefix=prefix)

    @classmethod
    def report_columns(cls) -> list[tuple[str, str, float]]:
        return [("test/loss", "test perceptual loss", 1.0), ("test/content_cost", "test J_content", 1.0),
                ("test/style_cost", "test J_style", 1.0)]

    def costs(self, content: torch.Tensor, generated: torch.Tensor) -> torch.Tensor:
        """Per-example (B, 3): J_content, J_style, TV."""
        with torch.no_grad():
            a_C = self.features(content)[self.content_layer]
        acts_G = self.features(generated)
        j_c = content_cost(a_C, acts_G[self.content_layer], reduction="none")
        j_s = style_cost(self.style_grams(), acts_G, self.style_weight_of, reduction="none")
        tv = total_variation(generated, reduction="none")
        return torch.stack([j_c, j_s, tv], dim=1)

    def shared_step(self, batch, stage: str):
        content = batch[0] if isinstance(batch, (tuple, list)) else batch
        generated = self.net(content)
        per_example = self.costs(content, generated)             # (B, 3)
        weights = per_example.new_tensor([self.alpha, self.beta, self.tv_weight])
        loss = (per_example * weights).sum(1).mean()
        self.keep_test_examples(stage, content=content[:6], generated=generated[:6])
        return loss, per_example, torch.zeros(content.shape[0], device=content.device)

    def predict_step(self, batch, batch_idx: int = 0):
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self.net(x).clamp(0, 1)

    def describe_prediction(self, output: torch.Tensor, top: int = 5) -> dict:
        return {"stylised_shape": list(output.shape),
                "mean_rgb": [round(float(v), 4) for v in output.flatten(1).mean(1)]}

    def draw_test_examples(self, examples: dict, folder: Path) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        content, generated = examples["content"], examples["generated"]
        n = content.shape[0]
        fig, axes = plt.subplots(2, n, figsize=(1.8 * n, 3.8), squeeze=False)
        for i in range(n):
            for row, (img, label) in enumerate(((content[i], "content"), (generated[i], "stylised"))):
                ax = axes[row][i]
                ax.imshow(img.clamp(0, 1).permute(1, 2, 0).numpy())
                ax.set_axis_off()
                if i == 0:
                    ax.set_title(label, fontsize=8, loc="left")
        fig.suptitle(f"held-out content crops and the net's output (style: {self.hparams.style_image})", fontsize=9)
        fig.tight_layout()
        folder.mkdir(parents=True, exist_ok=True)
        fig.savefig(folder / self.test_pictures[0], dpi=100)
        plt.close(fig)
