"""Score a model on the paper's 3-task (Table 1) and 5-task (Table 2) benchmarks.

`python -m lupi_core evaluate --data DIR --benchmark 3task|5task [--checkpoint F]`

DIR is laid out like the project's benchmark data folder (its `test/` tree). The
model's row is measured beside two reference rows on the very same images: the
degraded input itself and a classical method per task (`lupi_core.classical`).
The paper's published rows are printed with them, marked as not measured here.

Conventions (the all-in-one papers'): RGB in [0, 1], the network output from
`Pipeline.restore_float` (clamped, not quantised), `lupi_core.metrics` PSNR and
SSIM (7x7 uniform window). Synthetic inputs are a fixed function of the image
index: noise for image i uses seed i; blur for image i uses kernel seed 1000 + i.
A column's score is the mean over its images; "Average" is the mean of the
columns, as in the paper.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .cli import write_results
from .images import list_images, load_image, save_png
from .markdown import markdown_table
from .paper import RESTORATION, RESTORATION_DATASETS

# scipy and scikit-image (degrade, metrics, classical) load inside the functions: the CLI
# imports this module to build its parser for every command.

# The synthetic deblurring column: camera shake at degrade's blur level 0.5 (mid-range
# severity), a different kernel per image.
BLUR_LEVEL = 0.5
BLUR_SEED = 1000
# Tile side for evaluation: every benchmark image (at most 620x460) runs whole, as the papers test.
EVAL_TILE = 1024


@dataclass(frozen=True)
class Column:
    """One benchmark column: where its images are and which degradation it is."""

    key: str
    title: str
    dataset: str
    kind: str  # the degradation kind, which picks the classical method
    folder: str  # under DIR/test
    sigma: int | None = None  # noise columns: synthesized at test time


COLUMNS = {
    "dehaze": Column("dehaze", "Dehazing", "SOTS-indoor", "haze", "dehaze/SOTS-indoor"),
    "derain": Column("derain", "Deraining", "Rain100L", "rain", "derain/Rain100L"),
    "noise15": Column("noise15", "Denoising", "CBSD68 σ=15", "noise", "denoise/CBSD68", 15),
    "noise25": Column("noise25", "Denoising", "CBSD68 σ=25", "noise", "denoise/CBSD68", 25),
    "noise50": Column("noise50", "Denoising", "CBSD68 σ=50", "noise", "denoise/CBSD68", 50),
    "deblur": Column("deblur", "Deblurring", "CBSD68 synthetic shake", "blur", "denoise/CBSD68"),
    "lowlight": Column("lowlight", "Low-Light", "LOL-eval15", "lowlight", "lowlight/LOL-eval15"),
}
BENCHMARKS = {
    "3task": ("dehaze", "derain", "noise15", "noise25", "noise50"),
    "5task": ("dehaze", "derain", "noise25", "deblur", "lowlight"),
}
TABLE_OF = {"3task": "Table 1", "5task": "Table 2"}
REAL_PAIRS = "deblur/real-pairs"

# References first, ours last, as in the paper; the blind row only where it differs (a non-blind method).
MEASURED = ("input", "classical", "classical_blind", "model")


def benchmark_notes(benchmark: str, limit: int | None = None) -> list[str]:
    """What a reader must know before comparing a column with the published numbers."""
    from .degrade import level_parameters

    blur = ", ".join(f"{name} {value:g} px" for name, value in level_parameters("blur", BLUR_LEVEL).items())
    notes = {
        "dehaze": "Dehazing is scored on SOTS-indoor (test scenes 1425-1449, haze levels 1/5/10); the published "
                  "rows are on SOTS-outdoor, so that column is not directly comparable.",
        "derain": "All 100 Rain100L clean backgrounds are BSDS500 photos (25 of them in CBSD68): a model trained "
                  "on BSD400 has seen them clean. The published protocol has the same overlap.",
        "noise": "Denoising: CBSD68 plus Gaussian noise, clip(uint8 + N(0, σ²), 0, 255) truncated to uint8, "
                 "image i drawn with seed i.",
        "deblur": f"Deblurring is synthetic: CBSD68 blurred with camera-shake kernels ({blur}, kernel seed "
                  f"{BLUR_SEED} + i); the published rows are on GoPro, so that column is not comparable. The "
                  f"classical row's deblurring is non-blind (it is given the true kernel); the blind row's is not.",
        "lowlight": "Low-light: LOL-v1 eval15.",
    }
    kinds = {COLUMNS[key].kind for key in BENCHMARKS[benchmark]}
    chosen = [text for key, text in notes.items() if key in kinds or key in BENCHMARKS[benchmark]]
    if limit:
        chosen.insert(0, f"Quick run: only the first {limit} image(s) of each column (sorted by name).")
    return chosen


@dataclass
class Sample:
    """A (degraded, clean) pair; `side` is what a non-blind classical method is given (blur: kernel)."""

    name: str
    degraded: np.ndarray
    clean: np.ndarray
    side: dict = field(default_factory=dict)


def _test_folder(data_dir: Path, column: Column) -> Path:
    folder = Path(data_dir) / "test" / column.folder
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: not found; --data must be laid out like the benchmark data folder "
                                f"(test/dehaze/SOTS-indoor, test/derain/Rain100L, test/denoise/CBSD68, ...)")
    return folder


def column_files(data_dir: Path, column: Column, limit: int | None = None) -> list[tuple[Path | None, Path]]:
    """(input, target) files of a column, sorted by name; synthetic columns have no input file."""
    folder = _test_folder(data_dir, column)
    if column.kind in ("noise", "blur"):
        pairs = [(None, path) for path in list_images(folder)]
    else:
        from .data import pair_folders  # same-name and SOTS <scene>_<level> -> <scene> pairing

        pairs = sorted(pair_folders(folder / "input", folder / "target"))
    return pairs[:limit] if limit else pairs


def load_sample(column: Column, index: int, input_path: Path | None, target_path: Path) -> Sample:
    """A column's image `index`: read, or synthesized from the clean image with a fixed seed."""
    from .degrade import add_gaussian_noise, degrade

    clean = load_image(target_path)
    if column.kind == "noise":
        return Sample(target_path.name, add_gaussian_noise(clean, column.sigma, seed=index), clean)
    if column.kind == "blur":
        blurred, info = degrade(clean, "blur", level=BLUR_LEVEL, seed=BLUR_SEED + index, return_info=True)
        return Sample(target_path.name, blurred, clean, {"kernel": info["kernel"]})
    degraded = load_image(input_path)
    if degraded.shape != clean.shape:
        raise ValueError(f"{input_path} {degraded.shape} and {target_path} {clean.shape} differ in size")
    return Sample(input_path.name, degraded, clean)


