"""The documentation keeps up with the code: every setting of the sweeper is in the one settings table
(docs/sweeper.md), the README stays a five-minute read, relative links point at files that exist, and
every module says its one job in a docstring.

The settings are found by introspection, as Hydra sees them: every node the sweeper registers in the
ConfigStore under `hydra/sweeper` (the sweeper's own, and each sampler and pruner group option), every
field of its dataclass, recursively into nested dataclasses (`final_evaluation`).
"""

from __future__ import annotations

import ast
import dataclasses
import re
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hydra.core.config_store import ConfigStore
from hydra.core.plugins import Plugins
from omegaconf import DictConfig, OmegaConf

REPO_ROOT = Path(__file__).resolve().parents[1]
SETTINGS_DOC = REPO_ROOT / "docs" / "sweeper.md"
PROVIDER = "hydra-bohb-sweeper"
# Hydra's plumbing in the sweeper's own node, not settings a user sets.
NOT_SETTINGS = {"hydra.sweeper._target_", "hydra.sweeper._recursive_", "hydra.sweeper.defaults"}
# Linked from the docs and written on another branch; a link to them may dangle until it is merged.
PENDING_DOCS: set[Path] = set()  # pages linked before they are written


def _keys(node_type: Any, node: Any, prefix: str) -> Iterator[str]:
    """`prefix.<field>` for every field of a config node, and of the dataclasses nested in it."""
    if dataclasses.is_dataclass(node_type) and isinstance(node_type, type):
        hints = typing.get_type_hints(node_type)
        for f in dataclasses.fields(node_type):
            key = f"{prefix}.{f.name}"
            yield key
            nested = hints.get(f.name)
            if dataclasses.is_dataclass(nested) and isinstance(nested, type):
                yield from _keys(nested, None, key)
    elif isinstance(node, DictConfig):  # a node stored as a plain mapping, not a dataclass
        for name in node:
            yield f"{prefix}.{name}"


def registered_settings() -> set[str]:
    """Every key of every config node the sweeper registers under hydra/sweeper, as a user writes it
    (`hydra.sweeper.final_evaluation.top_k`, `hydra.sweeper.pruner.brackets`)."""
    Plugins.instance()  # Hydra's plugin scan imports the plugin's modules: they register their nodes

    def walk(group: dict[str, Any], path: list[str]) -> Iterator[str]:
        for name, entry in group.items():
            if isinstance(entry, dict):
                yield from walk(entry, [*path, name])
            elif entry.provider == PROVIDER:
                # The sweeper's own node sits in hydra/sweeper; an option of a group in hydra/sweeper/<group>.
                yield from _keys(OmegaConf.get_type(entry.node), entry.node, ".".join(path))

    keys = set(walk(ConfigStore.instance().repo["hydra"]["sweeper"], ["hydra", "sweeper"]))
    return keys - NOT_SETTINGS


def documented_settings(markdown: str) -> set[str]:
    """The keys in the first cell of the rows of the markdown tables that name `hydra.sweeper.*` keys:
    one or more `keys` in backticks (`a`, `b`), anything else in the cell ignored."""
    keys = set()
    for line in markdown.splitlines():
        line = line.strip()
        if not line.startswith("|"):
            continue
        first_cell = re.split(r"(?<!\\)\|", line)[1]
        keys |= {k for k in re.findall(r"`([^`]+)`", first_cell) if k.startswith("hydra.sweeper.")}
    return keys


def test_the_settings_table_parser() -> None:
    table = """
| key | default | meaning |
|---|---|---|
| `hydra.sweeper.n_trials` | 20 | configurations |
|`hydra.sweeper.final_evaluation.top_k`|1| a \\| in a cell |
| `hydra.sweeper.sampler.seed`, `hydra.sweeper.sampler.group` | 0 | two keys in one row |
| `model.kernel_size` | `hydra.sweeper.budget` | not a setting; a key outside the first cell |
"""
    assert documented_settings(table) == {
        "hydra.sweeper.n_trials",
        "hydra.sweeper.final_evaluation.top_k",
        "hydra.sweeper.sampler.seed",
        "hydra.sweeper.sampler.group",
    }


