"""Files written so that no reader ever sees half of one: a temporary name beside the target, then a
rename (atomic on POSIX filesystems, NFS included). The sweeper's results, the final evaluation, the
jobs' checkpoints and kept models all go through `atomic_save`."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any


def atomic_save(path: Path, write: Callable[[Path], Any]) -> Path:
    """`write(tmp)` writes a file or a folder at `tmp`, which then replaces `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    write(tmp)
    if path.is_dir() and tmp.is_dir():  # os.replace cannot put a folder over a folder
        shutil.rmtree(path)
    os.replace(tmp, path)
    return path


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