def reference_rows(columns: Sequence[Column]) -> tuple[str, ...]:
    """The rows measured beside a model: the input, the classical method, and the blind classical
    method where one of `columns` has a non-blind classical method."""
    from . import classical

    needs_blind = any(classical.BLIND_METHODS[c.kind] != classical.METHODS[c.kind] for c in columns)
    return tuple(m for m in MEASURED if m != "model" and (m != "classical_blind" or needs_blind))


def restore_reference(row: str, column: Column, sample: Sample) -> np.ndarray:
    """A reference row's output for a sample: the input itself, or a classical restoration."""
    from . import classical

    if row == "input":
        return sample.degraded
    return classical.restore(column.kind, sample.degraded, blind=row == "classical_blind", **sample.side)


def model_label(pipeline) -> str:
    preset = pipeline.cfg.preset_name() or "custom"
    return f"Ours, LUPI student ({preset})" if pipeline.has_prior else f"Ours, backbone only ({preset})"


def evaluate_benchmark(pipeline, data_dir: str | Path, benchmark: str, limit: int | None = None,
                       progress: bool = True, references: bool = True, only: Sequence[str] | None = None,
                       teacher: bool = False) -> dict:
    """Score `pipeline` (and, with `references`, the input and the classical methods) on a benchmark,
    or on the columns of it named in `only` (averages are then over those columns). With `teacher`,
    also the pipeline's teacher, R_T(I_d, d_T): it sees the clean image, so it is a diagnosis of
    Stage 1, not a method.

    Returns a JSON-ready dict: columns, measured rows (mean PSNR/SSIM per column and average),
    the published rows, notes and every per-image score.
    """
    from tqdm import tqdm

    from . import classical
    from .metrics import psnr, ssim

    if benchmark not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {benchmark!r}; choose from {', '.join(BENCHMARKS)}")
    unknown = sorted(set(only or ()) - set(BENCHMARKS[benchmark]))
    if unknown:
        raise ValueError(f"{benchmark} has no column {', '.join(unknown)}; its columns are {', '.join(BENCHMARKS[benchmark])}")
    columns = [COLUMNS[key] for key in BENCHMARKS[benchmark] if not only or key in only]
    files = {c.key: column_files(Path(data_dir), c, limit) for c in columns}
    methods = (*reference_rows(columns), "model") if references else ("model",)
    if teacher:
        if pipeline.teacher is None:
            raise ValueError("scoring the teacher needs its weights: --teacher FILE")
        methods += ("teacher",)
    per_image: list[dict] = []
    bar = tqdm(total=sum(len(f) for f in files.values()), desc=f"evaluate {benchmark}", unit="image",
               disable=not progress, dynamic_ncols=True)
    for column in columns:
        bar.set_postfix_str(column.key)
        for index, (input_path, target_path) in enumerate(files[column.key]):
            sample = load_sample(column, index, input_path, target_path)
            outputs = {"model": lambda: pipeline.restore_float(sample.degraded),
                       "teacher": lambda: pipeline.restore_float(
                           sample.degraded, prior=pipeline.privileged_prior(sample.degraded, sample.clean),
                           with_teacher=True)}
            for method in methods:
                restored = (outputs[method]() if method in outputs
                            else restore_reference(method, column, sample))
                per_image.append({"task": column.key, "image": sample.name, "method": method,
                                  "psnr": psnr(restored, sample.clean), "ssim": ssim(restored, sample.clean)})
            bar.update(1)
    bar.close()

    labels = {"model": model_label(pipeline), "input": "Input (degraded)", "classical": "Classical (per task)",
              "classical_blind": "Classical, blind (given only the image)",
              "teacher": "LUPI teacher R_T(I_d, d_T), sees the clean image"}
    rows = []
    for method in methods:
        scores = {}
        for column in columns:
            mine = [r for r in per_image if r["method"] == method and r["task"] == column.key]
            scores[column.key] = {m: float(np.mean([r[m] for r in mine])) for m in ("psnr", "ssim")}
        average = {m: float(np.mean([s[m] for s in scores.values()])) for m in ("psnr", "ssim")}
        rows.append({"key": method, "method": labels[method], "scores": scores, "average": average})
    chosen = {c.key for c in columns}
    published = []
    for name, values in RESTORATION[benchmark].items():
        scores = {key: {"psnr": p, "ssim": s} for key, (p, s) in zip(BENCHMARKS[benchmark], values) if key in chosen}
        average = ({"psnr": values[-1][0], "ssim": values[-1][1]} if len(columns) == len(BENCHMARKS[benchmark])
                   else {m: float(np.mean([v[m] for v in scores.values()])) for m in ("psnr", "ssim")})
        published.append({"method": name, "scores": scores, "average": average})
    return {
        "benchmark": benchmark, "table": TABLE_OF[benchmark], "data": str(data_dir), "limit": limit,
        "model": {"label": labels["model"], "config": json.loads(pipeline.cfg.to_json())},
        "columns": [{"key": c.key, "title": c.title, "dataset": c.dataset,
                     "published_dataset": RESTORATION_DATASETS.get(c.key, c.dataset.replace("CBSD68", "BSD68")),
                     "images": len(files[c.key])} for c in columns],
        "classical_methods": {c.key: classical.METHODS[c.kind][0] for c in columns} if references else {},
        "classical_blind_methods": {c.key: classical.BLIND_METHODS[c.kind][0] for c in columns} if references else {},
        "rows": rows, "published": published, "notes": benchmark_notes(benchmark, limit), "per_image": per_image,
    }


