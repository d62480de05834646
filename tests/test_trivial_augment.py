"""The cell space's augmentations on real Fashion-MNIST images: batched TrivialAugment has JAHS-Bench-201's
ops and strengths (its aug_lib's fixed_standard space), gives each image exactly what torchvision's
implementation of the op gives it at that strength, and every image of a batch draws its own; the random
crop is torchvision's RandomCrop(28, padding), image by image."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms import autoaugment as torchvision_autoaugment

from jahs_bohb.augment import (
    _MAGNITUDE_TABLE,
    _SIGNED,
    STRENGTHS,
    TRIVIAL_AUGMENT_OPS,
    apply_ops,
    random_crop,
    trivial_augment,
)
from jahs_bohb.datamodule import DeviceBatches
from jahs_bohb.fashion_mnist import load_fashion_mnist

TORCHVISION_NAMES = {
    "identity": "Identity", "shear_x": "ShearX", "shear_y": "ShearY", "translate_x": "TranslateX",
    "translate_y": "TranslateY", "rotate": "Rotate", "brightness": "Brightness", "color": "Color",
    "contrast": "Contrast", "sharpness": "Sharpness", "posterize": "Posterize", "solarize": "Solarize",
    "autocontrast": "AutoContrast", "equalize": "Equalize",
}  # fmt: skip


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    data = load_fashion_mnist(None, True, None)
    return torch.from_numpy(data.train_images[:32].copy()).unsqueeze(1)  # uint8 (32, 1, 28, 28)


ENHANCERS = ("color", "contrast", "brightness", "sharpness")


def aug_lib_magnitude(op: str, level: int) -> float:
    """JAHS-Bench-201's aug_lib with set_augmentation_space('fixed_standard', 31), written out: its
    int_parameter / float_parameter of each op's range (PARAMETER_MAX 30)."""

    def int_parameter(maxval: float) -> int:
        return int(level * maxval / 30)

    def float_parameter(maxval: float) -> float:
        return float(level) * maxval / 30

    table = {
        "shear_x": float_parameter(0.3), "shear_y": float_parameter(0.3),
        "translate_x": int_parameter(10), "translate_y": int_parameter(10), "rotate": int_parameter(30),
        "solarize": 256 - int_parameter(256), "posterize": 8 - int_parameter(8 - 4),
        # the enhancers' factor, float_parameter(1.9 - 0.1) + 0.1, held as factor - 1
        **dict.fromkeys(ENHANCERS, float_parameter(1.9 - 0.1) + 0.1 - 1.0),
    }  # fmt: skip
    return table.get(op, 0.0)


def test_the_ops_and_strengths_are_jahs_bench_201s() -> None:
    assert set(TRIVIAL_AUGMENT_OPS) == set(TORCHVISION_NAMES) and len(TRIVIAL_AUGMENT_OPS) == 14
    assert {"rotate", "shear_x", "shear_y", "translate_x", "translate_y"} == _SIGNED
    for k, op in enumerate(TRIVIAL_AUGMENT_OPS):
        expected = [aug_lib_magnitude(op, level) for level in range(STRENGTHS)]
        assert _MAGNITUDE_TABLE[k].tolist() == pytest.approx(expected, abs=1e-12), op


@pytest.mark.parametrize("op", TRIVIAL_AUGMENT_OPS)
def test_each_op_at_each_strength_and_sign_equals_torchvisions(op: str, images: torch.Tensor) -> None:
    k = TRIVIAL_AUGMENT_OPS.index(op)
    for strength in range(STRENGTHS):
        for sign in (1, -1) if op in _SIGNED else (1,):
            magnitude = _MAGNITUDE_TABLE[k, strength].item() * sign
            ours = apply_ops(
                images,
                torch.full((len(images),), k),
                torch.full((len(images),), magnitude, dtype=torch.float64),
            )
            name = TORCHVISION_NAMES[op]
            if op == "solarize" and magnitude > 255:  # threshold 256: nothing is inverted
                assert torch.equal(ours, images)
                continue
            theirs = torch.stack([
                torchvision_autoaugment._apply_op(image, name, magnitude, InterpolationMode.NEAREST, None)
                for image in images
            ])  # fmt: skip
            assert torch.equal(ours, theirs), f"{op} at {magnitude}"


def test_each_image_of_a_batch_draws_its_own_op_and_the_generator_replays_them(images: torch.Tensor) -> None:
    first = trivial_augment(images, torch.Generator().manual_seed(3))
    again = trivial_augment(images, torch.Generator().manual_seed(3))
    assert torch.equal(first, again) and first.dtype == torch.uint8
    # One image 32 times: with one op per batch there would be at most two results (the sign); with one
    # op and strength per image there are many.
    same = images[:1].expand(32, -1, -1, -1).contiguous()
    results = {tuple(x.flatten().tolist()) for x in trivial_augment(same, torch.Generator().manual_seed(0))}
    assert len(results) > 10


def test_random_crop_is_a_padded_window_at_each_images_own_offset() -> None:
    images = torch.arange(2 * 28 * 28, dtype=torch.float32).view(2, 1, 28, 28) + 1
    generator = torch.Generator().manual_seed(0)
    cropped = random_crop(images, 4, generator)
    replay = torch.Generator().manual_seed(0)
    dy, dx = torch.randint(9, (2,), generator=replay), torch.randint(9, (2,), generator=replay)
    padded = torch.nn.functional.pad(images, [4, 4, 4, 4])
    for i in range(2):
        y, x = int(dy[i]), int(dx[i])
        assert torch.equal(cropped[i], padded[i, :, y : y + 28, x : x + 28])
    assert cropped.shape == images.shape


def test_the_training_batches_apply_trivial_augment_and_crop_only_when_asked(images: torch.Tensor) -> None:
    labels = torch.zeros(len(images), dtype=torch.long)

    def first_batch(**augment: Any) -> torch.Tensor:
        return next(iter(DeviceBatches(images[:, 0], labels, 32, shuffle=False, **augment)))[0]

    plain = first_batch()
    assert plain.shape == (32, 1, 28, 28)
    for augment in ({"trivial_augment": True}, {"crop_padding": 4}):
        changed = first_batch(**augment)
        assert changed.shape == plain.shape and not torch.equal(plain, changed), augment
        assert torch.equal(changed, first_batch(**augment))  # seeded: a resumed trial draws the same
    # TrivialAugment alone changes some images (identity and a few no-op strengths leave others).
    alone = first_batch(trivial_augment=True)
    assert 0 < int((alone != plain).flatten(1).any(1).sum()) < 32
