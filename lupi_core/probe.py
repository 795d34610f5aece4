"""The prior probe: does d_S carry the degradation, and does R_S use it?

Four measurements on a set of clean images, each degraded by every kind of
`degrade.KINDS` (noise at sigma 25, the others at level 0.6):

- *steer*: PSNR of R_S(I_d, d_S) minus PSNR of R_S(I_d, m_k) for each other
  kind's mean prior m_k (over the probe's samples), per true kind and averaged.
  Near 0: the restorer ignores its prior. *oracle*: R_S(I_d, d_T) minus
  R_S(I_d, d_S), the PSNR the student's prior leaves on the table (needs D_T).
- *severity*: along noise sigma 0-60 and level 0-1 for the other kinds, the six
  dimensions whose image-averaged prior moves most, their |Spearman rho| with the
  level along each image's series (averaged over images: what Figure 5b shows
  for one image), whether the image-averaged curve is monotone in each, and the
  swing ||d(max) - d(0)|| / mean ||d|| of the image-averaged prior.
- *kinds*: leave-one-out 1-nearest-neighbour kind accuracy (and with the neighbour drawn
  from the other photographs only, what a new photograph meets) and the silhouette of
  standardised d_S (z-scored per dimension, the std floored at 0.1 x its median,
  as the atlas does) over the five kinds at three levels each (chance: 0.2); the
  confusion of true kind against the nearest neighbour's, and the share of errors
  whose nearest neighbour is the same photograph (a prior that still carries content).
- *alignment*: the cosine of centred d_S and d_T (each minus its mean over the
  samples) and the ratio of their centred norms (d_S / d_T): how much of d_T's
  variation the student reproduces, and at what scale.

`python -m lupi_core probe [--checkpoint F] [--data DIR]` runs it on the bundled
photographs (no data needed) or on a folder of clean images.
"""
from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from scipy.stats import spearmanr
from sklearn.metrics import silhouette_score

from .cli import write_results
from .degrade import KINDS, degrade
from .images import bundled_images, folder_images
from .metrics import psnr
from .steering import counterfactuals

if TYPE_CHECKING:
    from .pipeline import Pipeline

PROBE_SIZE = 128
STEER_LEVEL, STEER_SIGMA = 0.6, 25.0
NOISE_SIGMAS = (0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0)
LEVELS = (0.0, 0.25, 0.5, 0.75, 1.0)
KIND_LEVELS = (0.3, 0.6, 0.9)
TOP_DIMS = 6


def degraded(clean: np.ndarray, kind: str, level: float, seed: int) -> np.ndarray:
    """`clean` under `kind` at `level` in [0, 1]; noise's level is sigma / 60."""
    if level == 0:
        return clean.copy()
    if kind == "noise":
        return degrade(clean, "noise", sigma=60.0 * level, seed=seed)
    return degrade(clean, kind, level=level, seed=seed)


def steer(pipeline: Pipeline, images: dict[str, np.ndarray], seed: int = 0) -> dict:
    """The steer and oracle blocks (see the module docstring)."""
    samples = [(kind, clean, degraded(clean, kind, STEER_SIGMA / 60 if kind == "noise" else STEER_LEVEL, seed + i))
               for i, clean in enumerate(images.values()) for kind in KINDS]
    priors = np.stack([pipeline.prior(image) for _, _, image in samples])
    means = {kind: priors[[k == kind for k, _, _ in samples]].mean(axis=0) for kind in KINDS}
    own, swaps, oracle = {k: [] for k in KINDS}, {k: [] for k in KINDS}, {k: [] for k in KINDS}
    for (kind, clean, image), prior in zip(samples, priors):
        results = counterfactuals(pipeline, image, {other: means[other] for other in KINDS if other != kind},
                                  clean, own=prior)
        own_psnr = results[0].psnr
        own[kind].append(own_psnr)
        swaps[kind] += [own_psnr - swapped.psnr for swapped in results[1:]]
        if pipeline.teacher is not None:
            d_t = pipeline.privileged_prior(image, clean)
            oracle[kind].append(psnr(pipeline.restore_float(image, prior=d_t), clean) - own_psnr)
    result = {"own_psnr": {k: float(np.mean(v)) for k, v in own.items()},
              "steer_db": {k: float(np.mean(v)) for k, v in swaps.items()}}
    result["steer_db"]["average"] = float(np.mean([np.mean(v) for v in swaps.values()]))
    if pipeline.teacher is not None:
        result["oracle_db"] = {k: float(np.mean(v)) for k, v in oracle.items()}
        result["oracle_db"]["average"] = float(np.mean([np.mean(v) for v in oracle.values()]))
    return result


