"""How exactly a deblurring step must know the kernel: non-blind Wiener on the deblurring column,
given the true kernel and given kernels a blind estimate could plausibly produce (shifted by a
pixel, smoothed, flipped, its magnitude without its phase, another camera shake of the same
extent). Decides whether a kernel decoded from the prior is worth building into R.

    python -m tools.kernel_sensitivity --data DATA [--limit 20]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy.ndimage import uniform_filter

from lupi_core.classical import deblur_wiener
from lupi_core.degrade import camera_shake_kernel, level_parameters
from lupi_core.evaluate import BLUR_LEVEL, COLUMNS, column_files, load_sample
from lupi_core.markdown import markdown_table
from lupi_core.metrics import psnr

# Seeds for the wrong camera shakes, away from evaluate's kernel seeds (1000 + i).
OTHER_SHAKE_SEED = 5000


def zero_phase(kernel: np.ndarray) -> np.ndarray:
    """The symmetric kernel with the same magnitude spectrum: what a power-spectrum estimate recovers."""
    symmetric = np.real(np.fft.fftshift(np.fft.ifft2(np.abs(np.fft.fft2(np.fft.ifftshift(kernel))))))
    symmetric = np.clip(symmetric, 0.0, None)
    return symmetric / symmetric.sum()


def estimates(kernel: np.ndarray, extent: float, index: int) -> dict[str, np.ndarray]:
    return {
        "the true kernel": kernel,
        "shifted by 1 px": np.roll(kernel, 1, axis=1),
        "smoothed (3x3 box)": uniform_filter(kernel, 3),
        "flipped (180°)": kernel[::-1, ::-1],
        "its magnitude, zero phase": zero_phase(kernel),
        "another shake, same extent": camera_shake_kernel(kernel.shape[0], OTHER_SHAKE_SEED + index, extent),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="the benchmark data folder (as evaluate --data)")
    parser.add_argument("--limit", type=int, default=20, help="the deblurring column's first N images (0: all)")
    args = parser.parse_args()
    column = COLUMNS["deblur"]
    extent = level_parameters("blur", BLUR_LEVEL)["extent"]  # the column's, as load_sample blurs
    scores: dict[str, list[float]] = {"the input (no deconvolution)": []}
    for index, (input_path, target_path) in enumerate(column_files(args.data, column, args.limit or None)):
        sample = load_sample(column, index, input_path, target_path)
        scores["the input (no deconvolution)"].append(psnr(sample.degraded, sample.clean))
        for name, kernel in estimates(sample.side["kernel"], extent, index).items():
            scores.setdefault(name, []).append(psnr(deblur_wiener(sample.degraded, kernel), sample.clean))
    baseline = np.mean(scores["the input (no deconvolution)"])
    rows = [[name, f"{np.mean(values):.2f}", f"{np.mean(values) - baseline:+.2f}"] for name, values in scores.items()]
    print(f"{column.title}, {column.dataset}: first {len(scores['the true kernel'])} images; "
          f"Wiener deconvolution (balance 3e-3) given each kernel\n")
    print(markdown_table(["kernel given to Wiener", "PSNR (dB)", "over the input"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
