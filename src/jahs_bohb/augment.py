"""Batched augmentation on the training device: one kernel launch per batch, no PIL, no Python loop."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def random_hflip(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Mirror each image left-right with probability 1/2 (images: N, C, H, W)."""
    flip = torch.rand(images.shape[0], device=images.device, generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], images.flip(-1), images)


def rotate(images: torch.Tensor, degrees: torch.Tensor) -> torch.Tensor:
    """Rotate each image by its own angle (degrees, shape N) about its centre; corners fill with 0."""
    radians = degrees.to(images.dtype) * (math.pi / 180.0)
    cos, sin = torch.cos(radians), torch.sin(radians)
    zero = torch.zeros_like(cos)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    rotated = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    # float32 grid coordinates are off by ~1e-6; an image drawn at angle 0 stays exactly as it was.
    return torch.where((degrees == 0).view(-1, 1, 1, 1), images, rotated)


def random_rotation(
    images: torch.Tensor, max_degrees: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Rotate each image by an angle drawn uniformly from [-max_degrees, max_degrees]."""
    u = torch.rand(images.shape[0], device=images.device, generator=generator)
    return rotate(images, (2.0 * u - 1.0) * max_degrees)
