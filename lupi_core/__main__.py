"""The command line: `python -m lupi_core COMMAND --help` (installed: `lupi COMMAND`).

Every command is an `add_arguments(parser)` / `run(args)` pair: restore, info, train and
export here, the others in the module that does the work. All take the run-time flags
of `cli.runtime_flags`; the ones that load a trained student take --checkpoint.
Nothing is parsed at import time.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from .cli import RUNTIME_FLAGS, apply_runtime, checkpoint_flag, runtime_flags
from .config import PRESETS

# name: (module holding add_arguments/run, help, loads a trained student)
MODULE_COMMANDS = {
    "evaluate": ("lupi_core.evaluate", "score a model on the paper's 3-task / 5-task tables", True),
    "bench": ("lupi_core.bench", "the paper's Table 5: parameters, GMAC, memory, latency", True),
    "ablate": ("lupi_core.ablate", "train and score the Table 3 and Table 4 variants", False),
    "atlas": ("lupi_core.atlas", "build the prior atlas the app shows", True),
    "probe": ("lupi_core.probe", "does the prior carry the degradation and steer the restorer? "
                                 "(steer, severity, kinds, alignment)", True),
    "diagnose": ("lupi_core.diagnose", "how well d_S stands in for d_T on a run's held-out patches", False),
    "examples": ("lupi_core.examples", "regenerate the app's example images in assets/examples/", False),
    "pack": ("lupi_core.pack", "copy a size-capped subset of a recipe's training data (for the GPU machine)", False),
}


def strength_value(text: str) -> float:
    """--strength: a number from 0 to 1."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r}: give a strength from 0 (the input) to 1 (the full restoration)")
    return value


def add_restore_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", type=Path, help="image files or folders of images")
    parser.add_argument("--out", type=Path, required=True, help="folder for the restored PNGs")
    parser.add_argument("--strength", type=strength_value, default=1.0,
                        help="blend with the input: 0 writes the input, 1 (default) the full restoration")
    parser.add_argument("--force", action=argparse.BooleanOptionalAction, default=False,
                        help="restore images the prior reads as clean too (by default they are written unchanged)")
    parser.add_argument("--tile", type=int, default=512,
                        help="tile side for large images (multiple of 8); tiles share the whole image's statistics")
    parser.add_argument("--tile-refine", type=int, default=2,
                        help="full-resolution passes that refine the shared statistics before the output pass "
                             "(each costs one more pass over the tiles; 0: a downscaled guide pass only)")


def run_restore(args: argparse.Namespace) -> int:
    import time

    from tqdm import tqdm

    from .images import ImageError, list_images, load_image, quantize, save_png
    from .pipeline import load_pretrained

    files: list[Path] = []
    for item in args.inputs:
        files += list_images(item) if item.is_dir() else [item]
    if not files:
        print("no images found in the given inputs", file=sys.stderr)
        return 2
    pipeline = load_pretrained(args.checkpoint, device=args.device, tile=args.tile, tile_refine=args.tile_refine,
                               precision=args.precision)
    failures = 0
    for path in tqdm(files, desc="restoring", unit="image", disable=not args.progress):
        try:
            image = load_image(path)
        except ImageError as error:
            tqdm.write(f"skipped: {error}")
            failures += 1
            continue
        started, tiles = time.perf_counter(), None

        def progress(done: int, total: int) -> None:
            nonlocal tiles
            if total == 1:
                return
            if tiles is None:
                estimate = (time.perf_counter() - started) * total
                tqdm.write(f"{path.name}: {image.shape[1]} x {image.shape[0]}, {total} tile passes, "
                           f"about {estimate:.0f} s")
                tiles = tqdm(total=total, desc=path.name, unit="tile", leave=False, disable=not args.progress)
            tiles.update(done - tiles.n)

        result = pipeline.restoration(image, strength=args.strength, force=args.force, progress=progress)
        if tiles is not None:
            tiles.close()
        if result.left_as_is:
            tqdm.write(f"{path.name}: {result.message} (--force)")
        save_png(quantize(result.image), args.out / f"{path.stem}.png")
    print(f"wrote {len(files) - failures} image(s) to {args.out}")
    return 1 if failures else 0


