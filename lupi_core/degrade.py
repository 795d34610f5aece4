"""Synthetic degradations: the corrupted inputs I_d that the paper pairs with clean images I_c.

Five kinds follow the all-in-one benchmarks (noise, rain, haze, blur, low light),
plus "mix", several of them in sequence. Every kind takes a severity `level` in
[0, 1] that maps linearly onto its physical parameters (see `parameter_ranges()`),
so a larger level is always a stronger degradation; each parameter can also be
set directly by keyword. Everything is a deterministic function of the image, the
level and the seed, and fast enough (a few ms at 256x256) to run on the fly in
training and behind the app's live slider.

Level -> parameter mappings (value at level 0 -> value at level 1, linear):

  noise     sigma 5 -> 55 (0-255 scale), so sigma 15/25/50 are levels 0.2/0.4/0.9
  rain      density 0.0009 -> 0.0055 (streak seeds per pixel), length 20 -> 50 px,
            opacity 0.35 -> 0.85, width 0.3 -> 0.7 px; angle drawn in [-25, 25] deg
            from vertical. Level 0.5 averages 25.4 dB input PSNR on Rain100L's clean
            images, as Rain100L's own rainy inputs do (25.5 dB).
  haze      beta 0.04 -> 0.20 over a depth proxy in [1, 10] units; airlight drawn in
            [0.8, 1.0]. On SOTS-indoor clean images, levels 0 / 0.5 / 1 give about
            19.7 / 12.0 / 9.1 dB input PSNR (the real hazy inputs: 15.3 / 11.8 / 9.3 dB
            at SOTS haze levels 1 / 5 / 10).
  blur      camera-shake kernel extent (footprint across) 2 -> 32 px
  lowlight  x -> gain * x**gamma with gamma 2.0 -> 3.5, gain 0.9 -> 0.5, then
            Poisson-Gaussian noise: shot 0.001 -> 0.01, read 0.002 -> 0.01

Noise follows the published convention exactly (`add_gaussian_noise`): float
noise added to uint8 pixels, clipped to [0, 255] and truncated to uint8. All
other kinds round to the nearest uint8.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import fft, ndimage

KINDS = ("noise", "rain", "haze", "blur", "lowlight")
# The order in which "mix" applies its kinds: scene effects first (haze is in
# the air, rain falls in front of it), then the camera (shake, exposure), and
# sensor noise last.
MIX_ORDER = ("haze", "rain", "blur", "lowlight", "noise")

# Parameters that the level drives: (value at level 0, value at level 1).
_LEVEL_RANGES: dict[str, dict[str, tuple[float, float]]] = {
    "noise": {"sigma": (5.0, 55.0)},
    "rain": {"density": (0.0009, 0.0055), "length": (20.0, 50.0), "opacity": (0.35, 0.85), "width": (0.3, 0.7)},
    "haze": {"beta": (0.04, 0.20)},
    "blur": {"extent": (2.0, 32.0)},
    "lowlight": {"gamma": (2.0, 3.5), "gain": (0.9, 0.5), "shot": (0.001, 0.01), "read": (0.002, 0.01)},
}
# Parameters drawn uniformly from the seed whatever the level: (low, high).
_RANDOM_RANGES: dict[str, dict[str, tuple[float, float]]] = {
    "rain": {"angle": (-25.0, 25.0)},
    "haze": {"airlight": (0.8, 1.0)},
}
# Haze depth proxy range, in the units that beta multiplies: with beta 0.04-0.2
# (the RESIDE outdoor range) transmissions run from 0.96 (near, light haze) down to
# 0.14 (far, dense haze), which matches the input PSNR spread of SOTS.
_HAZE_DEPTH = (1.0, 10.0)
_SHAKE_STEPS = 256


def noise_level(sigma: float) -> float:
    """The level in [0, 1] whose noise has this sigma (clipped: sigma under 5 is level 0)."""
    low, high = _LEVEL_RANGES["noise"]["sigma"]
    return float(np.clip((float(sigma) - low) / (high - low), 0.0, 1.0))


def parameter_ranges() -> dict[str, dict[str, tuple[float, float]]]:
    """Each kind's parameters and their ranges.

    For level-driven parameters the pair is (value at level 0, value at level 1);
    for `rain.angle` (degrees from vertical) and `haze.airlight` it is the
    (low, high) of a uniform draw that does not depend on the level.
    """
    return {kind: {**_LEVEL_RANGES[kind], **_RANDOM_RANGES.get(kind, {})} for kind in KINDS}


def level_parameters(kind: str, level: float) -> dict[str, float]:
    """The values of `kind`'s level-driven parameters at `level` (e.g. blur 0.5: extent 17 px)."""
    return {name: lo + (hi - lo) * level for name, (lo, hi) in _LEVEL_RANGES[kind].items()}


