"""Where a model's error on one benchmark column sits: the mean squared error of the input, the
classical rows and each model, split into a colour offset and bands of detail by scale
(`metrics.error_bands`), so that a column scored near its input says whether the model shifts
tone, restores mid-scale contrast or restores edges.

    python -m tools.error_bands --data DATA [--column deblur] [--limit 20] [--checkpoint F ...]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from lupi_core import classical
from lupi_core.evaluate import COLUMNS, column_files, load_sample, reference_rows, restore_reference
from lupi_core.markdown import markdown_table
from lupi_core.metrics import error_bands, psnr
from lupi_core.pipeline import load_pretrained


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="the benchmark data folder (as evaluate --data)")
    parser.add_argument("--column", choices=sorted(COLUMNS), default="deblur")
    parser.add_argument("--limit", type=int, default=20, help="the column's first N images (0: all)")
    parser.add_argument("--checkpoint", type=Path, action="append", default=[],
                        help="student weights; repeat to compare (default: the shipped model)")
    parser.add_argument("--periods", type=float, nargs="+", default=[32.0, 8.0],
                        help="band edges, as the period of the detail in px")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    column = COLUMNS[args.column]
    samples = [load_sample(column, index, input_path, target_path)
               for index, (input_path, target_path) in enumerate(column_files(args.data, column, args.limit or None))]
    names = {"input": "the input", "classical": classical.METHODS[column.kind][0],
             "classical_blind": classical.BLIND_METHODS[column.kind][0]}
    outputs = {names[row]: [restore_reference(row, column, s) for s in samples] for row in reference_rows([column])}
    for checkpoint in args.checkpoint or [None]:
        pipeline = load_pretrained(checkpoint)
        outputs[str(checkpoint or "the shipped model")] = [pipeline.restore_float(s.degraded) for s in samples]
    rows = []
    for name, restored in outputs.items():
        bands = [error_bands(image, sample.clean, args.periods) for image, sample in zip(restored, samples)]
        parts = list(bands[0])
        rows.append([name, f"{np.mean([psnr(image, s.clean) for image, s in zip(restored, samples)]):.2f}",
                     *(f"{1e4 * np.mean([b[part] for b in bands]):.1f}" for part in parts)])
    print(f"{column.title}, {column.dataset}: {len(samples)} images; squared error x 1e4 (images in [0, 1]), "
          f"split by the period of the detail\n")
    print(markdown_table(["", "PSNR (dB)", "MSE", "colour offset", *parts[2:]], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
