"""Fixed, stratified, seeded index splits: the same seed gives the same split on every machine."""

from __future__ import annotations

import numpy as np

from jahs_bohb.errors import ConfigError


def stratified_sample(labels: np.ndarray, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split positions 0..len(labels)-1 into (chosen, rest) with `size` chosen, class ratios kept.

    Per-class counts are allocated by largest remainder so they add up to exactly `size`.
    """
    n = len(labels)
    classes, counts = np.unique(labels, return_counts=True)
    if not len(classes) <= size <= n:
        raise ConfigError(
            f"cannot take a stratified sample of {size} from {n} images of {len(classes)} classes"
        )
    exact = counts * size / n
    take = np.floor(exact).astype(int)
    shortfall = size - int(take.sum())
    take[np.argsort(-(exact - take), kind="stable")[:shortfall]] += 1

    rng = np.random.default_rng(seed)
    chosen = []
    for cls, k in zip(classes, take, strict=True):
        members = np.flatnonzero(labels == cls)
        chosen.append(rng.permutation(members)[:k])
    chosen_idx = np.sort(np.concatenate(chosen))
    rest_mask = np.ones(n, dtype=bool)
    rest_mask[chosen_idx] = False
    return chosen_idx, np.flatnonzero(rest_mask)


def train_val_split(labels: np.ndarray, val_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, validation indices) of the training images; validation is a stratified holdout."""
    val_idx, train_idx = stratified_sample(labels, val_size, seed)
    return train_idx, val_idx


def limit(indices: np.ndarray, labels: np.ndarray, size: int | None, seed: int) -> np.ndarray:
    """A stratified subset of `indices` with `size` elements (all of them when size is None)."""
    if size is None:
        return indices
    if size > len(indices):
        raise ConfigError(f"cannot take {size} images from a split of {len(indices)}")
    if size == len(indices):
        return indices
    chosen, _ = stratified_sample(labels[indices], size, seed)
    return indices[chosen]