# ---------------------------------------------------------------------------
# Noise


def add_gaussian_noise(
    image: np.ndarray, sigma: float, seed: int | np.random.Generator | np.random.RandomState = 0
) -> np.ndarray:
    """The published noise convention: `clip(uint8 + randn * sigma, 0, 255)` truncated to uint8.

    An int `seed` behaves like `np.random.seed(seed); np.random.randn(...)`, the
    benchmark scripts' style. Pass a `np.random.RandomState` (or Generator) to
    draw from a shared stream, e.g. one RandomState(0) across a whole test set,
    as the published evaluation does.
    """
    _check_image(image)
    rng = np.random.RandomState(seed) if isinstance(seed, (int, np.integer)) else seed
    noise = rng.standard_normal(image.shape)
    return np.clip(image + noise * float(sigma), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------
# Rain


def _streak_radius(length: float, width: float) -> int:
    return int(math.ceil(length / 2 + 2 * width)) + 1


def _line_kernel(length: float, angle_deg: float, width: float) -> np.ndarray:
    """A rain streak: an anti-aliased line with faded ends, peak value 1."""
    half = _streak_radius(length, width)
    t = np.linspace(-0.5, 0.5, max(2, int(2 * length)) + 1)
    # Raindrops fade in and out of the exposure, so the streak ends are dimmer.
    weight = np.sqrt(np.cos(np.pi * t))
    theta = math.radians(angle_deg)
    kernel = _splat(half + t * length * math.cos(theta), half + t * length * math.sin(theta), weight, 2 * half + 1)
    kernel = ndimage.gaussian_filter(kernel, width)
    return kernel / kernel.max()


def _rain(x: np.ndarray, rng: np.random.Generator, p: dict[str, float]) -> np.ndarray:
    h, w = x.shape[:2]
    # Two streak populations: near drops (full length and width) and farther ones
    # at half the length and width, so streaks vary in size as in real rain.
    kernels = [_line_kernel(p["length"], p["angle"], p["width"]), _line_kernel(p["length"] / 2, p["angle"], p["width"] / 2)]
    # Seeds over a border as wide as the longest streak of any level, so streaks
    # also enter from outside the frame and the draws do not depend on the level.
    border = _streak_radius(
        max(p["length"], _LEVEL_RANGES["rain"]["length"][1]), max(p["width"], _LEVEL_RANGES["rain"]["width"][1])
    )
    draws = rng.random((h + 2 * border, w + 2 * border))
    brightness = rng.uniform(0.3, 1.0, size=draws.shape)
    near = rng.random(draws.shape) < 0.5
    # Thresholding the same uniform draws keeps low-level seeds a subset of high-level ones.
    seeds = np.where(draws < p["density"], brightness, 0.0)
    layer = np.zeros((h, w), dtype=np.float32)
    for kernel, population in zip(kernels, (seeds * near, seeds * ~near)):
        margin = border - kernel.shape[0] // 2
        layer += _fft_convolve_valid(
            population[margin : margin + h + kernel.shape[0] - 1, margin : margin + w + kernel.shape[1] - 1], kernel
        )
    layer = np.clip(layer, 0.0, 1.0) * p["opacity"]
    # Screen blend: streaks brighten, never darken, and saturate towards white.
    return 1.0 - (1.0 - x) * (1.0 - layer[:, :, None])


# ---------------------------------------------------------------------------
# Haze


def haze_depth_proxy(x: np.ndarray) -> np.ndarray:
    """A depth map in [0, 1] (1 = far) without a depth network.

    Two cues, averaged: higher rows are farther (ground planes recede upwards),
    and bright, colourless regions (a high dark channel: sky, far walls) are
    farther. The dark channel is smoothed on a coarse grid so that depth is
    piecewise smooth like a real scene's, then the sum is stretched to [0, 1].
    """
    h, w = x.shape[:2]
    stride = max(1, min(h, w) // 32)
    coarse = x[::stride, ::stride].min(axis=2)
    coarse = ndimage.gaussian_filter(coarse, sigma=2.0, mode="nearest")
    cue = ndimage.zoom(coarse, (h / coarse.shape[0], w / coarse.shape[1]), order=1, mode="nearest", grid_mode=True)
    rows = np.linspace(1.0, 0.0, h, dtype=np.float64)[:, None]
    proxy = 0.5 * rows + 0.5 * cue
    return (proxy - proxy.min()) / max(proxy.max() - proxy.min(), 1e-6)


def _haze(x: np.ndarray, rng: np.random.Generator, p: dict[str, float]) -> np.ndarray:
    near, far = _HAZE_DEPTH
    depth = near + (far - near) * haze_depth_proxy(x)
    # Atmospheric scattering model: I = J t + A (1 - t), t = exp(-beta d).
    t = np.exp(-p["beta"] * depth)[:, :, None]
    return x * t + p["airlight"] * (1.0 - t)


# ---------------------------------------------------------------------------
# Blur


def _shake_trajectory(rng: np.random.Generator, steps: int = _SHAKE_STEPS) -> np.ndarray:
    """A random camera path of total length 1 (complex positions), after Boracchi & Foi (2012).

    A random walk with inertia: each step keeps the previous velocity, plus a
    Gaussian jitter, a pull back towards the start, and now and then an abrupt
    turn (a "big shake"). The strength of each term is itself random, so paths
    range from near-straight strokes to scribbles. The constants are theirs, with
    the pull computed on their 60-px reference length.
    """
    anxiety = 0.1 * rng.random()
    centripetal = 0.7 * rng.random()
    jitter = 10.0 * rng.random()
    shake_freq = 0.2 * rng.random() * anxiety
    step = 60.0 / (steps - 1)
    shakes = rng.random(steps) < shake_freq
    shake_turns = np.exp(1j * (np.pi + (rng.random(steps) - 0.5)))
    gauss = rng.standard_normal(steps) + 1j * rng.standard_normal(steps)
    velocity = step * complex(np.exp(1j * 2 * np.pi * rng.random()))
    path = np.zeros(steps, dtype=np.complex128)
    for i in range(steps - 1):
        turn = 2.0 * velocity * shake_turns[i] if shakes[i] else 0.0
        velocity += turn + anxiety * (jitter * gauss[i] - centripetal * path[i]) * step
        velocity *= step / max(abs(velocity), 1e-12)
        path[i + 1] = path[i] + velocity
    return path / 60.0


def camera_shake_kernel(size: int, rng: np.random.Generator | int | None = None, extent: float | None = None) -> np.ndarray:
    """A size x size camera-shake blur kernel (float64, sums to 1), centred on its centre of mass.

    The path is scaled so that its farthest point lies extent/2 pixels from the
    centre of mass (default and maximum: size - 3, filling the kernel). The same
    `rng` seed gives the same path shape at every extent, so blur grows with it.
    """
    if size < 3 or size % 2 == 0:
        raise ValueError(f"camera_shake_kernel needs an odd size >= 3, got {size}")
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    path = _shake_trajectory(rng)
    path -= path.mean()  # centre of mass at the kernel centre: the blur does not shift the image
    extent = float(size - 3) if extent is None else min(float(extent), size - 3.0)
    scale = max(extent, 0.0) / 2 / max(np.abs(path).max(), 1e-12)
    centre = (size - 1) / 2
    kernel = _splat(centre + scale * path.imag, centre + scale * path.real, np.ones(path.size), size)
    return kernel / kernel.sum()


def blur_with_kernel(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Convolve an HxWx3 uint8 image with a 2-D kernel (FFT, reflect padding); rounded uint8 out."""
    _check_image(image)
    return _to_uint8(_convolve_reflect(image.astype(np.float64) / 255.0, np.asarray(kernel, dtype=np.float64)))


def _convolve_reflect(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    kh, kw = kernel.shape
    return _fft_convolve_valid(np.pad(x, ((kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)), mode="reflect"), kernel)


def _fft_convolve_valid(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """'valid' convolution of an HxW or HxWxC array with a 2-D kernel, by real FFT.

    float32 is ample for 8-bit output and twice as fast as float64; this keeps a
    35-px blur of a 256x256 image near 4 ms where direct convolution takes ~1 s.
    """
    kh, kw = kernel.shape
    planes = x.astype(np.float32)
    planes = planes.transpose(2, 0, 1) if planes.ndim == 3 else planes
    h, w = planes.shape[-2:]
    shape = (fft.next_fast_len(h, real=True), fft.next_fast_len(w, real=True))
    spectrum = fft.rfft2(planes, shape) * fft.rfft2(kernel.astype(np.float32), shape)
    out = fft.irfft2(spectrum, shape)[..., kh - 1 : h, kw - 1 : w]
    return out.transpose(1, 2, 0) if x.ndim == 3 else out


def reach(kind: str) -> int:
    """How many pixels beyond a crop's border `kind` gathers from (0 for pointwise kinds).

    A training patch must be degraded with that much context around it and then
    cropped, as a blurred photo is blurred before any crop: blurring the patch
    itself would fill its border from a reflection that no real photo has.
    """
    if kind in ("blur", "mix"):
        return _shake_kernel_size(_LEVEL_RANGES["blur"]["extent"][1]) // 2
    # Noise and low light are pointwise; rain's streaks and haze's depth are drawn over the patch itself.
    return 0


def _shake_kernel_size(extent: float) -> int:
    """The odd kernel size that holds a camera-shake path of this extent."""
    return 2 * int(math.ceil(extent / 2)) + 3


def _blur(x: np.ndarray, rng: np.random.Generator, p: dict[str, Any]) -> np.ndarray:
    return _convolve_reflect(x, p["kernel"])


# ---------------------------------------------------------------------------
# Low light


def _lowlight(x: np.ndarray, rng: np.random.Generator, p: dict[str, float]) -> np.ndarray:
    # Under-exposure and the camera curve (after Lv et al.): darker and more
    # contrasty, with shadows crushed more than highlights.
    dark = p["gain"] * x ** p["gamma"]
    # Poisson-Gaussian sensor noise in its heteroscedastic Gaussian form (Foi et
    # al. 2008): variance shot * signal + read^2. It dominates a dark image.
    std = np.sqrt(p["shot"] * dark + p["read"] ** 2)
    return dark + std * rng.standard_normal(x.shape)


# ---------------------------------------------------------------------------
# Entry point


def degrade(
    image: np.ndarray,
    kind: str,
    level: float | None = None,
    seed: int | np.random.Generator | None = None,
    sigma: float | None = None,
    return_info: bool = False,
    **params: Any,
) -> np.ndarray | tuple[np.ndarray, dict[str, Any]]:
    """Degrade an HxWx3 uint8 image; returns a new uint8 array of the same shape.

    kind: one of KINDS or "mix". level: severity in [0, 1] (None: drawn from the
    seed). seed: int, None (fresh randomness) or a np.random.Generator. sigma: for
    kind="noise", the noise level on the 0-255 scale instead of a level. Other
    keywords set single parameters (see `parameter_ranges()`), e.g. angle=10 for
    rain, overriding what the level gives; for blur, kernel=array uses that kernel.
    For "mix", kinds=[...] picks the kinds (default: two drawn from the seed),
    applied in MIX_ORDER. return_info=True also returns the parameters used.
    """
    _check_image(image)
    if kind not in KINDS and kind != "mix":
        raise ValueError(f"unknown degradation kind {kind!r}; pass one of {', '.join(KINDS)} or 'mix'")
    if level is not None and not (isinstance(level, (int, float, np.number)) and 0.0 <= float(level) <= 1.0):
        raise ValueError(f"level must be a number in [0, 1] (0 = mildest, 1 = strongest) or None for random, got {level!r}")
    if sigma is not None:
        if kind != "noise":
            raise ValueError(f"sigma= applies only to kind='noise'; for {kind!r} pass level= or its own parameters")
        params["sigma"] = sigma
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)

    if kind == "mix":
        out, info = _mix(image, level, rng, params)
    else:
        out, info = _apply(image, kind, level, rng, params)
    return (out, info) if return_info else out


def _apply(
    image: np.ndarray, kind: str, level: float | None, rng: np.random.Generator, overrides: dict[str, Any]
) -> tuple[np.ndarray, dict[str, Any]]:
    allowed = set(_LEVEL_RANGES[kind]) | set(_RANDOM_RANGES.get(kind, {})) | ({"kernel"} if kind == "blur" else set())
    unknown = sorted(set(overrides) - allowed)
    if unknown:
        raise ValueError(f"{kind!r} has no parameter {', '.join(unknown)}; its parameters are {', '.join(sorted(allowed))}")
    # A random level is drawn only when some parameter still depends on it (so
    # degrade(x, "noise", sigma=s, seed=g) is exactly the noise formula with g).
    if level is None and not set(_LEVEL_RANGES[kind]) <= set(overrides):
        level = float(rng.random())
    p: dict[str, Any] = {} if level is None else level_parameters(kind, level)
    # Random parameters are always drawn, even when overridden, so that the rest
    # of the random stream (and so the result) does not depend on the overrides.
    for name, (lo, hi) in _RANDOM_RANGES.get(kind, {}).items():
        p[name] = float(rng.uniform(lo, hi))
    p.update(overrides)

    if kind == "noise":
        out = add_gaussian_noise(image, p["sigma"], rng)
    else:
        if kind == "blur" and "kernel" in overrides:
            p["kernel"] = np.asarray(overrides["kernel"], dtype=np.float64)
            if p["kernel"].ndim != 2:
                raise ValueError(f"kernel= must be a 2-D array, got shape {p['kernel'].shape}")
        elif kind == "blur":
            p["kernel"] = camera_shake_kernel(_shake_kernel_size(p["extent"]), rng, p["extent"])
        apply = {"rain": _rain, "haze": _haze, "blur": _blur, "lowlight": _lowlight}[kind]
        out = _to_uint8(apply(image.astype(np.float64) / 255.0, rng, p))
    return out, {"kind": kind, "level": None if level is None else float(level), **p}


def _mix(
    image: np.ndarray, level: float | None, rng: np.random.Generator, params: dict[str, Any]
) -> tuple[np.ndarray, dict[str, Any]]:
    kinds = params.pop("kinds", None)
    if params:
        raise ValueError(f"'mix' takes only kinds=[...] besides level and seed, got {', '.join(sorted(params))}")
    if kinds is None:
        kinds = list(rng.choice(KINDS, size=2, replace=False))
    elif isinstance(kinds, str):
        kinds = [kinds]
    bad = [k for k in kinds if k not in KINDS]
    if bad or not kinds:
        raise ValueError(f"mix kinds must be a non-empty list drawn from {', '.join(KINDS)}, got {kinds!r}")
    # One child stream per kind: each step's randomness does not depend on the others' levels.
    streams = dict(zip(KINDS, rng.spawn(len(KINDS))))
    steps = []
    for kind in (k for k in MIX_ORDER if k in kinds):
        image, info = _apply(image, kind, level, streams[kind], {})
        steps.append(info)
    return image, {"kind": "mix", "kinds": [s["kind"] for s in steps], "steps": steps}


# ---------------------------------------------------------------------------
# Helpers


def _check_image(image: Any) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        got = f"{image.dtype} array of shape {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"expected an H x W x 3 uint8 RGB array, got {got}; convert with lupi_core.images.to_rgb_uint8()")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"the image is empty (shape {image.shape})")


def _splat(rows: np.ndarray, cols: np.ndarray, weights: np.ndarray, size: int) -> np.ndarray:
    """Bilinearly accumulate weighted sub-pixel points onto a size x size grid."""
    grid = np.zeros((size, size))
    r0, c0 = np.floor(rows).astype(int), np.floor(cols).astype(int)
    fr, fc = rows - r0, cols - c0
    for dr, dc, share in ((0, 0, (1 - fr) * (1 - fc)), (0, 1, (1 - fr) * fc), (1, 0, fr * (1 - fc)), (1, 1, fr * fc)):
        r, c = r0 + dr, c0 + dc
        inside = (r >= 0) & (r < size) & (c >= 0) & (c < size)
        np.add.at(grid, (r[inside], c[inside]), (weights * share)[inside])
    return grid


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return (np.clip(x, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
