"""The paper's ablations, trained and scored here: Table 3 (the LUPI framework) and
Table 4 (the design of the privileged estimator D_T).

`python -m lupi_core ablate --preset P --steps N --data DIR [--seeds 0 1]`

Table 3 rows: the plain backbone (no D_T, no D_S: trainer mode `no-predictor`),
D_S + R_S trained end to end with L1 (no D_T: `no-privileged`) and full LUPI,
the last two also under the `steer` objective (trainer.OBJECTIVES).
Table 4 rows: LUPI with a `siamese`, `concat` or `add` estimator. The siamese
LUPI run is the same run in both tables. Every row is trained from the same data
with the same seeds, scored with `evaluate_benchmark` (average PSNR/SSIM) and,
where it has a prior, probed on the bundled photographs (`probe`: steer, kinds).

Step budget: LUPI trains N steps in Stage 1 and N in Stage 2. The single-stage
rows get 2N steps by default (`--budget equal-total`): every row then receives
the same number of optimizer steps and the same training compute, so LUPI is not
credited with training longer. `--budget equal-stage2` gives them N steps, the
length of LUPI's Stage 2 alone (the paper trains each stage 150 epochs and does
not say how long its variants trained).

Each run lives in OUT/<variant>-seed<k>/ and resumes there (the trainer keeps
checkpoints); a finished run and its cached score are reused, so an interrupted
ablation picks up where it stopped.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .losses import AlignConfig
from .markdown import markdown_table
from .paper import ABLATION
from .settings import add_dataclass_arguments, dataclass_from_arguments, setting
from .trainer import TrainConfig, Trainer

# Each variant's TrainConfig fields; the others keep TrainConfig's defaults.
VARIANTS = {
    "lupi-siamese": {"mode": "lupi", "estimator_design": "siamese"},
    # the best variant of docs/results/objectives-tiny: the steer objective, L1 alignment, R_S from R_T
    "lupi-steer": {"mode": "lupi", "estimator_design": "siamese", "objective": "steer", "align": AlignConfig(form="l1"),
                   "student_from_teacher": True},
    "no-privileged": {"mode": "no-privileged"},
    "no-privileged-steer": {"mode": "no-privileged", "objective": "steer"},
    "no-predictor": {"mode": "no-predictor"},
    "lupi-concat": {"mode": "lupi", "estimator_design": "concat"},
    "lupi-add": {"mode": "lupi", "estimator_design": "add"},
}
# (variant, row cells); the published numbers are paper.ABLATION's (none for the steer objective).
TABLE3 = [("no-predictor", ("✗", "✗", "paper")), ("no-privileged", ("✗", "✓", "paper")),
          ("no-privileged-steer", ("✗", "✓", "steer")), ("lupi-siamese", ("✓", "✓", "paper")),
          ("lupi-steer", ("✓", "✓", "steer"))]
TABLE4 = [("lupi-add", ("Input Addition",)), ("lupi-concat", ("Input Concat",)), ("lupi-siamese", ("Siamese (Ours)",))]
TABLES = {"3": ("Table 3: impact of the LUPI framework", ("Estimator (D_T)", "Predictor (D_S)", "objective"), TABLE3),
          "4": ("Table 4: design of the estimator D_T", ("Method",), TABLE4)}
BUDGETS = ("equal-total", "equal-stage2")


def _as_trained(name: str) -> Any:
    """A setting that every run passes on to TrainConfig: its default, choices and help."""
    field = next(f for f in dataclasses.fields(TrainConfig) if f.name == name)
    return setting(field.default, help=field.metadata["help"], choices=field.metadata["choices"])


@dataclass
class AblationSettings:
    """What every run of the ablation shares; written into the tables. The fields with a help
    text are `ablate` flags; the training ones take TrainConfig's defaults."""

    out: Path = setting(Path("runs/ablate"), help="folder for the runs and tables")
    preset: str = _as_trained("preset")
    steps: int = setting(1000, help="steps per LUPI stage")
    budget: str = setting("equal-total", choices=BUDGETS,
                          help="single-stage rows train 2 x steps (equal-total) or steps (equal-stage2)")
    batch_size: int = _as_trained("batch_size")
    lr: float = _as_trained("lr")
    warmup_steps: int = _as_trained("warmup_steps")
    benchmark: str = setting("3task", choices=("3task", "5task"), help="the benchmark every run is scored on")
    limit: int | None = setting(None, type=int, help="first N images per benchmark column")
    seeds: tuple[int, ...] = (0,)
    tables: tuple[str, ...] = ("3", "4")
    data: str = ""  # the evaluation data folder (its test/ tree)
    training_data: str = ""  # what the runs train on, in words (recipe or clean folder)
    device: str = "cpu"
    precision: str = "auto"
    progress: bool = True
    command: str = ""

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        if self.budget not in BUDGETS:
            raise ValueError(f"budget must be one of {BUDGETS}, got {self.budget!r}")
        unknown = set(self.tables) - set(TABLES)
        if unknown:
            raise ValueError(f"unknown table(s) {sorted(unknown)}; choose from 3 and 4")

    def variants(self) -> list[str]:
        rows = [variant for table in self.tables for variant, _ in TABLES[table][2]]
        return list(dict.fromkeys(rows))

    def single_stage_steps(self) -> int:
        return 2 * self.steps if self.budget == "equal-total" else self.steps