def add_info_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", default="paper", choices=sorted(PRESETS), help="model size")
    parser.add_argument("--size", type=int, default=256, help="input side for GMAC (3 x size x size)")


def run_info(args: argparse.Namespace) -> int:
    from .complexity import complexity_report
    from .config import ModelConfig
    from .paper import COST

    report = complexity_report(ModelConfig.preset(args.preset), args.size)
    print(f"preset {args.preset!r}, GMAC at 1x3x{args.size}x{args.size}\n")
    print(f"{'model':<30}{'parameters':>14}{'GMAC':>10}")
    for name, row in report.items():
        print(f"{name:<30}{row['params']:>14,}{row['gmac']:>10.2f}")
    print("\npublished (paper, Table 5), for comparison:")
    for name, row in (("Restormer", COST["Restormer"]), ("LUPI (D_S + R_S)", COST["LUPI (paper)"])):
        print(f"{name:<30}{row['params'] / 1e6:>13.2f}M{row['gmac']:>10.2f}")
    return 0


def parse_task_weight(text: str) -> tuple[str, float]:
    """NAME=W from the command line, for --task-weight (W = 0 leaves the task out)."""
    name, sep, value = text.partition("=")
    try:
        weight = float(value)
    except ValueError:
        weight = float("nan")
    if not sep or not name or not weight >= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: write NAME=W with a recipe task's name and a weight >= 0 "
                                         "(0 leaves the task out)")
    return name, weight


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    from .settings import add_dataclass_arguments
    from .trainer import TrainConfig

    data = parser.add_argument_group("data (a recipe, or a folder of clean images to add noise to)")
    data.add_argument("--recipe", type=Path, help="a task-mixture TOML (see train/recipes/)")
    data.add_argument("--data", type=Path, help="root folder the recipe's paths are relative to")
    data.add_argument("--clean-folder", type=Path, help="train denoising on a folder of clean images")
    data.add_argument("--patch-size", type=int, default=None,
                      help="override the recipe's patch size (default with --patch-schedule: its largest size)")
    data.add_argument("--task-weight", action="append", default=[], metavar="NAME=W", type=parse_task_weight,
                      help="override one recipe task's sampling weight (repeatable; 0 leaves the task out)")
    data.add_argument("--final-recipe", type=Path,
                      help="the mixture of Stage 2's last --final-share of steps (default: --recipe)")
    data.add_argument("--final-task-weight", action="append", default=[], metavar="NAME=W", type=parse_task_weight,
                      help="override one final-recipe task's sampling weight (repeatable; --task-weight "
                           "sets the main mixture's alone)")
    data.add_argument("--val-images", type=int, default=8,
                      help="patches, outside the training draws, scored for validation PSNR (0: none)")
    add_dataclass_arguments(parser.add_argument_group("the run (lupi_core.trainer.TrainConfig)"), TrainConfig,
                            skip=RUNTIME_FLAGS)


