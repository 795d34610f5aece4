"""The paper's Table 5 for our models: parameters, GMAC, peak memory, latency, throughput.

`python -m lupi_core bench --preset P --size 256 [--device cpu|cuda]`

Rows: the backbone R alone (Restormer, `build_backbone`), the deployed LUPI
student D_S + R_S (`build_student`), their ratio, and D_S alone (what the app's
live slider runs). The paper's published rows (RTX 4090) are printed with them.
Latency is the median of `runs` timed forward passes after `warmup` untimed ones,
the models taking turns so that load on a shared CPU slows them alike (the paper:
mean of 100). Peak memory includes the weights: on CUDA
`max_memory_allocated`; on CPU the peak resident-set growth of a fresh process
that builds the model and runs one forward pass (torch's CPU allocator is
invisible to tracemalloc). The shipped pipeline's `restore()` of a 512x512 image
and `prior()` of a 256x256 one are timed against the app's targets.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .cli import write_results
from .complexity import gmac
from .config import PRESETS, ModelConfig
from .hardware import keep_freed_memory, resolve_device
from .markdown import markdown_table
from .models import build_backbone, build_student, count_parameters
from .paper import COST
from .prior import DegradationPredictor

ROOT = Path(__file__).resolve().parent.parent
ROW_NAMES = {"backbone": "Backbone R (Restormer)", "student": "LUPI student D_S + R_S",
             "predictor": "D_S alone (live slider)"}
METRICS = ("params", "gmac", "memory_mb", "latency_ms", "throughput_fps")
RESTORE_TARGET_S, PRIOR_TARGET_MS = 2.0, 50.0  # the app's interactive budget on a 2-core CPU


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(fns: dict[str, Callable[[], object]], runs: int, warmup: int,
                   device: torch.device) -> dict[str, float]:
    """Median wall time of each function over `runs` calls after `warmup` untimed ones.

    The functions take turns within every run, so a change in machine load (a shared
    CPU) slows them alike and their ratio stays fair.
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    _sync(device)
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(max(1, runs)):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            _sync(device)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def build_for_bench(name: str, cfg: ModelConfig) -> nn.Module:
    """A freshly initialised row model; timing and memory do not depend on the weight values."""
    if name == "backbone":
        return build_backbone(cfg)
    if name == "student":
        return build_student(cfg)
    return DegradationPredictor(cfg)


# -- peak memory -----------------------------------------------------------------------------
def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def _memory_child(spec_json: str) -> None:
    """Runs in a fresh process: print the RSS growth (MB) of building a model and one forward pass."""
    spec = json.loads(spec_json)
    torch.set_num_threads(spec["threads"])
    cfg = ModelConfig.from_json(spec["config"])
    image = torch.rand(1, 3, spec["size"], spec["size"])
    gc.collect()
    try:  # Linux >= 4.0: reset the high-water mark, so earlier peaks (imports) do not mask ours
        Path("/proc/self/clear_refs").write_text("5")
        method, base = "VmHWM after clear_refs", _status_kb("VmRSS")
    except OSError:
        method, base = "ru_maxrss", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux
    with torch.inference_mode():
        build_for_bench(spec["model"], cfg).eval()(image)
    peak = _status_kb("VmHWM") if method.startswith("VmHWM") else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"memory_mb": (peak - base) / 1024, "method": method}))


