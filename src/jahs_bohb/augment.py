"""Batched augmentation on the training device: each image its own random draw, no PIL, no per-image
Python loop, no host sync."""

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


# TrivialAugment (Müller and Hutter 2021) as JAHS-Bench-201 runs it (its aug_lib, augmentation space
# "fixed_standard", 31 strengths): each image gets one of 14 ops, drawn uniformly, at one of 31
# strengths, drawn uniformly; the geometric ops flip their sign with probability 1/2. aug_lib draws per
# image on PIL images; here a whole batch is drawn at once on the device, every image its own op and
# strength, and each op gives the pixels torchvision's implementation of it gives (tests/
# test_trivial_augment.py checks every op at every strength against torchvision's, image by image).
TRIVIAL_AUGMENT_OPS = (
    "identity", "autocontrast", "equalize", "rotate", "solarize", "color", "posterize", "contrast",
    "brightness", "sharpness", "shear_x", "shear_y", "translate_x", "translate_y",
)  # fmt: skip
STRENGTHS = 31
_SIGNED = {"rotate", "shear_x", "shear_y", "translate_x", "translate_y"}  # aug_lib's extra coin flip
_GEOMETRIC = ("shear_x", "shear_y", "translate_x", "translate_y", "rotate")


def _magnitudes(op: str) -> torch.Tensor:
    """The magnitude of an op at each of the 31 strengths, from aug_lib's fixed_standard ranges: shear
    0-0.3, translate 0-10 pixels, rotate 0-30 degrees (whole numbers), solarize threshold 256-0,
    posterize 8-4 bits, and the enhancers' factor 0.1-1.9, held here as factor - 1."""
    level = torch.arange(STRENGTHS, dtype=torch.float64)
    top = STRENGTHS - 1
    if op in ("shear_x", "shear_y"):
        return level * 0.3 / top
    if op in ("translate_x", "translate_y"):
        return torch.floor(level * 10 / top)
    if op == "rotate":
        return torch.floor(level * 30 / top)
    if op == "solarize":
        return 256 - torch.floor(level * 256 / top)
    if op == "posterize":
        return 8 - torch.floor(level * 4 / top)
    if op in ("color", "contrast", "brightness", "sharpness"):
        return level * 1.8 / top + 0.1 - 1.0
    return torch.zeros(STRENGTHS, dtype=torch.float64)


_MAGNITUDE_TABLE = torch.stack([_magnitudes(op) for op in TRIVIAL_AUGMENT_OPS])  # (ops, strengths)


