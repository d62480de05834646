"""Files written so that no reader ever sees half of one: a temporary name beside the target, flushed
to disk, then a rename (atomic on POSIX filesystems, NFS included). The sweeper's results, the final
evaluation, the jobs' checkpoints and kept models all go through `atomic_save`."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any


def atomic_save(path: Path, write: Callable[[Path], Any]) -> Path:
    """`write(tmp)` writes a file or a folder at `tmp`, which then replaces `path`.

    The temporary name is unique across machines (SLURM nodes share the sweep directory, and pids
    repeat between them), and what was written is flushed to disk before the rename, so a crashed node
    never leaves a renamed but empty file. A folder replaces a folder by moving the old one aside
    first: `path` is never missing while the new one is not yet complete."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tag = f"{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
    tmp = path.with_name(f".{path.name}.{tag}.tmp")
    try:
        write(tmp)
        _flush(tmp)
        if path.is_dir() and tmp.is_dir():  # os.replace cannot put a folder over a folder
            aside = path.with_name(f".{path.name}.{tag}.old.tmp")
            os.replace(path, aside)
            os.replace(tmp, path)
            shutil.rmtree(aside, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        remove(tmp)
        raise
    _flush_folder(path.parent)
    return path


def remove(path: Path) -> None:
    """Delete a file or a folder, if it is there."""
    with contextlib.suppress(FileNotFoundError):
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()


def _flush(path: Path) -> None:
    files = [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
    for file in files:
        with open(file, "rb") as handle:
            os.fsync(handle.fileno())


def _flush_folder(folder: Path) -> None:
    """The rename itself reaches the disk (a no-op where a folder cannot be opened)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_text(path: Path, text: str) -> Path:
    return atomic_save(path, lambda tmp: tmp.write_text(text))


def write_yaml(path: Path, data: Any) -> Path:
    """`data` as YAML in the order given, each mapping written out in full (no anchors and aliases
    where two records share one)."""
    import yaml

    class Dumper(yaml.SafeDumper):
        def ignore_aliases(self, data: Any) -> bool:
            return True

    return write_text(path, yaml.dump(data, Dumper=Dumper, sort_keys=False))