def peak_memory_mb(name: str, cfg: ModelConfig, size: int, device: torch.device) -> tuple[float, str]:
    """Peak memory of building `name` and one forward pass at 1x3xSxS, weights included."""
    if device.type == "cuda":
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        start = torch.cuda.memory_allocated(device)
        model = build_for_bench(name, cfg).to(device).eval()
        with torch.inference_mode():
            model(torch.rand(1, 3, size, size, device=device))
        peak = torch.cuda.max_memory_allocated(device) - start
        del model
        return peak / 2**20, "torch.cuda.max_memory_allocated"
    spec = json.dumps({"model": name, "config": cfg.to_json(), "size": size, "threads": torch.get_num_threads()})
    # A fixed glibc mmap threshold returns every freed block over 64 kB to the OS at once, so the RSS
    # peak follows live memory, not the allocator's caches (without it, repeats varied by 10%).
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": str(torch.get_num_threads()), "MALLOC_MMAP_THRESHOLD_": "65536"}
    code = "import sys; from lupi_core.bench import _memory_child; _memory_child(sys.argv[1])"
    done = subprocess.run([sys.executable, "-c", code, spec], env=env, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"the memory-measuring process failed; rerun with --no-memory.\n{done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result["memory_mb"], f"peak RSS growth of a fresh process ({result['method']})"


def _large_restore_child(spec_json: str) -> None:
    """Runs in a fresh process: restore one large photo-like image with the pipeline; print its
    time, tile passes and the process's peak RSS (everything: weights, image, tiles)."""
    from .pipeline import load_pretrained

    spec = json.loads(spec_json)
    torch.set_num_threads(spec["threads"])
    pipeline = load_pretrained(spec["checkpoint"], tile=spec["tile"])
    width, height = spec["width"], spec["height"]
    # a bundled photograph scaled up, plus noise: the content decides nothing but the prior's reading
    from PIL import Image
    from skimage import data as photographs

    from .degrade import add_gaussian_noise
    image = add_gaussian_noise(np.asarray(Image.fromarray(photographs.astronaut()).resize((width, height))), 15, 0)
    passes = []
    start = time.perf_counter()
    pipeline.restore(image, force=True, progress=lambda done, total: passes.append(total))
    seconds = time.perf_counter() - start
    print(json.dumps({"width": width, "height": height, "seconds": seconds, "tile_passes": passes[-1],
                      "tile": pipeline.tile, "peak_rss_mb": _status_kb("VmHWM") / 1024}))


def bench_large_restore(checkpoint: str | Path | None, width: int, height: int, tile: int = 512) -> dict:
    """`restore()` of a width x height image in `tile`-px tiles (one pass when the tile covers it)
    in a fresh process: seconds and peak RSS."""
    spec = json.dumps({"checkpoint": str(checkpoint) if checkpoint else None, "width": width, "height": height,
                       "tile": tile, "threads": torch.get_num_threads()})
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": str(torch.get_num_threads())}
    code = "import sys; from lupi_core.bench import _large_restore_child; _large_restore_child(sys.argv[1])"
    done = subprocess.run([sys.executable, "-c", code, spec], env=env, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"the large-image restore failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def parse_size(text: str) -> tuple[int, int]:
    """WxH from the command line, for --large."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        width = height = 0
    if width < 8 or height < 8:
        raise argparse.ArgumentTypeError(f"{text!r}: write WIDTHxHEIGHT, e.g. 4000x3000")
    return width, height


# -- the benchmark ---------------------------------------------------------------------------
def bench_models(models: dict[str, nn.Module], cfg: ModelConfig, size: int, device: torch.device,
                 runs: int, warmup: int, memory: bool = True) -> dict[str, dict]:
    """One Table 5 row per model: parameters, GMAC, peak memory, latency and throughput at 1x3xSxS."""
    image = torch.rand(1, 3, size, size, device=device)
    models = {name: model.to(device).eval() for name, model in models.items()}
    with torch.inference_mode():
        seconds = median_seconds({name: (lambda m=model: m(image)) for name, model in models.items()},
                                 runs, warmup, device)
    rows = {}
    for name, model in models.items():
        row = {"name": ROW_NAMES[name], "params": count_parameters(model), "gmac": gmac(model, image),
               "latency_ms": seconds[name] * 1e3, "throughput_fps": 1.0 / seconds[name]}
        row["memory_mb"], row["memory_method"] = peak_memory_mb(name, cfg, size, device) if memory else (None, None)
        rows[name] = row
    return rows


def bench_pipeline(checkpoint: str | Path | None, device: str, runs: int, warmup: int,
                   precision: str = "auto") -> dict:
    """Seconds for `restore()` of 512x512 and milliseconds for `prior()` of 256x256, end to end,
    at `precision`; restore() at fp32 too when that precision is bf16, for the comparison."""
    from .pipeline import load_pretrained
    from .weights import WeightsError

    try:
        pipeline = load_pretrained(checkpoint, device=device, precision=precision)
        reference = load_pretrained(checkpoint, device=device, precision="fp32") if pipeline.restorer_dtype else None
    except WeightsError as error:
        return {"skipped": str(error)}
    rng = np.random.default_rng(0)
    big, small = rng.integers(0, 256, (512, 512, 3), np.uint8), rng.integers(0, 256, (256, 256, 3), np.uint8)
    calls = {"restore": lambda: pipeline.restore(big)}
    if reference is not None:
        calls["restore_fp32"] = lambda: reference.restore(big)
    if pipeline.has_prior:
        calls["prior"] = lambda: pipeline.prior(small)
    seconds = median_seconds(calls, runs, warmup, pipeline.device)
    result = {"model": str(checkpoint or "shipped model"), "preset": pipeline.cfg.preset_name() or "custom",
              "precision": "bf16 autocast" if pipeline.restorer_dtype else "fp32",
              "restore_512_s": seconds["restore"]}
    if "restore_fp32" in seconds:
        result["restore_512_fp32_s"] = seconds["restore_fp32"]
    if "prior" in seconds:
        result["prior_256_ms"] = seconds["prior"] * 1e3
    return result


def run_bench(preset: str = "small", size: int = 256, device: str = "cpu", runs: int = 10, warmup: int = 2,
              checkpoint: str | Path | None = None, memory: bool = True, pipeline: bool = True,
              large: tuple[int, int] | None = None, large_tile: int = 512, precision: str = "auto") -> dict:
    """Table 5 for our backbone and student (and D_S alone) at 1x3xSxS; with `checkpoint`, its config and
    weights. `pipeline` also times the shipped (or `checkpoint`) pipeline's restore() and prior();
    `large` (width, height) restores one image that size in a fresh process (time, peak RSS)."""
    from .weights import load_model

    torch_device = resolve_device(device)
    keep_freed_memory(torch_device.type)  # as the pipeline does: latency without page-faulting every activation
    student = load_model(checkpoint, kind="student") if checkpoint else None
    cfg = student.cfg if student is not None else ModelConfig.preset(preset)
    if student is None:
        student = build_student(cfg)
    models = {"backbone": build_backbone(cfg), "student": student}
    if student.has_predictor:
        models["predictor"] = student.predictor
    rows = bench_models(models, cfg, size, torch_device, runs, warmup, memory)
    ratio = {m: rows["student"][m] / rows["backbone"][m] for m in METRICS if rows["student"][m] is not None}
    paper_ratio = {m: COST["LUPI (paper)"][m] / COST["Restormer"][m] for m in METRICS}
    return {
        "preset": cfg.preset_name() or "custom", "checkpoint": str(checkpoint) if checkpoint else None,
        "size": size, "device": str(torch_device), "threads": torch.get_num_threads(), "runs": runs,
        "warmup": warmup, "rows": rows, "ratio": ratio, "published": COST, "published_ratio": paper_ratio,
        "pipeline": bench_pipeline(checkpoint, device, min(runs, 5), 1, precision) if pipeline else None,
        "large": bench_large_restore(checkpoint, *large, tile=large_tile) if large else None,
    }


def _cells(row: dict) -> list[str]:
    memory = "n/a" if row.get("memory_mb") is None else f"{row['memory_mb']:.1f} MB"
    return [f"{row['params'] / 1e6:.2f}M", f"{row['gmac']:.2f}", memory, f"{row['latency_ms']:.2f} ms",
            f"{row['throughput_fps']:.2f} FPS"]


def _ratio_cells(ratio: dict) -> list[str]:
    return [f"{ratio[m]:.2f}x" if m in ratio else "n/a" for m in METRICS]


def bench_to_markdown(result: dict) -> str:
    """The Table 5 layout: measured rows, the student/backbone ratio, then the paper's rows."""
    header = ["Model", "Params", "GMAC", "Peak memory", "Latency", "Throughput"]
    rows = result["rows"]
    measured = [[rows[k]["name"], *_cells(rows[k])] for k in ("backbone", "student")]
    measured.append(["*ratio student / backbone*", *_ratio_cells(result["ratio"])])
    if "predictor" in rows:
        measured.append([rows["predictor"]["name"], *_cells(rows["predictor"])])
    published = [[name, *_cells({"name": name, **row})] for name, row in result["published"].items()]
    published.append(["*ratio LUPI / Restormer (paper)*", *_ratio_cells(result["published_ratio"])])
    method = next((r["memory_method"] for r in rows.values() if r.get("memory_method")), "not measured")
    text = [
        f"**Table 5 layout: preset `{result['preset']}`"
        + (f" (weights {result['checkpoint']})" if result["checkpoint"] else "")
        + f", input 1x3x{result['size']}x{result['size']}, {result['device']}, {result['threads']} torch "
          f"thread(s), median of {result['runs']} run(s) after {result['warmup']} warm-up**",
        "", markdown_table(header, measured), "", "Published (paper Table 5, one RTX 4090, 3x256x256, mean of "
        "100 runs; not measured here):", "", markdown_table(header, published), "",
        f"- GMAC: multiply-accumulates (the paper's \"GFLOPs\"). Memory: {method}, weights included.",
    ]
    pipe = result.get("pipeline")
    if pipe and "skipped" in pipe:
        text.append(f"- Pipeline timing skipped: {pipe['skipped']}")
    elif pipe:
        verdict = lambda value, target: "meets" if value < target else "misses"  # noqa: E731
        fp32 = f", {pipe['restore_512_fp32_s']:.2f} s in fp32" if "restore_512_fp32_s" in pipe else ""
        text.append(f"- Pipeline ({pipe['model']}, preset {pipe['preset']}): restore() of 512x512 "
                    f"{pipe['restore_512_s']:.2f} s with the restorer in {pipe.get('precision', 'fp32')} "
                    f"({verdict(pipe['restore_512_s'], RESTORE_TARGET_S)} the < {RESTORE_TARGET_S:g} s target{fp32})"
                    + (f"; prior() of 256x256 {pipe['prior_256_ms']:.1f} ms "
                       f"({verdict(pipe['prior_256_ms'], PRIOR_TARGET_MS)} the < {PRIOR_TARGET_MS:g} ms target)"
                       if "prior_256_ms" in pipe else "") + ".")
    large = result.get("large")
    if large:
        text.append(f"- restore() of a {large['width']}x{large['height']} image: {large['seconds']:.0f} s "
                    f"({large['tile_passes']} passes of {large['tile']} px tiles), peak RSS "
                    f"{large['peak_rss_mb'] / 1024:.2f} GB for the whole process.")
    return "\n".join(text) + "\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", default="small", choices=sorted(PRESETS), help="model size (ignored with --checkpoint)")
    parser.add_argument("--size", type=int, default=256, help="input side, 1x3xSxS (the paper: 256)")
    parser.add_argument("--runs", type=int, default=10, help="timed forward passes (median reported)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed forward passes first")
    parser.add_argument("--memory", action=argparse.BooleanOptionalAction, default=True, help="measure peak memory")
    parser.add_argument("--pipeline", action=argparse.BooleanOptionalAction, default=True,
                        help="also time the shipped (or --checkpoint) pipeline's restore() and prior()")
    parser.add_argument("--large", type=parse_size, default=None, metavar="WxH",
                        help="also restore one WxH image (e.g. 4000x3000) in a fresh process: time and peak RSS")
    parser.add_argument("--large-tile", type=int, default=512,
                        help="tile side for the --large restore (one larger than the image: one pass)")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")


def run(args: argparse.Namespace) -> int:
    result = run_bench(args.preset, args.size, args.device, args.runs, args.warmup, args.checkpoint,
                       memory=args.memory, pipeline=args.pipeline, large=args.large, large_tile=args.large_tile,
                       precision=args.precision)
    print(bench_to_markdown(result))
    write_results(args.out, result)
    return 0