def run_train(args: argparse.Namespace) -> int:
    from .data import noisy_folder
    from .recipes import load_recipe
    from .settings import dataclass_from_arguments
    from .trainer import TrainConfig, Trainer, validation_patches

    cfg = dataclass_from_arguments(TrainConfig, args)
    if args.patch_size and args.patch_size < cfg.prior_context:
        raise SystemExit(f"--patch-size {args.patch_size} loads crops smaller than --prior-context "
                         f"{cfg.prior_context}; leave --patch-size out, or make it at least the context")
    # a patch schedule crops the data's patches, so they are loaded at its largest size or the prior's context
    patch_size = args.patch_size or (max(cfg.patch_phases()[-1][0], cfg.prior_context) if cfg.patch_schedule else None)
    final_dataset = None
    if (args.final_recipe or args.final_task_weight) and not cfg.final_share:
        raise SystemExit("--final-recipe and --final-task-weight set the mixture of Stage 2's last steps; "
                         "say how many with --final-share F")
    if args.recipe:
        if args.data is None:
            raise SystemExit("--recipe needs --data DIR, the folder its paths are relative to")
        dataset = load_recipe(args.recipe, args.data, seed=args.seed, patch_size=patch_size,
                              task_weights=dict(args.task_weight))
        source = {"recipe": str(args.recipe), "data": str(args.data), "patch_size": dataset.datasets[0].patch_size,
                  "task_weights": dict(zip(dataset.names, dataset.weights))}
        if cfg.final_share:
            final_recipe = args.final_recipe or args.recipe
            final_dataset = load_recipe(final_recipe, args.data, seed=args.seed, patch_size=patch_size,
                                        task_weights=dict(args.final_task_weight))
            source["final"] = {"recipe": str(final_recipe), "share_of_stage2": cfg.final_share,
                               "task_weights": dict(zip(final_dataset.names, final_dataset.weights))}
    elif cfg.final_share:
        raise SystemExit("--final-share switches between two recipes' mixtures; give --recipe F --data DIR")
    elif args.task_weight:
        raise SystemExit("--task-weight reweights a recipe's tasks; give --recipe F --data DIR")
    elif args.clean_folder:
        dataset = noisy_folder(args.clean_folder, patch_size=patch_size or 64, seed=args.seed)
        source = {"clean_folder": str(args.clean_folder), "patch_size": dataset.patch_size}
    else:
        raise SystemExit("give the training data: --recipe F --data DIR, or --clean-folder DIR")
    val = validation_patches(dataset, args.val_images)
    for name, path in Trainer(cfg, dataset, val, data_source=source, final_dataset=final_dataset).run().items():
        print(f"{name}: {path}")
    return 0


def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", type=Path, help="a training run folder (holds student.safetensors, teacher.safetensors)")
    parser.add_argument("--out", type=Path, default=Path("assets"), help="where the shipped files go")
    parser.add_argument("--name", default="lupi-small", help="file prefix: NAME-student / NAME-teacher")
    parser.add_argument("--half", action=argparse.BooleanOptionalAction, default=True,
                        help="store fp16 when it changes the restoration by less than --max-change")
    parser.add_argument("--max-change", type=float, default=0.5 / 255, help="largest allowed output change")


def run_export(args: argparse.Namespace) -> int:
    from .weights import export_weights, exported_name

    for kind in ("student", "teacher"):
        source = args.run_dir / f"{kind}.safetensors"
        if kind == "teacher" and not source.is_file():
            continue
        target, change = export_weights(source, args.out / exported_name(args.name, kind), args.half,
                                        args.max_change)
        print(f"{kind}: {target} (largest output change from fp32: {change * 255:.3f} / 255)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lupi_core", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    runtime, checkpoint = runtime_flags(), checkpoint_flag()
    local = {
        "restore": (add_restore_arguments, run_restore, "restore files or folders of images to PNGs", True),
        "info": (add_info_arguments, run_info, "parameter counts and GMAC of a preset", False),
        "train": (add_train_arguments, run_train, "train a model (two-stage LUPI or an ablation mode)", False),
        "export": (add_export_arguments, run_export, "copy a run's weights into assets/, fp16 where lossless", False),
    }
    for name, (module_name, help_text, loads_student) in MODULE_COMMANDS.items():
        module = importlib.import_module(module_name)
        local[name] = (module.add_arguments, module.run, help_text, loads_student)
    for name, (add_arguments, run, help_text, loads_student) in local.items():
        parents = [runtime, checkpoint] if loads_student else [runtime]
        sub = commands.add_parser(name, help=help_text, description=help_text, parents=parents)
        add_arguments(sub)
        sub.set_defaults(run=run)
    return parser


def main(argv: list[str] | None = None) -> int:
    from .images import ImageError
    from .weights import WeightsError

    args = build_parser().parse_args(argv)
    try:
        apply_runtime(args)
        return args.run(args)
    except (ImageError, WeightsError, ValueError) as error:  # bad input or settings: the message says what
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
