"""Training recipes: a TOML file that names the tasks of a mixture, their folders and weights.

Top level: patch_size (default 128), description, and one [[task]] table per component:
  name (required), weight (default 1), task (item label, default name), and either
  kind + clean [+ level_range, sigma_range]   synthetic degradation of clean images, or
  input + target                              real pairs (see data.PAIR_LAYOUTS).
A clean-input task pairs a folder with itself (input = target): the model learns to
leave a good photo alone. Each table becomes a `TaskSpec`, checked when it is made.
"""
from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from .data import FolderPairs, SyntheticPairs, TaskMixture

RECIPE_KEYS = frozenset({"patch_size", "description", "task"})
TASK_KEYS = frozenset({"name", "task", "weight", "kind", "clean", "level_range", "sigma_range", "input", "target"})


@dataclass(frozen=True)
class TaskSpec:
    """One [[task]] table: a synthetic task (kind + clean) or a real-pair task (input + target)."""

    name: str
    weight: float = 1.0
    label: str | None = None  # the items' "task"; default: name
    kind: str | None = None
    clean: str | None = None
    level_range: tuple[float, float] = (0.0, 1.0)
    sigma_range: tuple[float, float] | None = None
    input: str | None = None
    target: str | None = None

    def __post_init__(self) -> None:
        synthetic = (self.kind, self.clean) != (None, None)
        paired = (self.input, self.target) != (None, None)
        incomplete = None in ((self.kind, self.clean) if synthetic else (self.input, self.target))
        if synthetic == paired or incomplete:
            raise ValueError(f"task {self.name!r}: give either kind + clean (synthetic) or input + target (real pairs)")
        if paired and (self.level_range != (0.0, 1.0) or self.sigma_range is not None):
            raise ValueError(f"task {self.name!r}: level_range/sigma_range apply to synthetic tasks (kind + clean) only")
        if not self.weight > 0:
            raise ValueError(f"task {self.name!r}: weight must be a positive number, got {self.weight}")

    @classmethod
    def from_table(cls, table: Mapping[str, Any], position: int) -> TaskSpec:
        name = table.get("name", f"task #{position + 1}")
        unknown = sorted(set(table) - TASK_KEYS)
        if unknown:
            raise ValueError(f"task {name!r}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(TASK_KEYS))}")
        if "name" not in table:
            raise ValueError(f"{name}: every [[task]] needs a name")
        ranges = {key: tuple(float(v) for v in table[key]) for key in ("level_range", "sigma_range") if key in table}
        if ranges and "kind" not in table:
            raise ValueError(f"task {name!r}: level_range/sigma_range apply to synthetic tasks (kind + clean) only")
        fields = {key: table[key] for key in ("weight", "kind", "clean", "input", "target") if key in table}
        return cls(name=name, label=table.get("task"), **fields, **ranges)

    @property
    def synthetic(self) -> bool:
        return self.kind is not None

    def folders(self) -> dict[str, str]:
        return {"clean": self.clean} if self.synthetic else {"input": self.input, "target": self.target}

    def dataset(self, root: Path, patch_size: int, seed: int) -> Dataset:
        """This task's dataset, its folders relative to `root` (unless absolute)."""
        found = {}
        for role, folder in self.folders().items():
            path = root / folder
            if not path.is_dir():
                raise ValueError(f"task {self.name!r}: folder {path} not found; "
                                 f"pass --data DIR pointing at a folder that contains {folder}")
            found[role] = path
        label = self.label or self.name
        if self.synthetic:
            return SyntheticPairs(found["clean"], self.kind, level_range=self.level_range, patch_size=patch_size,
                                  seed=seed, sigma_range=self.sigma_range, task=label)
        return FolderPairs(found["input"], found["target"], patch_size=patch_size, seed=seed, task=label)


def read_recipe(recipe: str | Path | Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """A recipe's parsed tables and a name for messages (its path, or "recipe" for a dict)."""
    if not isinstance(recipe, (str, Path)):
        return dict(recipe), "recipe"
    try:
        with open(recipe, "rb") as f:
            return tomllib.load(f), str(recipe)
    except FileNotFoundError:
        raise ValueError(f"recipe file {recipe} not found") from None
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{recipe}: not valid TOML ({error})") from None


def recipe_tasks(recipe: str | Path | Mapping[str, Any]) -> tuple[dict[str, Any], str, list[TaskSpec]]:
    """A recipe's parsed tables, its name for messages, and its checked [[task]] tables."""
    tables, source = read_recipe(recipe)
    unknown = sorted(set(tables) - RECIPE_KEYS)
    if unknown:
        raise ValueError(f"{source}: unknown key(s) {', '.join(unknown)}; a recipe has {', '.join(sorted(RECIPE_KEYS))}")
    if not tables.get("task"):
        raise ValueError(f"{source}: no [[task]] tables; add at least one")
    try:
        specs = [TaskSpec.from_table(table, k) for k, table in enumerate(tables["task"])]
    except ValueError as error:
        raise ValueError(f"{source}, {error}") from None
    return tables, source, specs


def load_recipe(recipe: str | Path | Mapping[str, Any], data_root: str | Path, seed: int = 0, patch_size: int | None = None,
                task_weights: Mapping[str, float] | None = None) -> TaskMixture:
    """A TaskMixture from a recipe (a path or an already-parsed dict); see the module docstring.

    `patch_size` overrides the recipe's; `task_weights` maps task names to weights that replace
    the recipe's, for a sitting that leans on one task; a weight of 0 leaves the task out (its
    folders are not read), so a diagnosis run can drop one task without a copy of the recipe.
    """
    tables, source, specs = recipe_tasks(recipe)
    task_weights = dict(task_weights or {})
    unknown = sorted(set(task_weights) - {spec.name for spec in specs})
    if unknown:
        raise ValueError(f"{source}: no task named {', '.join(unknown)} to reweight; "
                         f"its tasks are {', '.join(spec.name for spec in specs)}")
    patch = int(patch_size if patch_size is not None else tables.get("patch_size", 128))
    components, names = [], []
    for k, spec in enumerate(specs):
        weight = task_weights.get(spec.name, spec.weight)
        if weight == 0:
            continue
        component_seed = int(np.random.SeedSequence([seed, k]).generate_state(1)[0])
        try:
            dataset = spec.dataset(Path(data_root), patch, component_seed)
        except ValueError as error:
            raise ValueError(f"{source}, {error}") from None
        components.append((dataset, weight))
        names.append(spec.name)
    if not components:
        raise ValueError(f"{source}: every task's weight is 0; keep at least one")
    return TaskMixture(components, seed=seed, names=names)
