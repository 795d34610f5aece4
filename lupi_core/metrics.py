"""PSNR and SSIM with the all-in-one papers' conventions.

RGB floats in [0, 1], the restoration clamped and *not* quantised, scikit-image's
PSNR, and SSIM with the 7x7 uniform window over the three channels.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def as_unit_float(image: np.ndarray) -> np.ndarray:
    """uint8 -> float64 in [0, 1]; floats are clamped to [0, 1]."""
    if image.dtype == np.uint8:
        return image.astype(np.float64) / 255.0
    return np.clip(image.astype(np.float64), 0.0, 1.0)


# skimage.metrics pulls in scipy.stats (0.6 s): imported on first use, not when the CLI starts.
def psnr(restored: np.ndarray, clean: np.ndarray) -> float:
    from skimage.metrics import peak_signal_noise_ratio

    return float(peak_signal_noise_ratio(as_unit_float(clean), as_unit_float(restored), data_range=1.0))


def ssim(restored: np.ndarray, clean: np.ndarray) -> float:
    from skimage.metrics import structural_similarity

    return float(structural_similarity(as_unit_float(clean), as_unit_float(restored), data_range=1.0,
                                       channel_axis=-1, win_size=7))


def error_bands(restored: np.ndarray, clean: np.ndarray, periods: Sequence[float] = (32.0, 8.0)) -> dict[str, float]:
    """Split the mean squared error of `restored` into parts that add up to it (Parseval):
    `offset`, each channel's mean error (a colour or brightness shift), then one band of detail
    between consecutive `periods` (in pixels): with (32, 8), shading over 32 px
    (`> 32 px`), mid-scale detail (`8-32 px`) and edges and texture (`< 8 px`). A restorer that
    only shifts tone moves `offset`; one that sharpens lowers the finest band."""
    periods = sorted(periods, reverse=True)
    error = as_unit_float(restored) - as_unit_float(clean)
    height, width, channels = error.shape
    power = np.abs(np.fft.fft2(error, axes=(0, 1))) ** 2 / (height * width) ** 2 / channels
    frequency = np.hypot(*np.meshgrid(np.fft.fftfreq(height), np.fft.fftfreq(width), indexing="ij"))  # cycles/px
    dc = frequency == 0
    cutoffs = [0.0, *(1.0 / p for p in periods), np.inf]
    names = [f"> {periods[0]:g} px", *(f"{short:g}-{long:g} px" for long, short in zip(periods, periods[1:])),
             f"< {periods[-1]:g} px"]
    bands = {"mse": float((error ** 2).mean()), "offset": float(power[dc].sum())}
    for name, low, high in zip(names, cutoffs, cutoffs[1:]):
        bands[name] = float(power[~dc & (frequency >= low) & (frequency < high)].sum())
    return bands