def test_every_setting_is_in_the_settings_table() -> None:
    settings = registered_settings()
    assert {"hydra.sweeper.n_trials", "hydra.sweeper.final_evaluation.enabled"} <= settings  # sanity
    assert "hydra.sweeper.pruner.reduction_factor" in settings and "hydra.sweeper.sampler.seed" in settings
    missing = settings - documented_settings(SETTINGS_DOC.read_text())
    assert not missing, f"add a row to the settings table in {SETTINGS_DOC.name} for: {sorted(missing)}"


def test_the_settings_table_has_no_setting_that_is_gone() -> None:
    stale = documented_settings(SETTINGS_DOC.read_text()) - registered_settings()
    assert not stale, f"{SETTINGS_DOC.name} documents settings that no config node has: {sorted(stale)}"


def test_the_readme_is_a_five_minute_read() -> None:
    assert len((REPO_ROOT / "README.md").read_bytes()) <= 10_000


def markdown_files() -> list[Path]:
    return [
        REPO_ROOT / "README.md",
        REPO_ROOT / "sweeper" / "README.md",
        REPO_ROOT / "benchmarks" / "README.md",
        *sorted((REPO_ROOT / "docs").glob("*.md")),
    ]


def anchors(doc: Path) -> set[str]:
    """The anchors GitHub gives a markdown file's headings: lower case, punctuation dropped, spaces
    as hyphens."""
    headings = re.findall(r"^#+ (.+)$", re.sub(r"```.*?```", "", doc.read_text(), flags=re.S), flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("doc", markdown_files(), ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_relative_links_point_at_files_and_headings(doc: Path) -> None:
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", doc.read_text()):
        if re.match(r"[a-z]+:", target):
            continue  # https://..., mailto:
        path, _, anchor = target.partition("#")
        linked = (doc.parent / path).resolve() if path else doc
        if not linked.exists():
            if linked not in PENDING_DOCS:
                broken.append(target)
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(target)
    assert not broken, f"{doc.name} links to files or headings that do not exist: {broken}"


def python_modules() -> list[Path]:
    roots = ["hydra_plugins", "src", "examples", "benchmarks"]
    files = [  # not the git-ignored ones: benchmarks/.venv-search, caches
        p
        for root in roots
        for p in (REPO_ROOT / root).rglob("*.py")
        if not any(part.startswith(".") for part in p.relative_to(REPO_ROOT).parts)
    ]
    return sorted([*files, REPO_ROOT / "train.py", REPO_ROOT / "sweeper" / "hatch_build.py"])


def test_every_module_says_its_one_job() -> None:
    silent = [
        str(p.relative_to(REPO_ROOT))
        for p in python_modules()
        if not ast.get_docstring(ast.parse(p.read_text()))
    ]
    assert not silent, f"modules without a docstring: {silent}"


def test_every_benchmark_is_in_the_benchmarks_readme() -> None:
    readme = (REPO_ROOT / "benchmarks" / "README.md").read_text()
    scripts = [p.name for p in (REPO_ROOT / "benchmarks").glob("*.py") if p.name != "common.py"]
    missing = [
        name for name in sorted(scripts) if f"benchmarks/{name}" not in readme and f"`{name}`" not in readme
    ]
    assert not missing, f"benchmarks/README.md does not say what these do or how to run them: {missing}"


def test_every_key_of_the_apps_config_is_in_its_table() -> None:
    """docs/app-configs.md's table names every key of the composed job config (conf/train.yaml), with
    either model (the seed's CNN, the cell network) and either of their optimizers."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        configs = [compose(config_name="train", overrides=o) for o in ([], ["sweeper=bohb_cell"])]
    GlobalHydra.instance().clear()

    def keys(node: Any, prefix: str = "") -> Iterator[str]:
        for key, value in node.items_ex(resolve=False):
            if OmegaConf.is_dict(value):
                yield from keys(value, f"{prefix}{key}.")
            else:
                yield f"{prefix}{key}"

    text = (REPO_ROOT / "docs" / "app-configs.md").read_text()
    documented = set(re.findall(r"`([\w.]+)`", text))
    missing = sorted({key for config in configs for key in keys(config) if key not in documented})
    assert not missing, f"docs/app-configs.md does not document {missing}"
