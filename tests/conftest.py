"""Shared fixtures: the repository root and the real Fashion-MNIST, loaded once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from jahs_bohb.fashion_mnist import DEBIAN_DIR, FashionMNIST, load_fashion_mnist

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def fashion() -> FashionMNIST:
    """The real dataset (Debian's dataset-fashion-mnist package), parsed once for all tests."""
    if not DEBIAN_DIR.is_dir():
        pytest.skip(f"Fashion-MNIST is not installed in {DEBIAN_DIR}")
    return load_fashion_mnist(DEBIAN_DIR, download=False)
