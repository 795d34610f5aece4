"""Can the prior tell a clean photo from a degraded one? A linear read of d_S, fitted on training
data and scored on the test sets: what a clean gate in `Pipeline.restoration` could rely on.

A logistic regression (scikit-learn, classes balanced) on standardised d_S of whole training images:
clean (BSD400, LOL and SOTS training targets) against degraded (BSD400 under each kind at a random
level, and the real LOL, SOTS and Rain12 training inputs). For each test set's clean photos and each
benchmark column's degraded inputs it reports the share read as clean, and, where the column pairs a
degraded image with its clean one, how far the degradation moves the prior: the mean
||d_S(degraded) - d_S(clean)|| over the mean distance between two CBSD68 photos' priors (content);
with a teacher loaded, the same for d_T = D_T(I_d, I_c) against D_T(I_c, I_c).

    python -m tools.clean_gate DATA [--checkpoint F] [--train-images 200] [--out F.md]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

from lupi_core.degrade import KINDS, add_gaussian_noise, degrade
from lupi_core.evaluate import COLUMNS, column_files, load_sample
from lupi_core.images import list_images, load_image
from lupi_core.markdown import markdown_table
from lupi_core.pipeline import load_pretrained

TEST_COLUMNS = ("dehaze", "derain", "noise15", "noise25", "noise50", "deblur", "lowlight")
CLEAN_TEST_SETS = ("denoise/CBSD68", "dehaze/SOTS-indoor/target", "lowlight/LOL-eval15/target",
                   "derain/Rain100L/target")


def training_priors(pipeline, data: Path, count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """d_S of clean (label 1) and degraded (label 0) training images."""
    rng = np.random.default_rng(seed)
    bsd = list_images(data / "train/clean/bsd400")[:count]
    clean = [load_image(p) for p in bsd[:count // 2]]
    clean += [load_image(p) for p in list_images(data / "train/lowlight/LOL-train250/target")[:count // 4]]
    clean += [load_image(p) for p in list_images(data / "train/dehaze/sots-indoor/target")]
    degraded = []
    for i, path in enumerate(bsd):
        kind, image = KINDS[i % len(KINDS)], load_image(path)
        degraded.append(add_gaussian_noise(image, float(rng.uniform(5, 55)), seed=i) if kind == "noise"
                        else degrade(image, kind, level=float(rng.uniform(0.15, 1.0)), seed=i))
    degraded += [load_image(p) for p in list_images(data / "train/lowlight/LOL-train250/input")[:count // 4]]
    degraded += [load_image(p) for p in list_images(data / "train/dehaze/sots-indoor/input")[::5][:count // 4]]
    degraded += [load_image(p) for p in list_images(data / "train/derain/rain12/input")]
    priors = np.stack([pipeline.prior(image) for image in clean + degraded])
    return priors, np.r_[np.ones(len(clean)), np.zeros(len(degraded))]


def _mean_distance(priors: np.ndarray) -> float:
    return float(np.mean([np.linalg.norm(priors[i] - priors[j])
                          for i in range(len(priors)) for j in range(i + 1, len(priors))]))


def study(pipeline, data: Path, train_images: int = 200) -> list[dict]:
    """One row per test set: images, share read as clean, and the degradation's move of d_S (and d_T)."""
    x, y = training_priors(pipeline, data, train_images)
    mean, std = x.mean(axis=0), x.std(axis=0)
    std = np.maximum(std, 0.1 * np.median(std))  # as the atlas floors it
    reader = LogisticRegression(C=0.1, max_iter=5000, class_weight="balanced").fit((x - mean) / std, y)

    def read_clean(priors: np.ndarray) -> float:
        return float(np.mean(reader.predict(np.asarray(priors - mean) / std) == 1))

    teacher = pipeline.teacher is not None
    rows = []
    for folder in CLEAN_TEST_SETS:
        priors = np.stack([pipeline.prior(load_image(p)) for p in list_images(data / "test" / folder)])
        rows.append({"set": f"clean: {folder}", "images": len(priors), "read_clean": read_clean(priors),
                     "move": None, "teacher_move": None})
    photos = [load_image(p) for p in list_images(data / "test" / CLEAN_TEST_SETS[0])]
    content = _mean_distance(np.stack([pipeline.prior(photo) for photo in photos]))
    if teacher:
        content_t = _mean_distance(np.stack([pipeline.privileged_prior(photo, photo) for photo in photos]))
    for key in TEST_COLUMNS:
        column = COLUMNS[key]
        samples = [load_sample(column, i, a, b) for i, (a, b) in enumerate(column_files(data, column))]
        degraded = np.stack([pipeline.prior(s.degraded) for s in samples])
        clean = np.stack([pipeline.prior(s.clean) for s in samples])
        row = {"set": f"degraded: {column.dataset}", "images": len(samples), "read_clean": read_clean(degraded),
               "move": float(np.linalg.norm(degraded - clean, axis=1).mean() / content), "teacher_move": None}
        if teacher:
            moves = [np.linalg.norm(pipeline.privileged_prior(s.degraded, s.clean)
                                    - pipeline.privileged_prior(s.clean, s.clean)) for s in samples]
            row["teacher_move"] = float(np.mean(moves) / content_t)
        rows.append(row)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="the benchmark data folder (train/ and test/)")
    parser.add_argument("--checkpoint", type=Path, default=None, help="student weights (default: the shipped model)")
    parser.add_argument("--train-images", type=int, default=200, help="BSD400 images to fit on")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="also write the table here (markdown)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = study(load_pretrained(args.checkpoint), args.data, args.train_images)
    table = markdown_table(
        ["test set", "images", "read as clean", "d_S: degradation's move / content", "d_T: the same"],
        [[r["set"], r["images"], f"{r['read_clean']:.0%}"]
         + ["" if r[key] is None else f"{r[key]:.2f}" for key in ("move", "teacher_move")] for r in rows])
    print(table)
    if args.out:
        args.out.write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
