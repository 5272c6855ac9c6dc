"""Batched, per-sample random augmentations applied on the device after transfer.

They run on whole (B, C, H, W) batches (one random draw per sample), so augmentation costs one
``grid_sample`` per batch instead of a Python loop per image. Randomness comes from torch's global
generator, which ``seed_everything`` seeds: runs are reproducible.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class RandomAffine(nn.Module):
    """Random rotation, translation and scaling of each image.

    Args:
        degrees: rotation drawn uniformly in [-degrees, degrees].
        translate: shift drawn uniformly in [-translate, translate] of the image size.
        scale: zoom factor drawn uniformly in [scale[0], scale[1]].
        p: probability that a sample is transformed at all.
    The border value is repeated into the uncovered area (the background, for digits).
    """

    def __init__(self, degrees: float = 10.0, translate: float = 0.1,
                 scale: tuple[float, float] = (0.9, 1.1), p: float = 1.0):
        super().__init__()
        self.degrees, self.translate, self.scale, self.p = degrees, translate, tuple(scale), p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        dev = x.device
        angle = (torch.rand(b, device=dev) * 2 - 1) * math.radians(self.degrees)
        zoom = torch.empty(b, device=dev).uniform_(*self.scale)
        shift = (torch.rand(b, 2, device=dev) * 2 - 1) * (2 * self.translate)  # grid units span 2
        keep = torch.rand(b, device=dev) >= self.p
        angle[keep], zoom[keep], shift[keep] = 0.0, 1.0, 0.0
        cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
        theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1),
                             torch.stack([sin, cos, shift[:, 1]], 1)], 1)  # (B, 2, 3)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


class RandomCropFlip(nn.Module):
    """Pad by ``padding`` pixels, crop back to the original size at a random offset, and flip
    horizontally with probability ``flip_p`` (the CIFAR recipe of He et al. 2016, section 4.2)."""

    def __init__(self, padding: int = 4, flip_p: float = 0.5):
        super().__init__()
        self.padding, self.flip_p = padding, flip_p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        p = self.padding
        if p > 0:
            padded = F.pad(x, (p, p, p, p))  # zeros: the per-channel mean after normalisation
            dy = torch.randint(0, 2 * p + 1, (b,), device=x.device)
            dx = torch.randint(0, 2 * p + 1, (b,), device=x.device)
            rows = (dy.view(b, 1) + torch.arange(h, device=x.device)).view(b, 1, h, 1)
            cols = (dx.view(b, 1) + torch.arange(w, device=x.device)).view(b, 1, 1, w)
            bidx = torch.arange(b, device=x.device).view(b, 1, 1, 1)
            x = padded.permute(0, 2, 3, 1)[bidx, rows, cols].squeeze(1).permute(0, 3, 1, 2)  # (B, C, H, W)
        if self.flip_p > 0:
            flip = torch.rand(b, device=x.device) < self.flip_p
            x = torch.where(flip.view(b, 1, 1, 1), x.flip(-1), x)
        return x.contiguous()


class RandomElastic(nn.Module):
    """Elastic distortion (Simard, Steinkraus & Platt 2003, "Best practices for convolutional
    neural networks applied to visual document analysis", section 2): a random displacement
    field, uniform in [-1, 1] per pixel, smoothed by a Gaussian of standard deviation ``sigma``
    pixels and scaled by ``alpha`` pixels, moves every pixel. The paper uses alpha = 34,
    sigma = 4 on 28x28 digits; milder values suit a 4,000-digit training set.
    """

    def __init__(self, alpha: float = 34.0, sigma: float = 4.0, p: float = 1.0):
        super().__init__()
        if sigma <= 0:
            raise ValueError("sigma must be positive")
        self.alpha, self.sigma, self.p = alpha, sigma, p
        radius = int(math.ceil(3 * sigma))  # 3 sigma holds 99.7% of the Gaussian's mass
        t = torch.arange(-radius, radius + 1, dtype=torch.float32)
        k = torch.exp(-0.5 * (t / sigma) ** 2)
        self.register_buffer("kernel", k / k.sum(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        k = self.kernel.to(x.dtype)
        r = k.numel() // 2
        disp = torch.rand(b * 2, 1, h, w, device=x.device, dtype=x.dtype) * 2 - 1  # (2B, 1, H, W)
        disp = F.conv2d(F.pad(disp, (r, r, 0, 0), mode="reflect" if r < w else "replicate"), k.view(1, 1, 1, -1))
        disp = F.conv2d(F.pad(disp, (0, 0, r, r), mode="reflect" if r < h else "replicate"), k.view(1, 1, -1, 1))
        disp = disp.view(b, 2, h, w) * self.alpha  # pixels
        keep = torch.rand(b, device=x.device) >= self.p
        disp[keep] = 0.0
        # pixels -> grid units ([-1, 1] spans the image)
        scale = torch.tensor([2.0 / w, 2.0 / h], device=x.device, dtype=x.dtype).view(1, 2, 1, 1)
        disp = (disp * scale).permute(0, 2, 3, 1)  # (B, H, W, 2)
        eye = torch.eye(2, 3, device=x.device, dtype=x.dtype).unsqueeze(0).expand(b, 2, 3)
        grid = F.affine_grid(eye, [b, 1, h, w], align_corners=False) + disp
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


class Compose(nn.Sequential):
    """Apply several batched augmentations in order (Hydra: ``augment: {_target_: ...Compose,
    _args_: [...]}`` or simply a list under ``augment``)."""
