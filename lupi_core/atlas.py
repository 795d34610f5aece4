"""The prior space (the paper's Figure 5): an atlas of the student's priors d_S.

`build_atlas()` runs D_S (`Pipeline.prior`, never the restorer) on photographs
under every degradation kind at several levels (noise at many sigmas), plus
each clean photograph, and keeps:

- the 512-d priors and a label for each sample (kind, level, sigma, image, the
  seed that regenerates it) and a small JPEG thumbnail for hovering;
- two 2-D maps: UMAP (umap-learn, ``init="pca"`` and a fixed ``random_state``,
  so the same priors always give the same map) and PCA (scikit-learn);
- the mean prior of each kind and its most activated dimensions (Figure 5a);
- the noise-sigma curve: the mean prior at each sigma (Figure 5b).

Queries (`nearest`, `describe`, `place`) work in the 512-d space with one
distance: the Euclidean distance between *standardised* priors (each dimension
z-scored with the atlas' mean and standard deviation, the std floored at a
tenth of the median std so that near-constant dimensions are not blown up),
divided by sqrt(512): a root-mean-square z-score. Standardising stops a few
large-valued dimensions from deciding every neighbour; the same standardised
priors are what UMAP and PCA see.

`place()` puts a new prior on the PCA map by projection and on the UMAP map by
the inverse-distance-weighted average of its k nearest atlas points' UMAP
coordinates. umap-learn's own ``transform()`` would need the fitted model
(pickled, which the atlas refuses to ship) and costs seconds of JIT on its
first call in a process; the weighted average is instant and puts an atlas
sample exactly on itself.

Storage: ``PATH.npz`` (arrays only, read with ``allow_pickle=False``) and
``PATH.json`` (labels and metadata). Thumbnails are stored only for bundled
images (scikit-image's public-domain / CC0 photographs), never for images from
a user-given folder (their licence is unknown); such samples keep their prior
and label but cannot be shown or regenerated unless the folder is present.

Regenerate the shipped atlas with
``python -m lupi_core atlas --checkpoint assets/lupi-small-student.safetensors --out assets/atlas``.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from .degrade import KINDS as SINGLE_KINDS
from .degrade import add_gaussian_noise, degrade
from .images import (
    BUNDLED_IMAGES,
    ImageError,
    bundled_image,
    bundled_images,
    encode_thumbnail,
    fit_square,
    folder_images,
    load_image,
)

if TYPE_CHECKING:  # the pipeline (and torch) is needed only to build an atlas
    from .pipeline import Pipeline

FORMAT = "lupi-atlas/1"
ASSETS = Path(__file__).resolve().parent.parent / "assets"
DEFAULT_ATLAS = ASSETS / "atlas"

DEGRADED_KINDS = (*SINGLE_KINDS, "mix")
KINDS = ("clean",) + DEGRADED_KINDS  # the atlas' kinds, in display order
KIND_NAMES = {**{kind: kind for kind in KINDS}, "lowlight": "low light"}  # how a person reads them
NOISE_SIGMAS = tuple(range(5, 61, 5))
LEVELS = (0.0, 0.25, 0.5, 0.75, 1.0)
MIX_LEVELS = (0.3, 0.6, 0.9)
IMAGE_SIZE = 256
THUMBNAIL_SIZE = 64
OOD_PERCENTILE = 99.0


@dataclass(frozen=True)
class Spec:
    """One degradation setting: a kind and its level (for noise, its sigma)."""

    kind: str
    level: float = 0.0
    sigma: float | None = None

    @property
    def severity(self) -> float:
        """A 0-1 strength comparable across kinds (noise: sigma / 60), used to colour maps."""
        if self.kind == "clean":
            return 0.0
        if self.kind == "noise":
            return float(min(1.0, (self.sigma or 0.0) / 60.0))
        return float(self.level)


def default_specs(noise_sigmas: Iterable[float] = NOISE_SIGMAS, levels: Iterable[float] = LEVELS,
                  mix_levels: Iterable[float] = MIX_LEVELS) -> list[Spec]:
    """The clean image, noise at each sigma, every other kind at each level, and mixes."""
    specs = [Spec("clean")]
    specs += [Spec("noise", sigma=float(s)) for s in noise_sigmas]
    specs += [Spec(kind, level=float(level)) for kind in ("rain", "haze", "blur", "lowlight") for level in levels]
    specs += [Spec("mix", level=float(level)) for level in mix_levels]
    return specs


def is_bundled(image_name: str) -> bool:
    return image_name in BUNDLED_IMAGES


def sample_seed(seed: int, image_name: str, spec: Spec) -> int:
    """A fixed seed per (atlas seed, image, setting): any sample can be regenerated alone."""
    key = f"{seed}/{image_name}/{spec.kind}/{spec.level:.4f}/{spec.sigma}"
    return zlib.crc32(key.encode()) & 0x7FFFFFFF


def render(clean: np.ndarray, spec: Spec, seed: int) -> np.ndarray:
    """The degraded image of one atlas sample (the clean image itself for kind "clean")."""
    if spec.kind == "clean":
        return clean.copy()
    if spec.kind == "noise":
        return degrade(clean, "noise", sigma=spec.sigma, seed=seed)
    return degrade(clean, spec.kind, level=spec.level, seed=seed)


def mix_kinds(clean: np.ndarray, level: float, seed: int) -> list[str]:
    """Which kinds a "mix" sample combined (degrade draws them from the seed)."""
    _, info = degrade(clean[:8, :8], "mix", level=level, seed=seed, return_info=True)
    return list(info["kinds"])


def predictor_fingerprint(pipeline: Pipeline) -> str:
    """A short hash of D_S's weights: an atlas is only meaningful for the predictor it was built with."""
    predictor = pipeline.student.predictor
    if predictor is None:
        return "none"
    digest = hashlib.sha1()
    for name, tensor in sorted(predictor.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


# -- the atlas ------------------------------------------------------------------------------------

@dataclass
class Atlas:
    """Priors, labels and maps of the prior space; see the module docstring."""

    priors: np.ndarray                 # (N, D) float32, raw d_S
    labels: list[dict[str, Any]]       # per sample: kind, level, sigma, severity, image, seed, ...
    umap: np.ndarray                   # (N, 2) float32
    pca: np.ndarray                    # (N, 2) float32
    z_mean: np.ndarray                 # (D,) standardisation
    z_std: np.ndarray                  # (D,)
    pca_mean: np.ndarray               # (D,) in standardised units
    pca_components: np.ndarray         # (2, D)
    pca_explained: np.ndarray          # (2,) explained variance ratios
    kinds: list[str]                   # kinds present, display order
    kind_means: np.ndarray             # (K, D) raw mean prior per kind
    noise_sigmas: np.ndarray           # (S,) 0 (the clean images) then each noise sigma
    noise_curve: np.ndarray            # (S, D) mean raw prior at each sigma
    loo_nn: np.ndarray                 # (N,) leave-one-out nearest-neighbour distance of each sample
    thumb_bytes: np.ndarray            # (B,) uint8: concatenated JPEGs
    thumb_offsets: np.ndarray          # (N + 1,) int64; sample i is bytes [o[i], o[i+1]), empty: none
    meta: dict[str, Any] = field(default_factory=dict)
    _z: np.ndarray | None = field(default=None, repr=False)
    _index: Any = field(default=None, repr=False)

    # -- basic properties -------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.labels)

    @property
    def dim(self) -> int:
        return self.priors.shape[1]

    @property
    def ood_threshold(self) -> float:
        """A prior whose nearest atlas sample is farther than this is out of distribution:
        the 99th percentile of the atlas' own leave-one-out nearest-neighbour distances."""
        return float(np.percentile(self.loo_nn, OOD_PERCENTILE)) if len(self.loo_nn) else float("inf")

    @property
    def typical_distance(self) -> float:
        return float(np.median(self.loo_nn)) if len(self.loo_nn) else 0.0

    def matches(self, pipeline: Pipeline) -> bool:
        """Whether this atlas was built with this pipeline's D_S (same weights)."""
        return self.meta.get("predictor") == predictor_fingerprint(pipeline)

    def severity_dims(self, kind: str = "noise", count: int = 6) -> tuple[np.ndarray, np.ndarray]:
        """The `count` dimensions that follow `kind`'s severity most closely: Spearman's rho of d
        against severity along each photograph's series (its clean sample at severity 0, then the
        kind's samples), averaged over the photographs, largest |rho| first (what Figure 5b shows
        for one image). Returns (dims, rho); empty without a series to follow."""
        from scipy.stats import spearmanr

        series: dict[str, list[int]] = {}
        for i, label in enumerate(self.labels):
            if label["kind"] in (kind, "clean"):
                series.setdefault(label["image"], []).append(i)
        rhos = []
        for rows in series.values():
            severity = [self.labels[i]["severity"] for i in rows]
            if len(set(severity)) >= 3:
                with np.errstate(invalid="ignore", divide="ignore"):  # a constant dimension: rho 0
                    rhos.append(np.nan_to_num(spearmanr(severity, self.priors[rows]).statistic[0, 1:]))
        if not rhos:
            return np.zeros(0, np.int64), np.zeros(0)
        rho = np.mean(rhos, axis=0)
        dims = np.argsort(-np.abs(rho), kind="stable")[:count]
        return dims.astype(np.int64), rho[dims]

    def kind_mean(self, kind: str) -> np.ndarray:
        if kind not in self.kinds:
            raise KeyError(f"the atlas has no kind {kind!r}; it has {', '.join(self.kinds)}")
        return self.kind_means[self.kinds.index(kind)]

    def thumbnail(self, index: int) -> bytes | None:
        """Sample `index`'s JPEG thumbnail, or None when none was stored (folder images)."""
        start, end = int(self.thumb_offsets[index]), int(self.thumb_offsets[index + 1])
        return self.thumb_bytes[start:end].tobytes() if end > start else None

    def thumbnail_array(self, index: int) -> np.ndarray | None:
        data = self.thumbnail(index)
        return None if data is None else np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))

    # -- the distance -------------------------------------------------------------------------------
    def standardize(self, priors: np.ndarray) -> np.ndarray:
        priors = np.asarray(priors, dtype=np.float32)
        if priors.shape[-1] != self.dim:
            raise ValueError(f"a prior must have {self.dim} values, got {priors.shape[-1]}")
        return (priors - self.z_mean) / self.z_std

    @property
    def z(self) -> np.ndarray:
        if self._z is None:
            self._z = self.standardize(self.priors)
        return self._z

    def _neighbours(self, prior: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Indices and RMS distances (of standardised priors) of the k nearest samples, nearest first."""
        from sklearn.neighbors import NearestNeighbors

        if self._index is None:
            self._index = NearestNeighbors(algorithm="brute").fit(self.z)
        z = self.standardize(np.asarray(prior).reshape(1, -1))
        distance, index = self._index.kneighbors(z, n_neighbors=max(1, min(k, len(self))))
        return index[0], distance[0] / np.sqrt(self.dim)  # Euclidean -> RMS

    # -- queries ------------------------------------------------------------------------------------
    def nearest(self, prior: np.ndarray, k: int = 5) -> list[tuple[dict[str, Any], float]]:
        """The k nearest atlas samples as (label, distance), nearest first; labels carry "index"."""
        index, distance = self._neighbours(prior, k)
        return [({**self.labels[i], "index": int(i)}, float(d)) for i, d in zip(index, distance)]

    def describe(self, prior: np.ndarray, k: int = 7) -> dict[str, Any]:
        """What the model thinks it is looking at: the majority kind of the k nearest samples
        (votes weighted by 1 / distance), its typical level, and an out-of-distribution flag."""
        neighbours = self.nearest(prior, k)
        votes: dict[str, float] = {}
        for label, dist in neighbours:
            votes[label["kind"]] = votes.get(label["kind"], 0.0) + 1.0 / (dist + 1e-6)
        kind = max(votes, key=votes.get)
        agreement = votes[kind] / sum(votes.values())
        same = [(label, dist) for label, dist in neighbours if label["kind"] == kind]
        weights = np.array([1.0 / (d + 1e-6) for _, d in same])
        result: dict[str, Any] = {"kind": kind, "agreement": float(agreement), "sigma": None, "level": None,
                                  "nearest_distance": neighbours[0][1], "typical_distance": self.typical_distance,
                                  "threshold": self.ood_threshold}
        if kind == "noise":
            result["sigma"] = float(_weighted_median([label["sigma"] for label, _ in same], weights))
            detail = f"noise, sigma ~ {result['sigma']:.0f}"
        elif kind == "clean":
            detail = "clean (no degradation)"
        else:
            result["level"] = float(_weighted_median([label["level"] for label, _ in same], weights))
            detail = f"{kind}, level ~ {result['level']:.2f} ({_strength(result['level'])})"
            if kind == "mix":
                common = Counter(k for label, _ in same for k in label.get("mix_kinds", [])).most_common(2)
                if common:
                    detail = f"mix ({' + '.join(k for k, _ in common)}), level ~ {result['level']:.2f}"
        result["out_of_distribution"] = bool(result["nearest_distance"] > result["threshold"])
        result["neighbours"] = neighbours
        result["text"] = detail
        return result

    def place(self, prior: np.ndarray, space: str = "umap", k: int = 5) -> tuple[float, float]:
        """Where a prior lands on a map: PCA by projection; UMAP by the inverse-distance-weighted
        mean of its k nearest atlas samples' UMAP coordinates (an atlas sample lands on itself)."""
        if space == "pca":
            z = self.standardize(np.asarray(prior).reshape(-1))
            x, y = (z - self.pca_mean) @ self.pca_components.T
            return float(x), float(y)
        if space != "umap":
            raise ValueError(f"space must be 'umap' or 'pca', got {space!r}")
        order, d = self._neighbours(prior, k)
        if d[0] < 1e-9:
            return float(self.umap[order[0], 0]), float(self.umap[order[0], 1])
        w = 1.0 / d
        x, y = (self.umap[order] * w[:, None]).sum(axis=0) / w.sum()
        return float(x), float(y)

    def coordinates(self, space: str) -> np.ndarray:
        if space not in ("umap", "pca"):
            raise ValueError(f"space must be 'umap' or 'pca', got {space!r}")
        return self.umap if space == "umap" else self.pca

    # -- Figure 5 -------------------------------------------------------------------------------------
    def top_dims(self, kind: str, k: int = 8) -> list[int]:
        """The k most activated dimensions of a kind's mean prior (the paper's ranking)."""
        return [int(i) for i in np.argsort(-self.kind_mean(kind), kind="stable")[:k]]

    def signature(self, k: int = 8, kinds: Sequence[str] | None = None) -> dict[str, Any]:
        """Figure 5a: each kind's top-k dimensions, the dimensions they share and the ones
        that set them apart. Returns dims (the union, sorted), the kinds x dims matrix of
        mean activations, and for each dim the kinds whose top-k it is in."""
        kinds = list(kinds or [kd for kd in self.kinds if kd != "clean"])
        tops = {kd: self.top_dims(kd, k) for kd in kinds}
        dims = sorted({d for top in tops.values() for d in top})
        owners = {d: [kd for kd in kinds if d in tops[kd]] for d in dims}
        return {"kinds": kinds, "dims": dims, "top": tops,
                "matrix": np.stack([self.kind_mean(kd)[dims] for kd in kinds]) if dims else np.zeros((len(kinds), 0)),
                "owners": owners,
                "shared": [d for d in dims if len(owners[d]) > 1],
                "distinct": {kd: [d for d in tops[kd] if len(owners[d]) == 1] for kd in kinds}}

    # -- samples --------------------------------------------------------------------------------------
    def spec(self, index: int) -> Spec:
        label = self.labels[index]
        return Spec(label["kind"], float(label.get("level") or 0.0), label.get("sigma"))

    def sample(self, index: int, folder: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Regenerate sample `index` as (degraded, clean) uint8 images. Bundled images always
        can be; folder images need `folder` (or the folder the atlas was built from) present."""
        if not 0 <= index < len(self):
            raise IndexError(f"atlas sample {index} out of range (0..{len(self) - 1})")
        label = self.labels[index]
        name = label["image"]
        size = int(self.meta.get("image_size", IMAGE_SIZE))
        if is_bundled(name):
            clean = bundled_image(name, size)
        else:
            base = Path(folder or self.meta.get("folder") or "")
            path = base / name.removeprefix("folder:")
            if not path.is_file():
                raise ImageError(f"atlas sample {index} comes from {name}, a folder image that is not "
                                 f"shipped (its licence is unknown); only its prior is in the atlas")
            clean = fit_square(load_image(path), size)
        return render(clean, self.spec(index), int(label["seed"])), clean

    # -- storage --------------------------------------------------------------------------------------
    ARRAYS = ("priors", "umap", "pca", "z_mean", "z_std", "pca_mean", "pca_components", "pca_explained",
              "kind_means", "noise_sigmas", "noise_curve", "loo_nn", "thumb_bytes", "thumb_offsets")

    def save(self, path: str | Path) -> tuple[Path, Path]:
        """Write PATH.npz (arrays) and PATH.json (labels, kinds, metadata)."""
        npz_path, json_path = _paths(path)
        npz_path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {name: np.asarray(getattr(self, name)) for name in self.ARRAYS}
        with open(npz_path, "wb") as handle:
            np.savez_compressed(handle, **arrays)
        doc = {"format": FORMAT, "meta": self.meta, "kinds": self.kinds, "labels": self.labels}
        json_path.write_text(json.dumps(doc, indent=1, sort_keys=False) + "\n")
        return npz_path, json_path

    @staticmethod
    def exists(path: str | Path = DEFAULT_ATLAS) -> bool:
        return all(p.is_file() for p in _paths(path))

    @classmethod
    def load(cls, path: str | Path = DEFAULT_ATLAS) -> Atlas:
        """Read an atlas written by `save` (no pickles: np.load runs with allow_pickle=False)."""
        npz_path, json_path = _paths(path)
        for p in (npz_path, json_path):
            if not p.is_file():
                raise FileNotFoundError(f"{p}: atlas file not found; build one with "
                                        f"python -m lupi_core atlas --checkpoint WEIGHTS --out {npz_path.with_suffix('')}")
        doc = json.loads(json_path.read_text())
        if doc.get("format") != FORMAT:
            raise ValueError(f"{json_path}: not a LUPI atlas (format {doc.get('format')!r}, expected {FORMAT!r})")
        with np.load(npz_path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in cls.ARRAYS}
        atlas = cls(labels=doc["labels"], kinds=doc["kinds"], meta=doc.get("meta", {}), **arrays)
        if len(atlas.labels) != len(atlas.priors):
            raise ValueError(f"{path}: {len(atlas.labels)} labels but {len(atlas.priors)} priors")
        return atlas


def _paths(path: str | Path) -> tuple[Path, Path]:
    path = Path(path)
    if path.suffix in (".npz", ".json"):
        path = path.with_suffix("")
    return path.with_name(path.name + ".npz"), path.with_name(path.name + ".json")


def _weighted_median(values: Sequence[float], weights: np.ndarray) -> float:
    order = np.argsort(values, kind="stable")
    values, weights = np.asarray(values, dtype=float)[order], np.asarray(weights)[order]
    cumulative = np.cumsum(weights)
    return float(values[np.searchsorted(cumulative, 0.5 * cumulative[-1])])


def _strength(level: float) -> str:
    return "mild" if level < 0.34 else "moderate" if level < 0.67 else "strong"


# -- building -----------------------------------------------------------------------------------------

def umap_map(z: np.ndarray, seed: int = 0, n_neighbors: int = 15, min_dist: float = 0.1) -> np.ndarray:
    """UMAP of standardised priors; deterministic for a fixed seed (init="pca")."""
    import warnings

    import umap  # slow to import (numba): only here

    n = len(z)
    if n < 4:  # too few points for a neighbour graph: fall back to the first two coordinates
        out = np.zeros((n, 2), dtype=np.float32)
        out[:, :min(2, z.shape[1])] = z[:, :2]
        return out
    reducer = umap.UMAP(n_neighbors=max(2, min(n_neighbors, n - 1)), min_dist=min_dist, init="pca",
                        random_state=seed, metric="euclidean", n_components=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "n_jobs overridden by random_state" and numba notices
        return reducer.fit_transform(z).astype(np.float32)


def build_atlas(pipeline: Pipeline, images: dict[str, np.ndarray], kinds_levels: Sequence[Spec] | None = None,
                seed: int = 0, *, image_size: int = IMAGE_SIZE, thumbnail_size: int = THUMBNAIL_SIZE,
                n_neighbors: int = 15,
                progress: Callable[[int, int], None] | None = None) -> Atlas:
    """The student's priors for each image under each setting (default: `default_specs()`).

    `images` maps a name to a uint8 image; names from BUNDLED_IMAGES (and any other name
    not starting with "folder:") get thumbnails, "folder:..." names do not. Images are
    fitted to image_size x image_size first. `progress(done, total)` is called per sample.
    """
    if not images:
        raise ValueError("build_atlas needs at least one image")
    specs = list(kinds_levels or default_specs())
    if not any(s.kind == "clean" for s in specs):
        specs.insert(0, Spec("clean"))
    priors, labels, thumbs = [], [], []
    total, done = len(images) * len(specs), 0
    for name, image in images.items():
        clean = fit_square(image, image_size)
        for spec in specs:
            sample_seed_ = sample_seed(seed, name, spec)
            degraded = render(clean, spec, sample_seed_)
            priors.append(pipeline.prior(degraded))
            label = {"kind": spec.kind, "level": spec.level if spec.kind not in ("noise", "clean") else None,
                     "sigma": spec.sigma, "severity": round(spec.severity, 4), "image": name, "seed": sample_seed_}
            if spec.kind == "mix":
                label["mix_kinds"] = mix_kinds(clean, spec.level, sample_seed_)
            labels.append(label)
            thumbs.append(b"" if name.startswith("folder:") else encode_thumbnail(degraded, thumbnail_size))
            done += 1
            if progress:
                progress(done, total)
    priors_arr = np.stack(priors).astype(np.float32)
    return assemble(priors_arr, labels, thumbs, seed=seed, n_neighbors=n_neighbors,
                    meta={"image_size": image_size, "thumbnail_size": thumbnail_size,
                          "model": pipeline.cfg.preset_name() or "custom", "prior_dim": int(priors_arr.shape[1]),
                          "predictor": predictor_fingerprint(pipeline)})


def assemble(priors: np.ndarray, labels: list[dict[str, Any]], thumbs: Sequence[bytes], seed: int = 0,
             n_neighbors: int = 15, meta: dict[str, Any] | None = None) -> Atlas:
    """Everything derived from the priors: standardisation, maps, kind means, noise curve."""
    from sklearn.decomposition import PCA

    n, dim = priors.shape
    z_mean = priors.mean(axis=0)
    std = priors.std(axis=0)
    z_std = np.maximum(std, 0.1 * float(np.median(std)) + 1e-8).astype(np.float32)
    z = (priors - z_mean) / z_std
    if n >= 2:
        pca = PCA(n_components=2, svd_solver="full").fit(z)
        pca_mean, components = pca.mean_.astype(np.float32), pca.components_.astype(np.float32)
        explained = pca.explained_variance_ratio_.astype(np.float32)
    else:
        pca_mean, components, explained = np.zeros(dim, np.float32), np.eye(2, dim, dtype=np.float32), np.zeros(2, np.float32)
    pca_xy = ((z - pca_mean) @ components.T).astype(np.float32)
    umap_xy = umap_map(z, seed=seed, n_neighbors=n_neighbors)
    if n >= 2:
        from sklearn.neighbors import NearestNeighbors

        distance, _ = NearestNeighbors(n_neighbors=1, algorithm="brute").fit(z).kneighbors()  # each sample left out
        loo = (distance[:, 0] / np.sqrt(dim)).astype(np.float32)
    else:
        loo = np.zeros(n, np.float32)

    kinds = [k for k in KINDS if any(label["kind"] == k for label in labels)]
    kinds += sorted({label["kind"] for label in labels} - set(kinds))
    kind_means = np.stack([priors[[label["kind"] == k for label in labels]].mean(axis=0) for k in kinds]).astype(np.float32)

    sigma_of = [0.0 if label["kind"] == "clean" else label["sigma"] if label["kind"] == "noise" else None for label in labels]
    sigmas = sorted({s for s in sigma_of if s is not None})
    curve = np.stack([priors[[s == sigma for s in sigma_of]].mean(axis=0) for sigma in sigmas]) if sigmas \
        else np.zeros((0, dim), np.float32)

    offsets = np.zeros(n + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(t) for t in thumbs])
    thumb_bytes = np.frombuffer(b"".join(thumbs), dtype=np.uint8).copy()
    meta = {**(meta or {}), "format": FORMAT, "seed": seed, "samples": n,
            "distance": "RMS difference of standardised priors (z-score per dimension, std floored at 0.1 x median)",
            "umap": {"n_neighbors": int(max(2, min(n_neighbors, n - 1))), "min_dist": 0.1, "init": "pca",
                     "random_state": seed},
            "ood_percentile": OOD_PERCENTILE,
            "created": time.strftime("%Y-%m-%d %H:%M:%S")}
    return Atlas(priors=priors.astype(np.float32), labels=labels, umap=umap_xy, pca=pca_xy, z_mean=z_mean.astype(np.float32),
                 z_std=z_std, pca_mean=pca_mean, pca_components=components, pca_explained=explained, kinds=kinds,
                 kind_means=kind_means, noise_sigmas=np.asarray(sigmas, np.float32),
                 noise_curve=np.asarray(curve, np.float32), loo_nn=loo,
                 thumb_bytes=thumb_bytes, thumb_offsets=offsets, meta=meta)


def noise_curve(pipeline: Pipeline, clean: np.ndarray, sigmas: Iterable[float] = (0, 10, 20, 30, 40, 50, 60),
                seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Figure 5b for one image: D_S's prior of `clean` re-noised at each sigma
    (add_gaussian_noise with a fixed seed). Returns (sigmas (S,), priors (S, D))."""
    sigmas = np.asarray(list(sigmas), dtype=np.float32)
    priors = [pipeline.prior(add_gaussian_noise(clean, float(s), seed) if s > 0 else clean) for s in sigmas]
    return sigmas, np.stack(priors).astype(np.float32)


# -- command line -------------------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=DEFAULT_ATLAS,
                        help="output path without suffix: writes OUT.npz and OUT.json (default: assets/atlas)")
    parser.add_argument("--images", type=Path, default=None,
                        help="also use the images of this folder (their thumbnails are never stored)")
    parser.add_argument("--max-images", type=int, default=12, help="at most this many images from --images")
    parser.add_argument("--bundled", default=",".join(BUNDLED_IMAGES),
                        help="comma-separated scikit-image photographs to use ('' for none)")
    parser.add_argument("--size", type=int, default=IMAGE_SIZE, help="images are fitted to size x size")
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .pipeline import load_pretrained

    names = [n.strip() for n in args.bundled.split(",") if n.strip()]
    images = bundled_images(names, args.size)
    if args.images is not None:
        images.update(folder_images(args.images, args.max_images, args.size))
    if not images:
        print("no images: give --bundled names and/or --images DIR")
        return 2
    pipeline = load_pretrained(args.checkpoint, device=args.device)
    specs = default_specs()
    def progress(done: int, total: int) -> None:
        bar.update(done - bar.n)
        if done == total:
            bar.set_postfix_str("fitting UMAP and PCA")

    with tqdm(total=len(images) * len(specs), desc="atlas priors", unit="sample", disable=not args.progress) as bar:
        atlas = build_atlas(pipeline, images, specs, seed=args.seed, image_size=args.size, progress=progress)
    atlas.meta["checkpoint"] = Path(args.checkpoint).name if args.checkpoint else "lupi-small-student.safetensors"
    if args.images is not None:
        atlas.meta["folder"] = str(args.images)
    npz_path, json_path = atlas.save(args.out)
    size = (npz_path.stat().st_size + json_path.stat().st_size) / 1e6
    print(f"wrote {npz_path} and {json_path} ({len(atlas)} samples, {size:.1f} MB)")
    return 0
