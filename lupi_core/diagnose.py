"""How well does the student's prior d_S stand in for the teacher's d_T, on a run's patches?

On held-out patches of a recipe (sample indices no training step draws), prints the
spread of d_T and d_S, their centred cosine similarity, the L1 of R_T and R_S fed d_T,
d_S or the batch-mean d_T, and per task the L1 of the input and of R_S with d_S.
`python -m lupi_core diagnose RUN_DIR RECIPE DATA_DIR`.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F

from .data import HELD_OUT_DRAWS
from .recipes import load_recipe
from .weights import load_model


def _centred(d: torch.Tensor) -> torch.Tensor:
    return d - d.mean(dim=1, keepdim=True)


def _per_patch_l1(restorer, degraded: torch.Tensor, prior: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    return (restorer(degraded, prior) - clean).abs().mean(dim=(1, 2, 3))


def diagnose(run_dir: Path, recipe: Path, data: Path, patches: int = 64, patch_size: int | None = None,
             device: str = "auto") -> list[str]:
    """The report's lines for the teacher and student of `run_dir`."""
    teacher = load_model(run_dir / "teacher.safetensors", kind="teacher", device=device)
    student = load_model(run_dir / "student.safetensors", kind="student", device=device)
    dataset = load_recipe(recipe, data, seed=0, patch_size=patch_size)
    items = [dataset[HELD_OUT_DRAWS + i] for i in range(patches)]
    place = next(student.parameters()).device
    degraded = torch.stack([item["degraded"] for item in items]).to(place)
    clean = torch.stack([item["clean"] for item in items]).to(place)
    tasks = [item["task"] for item in items]
    with torch.no_grad():
        d_t, d_s = teacher.estimator(degraded, clean), student.predictor(degraded)
        lines = [f"patches: {patches}",
                 f"std of d_T: {d_t.std():.4f}   std of d_S: {d_s.std():.4f}",
                 f"centred cosine(d_S, d_T): {F.cosine_similarity(_centred(d_s), _centred(d_t)).mean():.3f}"]
        input_error = (degraded - clean).abs().mean(dim=(1, 2, 3))
        lines.append(f"L1 of the input: {input_error.mean():.4f}")
        priors = {"d_T": d_t, "d_S": d_s, "mean d_T": d_t.mean(dim=0, keepdim=True).expand_as(d_t)}
        errors = {name: {label: _per_patch_l1(restorer, degraded, prior, clean) for label, prior in priors.items()}
                  for name, restorer in (("R_T", teacher.restorer), ("R_S", student.restorer))}
    for name, by_prior in errors.items():
        lines.append(f"{name}: " + "   ".join(f"with {label} {error.mean():.4f}" for label, error in by_prior.items()))
    for task in sorted(set(tasks)):
        mask = torch.tensor([t == task for t in tasks], device=place)
        lines.append(f"{task:>9} ({int(mask.sum())} patches): L1 of the input {input_error[mask].mean():.4f}   "
                     f"of R_S with d_S {errors['R_S']['d_S'][mask].mean():.4f}")
    return lines


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", type=Path, help="a training run folder (holds teacher.safetensors, student.safetensors)")
    parser.add_argument("recipe", type=Path, help="the task-mixture TOML the patches come from")
    parser.add_argument("data", type=Path, help="root folder the recipe's paths are relative to")
    parser.add_argument("--patches", type=int, default=64, help="held-out patches to score")
    parser.add_argument("--patch-size", type=int, default=None, help="override the recipe's patch size")


def run(args: argparse.Namespace) -> int:
    for line in diagnose(args.run, args.recipe, args.data, args.patches, args.patch_size, args.device):
        print(line)
    return 0
