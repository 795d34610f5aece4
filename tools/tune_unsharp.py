"""Tune the blind classical deblurring (an unsharp mask) on training photos: blur each of the
first N photos of a folder as the benchmark's deblurring column does (degrade's camera shake at
evaluate.BLUR_LEVEL, kernel seeds 0..N-1, not the benchmark's 1000+), and print the mean PSNR of
every (radius, amount) of a small grid, best first.
`python -m tools.tune_unsharp DATA/train/clean/bsd400 [--images 40]`."""
from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np

from lupi_core.classical import deblur_unsharp
from lupi_core.degrade import degrade
from lupi_core.evaluate import BLUR_LEVEL
from lupi_core.images import list_images, load_image
from lupi_core.markdown import markdown_table
from lupi_core.metrics import psnr

RADII = (0.5, 1.0, 1.5, 2.0, 3.0, 4.0)
AMOUNTS = (0.25, 0.5, 1.0, 1.5, 2.0, 3.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="clean training photos (BSD400)")
    parser.add_argument("--images", type=int, default=40)
    args = parser.parse_args()
    pairs = []
    for seed, path in enumerate(list_images(args.folder)[:args.images]):
        clean = load_image(path)
        pairs.append((degrade(clean, "blur", level=BLUR_LEVEL, seed=seed), clean))
    rows = [(float(np.mean([psnr(deblur_unsharp(blurred, r, a), clean) for blurred, clean in pairs])), r, a)
            for r, a in itertools.product(RADII, AMOUNTS)]
    baseline = float(np.mean([psnr(blurred, clean) for blurred, clean in pairs]))
    rows.sort(reverse=True)
    print(f"{len(pairs)} photos; the blurred input scores {baseline:.2f} dB")
    print(markdown_table(["mean PSNR (dB)", "radius", "amount"], [[f"{p:.2f}", r, a] for p, r, a in rows[:8]]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