def _train_config(settings: AblationSettings, variant: str, seed: int) -> TrainConfig:
    spec = VARIANTS[variant]
    stage2 = settings.steps if spec["mode"] == "lupi" else settings.single_stage_steps()
    return TrainConfig(
        out_dir=settings.out / f"{variant}-seed{seed}", preset=settings.preset, **spec,
        stage1_steps=settings.steps if spec["mode"] == "lupi" else 0, stage2_steps=stage2,
        batch_size=settings.batch_size, lr=settings.lr, warmup_steps=settings.warmup_steps, seed=seed,
        device=settings.device, precision=settings.precision, progress=settings.progress)


def train_and_score(settings: AblationSettings, variant: str, seed: int, make_dataset: Callable[[int], object],
                    data_dir: str | Path) -> dict:
    """Train one run (resuming) and score its student; a cached score of the same weights is reused."""
    from . import probe
    from .evaluate import EVAL_TILE, evaluate_benchmark
    from .hardware import autocast_dtype, resolve_device
    from .images import bundled_images
    from .pipeline import load_pretrained

    cfg = _train_config(settings, variant, seed)
    student = Trainer(cfg, make_dataset(seed)).run()["student"]  # a finished run returns at once
    stat = student.stat()
    key = {"benchmark": settings.benchmark, "limit": settings.limit, "data": str(data_dir),
           "weights": [stat.st_size, stat.st_mtime_ns], "probed": True,
           "restorer_dtype": str(autocast_dtype(settings.precision, resolve_device(settings.device)))}
    cache = cfg.out_dir / f"score-{settings.benchmark}-limit{settings.limit or 'all'}.json"
    if cache.is_file():
        cached = json.loads(cache.read_text())
        if cached["key"] == key:
            return cached["score"]
    pipeline = load_pretrained(student, device=resolve_device(settings.device), tile=EVAL_TILE,
                               precision=settings.precision)
    results = evaluate_benchmark(pipeline, data_dir, settings.benchmark, settings.limit, progress=settings.progress,
                                 references=False)
    model_row = next(row for row in results["rows"] if row["key"] == "model")
    score = {"variant": variant, "seed": seed, **model_row["average"], "columns": model_row["scores"]}
    if pipeline.has_prior:
        probed = probe.probe(pipeline, bundled_images(size=probe.PROBE_SIZE), seed)
        score["probe"] = {"steer_db": probed["steer"]["steer_db"]["average"],
                          "kinds_1nn": probed["kinds"]["loo_1nn_accuracy"]}
    cache.write_text(json.dumps({"key": key, "score": score}, indent=1))
    return score


def _mean_std(values: list[float], digits: int) -> str:
    if len(values) < 2:
        return f"{values[0]:.{digits}f}"
    return f"{np.mean(values):.{digits}f} ± {np.std(values, ddof=1):.{digits}f}"


def table_markdown(table: str, scores: dict[str, list[dict]], settings: AblationSettings) -> str:
    """One ablation table: mean ± sample std over seeds, the per-seed values, the paper's numbers."""
    title, heads, rows = TABLES[table]
    header = [*heads, "PSNR ↑", "SSIM ↑", "steer (dB) ↑", "kinds 1-NN ↑", "per seed (PSNR / SSIM)",
              "published PSNR / SSIM"]
    body = []
    for variant, cells in rows:
        runs = scores[variant]
        per_seed = ", ".join(f"seed {r['seed']}: {r['psnr']:.2f} / {r['ssim']:.3f}" for r in runs)
        probed = [r["probe"] for r in runs if "probe" in r]
        probe_cells = ([_mean_std([p["steer_db"] for p in probed], 2), _mean_std([p["kinds_1nn"] for p in probed], 2)]
                       if probed else ["—", "—"])
        published = f"{ABLATION[variant][0]:.2f} / {ABLATION[variant][1]:.3f}" if variant in ABLATION else "—"
        body.append([*cells, _mean_std([r["psnr"] for r in runs], 2), _mean_std([r["ssim"] for r in runs], 3),
                     *probe_cells, per_seed, published])
    lines = [f"# {title} (measured here)", "", markdown_table(header, body)]
    s = settings
    budget = (f"LUPI: {s.steps} Stage-1 + {s.steps} Stage-2 steps; single-stage rows: {s.single_stage_steps()} "
              f"steps ({s.budget}: " + ("the same total number of optimizer steps as LUPI)" if s.budget == "equal-total"
                                        else "as long as LUPI's Stage 2 alone)"))
    lines += [
        "",
        f"PSNR/SSIM: average over the {s.benchmark} benchmark's columns (`lupi_core.evaluate`), "
        f"mean ± sample standard deviation over {len(s.seeds)} seed(s). Steer and kinds 1-NN: `python -m "
        f"lupi_core probe` on the bundled photographs (PSNR with the own prior minus another kind's mean prior; "
        f"leave-one-out kind accuracy of d_S, chance 0.20). The published column is the paper's "
        f"table (full-length training of the paper model on the 3-task benchmark with SOTS-outdoor), not measured "
        f"here; compare the ordering of the rows, not the values. The steer objective is ours (no published row); "
        f"its wrong-prior term runs R on a doubled batch, so its steps cost about 1.7x as much on a CPU.",
        "",
        "## Settings",
        "",
        f"- preset: `{s.preset}`",
        f"- steps: {budget}",
        f"- batch size {s.batch_size}, peak learning rate {s.lr:g} after {s.warmup_steps} warm-up steps, "
        f"device {s.device}",
        f"- training data: {s.training_data}",
        f"- evaluation: {s.benchmark} on {s.data}" + (f", first {s.limit} image(s) per column" if s.limit else ""),
        f"- seeds: {', '.join(map(str, s.seeds))}",
        f"- runs: {s.out}/<variant>-seed<k>/",
        f"- command: `{s.command}`" if s.command else "- command: (library call)",
    ]
    return "\n".join(lines) + "\n"