def trivial_augment(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """TrivialAugment on uint8 images (N, C, H, W), each image with its own op and strength."""
    n, device = images.shape[0], images.device
    op = torch.randint(len(TRIVIAL_AUGMENT_OPS), (n,), device=device, generator=generator)
    strength = torch.randint(STRENGTHS, (n,), device=device, generator=generator)
    flip = torch.randint(2, (n,), device=device, generator=generator)
    magnitude = _MAGNITUDE_TABLE.to(device)[op, strength]
    signed = torch.tensor([name in _SIGNED for name in TRIVIAL_AUGMENT_OPS], device=device)[op]
    magnitude = torch.where(signed & (flip == 1), -magnitude, magnitude)
    return apply_ops(images, op, magnitude)


def apply_ops(images: torch.Tensor, op: torch.Tensor, magnitude: torch.Tensor) -> torch.Tensor:
    """Image i transformed by op TRIVIAL_AUGMENT_OPS[op[i]] at magnitude[i] (torchvision's meaning).

    Every op runs on the whole batch and each image keeps its own op's result: no boolean indexing, so
    a GPU never waits for the host (the ops cost little next to a training step)."""
    chosen = {name: (op == k).view(-1, 1, 1, 1) for k, name in enumerate(TRIVIAL_AUGMENT_OPS)}
    geometric = torch.zeros_like(chosen["identity"])
    for name in _GEOMETRIC:
        geometric = geometric | chosen[name]
    out = torch.where(geometric, _affine(images, op, magnitude), images)
    for name, transform in _PIXEL_OPS.items():
        out = torch.where(chosen[name], transform(images, magnitude), out)
    return out


def _affine(images: torch.Tensor, op: torch.Tensor, magnitude: torch.Tensor) -> torch.Tensor:
    """Shear, translate or rotate each image, nearest pixel, zero fill: torchvision's F.affine / F.rotate
    with the inverse matrix of its `_get_inverse_affine_matrix`, one matrix per image."""
    _, _, h, w = images.shape
    m = magnitude.double()
    zero = torch.zeros_like(m)
    is_op = {name: op == TRIVIAL_AUGMENT_OPS.index(name) for name in _GEOMETRIC}
    rot = torch.where(is_op["rotate"], torch.deg2rad(-m), zero)
    sx = torch.where(is_op["shear_x"], torch.atan(m), zero)
    sy = torch.where(is_op["shear_y"], torch.atan(m), zero)
    tx = torch.where(is_op["translate_x"], torch.trunc(m), zero)
    ty = torch.where(is_op["translate_y"], torch.trunc(m), zero)
    shear = is_op["shear_x"] | is_op["shear_y"]  # torchvision shears about the top-left corner
    cx, cy = torch.where(shear, -0.5 * w, zero), torch.where(shear, -0.5 * h, zero)
    a = torch.cos(rot - sy) / torch.cos(sy)
    b = -torch.cos(rot - sy) * torch.tan(sx) / torch.cos(sy) - torch.sin(rot)
    c = torch.sin(rot - sy) / torch.cos(sy)
    d = -torch.sin(rot - sy) * torch.tan(sx) / torch.cos(sy) + torch.cos(rot)
    m0, m1, m3, m4 = d, -b, -c, a
    m2 = m0 * (-cx - tx) + m1 * (-cy - ty) + cx
    m5 = m3 * (-cx - tx) + m4 * (-cy - ty) + cy
    theta = torch.stack([torch.stack([m0, m1, m2], 1), torch.stack([m3, m4, m5], 1)], 1).float()
    xs = torch.linspace(-w * 0.5 + 0.5, w * 0.5 - 0.5, w, device=images.device)
    ys = torch.linspace(-h * 0.5 + 0.5, h * 0.5 - 0.5, h, device=images.device)
    base = torch.stack(
        [xs.expand(h, w), ys[:, None].expand(h, w), torch.ones(h, w, device=images.device)], -1
    )
    scale = torch.tensor([0.5 * w, 0.5 * h], device=images.device)
    grid = base.view(1, h * w, 3).expand(len(op), -1, -1).bmm(theta.transpose(1, 2) / scale)
    grid = grid.view(len(op), h, w, 2)
    moved = F.grid_sample(images.float(), grid, mode="nearest", padding_mode="zeros", align_corners=False)
    return moved.round().to(images.dtype)


def _blend(images: torch.Tensor, other: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """(1 + m) * images - m * other: torchvision's blend at factor 1 + m. Both weights are rounded from
    double to float32 once, as torchvision's Python floats are; in float32 arithmetic they would be off
    by an ulp now and then and flip a truncated pixel."""
    ratio = 1.0 + m.double().view(-1, 1, 1, 1)
    return (ratio.float() * images + (1.0 - ratio).float() * other).clamp(0, 255).to(images.dtype)


def _brightness(images: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    return _blend(images, torch.zeros_like(images), m)


def _color(images: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    return images  # saturation: a grayscale image has none (torchvision returns it as it is)


def _contrast(images: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    mean = images.float().mean(dim=(-3, -2, -1), keepdim=True)
    return _blend(images, mean, m)


def _sharpness(images: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    channels = images.shape[1]
    kernel = torch.ones(3, 3, device=images.device)
    kernel[1, 1] = 5.0
    kernel = (kernel / kernel.sum()).expand(channels, 1, 3, 3)
    blurred = F.conv2d(images.float(), kernel, groups=channels).round().to(images.dtype)
    degenerate = images.clone()
    degenerate[..., 1:-1, 1:-1] = blurred
    return _blend(images, degenerate, m)


def _posterize(images: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
    dropped = (8 - bits.long()).clamp(0, 8)  # other ops' magnitudes too: apply_ops discards those
    mask = (256 - 2**dropped).to(torch.uint8)
    return images & mask.view(-1, 1, 1, 1)


def _solarize(images: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
    return torch.where(images >= threshold.float().view(-1, 1, 1, 1), 255 - images, images)


def _autocontrast(images: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    low = images.amin(dim=(-2, -1), keepdim=True).float()
    high = images.amax(dim=(-2, -1), keepdim=True).float()
    flat = high == low
    scale = torch.where(flat, 1.0, 255.0 / (high - low).clamp(min=1))
    low = torch.where(flat, 0.0, low)
    return ((images - low) * scale).clamp(0, 255).to(images.dtype)


def _equalize(images: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Histogram equalisation per image and channel, as PIL's ImageOps.equalize (torchvision's port)."""
    n, c, h, w = images.shape
    flat = images.reshape(n * c, h * w).long()
    hist = torch.zeros(n * c, 256, dtype=torch.long, device=images.device).scatter_add_(
        1, flat, torch.ones_like(flat)
    )
    last = 255 - (hist.flip(1) > 0).long().argmax(1)  # the brightest level present
    step = (hist.sum(1) - hist.gather(1, last[:, None]).squeeze(1)) // 255
    safe = step.clamp(min=1)[:, None]
    lut = (hist.cumsum(1) + safe // 2) // safe
    lut = F.pad(lut, [1, 0])[:, :-1].clamp(0, 255)
    equalized = lut.gather(1, flat)
    equalized = torch.where((step == 0)[:, None], flat, equalized)
    return equalized.reshape(n, c, h, w).to(images.dtype)


_PIXEL_OPS = {
    "brightness": _brightness, "color": _color, "contrast": _contrast, "sharpness": _sharpness,
    "posterize": _posterize, "solarize": _solarize, "autocontrast": _autocontrast, "equalize": _equalize,
}  # fmt: skip


def random_crop(images: torch.Tensor, padding: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Pad each image with `padding` zero pixels a side and cut out its original size at a random
    offset (torchvision's RandomCrop(size, padding)), each image at its own offset."""
    n, c, h, w = images.shape
    padded = F.pad(images, [padding] * 4)
    dy = torch.randint(2 * padding + 1, (n,), device=images.device, generator=generator)
    dx = torch.randint(2 * padding + 1, (n,), device=images.device, generator=generator)
    wide = padded.shape[3]
    rows = (dy[:, None] + torch.arange(h, device=images.device)).view(n, 1, h, 1).expand(n, c, h, wide)
    cols = (dx[:, None] + torch.arange(w, device=images.device)).view(n, 1, 1, w).expand(n, c, h, w)
    return padded.gather(2, rows).gather(3, cols)
