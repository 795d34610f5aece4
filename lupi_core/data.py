"""Training data: patch pairs (I_d, I_c) of a degraded image and its clean truth.

The paper trains one model on several tasks at once; here each task is a map-style
dataset and `TaskMixture` samples among them by weight. Two sources of pairs:

- `SyntheticPairs`: clean images, cropped and then degraded on the fly with
  `lupi_core.degrade` (noise is added after cropping, the published convention);
- `FolderPairs`: real pairs from an input folder and a target folder.

Every dataset's item at any non-negative index is a deterministic function of
(seed, index), so the trainer can resume exactly and split work across ranks by
asking for dataset[global_sample_counter]. An item is a dict
{"degraded": 3xPxP float32 tensor in [0, 1], "clean": same, "task": str}.
Decoded images are kept in a per-process cache (see `LUPI_IMAGE_CACHE_MB`);
datasets themselves hold only paths, so they pickle cheaply into DataLoader workers.

A recipe (TOML, see `recipes.load_recipe`) names the tasks, folders and weights
of a training mixture; `train/recipes/` holds the shipped ones.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from .degrade import KINDS, degrade, noise_level, reach
from .images import IMAGE_SUFFIXES, list_images, load_image, to_tensor

# Default task label of each synthetic kind.
TASK_OF_KIND = {"noise": "denoise", "rain": "derain", "haze": "dehaze", "blur": "deblur", "lowlight": "lowlight", "mix": "mixed"}

# Sample indices name draws: item i of a dataset is always the same patch. Stage 1 draws
# from 0 up, Stage 2 from STAGE2_DRAWS up (new patches, not Stage 1's again), and the
# validation and diagnosis patches from HELD_OUT_DRAWS up, where no training step reaches.
STAGE2_DRAWS = 10**12
HELD_OUT_DRAWS = 10**15

# Tags that keep the random streams of items, epoch orders, mixture picks and counterfactuals apart.
_ITEM, _ORDER, _PICK, _COUNTERFACTUAL = 0, 1, 2, 3

PAIR_LAYOUTS = (
    "same file names in both folders (extensions may differ), e.g. input/1.png <-> target/1.jpg; "
    "SOTS/RESIDE names, input/<scene>_<level>[_<beta>].ext <-> target/<scene>.ext; "
    "or PromptIR rain names, input/rain-N.png <-> target/norain-N.png"
)


# ---------------------------------------------------------------------------
# Image cache


class _ImageCache:
    """Decoded images by path, per process, up to a memory budget.

    The budget (default 4096 MB, environment variable LUPI_IMAGE_CACHE_MB) keeps
    a large folder from exhausting memory: past it, images are decoded on every
    use. Entries are keyed by modification time and size too, so an edited file is re-read.
    """

    def __init__(self) -> None:
        self.images: dict[tuple[str, int, int], np.ndarray] = {}
        self.bytes = 0

    def get(self, path: str) -> np.ndarray:
        try:
            stat = os.stat(path)
            key = (path, stat.st_mtime_ns, stat.st_size)
        except OSError:
            raise ValueError(f"{path}: image file missing; was the data folder moved?") from None
        image = self.images.get(key)
        if image is None:
            image = load_image(path)
            if self.bytes + image.nbytes <= int(os.environ.get("LUPI_IMAGE_CACHE_MB", "4096")) * 2**20:
                self.images[key] = image
                self.bytes += image.nbytes
        return image


_CACHE = _ImageCache()


# ---------------------------------------------------------------------------
# Patches


def random_patch_pair(
    degraded: np.ndarray, clean: np.ndarray, patch_size: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """An aligned random PxP crop of both images, under one of the 8 flip/rot90 combinations.

    Images smaller than the patch are padded by reflection first. The identity
    is one of the 8 combinations, drawn with the others at probability 1/8.
    """
    if degraded.shape != clean.shape:
        raise ValueError(f"degraded and clean images differ in shape ({degraded.shape} vs {clean.shape}); a pair must be aligned")
    degraded_patch, clean_patch = _crop_and_flip([degraded, clean], patch_size, rng)
    return degraded_patch, clean_patch


def _crop_and_flip(images: list[np.ndarray], patch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """The same random crop and flip/rot90 applied to every image of the list."""
    h, w = images[0].shape[:2]
    pad_h, pad_w = max(0, patch_size - h), max(0, patch_size - w)
    if pad_h or pad_w:
        images = [np.pad(im, ((0, pad_h), (0, pad_w), (0, 0)), mode="reflect") for im in images]
        h, w = h + pad_h, w + pad_w
    top = int(rng.integers(0, h - patch_size + 1))
    left = int(rng.integers(0, w - patch_size + 1))
    transform = int(rng.integers(0, 8))
    out = []
    for im in images:
        patch = np.rot90(im[top : top + patch_size, left : left + patch_size], k=transform % 4)
        out.append(np.ascontiguousarray(patch[:, ::-1] if transform >= 4 else patch))
    return out


def _item(degraded: np.ndarray, clean: np.ndarray, task: str, severity: float = float("nan")) -> dict[str, Any]:
    """A training item. severity: the `degrade()` level of a synthetic degradation (noise: the level
    of its sigma, `noise_level`), NaN where it is not known (real pairs)."""
    return {"degraded": to_tensor(degraded)[0], "clean": to_tensor(clean)[0], "task": task,
            "severity": float(severity)}


def _other_value(value: float, low: float, high: float, rng: np.random.Generator) -> float:
    """Another value in [low, high], a third to two thirds of the range away from `value` (wrapping
    around), so that a counterfactual differs clearly in severity."""
    span = high - low
    if span <= 0:
        return value
    return low + ((value - low) + span * rng.uniform(1 / 3, 2 / 3)) % span


def _item_rng(seed: int, index: int) -> np.random.Generator:
    if not isinstance(index, (int, np.integer)) or index < 0:
        raise IndexError(f"dataset index must be a non-negative integer, got {index!r}")
    return np.random.default_rng([seed, _ITEM, int(index)])


def _epoch_order(seed: int, index: int, count: int) -> int:
    """Which of `count` images item `index` uses: a fresh shuffle of all of them every `count` items."""
    epoch, position = divmod(int(index), count)
    return int(np.random.default_rng([seed, _ORDER, epoch]).permutation(count)[position])


# ---------------------------------------------------------------------------
# Datasets


class SyntheticPairs(Dataset):
    """Clean images degraded on the fly: crop + flip the clean patch, then `degrade()` it.

    A kind that gathers from neighbours (blur) degrades a crop larger by its `reach()`
    on every side, and the patch is cut from the middle, so that its border is blurred
    from the photo around it as in a real blurred photo, not from a reflection.

    images: a folder (searched recursively) or a list of image paths. The level is
    drawn uniformly from level_range per item; for kind="noise", sigma_range
    (0-255 scale, e.g. (0, 55)) draws sigma uniformly instead.
    """

    def __init__(
        self,
        images: str | Path | Sequence[str | Path],
        kind: str,
        level_range: tuple[float, float] = (0.0, 1.0),
        patch_size: int = 128,
        seed: int = 0,
        sigma_range: tuple[float, float] | None = None,
        task: str | None = None,
    ) -> None:
        if kind not in KINDS and kind != "mix":
            raise ValueError(f"unknown degradation kind {kind!r}; use one of {', '.join(KINDS)} or 'mix'")
        if sigma_range is not None and kind != "noise":
            raise ValueError(f"sigma_range applies only to kind='noise', not {kind!r}; use level_range")
        lo, hi = level_range
        if not 0.0 <= lo <= hi <= 1.0:
            raise ValueError(f"level_range must satisfy 0 <= low <= high <= 1, got {level_range}")
        if isinstance(images, (str, Path)):
            paths = list_images(images, recursive=True)
            if not paths:
                raise ValueError(f"{images}: no images found ({', '.join(IMAGE_SUFFIXES)})")
        else:
            paths = [Path(p) for p in images]
            if not paths:
                raise ValueError("SyntheticPairs needs at least one image path")
        self.paths = [str(p) for p in paths]
        self.kind = kind
        self.level_range = (float(lo), float(hi))
        self.sigma_range = None if sigma_range is None else (float(sigma_range[0]), float(sigma_range[1]))
        self.patch_size = int(patch_size)
        self.seed = int(seed)
        self.task = task or TASK_OF_KIND[kind]
        self.counterfactuals = False  # set by `with_counterfactuals`

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict[str, Any]:
        rng = _item_rng(self.seed, index)
        clean = _CACHE.get(self.paths[_epoch_order(self.seed, index, len(self.paths))])
        margin = reach(self.kind)
        (patch,) = _crop_and_flip([clean], self.patch_size + 2 * margin, rng)
        drawn = rng.uniform(*self._drawn_range)
        degraded, severity = self._degrade(patch, drawn, rng)
        inner = (slice(margin, margin + self.patch_size),) * 2
        item = _item(degraded[inner], patch[inner], self.task, severity)
        if self.counterfactuals:
            item.update(self._counterfactual(patch, index, drawn, inner))
        return item

    @property
    def _drawn_range(self) -> tuple[float, float]:
        """What an item draws uniformly: noise's sigma where sigma_range is set, else the level."""
        return self.sigma_range if self.sigma_range is not None else self.level_range

    def _degrade(self, patch: np.ndarray, drawn: float, rng: np.random.Generator) -> tuple[np.ndarray, float]:
        """The patch degraded at a value drawn from `_drawn_range`, and that degradation's level."""
        if self.sigma_range is not None:
            return degrade(patch, "noise", seed=rng, sigma=drawn), noise_level(drawn)
        return degrade(patch, self.kind, level=drawn, seed=rng), drawn

    def _counterfactual(self, patch: np.ndarray, index: int, drawn: float, inner: tuple) -> dict[str, Any]:
        """The same patch degraded at another severity (its own random stream, so the item itself
        is unchanged): what the severity wrong-prior term computes its wrong prior from."""
        if self.kind not in KINDS:  # a mixture of kinds has no one severity to change
            return {"counterfactual": to_tensor(patch[inner])[0], "counterfactual_severity": float("nan")}
        rng = np.random.default_rng([self.seed, _COUNTERFACTUAL, int(index)])
        other, severity = self._degrade(patch, _other_value(drawn, *self._drawn_range, rng), rng)
        return {"counterfactual": to_tensor(other[inner])[0], "counterfactual_severity": float(severity)}