def run_ablation(settings: AblationSettings, make_dataset: Callable[[int], object], data_dir: str | Path) -> dict:
    """Train and score every run the chosen tables need, then write tableN.md and ablation.json into `out`."""
    settings.out.mkdir(parents=True, exist_ok=True)
    scores = {variant: [train_and_score(settings, variant, seed, make_dataset, data_dir) for seed in settings.seeds]
              for variant in settings.variants()}
    written = {}
    for table in settings.tables:
        path = settings.out / f"table{table}.md"
        path.write_text(table_markdown(table, scores, settings))
        written[table] = str(path)
    summary = {"settings": {**asdict(settings), "out": str(settings.out)}, "scores": scores, "tables": written}
    (settings.out / "ablation.json").write_text(json.dumps(summary, indent=1))
    return summary


_NOT_FLAGS = ("seeds", "tables", "data", "training_data", "device", "precision", "progress", "command")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, required=True,
                        help="data root: its test/ tree is scored, and the recipe's paths are relative to it")
    parser.add_argument("--recipe", type=Path, default=None,
                        help="training mixture (default: DATA/train/recipes/lupi-small.toml, else train/recipes/)")
    parser.add_argument("--clean-folder", type=Path, default=None,
                        help="train on Gaussian noise over this folder of clean images instead of a recipe")
    parser.add_argument("--patch-size", type=int, default=None, help="override the recipe's patch size")
    add_dataclass_arguments(parser, AblationSettings, skip=_NOT_FLAGS)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="one run of every row per seed")
    parser.add_argument("--tables", nargs="+", choices=tuple(TABLES), default=["3", "4"])


def _recipe_path(args: argparse.Namespace) -> Path:
    if args.recipe is not None:
        return args.recipe
    for candidate in (args.data / "train" / "recipes" / "lupi-small.toml",
                      Path(__file__).resolve().parent.parent / "train" / "recipes" / "lupi-small.toml"):
        if candidate.is_file():
            return candidate
    raise SystemExit(f"no recipe: pass --recipe F or --clean-folder DIR (looked for {args.data}/train/recipes/"
                     f"lupi-small.toml and the repository's train/recipes/lupi-small.toml)")


def run(args: argparse.Namespace) -> int:
    from .data import noisy_folder
    from .hardware import resolve_device
    from .recipes import load_recipe

    if args.clean_folder is not None:
        patch = args.patch_size or 64
        make_dataset = lambda seed: noisy_folder(args.clean_folder, patch_size=patch, seed=seed)  # noqa: E731
        described = f"Gaussian noise (sigma 0-50) on {args.clean_folder}, {patch}-px patches"
    else:
        recipe = _recipe_path(args)
        make_dataset = lambda seed: load_recipe(recipe, args.data, seed=seed, patch_size=args.patch_size)  # noqa: E731
        described = f"recipe {recipe} (paths under {args.data})" + (
            f", {args.patch_size}-px patches" if args.patch_size else "")
    settings = dataclass_from_arguments(
        AblationSettings, args, seeds=tuple(args.seeds), tables=tuple(args.tables), data=str(args.data),
        training_data=described, device=resolve_device(args.device).type,
        command="python -m lupi_core " + shlex.join(sys.argv[1:]) if sys.argv[1:2] == ["ablate"] else "")
    summary = run_ablation(settings, make_dataset, args.data)
    for path in summary["tables"].values():
        print(Path(path).read_text())
    return 0
