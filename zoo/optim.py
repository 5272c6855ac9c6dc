"""Learning-rate schedules of the notes that torch does not ship."""
from __future__ import annotations

import torch
from torch.optim.lr_scheduler import LambdaLR


class InverseTimeDecay(LambdaLR):
    """Inverse-time (1/t) decay, course 2 of the notes:
    ``lr_t = lr_0 / (1 + decay_rate * floor(t / decay_every))``, ``t`` counted in scheduler
    steps (epochs or optimizer steps, as the task's ``scheduler_interval`` says)."""

    def __init__(self, optimizer: torch.optim.Optimizer, decay_rate: float = 1.0,
                 decay_every: int = 1, last_epoch: int = -1):
        if decay_rate < 0 or decay_every < 1:
            raise ValueError("decay_rate must be >= 0 and decay_every >= 1")
        self.decay_rate, self.decay_every = decay_rate, decay_every
        super().__init__(optimizer, self._factor, last_epoch=last_epoch)

    def _factor(self, t: int) -> float:
        return 1.0 / (1.0 + self.decay_rate * (t // self.decay_every))


# ---------------------------------------------------------------- learning rate and world size

LR_SCALING_RULES = ("linear", "sqrt")


def lr_scale(rule: str | None, world_size: int) -> float:
    """How much larger the learning rate is with ``world_size`` data-parallel processes, each with
    the configured batch size (so the optimizer step sees ``world_size`` times the examples):

    * ``linear``: ``x world_size`` -- Goyal et al. 2017, "Accurate, Large Minibatch SGD: Training
      ImageNet in 1 Hour", section 2.1 (SGD; pair it with a warm-up);
    * ``sqrt``: ``x sqrt(world_size)`` -- keeps the gradient noise's variance per step (Krizhevsky
      2014, "One weird trick ..."; the usual choice for Adam);
    * ``None``: unchanged."""
    if rule is None:
        return 1.0
    if rule not in LR_SCALING_RULES:
        raise ValueError(f"lr_scaling={rule!r}: use one of {', '.join(LR_SCALING_RULES)} or null")
    if not isinstance(world_size, int) or world_size < 1:
        raise ValueError(f"world_size must be a positive integer, got {world_size!r}")
    return float(world_size) if rule == "linear" else world_size ** 0.5


def scale_learning_rates(task, rule: str | None, world_size: int) -> float:
    """Multiply the learning rate of ``task``'s optimizer factory (and a one-cycle schedule's
    ``max_lr``) by :func:`lr_scale`; returns the factor. Factories are ``functools.partial``s, as
    Hydra builds them from ``_partial_: true`` configs."""
    from functools import partial

    factor = lr_scale(rule, world_size)
    if factor == 1.0:
        return factor
    for attr, key in (("optimizer_factory", "lr"), ("scheduler_factory", "max_lr")):
        factory = getattr(task, attr, None)
        if isinstance(factory, partial) and factory.keywords.get(key) is not None:
            value = factory.keywords[key]
            scaled = [v * factor for v in value] if isinstance(value, (list, tuple)) else value * factor
            setattr(task, attr, partial(factory, **{key: scaled}))
        elif attr == "optimizer_factory":
            raise ValueError(f"lr_scaling={rule} needs the optimizer's learning rate in its config "
                             "(optimizer.lr), and the optimizer as a partial (_partial_: true)")
    return factor


# ---------------------------------------------------------------- warm-up schedules

class WarmupInverseSqrt(LambdaLR):
    """Linear warm-up, then inverse-square-root decay: the Transformer's schedule (Vaswani et al.
    2017, section 5.3, equation 3), stepped every optimizer step (``scheduler_interval: step``).

    With ``s = t + 1`` the optimizer step number (1, 2, ...):

    * ``d_model=None`` (default): ``lr_s = lr * min(s / warmup, sqrt(warmup / s))`` -- the
      learning rate rises linearly to the optimizer's ``lr`` at ``s = warmup_steps``, then falls
      as ``1 / sqrt(s)``; ``lr`` is the peak, the one number to tune;
    * ``d_model=d``: the paper's formula as written, ``lr_s = lr * d^-0.5 * min(s^-0.5,
      s * warmup^-1.5)`` with the optimizer's ``lr`` as the scale factor (the paper's is 1).

    Both have the same shape; the first is the second normalised by its peak
    ``d^-0.5 * warmup^-0.5``."""

    def __init__(self, optimizer: torch.optim.Optimizer, warmup_steps: int = 4000,
                 d_model: int | None = None, last_epoch: int = -1):
        if int(warmup_steps) < 1:
            raise ValueError(f"warmup_steps must be a positive integer, got {warmup_steps!r}")
        if d_model is not None and int(d_model) < 1:
            raise ValueError(f"d_model must be a positive integer or null, got {d_model!r}")
        self.warmup_steps, self.d_model = int(warmup_steps), d_model
        super().__init__(optimizer, self._factor, last_epoch=last_epoch)

    def _factor(self, t: int) -> float:
        s, w = t + 1, self.warmup_steps
        if self.d_model is None:
            return min(s / w, (w / s) ** 0.5)
        return self.d_model ** -0.5 * min(s ** -0.5, s * w ** -1.5)