def _cell(score: dict) -> str:
    return f"{score['psnr']:.2f} / {score['ssim']:.3f}"


def results_to_markdown(results: dict) -> str:
    """The paper's table layout, PSNR / SSIM per column: measured rows, then the published ones."""
    columns = results["columns"]
    header = ["Method"] + [f"{c['title']}<br>{c['dataset']} ({c['images']})" for c in columns] + ["Average"]
    blank = [""] * (len(columns) + 1)

    def row_cells(row: dict) -> list[str]:
        return [row["method"]] + [_cell(row["scores"][c["key"]]) for c in columns] + [_cell(row["average"])]

    published_sets = " / ".join(c["published_dataset"] for c in columns)
    table = markdown_table(header, [
        ["*measured here, same images*", *blank], *map(row_cells, results["rows"]),
        [f"*published ({results['table']}), not measured here: {published_sets}*", *blank],
        *map(row_cells, results["published"])])
    text = [f"**{results['table']} layout ({results['benchmark']}), PSNR / SSIM**", "", table, ""]
    if results["classical_methods"]:
        datasets_of: dict[str, list[str]] = {}  # method -> its columns, so a method used thrice is named once
        for c in columns:
            datasets_of.setdefault(results["classical_methods"][c["key"]], []).append(c["dataset"])
        text.append("Classical row: " + "; ".join(f"{', '.join(sets)}: {method}"
                                                  for method, sets in datasets_of.items()) + ".")
        blind_methods = results.get("classical_blind_methods", results["classical_methods"])
        blind = {c["dataset"]: blind_methods[c["key"]] for c in columns
                 if blind_methods[c["key"]] != results["classical_methods"][c["key"]]}
        if blind:
            text.append("Blind row: as the classical row, except " + "; ".join(
                f"{dataset}: {method}" for dataset, method in blind.items()) + ".")
    text += [f"- {note}" for note in results["notes"]]
    return "\n".join(text) + "\n"


