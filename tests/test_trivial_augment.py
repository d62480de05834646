"""The cell space's augmentations on real Fashion-MNIST images: batched TrivialAugment gives each image
exactly what torchvision's TrivialAugmentWide gives it for the same op and strength, and every image
draws its own; the random crop is torchvision's RandomCrop(28, padding), image by image."""

from __future__ import annotations

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


def test_the_op_table_is_torchvisions() -> None:
    space = torchvision_autoaugment.TrivialAugmentWide()._augmentation_space(STRENGTHS)
    assert [TORCHVISION_NAMES[op] for op in TRIVIAL_AUGMENT_OPS] == list(space)
    for k, op in enumerate(TRIVIAL_AUGMENT_OPS):
        magnitudes, signed = space[TORCHVISION_NAMES[op]]
        assert (op in _SIGNED) == signed
        if magnitudes.ndim:
            assert torch.equal(_MAGNITUDE_TABLE[k], magnitudes.float())


@pytest.mark.parametrize("op", TRIVIAL_AUGMENT_OPS)
def test_each_op_at_each_strength_and_sign_equals_torchvisions(op: str, images: torch.Tensor) -> None:
    k = TRIVIAL_AUGMENT_OPS.index(op)
    for strength in range(STRENGTHS):
        for sign in (1, -1) if op in _SIGNED else (1,):
            magnitude = _MAGNITUDE_TABLE[k, strength].item() * sign
            ours = apply_ops(images, torch.full((len(images),), k), torch.full((len(images),), magnitude))
            name = TORCHVISION_NAMES[op]
            theirs = torch.stack([
                torchvision_autoaugment._apply_op(image, name, magnitude, InterpolationMode.NEAREST, None)
                for image in images
            ])  # fmt: skip
            assert torch.equal(ours, theirs), f"{op} at {magnitude}"


def test_each_image_of_a_batch_draws_its_own_op_and_the_generator_replays_them(images: torch.Tensor) -> None:
    first = trivial_augment(images, torch.Generator().manual_seed(3))
    again = trivial_augment(images, torch.Generator().manual_seed(3))
    assert torch.equal(first, again) and first.dtype == torch.uint8
    changed = (first != images).flatten(1).any(1)
    assert 0 < int(changed.sum()) < len(images)  # some drew identity (or a no-op strength), most did not
    # Mixed ops: the same images with one op for the whole batch would change all or none of them alike.
    generator = torch.Generator().manual_seed(3)
    op = torch.randint(len(TRIVIAL_AUGMENT_OPS), (len(images),), generator=generator)
    assert len(set(op.tolist())) > 5


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
    plain = next(iter(DeviceBatches(images[:, 0], labels, 32, shuffle=False)))[0]
    augmented = next(
        iter(DeviceBatches(images[:, 0], labels, 32, shuffle=False, trivial_augment=True, crop_padding=4))
    )[0]
    assert plain.shape == augmented.shape == (32, 1, 28, 28)
    assert not torch.equal(plain, augmented)
    again = next(
        iter(DeviceBatches(images[:, 0], labels, 32, shuffle=False, trivial_augment=True, crop_padding=4))
    )[0]
    assert torch.equal(augmented, again)  # seeded: a resumed trial draws the same augmentations
