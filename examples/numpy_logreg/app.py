"""Softmax regression in numpy on a Fashion-MNIST subset: a Hydra app that the BOHB sweeper pauses,
resumes and prunes epoch by epoch. No torch, no Lightning: the `hydra-bohb-sweeper` distribution alone
runs it. Its checkpoint is the whole training state (weights, bias, the batch order's generator) in one
`.npz` file, so a resumed configuration trains exactly as it would have without the pause.

    python examples/numpy_logreg/app.py                                  # one training run
    python examples/numpy_logreg/app.py -m hydra.sweeper.n_trials=20     # a BOHB sweep (conf/config.yaml)
"""

from __future__ import annotations

import gzip
import json
import logging
import sys
from pathlib import Path

import hydra
import numpy as np
from omegaconf import DictConfig

from hydra_plugins.hydra_bohb_sweeper import client

log = logging.getLogger(__name__)
Split = tuple[np.ndarray, np.ndarray]  # images (n, 784) in [0, 1], labels (n,)


def load(data_dir: str, n_train: int, n_val: int) -> tuple[Split, Split]:
    """The first n_train + n_val training images (the file's order is already shuffled), split in two."""
    images, labels = (Path(data_dir) / f"train-{kind}-ubyte.gz" for kind in ("images-idx3", "labels-idx1"))
    if not (images.is_file() and labels.is_file()):
        sys.exit(f"error: no Fashion-MNIST in {data_dir} ({images.name}, {labels.name}); set data_dir=...")
    n = n_train + n_val
    with gzip.open(images) as f:  # IDX: a 16-byte header, then one byte per pixel
        x = np.frombuffer(f.read(16 + n * 784), np.uint8, offset=16).reshape(n, 784) / 255.0
    with gzip.open(labels) as f:  # an 8-byte header, then one byte per label
        y = np.frombuffer(f.read(8 + n), np.uint8, offset=8).astype(np.int64)
    return (x[:n_train], y[:n_train]), (x[n_train:], y[n_train:])


def train_epoch(w: np.ndarray, b: np.ndarray, data: Split, cfg: DictConfig, rng: np.random.Generator) -> None:
    """One pass of minibatch SGD on the cross-entropy (plus L2 weight decay), updating w and b in place."""
    x, y = data
    for batch in np.array_split(rng.permutation(len(x)), max(1, len(x) // cfg.batch_size)):
        logits = x[batch] @ w + b
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        p[np.arange(len(batch)), y[batch]] -= 1.0  # the gradient of the cross-entropy w.r.t. the logits
        w -= cfg.lr * (x[batch].T @ p / len(batch) + cfg.weight_decay * w)
        b -= cfg.lr * p.mean(axis=0)


def accuracy(w: np.ndarray, b: np.ndarray, data: Split) -> float:
    x, y = data
    return float(np.mean((x @ w + b).argmax(axis=1) == y))


def save(path: Path, w: np.ndarray, b: np.ndarray, rng: np.random.Generator) -> None:
    with path.open("wb") as f:  # a file object: np.savez would add ".npz" to a bare name
        np.savez(f, w=w, b=b, rng=json.dumps(rng.bit_generator.state))


def restore(path: Path) -> tuple[np.ndarray, np.ndarray, np.random.Generator]:
    saved = np.load(path)
    rng = np.random.default_rng()
    rng.bit_generator.state = json.loads(str(saved["rng"]))
    return saved["w"], saved["b"], rng


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float:
    train, val = load(cfg.data_dir, cfg.n_train, cfg.n_val)
    rng = np.random.default_rng(cfg.seed)
    w, b = np.zeros((784, 10)), np.zeros(10)  # the model's whole state
    trial = client.current_trial()  # None unless the BOHB sweeper launched this job
    first = 1
    if trial is not None and trial.resume_from is not None:  # a paused configuration, promoted
        w, b, rng = restore(trial.resume_from)
        first = trial.resume_epoch + 1
    val_acc = 0.0
    for epoch in range(first, cfg.epochs + 1):
        train_epoch(w, b, train, cfg, rng)
        val_acc = accuracy(w, b, val)
        log.info("epoch %d: validation accuracy %.4f", epoch, val_acc)
        if trial is not None:
            trial.report(val_acc, epoch)
            if trial.should_pause():  # not (yet) in the top 1/eta of its bracket at this rung
                trial.save_checkpoint(lambda path: save(path, w, b, rng))
                raise client.TrialPaused(f"paused after epoch {epoch}")
            if trial.should_prune():  # never asked after a pause; an app that cannot checkpoint stops
                raise client.TrialPruned(f"pruned after epoch {epoch}")
    return val_acc


if __name__ == "__main__":
    main()
