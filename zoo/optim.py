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
