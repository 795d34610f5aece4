"""How well does the student's prior stand in for the teacher's? Prints, on held-out
patches of a recipe (sample indices no training step draws), the spread of d_T and
d_S, their centred cosine similarity, the L1 of R_T and R_S fed d_T, d_S or the
batch-mean d_T, and per task the L1 of the input and of the student (R_S with d_S).

Usage: python train/diagnose_prior.py RUN_DIR RECIPE DATA_DIR [--patches N] [--patch-size PX]
"""
import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from lupi_core.data import load_recipe  # noqa: E402
from lupi_core.weights import load_model  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("recipe", type=Path)
    parser.add_argument("data", type=Path)
    parser.add_argument("--patches", type=int, default=64)
    parser.add_argument("--patch-size", type=int, default=None, help="override the recipe's patch size")
    args = parser.parse_args()
    teacher = load_model(args.run / "teacher.safetensors", kind="teacher")
    student = load_model(args.run / "student.safetensors", kind="student")
    dataset = load_recipe(args.recipe, args.data, seed=0, patch_size=args.patch_size)
    items = [dataset[10**15 + i] for i in range(args.patches)]
    degraded = torch.stack([item["degraded"] for item in items])
    clean = torch.stack([item["clean"] for item in items])
    tasks = [item["task"] for item in items]
    with torch.no_grad():
        d_t, d_s = teacher.estimator(degraded, clean), student.predictor(degraded)
        centred = lambda d: d - d.mean(dim=1, keepdim=True)  # noqa: E731
        print(f"patches: {args.patches}")
        print(f"std of d_T: {d_t.std():.4f}   std of d_S: {d_s.std():.4f}")
        print(f"centred cosine(d_S, d_T): {F.cosine_similarity(centred(d_s), centred(d_t)).mean():.3f}")
        per_patch_l1 = lambda restorer, prior: (restorer(degraded, prior) - clean).abs().mean(dim=(1, 2, 3))  # noqa: E731
        mean_t = d_t.mean(dim=0, keepdim=True).expand_as(d_t)
        input_error = (degraded - clean).abs().mean(dim=(1, 2, 3))
        print(f"L1 of the input: {input_error.mean():.4f}")
        errors = {}
        for name, restorer in (("R_T", teacher.restorer), ("R_S", student.restorer)):
            errors[name] = {label: per_patch_l1(restorer, prior) for label, prior in (("d_T", d_t), ("d_S", d_s), ("mean d_T", mean_t))}
            print(f"{name}: " + "   ".join(f"with {label} {error.mean():.4f}" for label, error in errors[name].items()))
        student_error = errors["R_S"]["d_S"]
        for task in sorted(set(tasks)):
            mask = torch.tensor([t == task for t in tasks])
            print(f"{task:>9} ({int(mask.sum())} patches): L1 of the input {input_error[mask].mean():.4f}   "
                  f"of R_S with d_S {student_error[mask].mean():.4f}")


if __name__ == "__main__":
    main()
