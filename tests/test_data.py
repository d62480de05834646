"""Data path on real Fashion-MNIST: augmentation, seeded splits, IDX loading, device batches."""

from __future__ import annotations

import gzip
import os
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from jahs_bohb import splits
from jahs_bohb.augment import random_hflip, random_rotation, rotate
from jahs_bohb.datamodule import MEAN, STD, DeviceBatches
from jahs_bohb.errors import ConfigError
from jahs_bohb.fashion_mnist import DEBIAN_DIR, FILES, FashionMNIST, load_fashion_mnist


def as_float(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, 28, 28) -> float (N, 1, 28, 28) in [0, 1], as the datamodule feeds augmentation."""
    return torch.from_numpy(np.array(images)).unsqueeze(1).float() / 255.0  # a copy: the data are read-only


# --- augmentation --------------------------------------------------------------------------------


def test_random_hflip_mirrors_exactly_or_leaves_alone(fashion: FashionMNIST) -> None:
    images = as_float(fashion.train_images[:256])
    generator = torch.Generator().manual_seed(123)
    out = random_hflip(images, generator)
    assert out.shape == images.shape
    mirrored = torch.flip(images, dims=[-1])
    same = (out == images).flatten(1).all(1)
    flipped = (out == mirrored).flatten(1).all(1)
    # Fashion-MNIST images are not mirror-symmetric pixel for pixel: the two cases are distinct.
    assert not (same & flipped).any()
    assert (same | flipped).all(), "every image is either untouched or exactly mirrored"
    assert 64 < int(flipped.sum()) < 192, "a fair coin per image over 256 images"
    assert int(same.sum()) > 0


def test_random_hflip_is_reproducible_with_a_seeded_generator(fashion: FashionMNIST) -> None:
    images = as_float(fashion.train_images[:64])
    a = random_hflip(images, torch.Generator().manual_seed(7))
    b = random_hflip(images, torch.Generator().manual_seed(7))
    assert torch.equal(a, b)


# An angle of 0 returns the image bit for bit (rotate() passes it through untouched).
ZERO_ANGLE_ATOL = {torch.float64: 0.0, torch.float32: 0.0}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_rotate_by_zero_is_identity(fashion: FashionMNIST, dtype: torch.dtype) -> None:
    images = as_float(fashion.train_images[:256]).to(dtype)
    out = rotate(images, torch.zeros(len(images)))
    assert out.dtype == dtype
    torch.testing.assert_close(out, images, atol=ZERO_ANGLE_ATOL[dtype], rtol=0)


def test_rotate_by_90_matches_rot90_counter_clockwise() -> None:
    # Direction, found empirically: rotate(x, +90) equals torch.rot90(x, k=1, dims=(-2, -1)),
    # i.e. the image turns counter-clockwise as displayed (row 0 at the top): the top-right corner
    # moves to the top-left, out[i, j] == x[j, 27 - i]; k=-1 (clockwise) is far off on this ramp.
    # Pixel centres map onto pixel centres, so only the border (zero padding, rounding of cos 90°)
    # may differ; compare the interior.
    x = torch.arange(28 * 28, dtype=torch.float32).reshape(1, 1, 28, 28) / (28 * 28)  # no symmetry
    x = torch.cat([x, x.transpose(-1, -2) ** 2])
    out = rotate(x, torch.tensor([90.0, 90.0]))
    expected = torch.rot90(x, k=1, dims=(-2, -1))
    torch.testing.assert_close(out[..., 1:-1, 1:-1], expected[..., 1:-1, 1:-1], atol=1e-4, rtol=0)
    clockwise = torch.rot90(x, k=-1, dims=(-2, -1))
    assert (out[..., 1:-1, 1:-1] - clockwise[..., 1:-1, 1:-1]).abs().max() > 0.1


def test_rotate_uses_each_images_own_angle() -> None:
    x = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    out = rotate(x, torch.tensor([0.0, 90.0]))
    torch.testing.assert_close(out[0], x[0], atol=ZERO_ANGLE_ATOL[torch.float32], rtol=0)
    torch.testing.assert_close(
        out[1, :, 1:-1, 1:-1], torch.rot90(x[1], 1, dims=(-2, -1))[:, 1:-1, 1:-1], atol=1e-4, rtol=0
    )


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_random_rotation_with_zero_degrees_is_identity(fashion: FashionMNIST, dtype: torch.dtype) -> None:
    images = as_float(fashion.train_images[:256]).to(dtype)
    out = random_rotation(images, 0.0, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, images, atol=ZERO_ANGLE_ATOL[dtype], rtol=0)


def test_random_rotation_changes_images_and_keeps_shape(fashion: FashionMNIST) -> None:
    images = as_float(fashion.train_images[:32])
    out = random_rotation(images, 30.0, torch.Generator().manual_seed(0))
    assert out.shape == images.shape
    changed = (out - images).abs().flatten(1).amax(1) > 1e-3
    assert int(changed.sum()) >= 30  # near-zero angles for more than two of 32: implausible


# --- splits --------------------------------------------------------------------------------------


def test_train_val_split_disjoint_complete_stratified(fashion: FashionMNIST) -> None:
    labels = fashion.train_labels
    train_idx, val_idx = splits.train_val_split(labels, 10_000, seed=0)
    assert len(val_idx) == 10_000 and len(train_idx) == 50_000
    assert len(np.intersect1d(train_idx, val_idx)) == 0
    assert np.array_equal(np.sort(np.concatenate([train_idx, val_idx])), np.arange(60_000))
    # The real training labels are balanced (6000 per class), so a stratified holdout has 1000 each.
    assert np.bincount(labels, minlength=10).tolist() == [6000] * 10
    assert np.bincount(labels[val_idx], minlength=10).tolist() == [1000] * 10
    assert np.bincount(labels[train_idx], minlength=10).tolist() == [5000] * 10


@pytest.mark.parametrize("val_size", [10, 1230, 12_000])
def test_train_val_split_per_class_counts(fashion: FashionMNIST, val_size: int) -> None:
    _, val_idx = splits.train_val_split(fashion.train_labels, val_size, seed=3)
    counts = np.bincount(fashion.train_labels[val_idx], minlength=10)
    assert counts.sum() == val_size
    assert counts.max() - counts.min() <= 1  # balanced classes: within one of val_size / 10
    if val_size % 10 == 0:
        assert counts.tolist() == [val_size // 10] * 10


def test_train_val_split_is_seeded(fashion: FashionMNIST) -> None:
    labels = fashion.train_labels
    first = splits.train_val_split(labels, 10_000, seed=0)
    again = splits.train_val_split(labels, 10_000, seed=0)
    other = splits.train_val_split(labels, 10_000, seed=1)
    assert np.array_equal(first[0], again[0]) and np.array_equal(first[1], again[1])
    assert not np.array_equal(first[1], other[1])


def test_limit_gives_a_stratified_subset(fashion: FashionMNIST) -> None:
    labels = fashion.train_labels
    train_idx, _ = splits.train_val_split(labels, 10_000, seed=0)
    subset = splits.limit(train_idx, labels, 2000, seed=0)
    assert len(subset) == 2000 == len(np.unique(subset))
    assert np.isin(subset, train_idx).all()
    assert np.bincount(labels[subset], minlength=10).tolist() == [200] * 10
    assert np.array_equal(subset, splits.limit(train_idx, labels, 2000, seed=0))
    assert splits.limit(train_idx, labels, None, seed=0) is train_idx
    assert np.array_equal(splits.limit(train_idx, labels, len(train_idx), seed=0), train_idx)


def test_limit_more_than_available_raises_config_error(fashion: FashionMNIST) -> None:
    labels = fashion.train_labels
    _, val_idx = splits.train_val_split(labels, 1000, seed=0)
    with pytest.raises(ConfigError):
        splits.limit(val_idx, labels, 1001, seed=0)


# --- loading -------------------------------------------------------------------------------------


def test_load_fashion_mnist_reads_the_real_data(fashion: FashionMNIST) -> None:
    data = load_fashion_mnist()  # no root: Debian's package
    assert data.source == str(DEBIAN_DIR)
    assert data.train_images.shape == (60_000, 28, 28)
    assert data.test_images.shape == (10_000, 28, 28)
    assert data.train_labels.shape == (60_000,) and data.test_labels.shape == (10_000,)
    assert data.train_images.dtype == np.uint8 and data.test_images.dtype == np.uint8
    assert data.train_labels.dtype == np.int64 and data.test_labels.dtype == np.int64
    assert set(np.unique(data.train_labels).tolist()) == set(range(10))
    assert set(np.unique(data.test_labels).tolist()) == set(range(10))
    assert data.train_images.max() == 255 and data.train_images.min() == 0
    assert np.array_equal(data.train_images, fashion.train_images)


def assert_same_data(a: FashionMNIST, b: FashionMNIST) -> None:
    for field in ("train_images", "train_labels", "test_images", "test_labels"):
        assert np.array_equal(getattr(a, field), getattr(b, field)), field
        assert getattr(a, field).dtype == getattr(b, field).dtype, field


def test_load_non_gzipped_idx_files(tmp_path: Path, fashion: FashionMNIST) -> None:
    for stem in FILES.values():
        with gzip.open(DEBIAN_DIR / f"{stem}.gz", "rb") as src, open(tmp_path / stem, "wb") as dst:
            shutil.copyfileobj(src, dst)
    data = load_fashion_mnist(tmp_path, download=False)
    assert data.source == str(tmp_path)
    assert_same_data(data, fashion)


def test_load_torchvision_layout(tmp_path: Path, fashion: FashionMNIST) -> None:
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for stem in FILES.values():
        shutil.copy(DEBIAN_DIR / f"{stem}.gz", raw / f"{stem}.gz")
    assert_same_data(load_fashion_mnist(tmp_path, download=False), fashion)


def test_the_trials_of_one_process_parse_the_files_once_until_they_change(tmp_path: Path) -> None:
    """A process running trial after trial reuses the parsed arrays (read-only, so no trial can change
    what the next one trains on); files that changed on disk are parsed again."""
    for stem in FILES.values():
        shutil.copy(DEBIAN_DIR / f"{stem}.gz", tmp_path / f"{stem}.gz")
    first, second = load_fashion_mnist(tmp_path, download=False), load_fashion_mnist(tmp_path, download=False)
    assert second.train_images is first.train_images
    assert not first.train_images.flags.writeable and not first.test_labels.flags.writeable
    labels = tmp_path / f"{FILES['test_labels']}.gz"
    os.utime(labels, ns=(labels.stat().st_atime_ns, labels.stat().st_mtime_ns + 1_000_000_000))
    third = load_fashion_mnist(tmp_path, download=False)
    assert third.train_images is not first.train_images
    assert_same_data(third, first)


def test_root_without_files_is_a_one_line_config_error(tmp_path: Path) -> None:
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"")  # one of four is not enough
    with pytest.raises(ConfigError) as info:
        load_fashion_mnist(tmp_path / "nowhere")
    message = str(info.value)
    assert "data.root" in message
    assert "\n" not in message
    with pytest.raises(ConfigError, match=r"data\.root"):
        load_fashion_mnist(tmp_path, download=False)


# --- device batches ------------------------------------------------------------------------------


def index_images(n: int) -> torch.Tensor:
    """uint8 images whose first two pixels encode their position: decodable after normalisation."""
    images = torch.zeros(n, 28, 28, dtype=torch.uint8)
    idx = torch.arange(n)
    images[:, 0, 0] = (idx // 256).to(torch.uint8)
    images[:, 0, 1] = (idx % 256).to(torch.uint8)
    return images


def decode_index(x: torch.Tensor) -> torch.Tensor:
    pixels = torch.round((x[:, 0, 0, :2] * STD + MEAN) * 255).long()
    return pixels[:, 0] * 256 + pixels[:, 1]


def test_device_batches_shuffled_epochs_cover_every_sample_once(fashion: FashionMNIST) -> None:
    n, batch_size = 1050, 100
    labels = torch.from_numpy(fashion.train_labels[:n].copy())
    batches = DeviceBatches(index_images(n), labels, batch_size, shuffle=True, seed=0)
    assert len(batches) == 11
    orders = []
    for _ in range(2):  # two epochs, each a new permutation
        xs, ys = zip(*batches, strict=True)
        assert [len(y) for y in ys] == [batch_size] * 10 + [50]
        for x, y in zip(xs, ys, strict=True):
            assert x.shape == (len(y), 1, 28, 28) and x.dtype == torch.float32
        seen = torch.cat([decode_index(x) for x in xs])
        assert sorted(seen.tolist()) == list(range(n)), "every sample exactly once"
        got_labels = torch.cat(ys)
        assert Counter(got_labels.tolist()) == Counter(labels.tolist())
        assert torch.equal(got_labels, labels[seen]), "images and labels stay paired"
        orders.append(seen)
    assert not torch.equal(orders[0], torch.arange(n)), "shuffled"
    assert not torch.equal(orders[0], orders[1]), "a new order every epoch"


def test_device_batches_real_images_labels_multiset(fashion: FashionMNIST) -> None:
    n = 2000
    images = torch.from_numpy(fashion.train_images[:n].copy())
    labels = torch.from_numpy(fashion.train_labels[:n].copy())
    batches = DeviceBatches(images, labels, 128, shuffle=True, hflip=True, rotation_degrees=15, seed=1)
    sizes, got = [], []
    for x, y in batches:
        assert x.shape == (len(y), 1, 28, 28)
        assert torch.isfinite(x).all()
        sizes.append(len(y))
        got.append(y)
    assert sizes == [128] * 15 + [2000 - 15 * 128]
    assert Counter(torch.cat(got).tolist()) == Counter(labels.tolist())


def test_device_batches_unshuffled_keeps_order_and_normalises(fashion: FashionMNIST) -> None:
    n = 250
    images = torch.from_numpy(fashion.test_images[:n].copy())
    labels = torch.from_numpy(fashion.test_labels[:n].copy())
    batches = list(DeviceBatches(images, labels, 100, shuffle=False))
    assert [len(y) for _, y in batches] == [100, 100, 50]
    x = torch.cat([b[0] for b in batches])
    assert torch.equal(torch.cat([b[1] for b in batches]), labels)
    torch.testing.assert_close(x[:, 0] * STD + MEAN, images.float() / 255, atol=1e-6, rtol=0)
