"""Hatchling build hook: pack the sweeper, which lives at the repository's top level, as
`hydra_plugins/hydra_bohb_sweeper` (a namespace package: no hydra_plugins/__init__.py) in wheels and
sdists. An editable install packs nothing: `dev-mode-dirs` puts the repository root on sys.path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

PACKAGE = "hydra_plugins/hydra_bohb_sweeper"


class CustomBuildHook(BuildHookInterface):
    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name == "wheel" and version == "editable":
            return
        root = Path(self.root)
        if (root / PACKAGE).is_dir():  # an unpacked sdist: `packages` ships it
            return
        source = root.parent / PACKAGE  # the repository
        if not (source / "bohb_sweeper.py").is_file():
            raise FileNotFoundError(f"the sweeper is neither in {root / PACKAGE} nor in {source}")
        build_data["force_include"][str(source)] = PACKAGE