def pair_folders(input_dir: str | Path, target_dir: str | Path) -> list[tuple[Path, Path]]:
    """Match each input image with its target; see PAIR_LAYOUTS for the namings understood.

    Inputs are searched recursively (RESIDE keeps hazy images in part1/..part4/),
    targets directly in target_dir. Every input must find a target.
    """
    input_dir, target_dir = Path(input_dir), Path(target_dir)
    for folder, role in ((input_dir, "input"), (target_dir, "target")):
        if not folder.is_dir():
            raise ValueError(f"{role} folder {folder} not found; expected paired folders with {PAIR_LAYOUTS}")
    targets: dict[str, Path] = {}
    for path in list_images(target_dir):
        if path.stem in targets:
            raise ValueError(f"{target_dir}: two targets named {path.stem!r} ({targets[path.stem].name}, {path.name}); keep one")
        targets[path.stem] = path
    inputs = list_images(input_dir, recursive=True)
    pairs, unmatched = [], []
    for path in inputs:
        stem = path.stem
        # Candidates in order: same name, PromptIR rain-N -> norain-N, RESIDE <scene>_<level>... -> <scene>.
        candidates = [stem, "no" + stem if stem.startswith("rain-") else None, stem.split("_")[0] if "_" in stem else None]
        match = next((targets[c] for c in candidates if c is not None and c in targets), None)
        if match is None:
            unmatched.append(path.name)
        else:
            pairs.append((path, match))
    if not pairs:
        raise ValueError(
            f"no input in {input_dir} ({len(inputs)} images) matches a target in {target_dir} "
            f"({len(targets)} images); expected {PAIR_LAYOUTS}"
        )
    if unmatched:
        raise ValueError(
            f"{len(unmatched)} inputs in {input_dir} have no target in {target_dir} "
            f"(e.g. {', '.join(unmatched[:3])}); expected {PAIR_LAYOUTS}"
        )
    return pairs