def severity(pipeline: Pipeline, images: dict[str, np.ndarray], seed: int = 0) -> dict:
    """The severity block: per kind, the top dimensions' |rho| with the level and the swing."""
    result = {}
    for kind in KINDS:
        levels = [s / 60 for s in NOISE_SIGMAS] if kind == "noise" else list(LEVELS)
        # (images, levels, D): one seed per image, so each image's level series differs only in strength
        priors = np.stack([np.stack([pipeline.prior(degraded(clean, kind, level, seed + i)) for level in levels])
                           for i, clean in enumerate(images.values())])
        curve = priors.mean(axis=0)
        top = np.argsort(-np.abs(curve[-1] - curve[0]), kind="stable")[:TOP_DIMS]
        rhos = [float(np.mean([abs(_spearman(levels, series[:, d])) for series in priors])) for d in top]
        monotone = [bool(np.all(np.diff(curve[:, d]) >= 0) or np.all(np.diff(curve[:, d]) <= 0)) for d in top]
        result[kind] = {"dims": [int(d) for d in top], "abs_rho": rhos, "monotone": monotone,
                        "swing": float(np.linalg.norm(curve[-1] - curve[0]) / np.linalg.norm(priors, axis=-1).mean())}
    return result


def _spearman(x: list[float], y: np.ndarray) -> float:
    """Spearman's rho; 0 for a constant series (scipy returns nan there)."""
    rho = spearmanr(x, y)[0]
    return 0.0 if np.isnan(rho) else float(rho)


def kinds(pipeline: Pipeline, images: dict[str, np.ndarray], seed: int = 0) -> dict:
    """The kinds block: leave-one-out 1-NN accuracy, confusion and silhouette of standardised d_S."""
    labels, photos, priors = [], [], []
    for i, clean in enumerate(images.values()):
        for kind in KINDS:
            for level in KIND_LEVELS:
                labels.append(kind)
                photos.append(i)
                priors.append(pipeline.prior(degraded(clean, kind, level, seed + 100 + i)))
    z = np.stack(priors)
    std = z.std(axis=0)  # floored as the atlas does, so near-constant dimensions are not blown up
    z = (z - z.mean(axis=0)) / (np.maximum(std, 0.1 * np.median(std)) + 1e-8)
    distances = np.linalg.norm(z[:, None] - z[None], axis=-1)
    np.fill_diagonal(distances, np.inf)
    labels_arr, photos_arr = np.array(labels), np.array(photos)
    nearest = distances.argmin(axis=1)
    wrong = labels_arr[nearest] != labels_arr
    confusion = {kind: {other: int(np.sum((labels_arr == kind) & (labels_arr[nearest] == other))) for other in KINDS}
                 for kind in KINDS}
    same_photo = float(np.mean(photos_arr[nearest][wrong] == photos_arr[wrong])) if wrong.any() else 0.0
    distances[photos_arr[:, None] == photos_arr[None]] = np.inf  # what a new photograph meets: no sample of itself
    other_photo = labels_arr[distances.argmin(axis=1)] == labels_arr
    return {"loo_1nn_accuracy": float(np.mean(~wrong)), "other_photo_1nn_accuracy": float(np.mean(other_photo)),
            "silhouette": float(silhouette_score(z, labels_arr)),
            "samples": len(labels), "chance": 1 / len(KINDS), "confusion": confusion,
            "errors_same_photo": same_photo}


def alignment(pipeline: Pipeline, images: dict[str, np.ndarray], seed: int = 0) -> dict | None:
    """The alignment block: centred cosine and centred-norm ratio of d_S against d_T."""
    if pipeline.teacher is None:
        return None
    d_s, d_t = [], []
    for i, clean in enumerate(images.values()):
        for kind in KINDS:
            for level in KIND_LEVELS:
                image = degraded(clean, kind, level, seed + 200 + i)
                d_s.append(pipeline.prior(image))
                d_t.append(pipeline.privileged_prior(image, clean))
    s, t = np.stack(d_s), np.stack(d_t)
    s, t = s - s.mean(axis=0), t - t.mean(axis=0)
    cosine = np.sum(s * t, axis=1) / (np.linalg.norm(s, axis=1) * np.linalg.norm(t, axis=1) + 1e-12)
    return {"centred_cosine": float(cosine.mean()),
            "scale_ratio": float(np.linalg.norm(s, axis=1).mean() / (np.linalg.norm(t, axis=1).mean() + 1e-12))}


