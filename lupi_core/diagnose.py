"""How well does the student's prior d_S stand in for the teacher's d_T, on a run's patches?
And which parts of a mixture pull the student against each other (`--gradients`)?

On held-out patches of a recipe (sample indices no training step draws), prints the
spread of d_T and d_S, their centred cosine similarity, the L1 of R_T and R_S fed d_T,
d_S or the batch-mean d_T, and per task the L1 of the input, of R_T with d_T and with d_S, and
of R_S with d_S, and how much of the last is one colour offset over the patch (the mean over
the patch of its error).
With `--gradients`, prints instead each mixture component's gradient of L_recon on the
student (its norm) and the cosines between the components' gradients: a negative cosine is
two parts of the mixture asking for opposite steps, a small norm a part whose say in a shared
step is small (docs/results/task-balance/).
`python -m lupi_core diagnose RUN_DIR RECIPE DATA_DIR [--gradients]`; RUN_DIR may be assets/.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F

from .balance import loss_gradient
from .data import HELD_OUT_DRAWS
from .losses import frequency_loss, reconstruction_loss
from .recipes import load_recipe
from .trainer import STUDENT_FILE, TEACHER_FILE, warm_start_file
from .weights import load_model


def _centred(d: torch.Tensor) -> torch.Tensor:
    return d - d.mean(dim=1, keepdim=True)


def _per_patch_l1(restorer, degraded: torch.Tensor, prior: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    return (restorer(degraded, prior) - clean).abs().mean(dim=(1, 2, 3))


def diagnose(run_dir: Path, recipe: Path, data: Path, patches: int = 64, patch_size: int | None = None,
             device: str = "auto") -> list[str]:
    """The report's lines for the teacher and student of `run_dir`."""
    teacher = load_model(warm_start_file(run_dir, TEACHER_FILE, "teacher"), kind="teacher", device=device)
    student = load_model(warm_start_file(run_dir, STUDENT_FILE, "student"), kind="student", device=device)
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
        # the part of R_S's error that is one colour offset over the whole patch (coherent, as haze's)
        offset = (student.restorer(degraded, d_s) - clean).mean(dim=(2, 3)).abs().mean(dim=1)
    for name, by_prior in errors.items():
        lines.append(f"{name}: " + "   ".join(f"with {label} {error.mean():.4f}" for label, error in by_prior.items()))
    for task in sorted(set(tasks)):
        mask = torch.tensor([t == task for t in tasks], device=place)
        lines.append(f"{task:>9} ({int(mask.sum())} patches): L1 of the input {input_error[mask].mean():.4f}   "
                     f"of R_T with d_T {errors['R_T']['d_T'][mask].mean():.4f}, with d_S "
                     f"{errors['R_T']['d_S'][mask].mean():.4f}   of R_S with d_S {errors['R_S']['d_S'][mask].mean():.4f}, "
                     f"of which its colour offset {offset[mask].mean():.4f}")
    return lines


def gradient_report(run_dir: Path, recipe: Path, data: Path, patches: int = 16, patch_size: int | None = None,
                    frequency_weight: float = 0.0, coarse_scale: float = 0.0, coarse_block: int = 16,
                    device: str = "auto") -> list[str]:
    """The report's lines: per mixture component, the norm of the gradient of L_recon (L1, its
    coarse part squared when coarse_scale > 0, plus `frequency_weight` x the spectrum L1, as
    `train` weighs them) on the student's trainable weights over `patches` held-out patches,
    then the matrix of cosines between components."""
    student = load_model(warm_start_file(run_dir, STUDENT_FILE, "student"), kind="student", device=device).train()
    mixture = load_recipe(recipe, data, seed=0, patch_size=patch_size)
    place = next(student.parameters()).device
    gradients = {}
    for name, component in zip(mixture.names, mixture.datasets):
        items = [component[HELD_OUT_DRAWS + i] for i in range(patches)]
        degraded = torch.stack([item["degraded"] for item in items]).to(place)
        clean = torch.stack([item["clean"] for item in items]).to(place)
        restored = student(degraded)[0]
        recon = reconstruction_loss(restored, clean, coarse_block=coarse_block, coarse_scale=coarse_scale)
        gradients[name] = loss_gradient(student, recon + frequency_weight * frequency_loss(restored, clean))
    names = list(gradients)
    width = max(len(name) for name in names)
    lines = [f"patches per component: {patches}", "gradient norm of L_recon:"]
    lines += [f"  {name:<{width}}  {gradients[name].norm():.4f}" for name in names]
    lines.append("cosines between the components' gradients (columns in the same order):")
    for a in names:
        cosines = (F.cosine_similarity(gradients[a], gradients[b], dim=0).item() for b in names)
        lines.append(f"  {a:<{width}} " + " ".join(f"{c:+6.2f}" for c in cosines))
    return lines


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN", type=Path,
                        help="a training run folder (holds teacher.safetensors, student.safetensors), "
                             "or a folder of exported weights such as assets/")
    parser.add_argument("recipe", type=Path, help="the task-mixture TOML the patches come from")
    parser.add_argument("data", type=Path, help="root folder the recipe's paths are relative to")
    parser.add_argument("--patches", type=int, default=64, help="held-out patches to score")
    parser.add_argument("--patch-size", type=int, default=None, help="override the recipe's patch size")
    parser.add_argument("--gradients", action="store_true",
                        help="report each mixture component's gradient norm and the cosines between them instead "
                             "(--patches per component)")
    parser.add_argument("--frequency-weight", type=float, default=0.0,
                        help="with --gradients: the spectrum L1's weight in L_recon, as the run trained it")
    parser.add_argument("--coarse-scale", type=float, default=0.0,
                        help="with --gradients: L_recon's coarse error term, as `train --coarse-scale` (0: L1 alone)")
    parser.add_argument("--coarse-block", type=int, default=16, help="with --gradients: as `train --coarse-block`")


def run(args: argparse.Namespace) -> int:
    if args.gradients:
        lines = gradient_report(args.run_dir, args.recipe, args.data, args.patches, args.patch_size,
                                args.frequency_weight, args.coarse_scale, args.coarse_block, args.device)
    else:
        lines = diagnose(args.run_dir, args.recipe, args.data, args.patches, args.patch_size, args.device)
    for line in lines:
        print(line)
    return 0
