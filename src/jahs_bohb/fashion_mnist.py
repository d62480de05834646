"""Fashion-MNIST from its four IDX files: found on disk (a given root, Debian's package) or downloaded.

The arrays are returned as uint8 images (N, 28, 28) and int64 labels; no torchvision dataset object, no PIL.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from jahs_bohb.errors import ConfigError

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
DEFAULT_DOWNLOAD_DIR = Path.home() / ".cache" / "jahs_bohb"
CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
_IDX_DTYPE = {0x08: np.uint8}


@dataclass(frozen=True)
class FashionMNIST:
    train_images: np.ndarray  # (60000, 28, 28) uint8
    train_labels: np.ndarray  # (60000,) int64
    test_images: np.ndarray  # (10000, 28, 28) uint8
    test_labels: np.ndarray  # (10000,) int64
    source: str


def read_idx(path: Path) -> np.ndarray:
    """Parse one IDX file (optionally gzipped) into a numpy array."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPE:
        raise ConfigError(f"{path} is not an uint8 IDX file; re-download or reinstall the dataset")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    body = np.frombuffer(bytearray(data), dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise ConfigError(f"{path} is truncated ({body.size} of {int(np.prod(dims))} values)")
    return body.reshape(dims)


def find_idx_files(directory: Path) -> dict[str, Path] | None:
    """The four IDX files in `directory` (or torchvision's `FashionMNIST/raw` below it), gzipped or not."""
    for candidate in (directory, directory / "FashionMNIST" / "raw"):
        found = {}
        for key, stem in FILES.items():
            path = next((p for p in (candidate / stem, candidate / f"{stem}.gz") if p.is_file()), None)
            if path is None:
                break
            found[key] = path
        else:
            return found
    return None


# The last data set parsed in this process, by its files' paths, sizes and modification times: the
# trials that one process runs one after another (the basic launcher, a joblib worker) parse the
# 30 MB of gzipped IDX files once, not half a second per trial. Its arrays are read-only.
_parsed: dict[tuple[tuple[str, int, int], ...], FashionMNIST] = {}


def _load_files(files: dict[str, Path], source: str) -> FashionMNIST:
    stats = {key: path.stat() for key, path in files.items()}
    key = tuple((str(files[k].resolve()), stats[k].st_size, stats[k].st_mtime_ns) for k in sorted(files))
    if key not in _parsed:
        _parsed.clear()
        _parsed[key] = _parse_files(files, source)
    return replace(_parsed[key], source=source)


def _parse_files(files: dict[str, Path], source: str) -> FashionMNIST:
    arrays = {key: read_idx(path) for key, path in files.items()}
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise ConfigError(f"{source}: {split} images and labels do not match; reinstall the dataset")
    data = FashionMNIST(
        train_images=arrays["train_images"],
        train_labels=arrays["train_labels"].astype(np.int64),
        test_images=arrays["test_images"],
        test_labels=arrays["test_labels"].astype(np.int64),
        source=source,
    )
    for array in (data.train_images, data.train_labels, data.test_images, data.test_labels):
        array.setflags(write=False)  # shared by every later load in this process
    return data


def _download(download_dir: Path) -> dict[str, Path]:
    from torchvision.datasets import FashionMNIST as TorchvisionFashionMNIST

    download_dir.mkdir(parents=True, exist_ok=True)
    TorchvisionFashionMNIST(str(download_dir), train=True, download=True)
    TorchvisionFashionMNIST(str(download_dir), train=False, download=True)
    files = find_idx_files(download_dir)
    if files is None:
        raise FileNotFoundError(f"torchvision's download left no IDX files in {download_dir}")
    return files


def check_root(root: str | Path) -> dict[str, Path]:
    """The IDX files in a user-given `data.root`, or a ConfigError saying what is missing."""
    files = find_idx_files(Path(root).expanduser())
    if files is None:
        raise ConfigError(
            f"data.root={root} holds no Fashion-MNIST IDX files (expected {FILES['train_images']}[.gz] "
            "and the other three, or FashionMNIST/raw/ below it); fix the path, or drop data.root to "
            f"use {DEBIAN_DIR} or the download"
        )
    return files


def load_fashion_mnist(
    root: str | Path | None = None,
    download: bool = True,
    download_dir: str | Path | None = None,
) -> FashionMNIST:
    """Load from `root` if given; else Debian's dataset-fashion-mnist; else torchvision's download.

    A given `root` that lacks the files is an error (a typo should not trigger a silent download).
    """
    if root is not None:
        return _load_files(check_root(root), str(Path(root).expanduser()))

    tried = []
    files = find_idx_files(DEBIAN_DIR)
    if files is not None:
        return _load_files(files, str(DEBIAN_DIR))
    tried.append(f"{DEBIAN_DIR} (not there)")

    target = Path(download_dir).expanduser() if download_dir else DEFAULT_DOWNLOAD_DIR
    files = find_idx_files(target)
    if files is not None:
        return _load_files(files, str(target))
    if download:
        try:
            return _load_files(_download(target), f"download into {target}")
        except Exception as exc:  # network errors come in many types; report them all the same way
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            tried.append(f"torchvision download into {target} ({first_line})")
    else:
        tried.append(f"{target} (empty; data.download=false)")
    raise ConfigError(
        "Fashion-MNIST not found; tried "
        + "; ".join(tried)
        + ". Fix: `apt-get install dataset-fashion-mnist`, or set data.root=DIR with the four IDX files, "
        "or allow network access for the download"
    )