def probe(pipeline: Pipeline, images: dict[str, np.ndarray], seed: int = 0,
          log: Callable[[str], None] = lambda _: None) -> dict:
    """All four blocks for a pipeline (student, and teacher when loaded) on clean `images`."""
    if not pipeline.has_prior:
        raise ValueError("this model has no degradation predictor D_S: there is no prior to probe")
    result = {"images": list(images), "size": int(next(iter(images.values())).shape[0])}
    for name, block in (("steer", steer), ("severity", severity), ("kinds", kinds), ("alignment", alignment)):
        log(f"probe: {name}")
        result[name] = block(pipeline, images, seed)
    return result


def report(result: dict) -> str:
    """The probe's four blocks as text."""
    steer_block = result["steer"]
    lines = ["steer: PSNR with the own prior d_S minus with another kind's mean prior (dB)",
             "  " + "  ".join(f"{k} {v:+.2f}" for k, v in steer_block["steer_db"].items())]
    if "oracle_db" in steer_block:
        lines += ["oracle: R_S given the teacher's d_T instead of d_S (dB)",
                  "  " + "  ".join(f"{k} {v:+.2f}" for k, v in steer_block["oracle_db"].items())]
    lines.append("severity: top dimensions' |Spearman rho| with the level, and the swing ||d(max)-d(0)|| / mean ||d||")
    for kind, row in result["severity"].items():
        rhos = " ".join(f"{r:.2f}" for r in row["abs_rho"])
        lines.append(f"  {kind:<9} |rho| {rhos}  monotone {sum(row['monotone'])}/{len(row['monotone'])}  "
                     f"swing {row['swing']:.2f}")
    k = result["kinds"]
    lines.append(f"kinds: leave-one-out 1-NN accuracy {k['loo_1nn_accuracy']:.2f} (chance {k['chance']:.2f}), "
                 f"{k['other_photo_1nn_accuracy']:.2f} with the neighbour from another photograph, "
                 f"silhouette {k['silhouette']:.2f}, {k['samples']} samples")
    lines.append(f"  confusion, rows the true kind, columns the nearest neighbour's; "
                 f"errors whose neighbour is the same photograph: {k['errors_same_photo']:.0%}")
    lines.append("  " + " " * 9 + "".join(f"{kind:>9}" for kind in KINDS))
    lines += [f"  {kind:<9}" + "".join(f"{n:9d}" for n in row.values()) for kind, row in k["confusion"].items()]
    a = result["alignment"]
    lines.append("alignment: no teacher loaded" if a is None else
                 f"alignment: centred cosine(d_S, d_T) {a['centred_cosine']:.2f}, "
                 f"scale ratio d_S / d_T {a['scale_ratio']:.2f}")
    return "\n".join(lines)


# -- command line -------------------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--teacher", type=Path, default=None,
                        help="teacher weights for oracle and alignment (default: the shipped one with the shipped student)")
    parser.add_argument("--data", type=Path, default=None,
                        help="a folder of clean images (default: the photographs bundled with scikit-image)")
    parser.add_argument("--max-images", type=int, default=8, help="at most this many images from --data")
    parser.add_argument("--size", type=int, default=PROBE_SIZE, help="images are fitted to size x size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")


def run(args: argparse.Namespace) -> int:
    import sys

    from .pipeline import load_pretrained

    images = (folder_images(args.data, args.max_images, args.size) if args.data is not None
              else bundled_images(size=args.size))
    pipeline = load_pretrained(args.checkpoint, teacher=args.teacher, device=args.device, precision=args.precision)

    def log(text: str) -> None:
        if args.progress:
            print(text, file=sys.stderr)

    result = probe(pipeline, images, args.seed, log=log)
    result["checkpoint"] = str(args.checkpoint or "shipped model")
    result["data"] = str(args.data or "bundled photographs")
    print(report(result))
    write_results(args.out, result)
    return 0
