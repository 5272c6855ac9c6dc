"""Gradient checking: numerical (two-sided difference) gradients against autograd's.

Course 2 of the notes: for each parameter theta_i,

    dtheta_approx[i] = (J(theta + eps e_i) - J(theta - eps e_i)) / (2 eps)

and the check passes when the relative difference

    ||dtheta_approx - dtheta|| / (||dtheta_approx|| + ||dtheta||)

is small (the notes: about 1e-7 is great, 1e-5 worth a look, 1e-3 a bug). We compute in
float64, where a correct layer gives about 1e-9 or less.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn as nn


@dataclass
class GradCheckResult:
    name: str
    relative_difference: float
    checked: int  # number of coordinates compared


def relative_difference(approx: torch.Tensor, exact: torch.Tensor) -> float:
    num = torch.linalg.vector_norm(approx - exact)
    den = torch.linalg.vector_norm(approx) + torch.linalg.vector_norm(exact)
    return 0.0 if den == 0 else float(num / den)


def _numerical(loss_fn: Callable[[], torch.Tensor], t: torch.Tensor, coords: torch.Tensor, eps: float) -> torch.Tensor:
    flat = t.data.view(-1)
    out = torch.empty(len(coords), dtype=torch.float64)
    with torch.no_grad():
        for j, i in enumerate(coords.tolist()):
            old = flat[i].item()
            flat[i] = old + eps
            plus = float(loss_fn())
            flat[i] = old - eps
            minus = float(loss_fn())
            flat[i] = old
            out[j] = (plus - minus) / (2 * eps)
    return out


def gradient_check(
    loss_fn: Callable[[], torch.Tensor],
    tensors: dict[str, torch.Tensor],
    eps: float = 1e-6,
    max_coords: int = 256,
    seed: int = 0,
) -> list[GradCheckResult]:
    """Compare autograd's gradient of the scalar ``loss_fn()`` with two-sided differences.

    ``tensors`` maps names to float64 leaf tensors with ``requires_grad``; at most
    ``max_coords`` coordinates of each (chosen at random with ``seed``) are compared.
    """
    for t in tensors.values():
        t.grad = None
    loss = loss_fn()
    if loss.dim() != 0:
        raise ValueError("loss_fn must return a scalar")
    loss.backward()
    gen = torch.Generator().manual_seed(seed)
    results = []
    for name, t in tensors.items():
        if t.dtype != torch.float64:
            raise TypeError(f"{name}: gradient checking needs float64 tensors, got {t.dtype}")
        n = t.numel()
        coords = torch.randperm(n, generator=gen)[:max_coords] if n > max_coords else torch.arange(n)
        exact = t.grad.detach().view(-1)[coords].to(torch.float64) if t.grad is not None else torch.zeros(len(coords), dtype=torch.float64)
        approx = _numerical(loss_fn, t, coords, eps)
        results.append(GradCheckResult(name, relative_difference(approx, exact), len(coords)))
    return results


def check_module(
    module: nn.Module,
    inputs: Sequence[torch.Tensor],
    eps: float = 1e-6,
    max_coords: int = 256,
    seed: int = 0,
    max_tensors: int | None = None,
) -> list[GradCheckResult]:
    """Gradient-check a module with respect to its inputs and its parameters (all of them, or
    ``max_tensors`` spread evenly from the first to the last, for deep nets).

    The module and inputs are moved to float64; the scalar loss is a fixed random projection of
    the output, ``sum(r * module(*inputs))``, so that every output coordinate matters.
    """
    module = module.double().eval()
    xs = [x.detach().double().requires_grad_(x.is_floating_point()) for x in inputs]
    with torch.no_grad():
        out = module(*xs)
    gen = torch.Generator().manual_seed(seed + 1)
    r = torch.randn(out.shape, generator=gen, dtype=torch.float64)

    def loss_fn() -> torch.Tensor:
        return (module(*xs) * r).sum()

    tensors = {f"input{i}": x for i, x in enumerate(xs) if x.requires_grad}
    params = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
    if max_tensors is not None and len(params) > max_tensors:
        step = (len(params) - 1) / max(1, max_tensors - 1)
        params = [params[round(i * step)] for i in range(max_tensors)]
    tensors.update(dict(params))
    return gradient_check(loss_fn, tensors, eps, max_coords, seed)
