"""Classical, training-free reference methods, one per task, for the evaluation tables.

They give each benchmark column a floor that needs no learning: a model that
does not beat them on a task has not learned that task. Every method takes the
degraded HxWx3 uint8 image and returns HxWx3 float64 in [0, 1].

- noise    non-local means (Buades et al. 2005), sigma from the wavelet MAD estimate
- haze     dark channel prior (He et al. 2009), transmission refined by a guided filter (He et al. 2010)
- blur     Wiener deconvolution with the *known* kernel (non-blind: it is given what a blind method must estimate);
           and, blind, an unsharp mask whose radius and amount were tuned on blurred BSD400 training photos
- lowlight adaptive gamma correction of the brightness to a fixed target mean
- rain     a horizontal median that removes thin, bright, colourless (streak) excess
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import ndimage
from skimage.restoration import denoise_nl_means, wiener

from .metrics import as_unit_float


def estimate_noise_sigma(x: np.ndarray) -> float:
    """Donoho's robust noise estimate: median |HH| / 0.6745 of the finest Haar diagonal band,
    averaged over channels. (scikit-image's `estimate_sigma` does this but needs PyWavelets.)"""
    h, w = x.shape[0] // 2 * 2, x.shape[1] // 2 * 2
    blocks = x[:h, :w]
    diagonal = (blocks[0::2, 0::2] - blocks[0::2, 1::2] - blocks[1::2, 0::2] + blocks[1::2, 1::2]) / 2.0
    return float(np.mean(np.median(np.abs(diagonal).reshape(-1, x.shape[2]), axis=0)) / 0.6745)


def denoise_nlm(degraded: np.ndarray) -> np.ndarray:
    """Non-local means with the noise sigma estimated from the image."""
    x = as_unit_float(degraded)
    sigma = estimate_noise_sigma(x)
    # h = 0.6 sigma scored best on CBSD68 sigma 25 among 0.4-1.0 (scikit-image suggests 0.8 for gray).
    out = denoise_nl_means(x, h=0.6 * sigma, sigma=sigma, fast_mode=True, patch_size=5, patch_distance=6,
                           channel_axis=-1)
    return np.clip(out, 0.0, 1.0)


def box_filter(x: np.ndarray, radius: int) -> np.ndarray:
    """Mean over a (2r+1)^2 window in the two image axes (edges: nearest)."""
    size = (2 * radius + 1, 2 * radius + 1) + (1,) * (x.ndim - 2)
    return ndimage.uniform_filter(x, size=size, mode="nearest")


def guided_filter(guide: np.ndarray, source: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """He et al.'s guided filter with a gray HxW guide: an edge-preserving smoothing of `source`."""
    mean_i, mean_p = box_filter(guide, radius), box_filter(source, radius)
    cov_ip = box_filter(guide * source, radius) - mean_i * mean_p
    var_i = box_filter(guide * guide, radius) - mean_i ** 2
    a = cov_ip / (var_i + eps)
    b = mean_p - a * mean_i
    return box_filter(a, radius) * guide + box_filter(b, radius)


def dehaze_dark_channel(degraded: np.ndarray, patch: int = 15, omega: float = 0.95, t_min: float = 0.1,
                        radius: int = 40, eps: float = 1e-3) -> np.ndarray:
    """Dark channel prior: airlight from the haziest 0.1% of pixels, t = 1 - omega * dark(I / A)."""
    x = as_unit_float(degraded)
    dark = ndimage.minimum_filter(x.min(axis=2), size=patch, mode="nearest")
    count = max(1, dark.size // 1000)
    haziest = np.argpartition(dark.ravel(), -count)[-count:]
    airlight = x.reshape(-1, 3)[haziest].mean(axis=0)
    normalised = x / np.maximum(airlight, 1e-3)
    transmission = 1.0 - omega * ndimage.minimum_filter(normalised.min(axis=2), size=patch, mode="nearest")
    # The patch-wise transmission is blocky; the guided filter snaps it to the image's edges.
    transmission = guided_filter(x.mean(axis=2), transmission, radius, eps)
    t = np.maximum(transmission, t_min)[:, :, None]
    return np.clip((x - airlight) / t + airlight, 0.0, 1.0)


def deblur_wiener(degraded: np.ndarray, kernel: np.ndarray, balance: float = 3e-3) -> np.ndarray:
    """Non-blind Wiener deconvolution with the known blur kernel, channel by channel.

    The classical Wiener filter K* / (|K|^2 + balance), a constant noise-to-signal
    ratio: camera-shake kernels have spectral zeros at low frequencies, where
    scikit-image's default Laplacian regulariser barely regularises and quantisation
    noise blew up (two of ten CBSD68 images fell below their blurred input).
    Wiener assumes a periodic image; mirroring the image to 2H-2 x 2W-2 makes it
    exactly periodic and matches blur applied with reflect padding, so no ringing
    comes in from the borders. `balance` 3e-3 scored best on ten blurred CBSD68 images.
    """
    x = as_unit_float(degraded)
    h, w = x.shape[:2]
    periodic = np.pad(x, ((0, max(h - 2, 0)), (0, max(w - 2, 0)), (0, 0)), mode="reflect")
    kernel = np.asarray(kernel, dtype=np.float64)
    identity = np.ones((1, 1))  # the regulariser: a delta, so |reg|^2 = 1 at every frequency
    channels = [wiener(periodic[:, :, c], kernel, balance, reg=identity, clip=False)[:h, :w] for c in range(3)]
    return np.clip(np.stack(channels, axis=2), 0.0, 1.0)


# `python -m tools.tune_unsharp DATA/train/clean/bsd400`: the best of its grid on 40 BSD400
# photos blurred as the benchmark blurs (other kernel seeds; docs/results/tune-unsharp.md): +0.23 dB
# over the blurred input there. BSD400 is training data only.
UNSHARP_RADIUS, UNSHARP_AMOUNT = 4.0, 0.5


def deblur_unsharp(degraded: np.ndarray, radius: float = UNSHARP_RADIUS, amount: float = UNSHARP_AMOUNT) -> np.ndarray:
    """Blind sharpening: x + amount * (x - gaussian(x, radius)), per channel, clipped to [0, 1]."""
    x = as_unit_float(degraded)
    blurred = ndimage.gaussian_filter(x, sigma=(radius, radius, 0), mode="reflect")
    return np.clip(x + amount * (x - blurred), 0.0, 1.0)


def enhance_gamma(degraded: np.ndarray, target_mean: float = 0.45) -> np.ndarray:
    """Adaptive gamma: the one gamma that lifts the image's mean brightness to `target_mean`.

    Chosen on LOL-eval15 over a fixed 1/2.2 gamma, gamma on the max channel, a LIME-like
    illumination division and histogram equalisation: best SSIM, PSNR within 0.5 dB of the best.
    """
    x = as_unit_float(degraded)
    mean = float(np.clip(x.mean(), 1e-4, 0.99))
    gamma = np.log(target_mean) / np.log(mean)
    return np.clip(x, 0.0, 1.0) ** gamma


def derain_median(degraded: np.ndarray, width: int = 13) -> np.ndarray:
    """Rain streaks are thin, near-vertical, colourless and brighter than the scene. A
    horizontal 1 x width median crosses a streak and sees the background; the brightness a
    pixel has above it in *all three* channels (white, not coloured detail) is removed.

    Chosen on Rain100L among square medians, min(image, median), grey opening and this:
    on 16 of its images it gains about 3.7 dB over the input, a square 5x5 median under 1 dB.
    """
    x = as_unit_float(degraded)
    median = ndimage.median_filter(x, size=(1, width, 1), mode="nearest")
    excess = np.clip((x - median).min(axis=2, keepdims=True), 0.0, None)
    return x - excess


Method = Callable[..., np.ndarray]
METHODS: dict[str, tuple[str, Method]] = {
    "noise": ("non-local means", denoise_nlm),
    "haze": ("dark channel prior + guided filter", dehaze_dark_channel),
    "blur": ("Wiener, known kernel (non-blind)", deblur_wiener),
    "lowlight": ("adaptive gamma", enhance_gamma),
    "rain": ("horizontal median, bright excess removed", derain_median),
}


# The blind row: every method above is blind except blur's, which this replaces.
BLIND_METHODS: dict[str, tuple[str, Method]] = {**METHODS, "blur": ("unsharp mask, tuned on BSD400 (blind)",
                                                                     deblur_unsharp)}


def restore(kind: str, degraded: np.ndarray, blind: bool = False, **side: np.ndarray) -> np.ndarray:
    """The classical method for a degradation kind; `side` carries what a non-blind method needs (blur:
    kernel); `blind` picks the method that is given nothing but the image."""
    methods = BLIND_METHODS if blind else METHODS
    if kind not in methods:
        raise ValueError(f"no classical method for {kind!r}; kinds: {', '.join(methods)}")
    return methods[kind][1](degraded) if blind else methods[kind][1](degraded, **side)