def write_csv(results: dict, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["task", "image", "method", "psnr", "ssim"])
        writer.writeheader()
        writer.writerows(results["per_image"])
    return path


def restore_real_pairs(pipeline, data_dir: str | Path, out_dir: str | Path) -> list[Path]:
    """Restore the real camera-shake photos (too few to score) to PNGs for looking at."""
    folder = Path(data_dir) / "test" / REAL_PAIRS / "input"
    if not folder.is_dir():
        return []
    return [save_png(pipeline.restore(load_image(path)), Path(out_dir) / f"{path.stem}_restored.png")
            for path in list_images(folder)]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, required=True, help="folder with the benchmark test/ tree")
    parser.add_argument("--benchmark", choices=tuple(BENCHMARKS), default="3task")
    parser.add_argument("--out", type=Path, default=None,
                        help="results JSON; the table (.md) and the restored real blur photos go beside it")
    parser.add_argument("--csv", type=Path, default=None, help="per-image scores (task, image, method, psnr, ssim)")
    parser.add_argument("--limit", type=int, default=None, help="first N images per column, for quick runs")
    parser.add_argument("--columns", type=lambda text: text.split(","), default=None, metavar="KEY,...",
                        help="score these columns of the benchmark only (3task: dehaze, derain, noise15, noise25, "
                             "noise50; 5task: dehaze, derain, noise25, deblur, lowlight)")
    parser.add_argument("--references", action=argparse.BooleanOptionalAction, default=True,
                        help="score the input and the classical methods too (--no-references: the model only)")
    parser.add_argument("--teacher", type=Path, default=None,
                        help="also score this teacher's R_T given its d_T (privileged: a diagnosis of Stage 1)")
    parser.add_argument("--tile", type=int, default=EVAL_TILE,
                        help="tile size (multiple of 8); the default runs every benchmark image whole")


def run(args: argparse.Namespace) -> int:
    from .pipeline import load_pretrained

    pipeline = load_pretrained(args.checkpoint, teacher=args.teacher, device=args.device, tile=args.tile,
                               precision=args.precision)
    try:
        results = evaluate_benchmark(pipeline, args.data, args.benchmark, args.limit, progress=args.progress,
                                     references=args.references, only=args.columns,
                                     teacher=args.teacher is not None)
    except (FileNotFoundError, ValueError) as error:  # a missing folder or an unpaired image
        print(f"error: {error}", file=sys.stderr)
        return 2
    results["checkpoint"] = str(args.checkpoint or "shipped model")
    table = results_to_markdown(results)
    print(table)
    if args.csv:
        print(f"per-image scores: {write_csv(results, args.csv)}")
    if args.out:
        write_results(args.out, results)
        args.out.with_suffix(".md").write_text(table)
        print(f"table: {args.out.with_suffix('.md')}")
        for path in restore_real_pairs(pipeline, args.data, args.out.parent / "real-pairs"):
            print(f"real blur photo restored (not scored): {path}")
    return 0
