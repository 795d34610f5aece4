"""A byte-identical subset of a recipe's training folders that fits a size budget.

The GPU machine (train/gpu_run.sh) receives the repository and at most 64 MiB in all, and
the benchmark's training folders are larger. `pack` keeps the same fraction of each folder's
images, evenly spaced in name order and copied unchanged, so every task of the recipe keeps
its data and its pairs: an input goes with its target, and a target kept for one task (the
LOL targets are lowlight targets and clean inputs) is kept for all. A target with several
inputs (SOTS: ten haze levels a scene) keeps that fraction of them.
"""
from __future__ import annotations

import argparse
import math
import shutil
from collections import defaultdict
from pathlib import Path

from .data import pair_folders
from .images import list_images
from .recipes import recipe_tasks


def _evenly(items: list, fraction: float) -> list:
    """ceil(fraction x n) of the items, evenly spaced, the first included."""
    count = min(len(items), max(1, math.ceil(fraction * len(items))))
    return [items[int(k * len(items) / count)] for k in range(count)]


def subset(recipe: str | Path, data_root: str | Path, fraction: float) -> list[Path]:
    """The files, relative to `data_root`, that keep `fraction` of every folder the recipe reads."""
    root = Path(data_root)
    _, _, specs = recipe_tasks(recipe)
    folders = {root / folder for spec in specs for role, folder in spec.folders().items() if role != "input"}
    kept = {path for folder in folders for path in _evenly(list_images(folder), fraction)}
    for spec in specs:
        if spec.synthetic or spec.input == spec.target:
            continue
        inputs_of = defaultdict(list)
        for source, target in pair_folders(root / spec.input, root / spec.target):
            inputs_of[target].append(source)
        kept.update(path for target, sources in inputs_of.items() if target in kept
                    for path in _evenly(sorted(sources), fraction))
    return sorted(path.relative_to(root) for path in kept)


def pack(recipe: str | Path, data_root: str | Path, out: str | Path, max_bytes: int) -> tuple[float, list[Path]]:
    """Copy the largest subset (`subset`) under `max_bytes` into `out`, laid out as `data_root`;
    returns its fraction and files. The fraction is found by bisection on the total size."""
    root, out = Path(data_root), Path(out)
    size = lambda files: sum((root / f).stat().st_size for f in files)  # noqa: E731
    if size(subset(recipe, root, 1e-9)) > max_bytes:
        raise ValueError(f"even one image a folder is over {max_bytes / 2**20:.1f} MiB; raise --max-mib")
    low, high = 1e-9, 1.0
    if size(subset(recipe, root, high)) <= max_bytes:
        low = high
    for _ in range(30):
        if high - low < 1e-4:
            break
        middle = (low + high) / 2
        low, high = (middle, high) if size(subset(recipe, root, middle)) <= max_bytes else (low, middle)
    files = subset(recipe, root, low)
    if out.exists():
        shutil.rmtree(out)
    for file in files:
        (out / file).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / file, out / file)
    return low, files


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", type=Path, help="the task-mixture TOML whose folders to pack")
    parser.add_argument("data", type=Path, help="root folder the recipe's paths are relative to")
    parser.add_argument("out", type=Path, help="the folder to write (replaced), laid out like DATA")
    parser.add_argument("--max-mib", type=float, default=30.0, help="size budget of the copy")


def run(args: argparse.Namespace) -> int:
    fraction, files = pack(args.recipe, args.data, args.out, int(args.max_mib * 2**20))
    total = sum((args.out / f).stat().st_size for f in files)
    print(f"{args.out}: {len(files)} files, {total / 2**20:.1f} MiB, {fraction:.3f} of each folder")
    return 0