def load_pair(input_path: str | Path, target_path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Both images of a pair (cached), cropped to a common size when they differ by a thin border.

    SOTS clean images as distributed are 640x480 with a 10-px white border around
    the 620x460 hazy ones; a centre crop aligns them. Larger differences mean the
    pair is not aligned and raise ValueError.
    """
    degraded, clean = _CACHE.get(str(input_path)), _CACHE.get(str(target_path))
    if degraded.shape == clean.shape:
        return degraded, clean
    h, w = min(degraded.shape[0], clean.shape[0]), min(degraded.shape[1], clean.shape[1])
    if max(degraded.shape[0], clean.shape[0]) - h > h // 16 or max(degraded.shape[1], clean.shape[1]) - w > w // 16:
        raise ValueError(
            f"{input_path} is {degraded.shape[1]}x{degraded.shape[0]} but its target {target_path} is "
            f"{clean.shape[1]}x{clean.shape[0]}; a pair must be the same size"
        )
    return _centre_crop(degraded, h, w), _centre_crop(clean, h, w)


def _centre_crop(image: np.ndarray, h: int, w: int) -> np.ndarray:
    top, left = (image.shape[0] - h) // 2, (image.shape[1] - w) // 2
    return image[top : top + h, left : left + w]


class FolderPairs(Dataset):
    """Real pairs from an input folder and a target folder (pairing: `pair_folders`).

    task: the label put on items; default the name of the folder holding input_dir
    (e.g. "rain12" for train/derain/rain12/input).
    """

    def __init__(
        self, input_dir: str | Path, target_dir: str | Path, patch_size: int = 128, seed: int = 0, task: str | None = None
    ) -> None:
        self.pairs = [(str(a), str(b)) for a, b in pair_folders(input_dir, target_dir)]
        self.patch_size = int(patch_size)
        self.seed = int(seed)
        self.task = task or Path(input_dir).resolve().parent.name
        self.counterfactuals = False  # set by `with_counterfactuals`

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, Any]:
        rng = _item_rng(self.seed, index)
        degraded, clean = load_pair(*self.pairs[_epoch_order(self.seed, index, len(self.pairs))])
        degraded, clean = _crop_and_flip([degraded, clean], self.patch_size, rng)
        item = _item(degraded, clean, self.task)
        if self.counterfactuals:  # a real pair has no other severity: marked unknown (NaN)
            item.update(counterfactual=item["degraded"], counterfactual_severity=float("nan"))
        return item


class TaskMixture(Dataset):
    """Several task datasets sampled by weight.

    Item i: a generator seeded by (seed, i) picks a component with probability
    proportional to its weight and returns that component's item i (each
    component is itself deterministic in its index, so the mixture is too).
    `len()` is a nominal epoch: the components' lengths summed. `names` (a recipe's
    task names) label the components in what a run records of its data.
    """

    def __init__(self, components: Sequence[tuple[Dataset, float]], seed: int = 0,
                 names: Sequence[str] | None = None) -> None:
        if not components:
            raise ValueError("TaskMixture needs at least one (dataset, weight) component")
        weights = np.array([float(w) for _, w in components])
        if not np.all(np.isfinite(weights)) or np.any(weights <= 0):
            raise ValueError(f"task weights must be positive numbers, got {weights.tolist()}")
        self.datasets = [d for d, _ in components]
        self.weights = weights.tolist()
        self.names = list(names) if names is not None else [f"component {k}" for k in range(len(components))]
        self._cumulative = np.cumsum(weights / weights.sum())
        self.seed = int(seed)

    def __len__(self) -> int:
        return sum(len(d) for d in self.datasets)

    def component_of(self, index: int) -> int:
        """Which component item `index` comes from."""
        if not isinstance(index, (int, np.integer)) or index < 0:
            raise IndexError(f"dataset index must be a non-negative integer, got {index!r}")
        u = np.random.default_rng([self.seed, _PICK, int(index)]).random()
        return min(int(np.searchsorted(self._cumulative, u, side="right")), len(self.datasets) - 1)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.datasets[self.component_of(index)][index]


def with_counterfactuals(dataset: Dataset) -> Dataset:
    """Make every item of `dataset` (a TaskMixture or one task's dataset) carry "counterfactual",
    its patch degraded at another severity, and "counterfactual_severity" (NaN where there is
    none: real pairs, mixed kinds). Returns the dataset, changed in place."""
    for part in getattr(dataset, "datasets", [dataset]):
        if not hasattr(part, "counterfactuals"):
            raise ValueError(f"{type(part).__name__} cannot make counterfactual patches; the severity wrong prior "
                             f"needs SyntheticPairs or FolderPairs components")
        part.counterfactuals = True
    return dataset


def noisy_folder(
    folder: str | Path, sigma_range: tuple[float, float] = (0, 50), patch_size: int = 64, seed: int = 0
) -> SyntheticPairs:
    """Clean images of a folder with Gaussian noise of sigma drawn from sigma_range (0-255 scale)."""
    return SyntheticPairs(folder, "noise", patch_size=patch_size, seed=seed, sigma_range=sigma_range)


# ---------------------------------------------------------------------------
# PromptIR/AdaIR layout

_PROMPTIR_PAIRS = {
    "derain": ("Derain", "rainy", "gt"),
    "dehaze": ("Dehaze", "synthetic", "original"),
    "deblur": ("Deblur", "blur", "sharp"),
    "lowlight": ("Enhance", "low", "gt"),
}
PROMPTIR_LAYOUT = (
    "data_dir/Train/{Denoise, Derain/{rainy,gt}, Dehaze/{synthetic,original}, Deblur/{blur,sharp}, Enhance/{low,gt}}"
)


def promptir_datasets(
    data_dir: str | Path, patch_size: int = 128, seed: int = 0, sigma_range: tuple[float, float] = (0, 55)
) -> dict[str, Dataset]:
    """The PromptIR/AdaIR training layout as {task: dataset}, for whichever task folders exist.

    data_dir may be the folder holding Train/ or Train/ itself. Denoise holds clean
    images (BSD400 + WED) that get Gaussian noise with sigma drawn from sigma_range.
    """
    root = Path(data_dir)
    root = root / "Train" if (root / "Train").is_dir() else root
    found: dict[str, Dataset] = {}
    if (root / "Denoise").is_dir():
        found["denoise"] = SyntheticPairs(root / "Denoise", "noise", patch_size=patch_size, seed=seed, sigma_range=sigma_range)
    for k, (task, (folder, inputs, targets)) in enumerate(_PROMPTIR_PAIRS.items(), start=1):
        if (root / folder).is_dir():
            found[task] = FolderPairs(
                root / folder / inputs, root / folder / targets, patch_size=patch_size, seed=seed + k, task=task
            )
    if not found:
        raise ValueError(f"{data_dir}: none of the PromptIR task folders found; expected {PROMPTIR_LAYOUT}")
    return found
