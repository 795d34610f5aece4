"""What every command of `python -m lupi_core` and the app share: the run-time flags.

Every command takes --threads, --device, --precision and --progress with the same
defaults; the commands that load a trained student take --checkpoint too. `apply_runtime` acts on
them once, before the command runs.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

RUNTIME_FLAGS = ("threads", "device", "precision", "progress")  # dests; config fields of these names come from here


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number of 1 or more")
    return value


def runtime_flags() -> argparse.ArgumentParser:
    """A parent parser with the run-time flags; they change how a command runs, and its result by
    no more than bf16's rounding."""
    from .hardware import PRECISIONS

    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("run time (every command)")
    group.add_argument("--threads", type=positive_int, default=None,
                       help="torch CPU threads (default: PyTorch's choice, one per core)")
    group.add_argument("--device", default="auto",
                       help="auto (CUDA when PyTorch sees one, else the CPU), cpu, cuda or cuda:N (default: auto)")
    group.add_argument("--precision", default="auto", choices=PRECISIONS,
                       help="auto: bf16 autocast for the restorer and for training on CUDA and on CPUs with "
                            "AVX512-BF16 or AMX (about 2x faster, within 2/255 of fp32), else fp32 (default: auto)")
    group.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True,
                       help="show progress bars")
    return parent


def checkpoint_flag() -> argparse.ArgumentParser:
    """A parent parser with --checkpoint, for the commands that load a trained student."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--checkpoint", type=Path, default=None,
                        help="student weights file (default: the shipped assets/lupi-small-student.safetensors)")
    return parent


def apply_runtime(args: argparse.Namespace) -> None:
    """Set the thread count and check the device, so a bad --device fails before any work."""
    import torch

    from .hardware import resolve_device

    if args.threads:
        torch.set_num_threads(args.threads)
    resolve_device(args.device)


def write_results(path: Path | None, result: dict) -> None:
    """A command's results as JSON at `path` (folders made as needed); nothing when None."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1))
    print(f"results: {path}")
