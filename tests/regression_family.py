"""A task family that exists only in the test suite: regression of a noisy linear function.

It uses nothing but the task contract (``zoo.tasks.base.ZooTask``) and the datamodule contract
(``datamodules.base.ZooDataModule``): its own batch, its own metrics (mean absolute error and
R²), its own predictions and plot, its net sized from a data fact (``${data_fact:in_features}``).
``tests/test_task_family.py`` trains it with ``zoo-train``, evaluates it with ``zoo-eval``,
predicts with ``zoo-predict`` and reports it, none of which knows it exists.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import TensorDataset
from torchmetrics import MeanAbsoluteError, MetricCollection, R2Score

from datamodules.base import ZooDataModule
from zoo.registry import _REGISTRY, register_model
from zoo.tasks.base import ZooTask

MODEL = "test_linear_regressor"


class Regressor(nn.Module):
    """x (B, in_features) -> (B,) predictions; two nets of this kind make a two-net task."""

    def __init__(self, in_features: int = 4, hidden: int = 16):
        super().__init__()
        self.in_features = in_features
        self.body = nn.Sequential(nn.Linear(in_features, hidden), nn.Tanh(), nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).squeeze(-1)  # (B, 1) -> (B,)

    def example_inputs(self, batch_size: int = 2) -> tuple[torch.Tensor]:
        return (torch.randn(batch_size, self.in_features),)


def register() -> None:
    if MODEL not in _REGISTRY:
        register_model(task="regression", name=MODEL)(lambda in_features=4, hidden=16: Regressor(in_features, hidden))


def unregister() -> None:
    _REGISTRY.pop(MODEL, None)


class RegressionDataModule(ZooDataModule):
    """y = x . w + 0.1 * noise, x ~ N(0, I) of ``in_features`` dimensions, seeded.

    Batch contract: ``(x, y)``, x float32 (B, in_features), y float32 (B,). Your own file: a text
    file of ``in_features`` numbers separated by white space or commas."""

    name = "linear_regression"

    def __init__(self, in_features: int = 4, size: int = 256, batch_size: int = 32, seed: int = 0):
        super().__init__(batch_size)
        self.in_features, self.size, self.seed = in_features, size, seed

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        g = torch.Generator().manual_seed(self.seed)
        w = torch.randn(self.in_features, generator=g)
        x = torch.randn(self.size, self.in_features, generator=g)
        y = x @ w + 0.1 * torch.randn(self.size, generator=g)
        n = self.size // 8
        self.train_set = TensorDataset(x[2 * n:], y[2 * n:])
        self.val_set = TensorDataset(x[:n], y[:n])
        self.test_set = TensorDataset(x[n:2 * n], y[n:2 * n])

    def data_facts(self) -> dict:
        # the features' names play the part of a vocabulary: the task keeps them to decode
        return {"in_features": self.in_features, "feature_names": [f"x{i}" for i in range(self.in_features)]}

    def describe(self) -> dict:
        return {"dataset": self.name, "test_size": self.size // 8, "input_shape": [self.in_features]}

    def read_input(self, path: Path) -> tuple[torch.Tensor, dict]:
        values = [float(v) for v in Path(path).read_text().replace(",", " ").split()]
        if len(values) != self.in_features:
            raise ValueError(f"{path}: {len(values)} numbers, the model takes {self.in_features}")
        return torch.tensor(values), {}


class RegressionTask(ZooTask):
    """Mean-squared-error regression; optionally distilled towards a frozen second net
    (``teacher``), which makes a task of two nets, both rebuilt from a checkpoint."""

    family = "Regression"
    batch_contract = "(x, y): x float32 (B, in_features), y float32 (B,)"
    nets = ("net", "teacher")
    data_facts_used = ("feature_names",)
    primary_metric = "mae"
    higher_is_better = False

    def __init__(self, net: nn.Module, teacher: nn.Module | None = None, teacher_weight: float = 0.0,
                 feature_names: list[str] | None = None, optimizer=None, scheduler=None, scheduler_interval: str = "epoch",
                 gradient_clip_val: float | None = None, gradient_clip_algorithm: str = "norm",
                 accumulate_grad_batches: int = 1):
        super().__init__(net, optimizer, scheduler, scheduler_interval, gradient_clip_val,
                         gradient_clip_algorithm, accumulate_grad_batches)
        self.teacher = teacher
        if teacher is not None:
            teacher.requires_grad_(False)
        self.teacher_weight = teacher_weight
        self.feature_names = list(feature_names or [])
        self.save_hyperparameters(ignore=["net", "teacher", "optimizer", "scheduler"])
        self.init_metrics()
        self._residuals: list[torch.Tensor] = []

    def net_specs(self) -> dict:
        specs = super().net_specs()
        if self.teacher is None:
            specs.pop("teacher")
        return specs

    def build_metrics(self, prefix: str) -> MetricCollection:
        return MetricCollection({"mae": MeanAbsoluteError(), "r2": R2Score()}, prefix=prefix)

    @classmethod
    def report_columns(cls):
        return [("test/mae", "test MAE", 1.0), ("test/r2", "test R²", 1.0)]

    def shared_step(self, batch, stage: str):
        x, y = batch
        pred = self.net(x)  # (B,)
        loss = F.mse_loss(pred, y)
        if self.teacher is not None and self.teacher_weight:
            loss = loss + self.teacher_weight * F.mse_loss(pred, self.teacher(x))
        return loss, pred, y

    def on_metrics_flushed(self, stage: str, preds, target) -> None:
        if stage == "test":
            self._residuals.append((preds - target).detach().cpu())

    def test_outputs(self) -> dict:
        res = torch.cat(self._residuals) if self._residuals else torch.zeros(0)
        self._residuals = []
        return {"test_residuals": [round(float(r), 5) for r in res]}

    @classmethod
    def draw_outputs(cls, record: dict, folder: Path, data_facts: dict) -> list[str]:
        from zoo.reporting import plots

        res = record.get("test_residuals") or []
        if not res:
            return []
        plots.histogram(res, folder / "residuals.png", title=f"{record['experiment']}: test residuals",
                        xlabel="prediction - target")
        return ["residuals.png"]

    def describe_prediction(self, output, top: int = 5) -> dict:
        return {"value": round(float(output), 6)}
