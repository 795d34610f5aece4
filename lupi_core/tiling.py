"""Large images tile by tile, restored as the whole image would be.

R's memory grows with the pixel count (about 4-5 KB a pixel at `small` on a CPU,
`python -m lupi_core bench --large WxH --large-tile T`), so an image larger than one tile runs through
overlapping tiles. Two things keep the tiles from showing:

- *Shared global state.* MDTA attends over channels with statistics summed over
  the whole feature map, so a tile restored alone takes its brightness cues from
  its own pixels only: a dark or hazy photo then shows each tile as a block of
  its own brightness. `blocks.SharedAttention` gives every tile the statistics of
  the whole image: first from one pass over a copy downscaled to one tile's size
  (the *guide*), then, for `refine` passes, summed over the full-resolution tiles
  themselves, each tile adding only the pixels it owns.
- *Feathered blending.* Overlaps are blended with a raised-cosine window, so the
  little that still differs near a tile's border (the convolutions see padding
  there) fades in instead of stepping.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .blocks import SharedAttention

MULTIPLE = 8  # three 2x downsamplings inside R and D

Progress = Callable[[int, int], None]


def check_tile(tile: int, overlap: int) -> None:
    if tile % MULTIPLE or overlap % MULTIPLE or tile <= 2 * overlap:
        raise ValueError(f"tile ({tile}) and overlap ({overlap}) must be multiples of {MULTIPLE}, "
                         f"and the tile more than twice the overlap")


def forward_padded(fn: Callable[..., torch.Tensor], image: torch.Tensor, *more: torch.Tensor) -> torch.Tensor:
    """Run fn on tensors padded to a multiple of 8 (reflect; replicate when too small) and crop back."""
    h, w = image.shape[-2:]
    pad = (0, -w % MULTIPLE, 0, -h % MULTIPLE)
    mode = "reflect" if h > pad[3] and w > pad[1] else "replicate"
    padded = [F.pad(t, pad, mode=mode) if any(pad) else t for t in (image, *more)]
    return fn(*padded)[..., :h, :w]


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of size `tile` covering [0, length), the last one flush with the end."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, tile - overlap))
    return starts + [length - tile]


def owned_spans(starts: list[int], tile: int, length: int) -> list[tuple[int, int]]:
    """The part of each tile that it alone accounts for (a partition of [0, length)): cut in
    the middle of each overlap, on a multiple of 8 so that every level of R cuts it exactly."""
    cuts = [0]
    for previous, start in zip(starts, starts[1:]):
        middle = (start + min(previous + tile, length)) // 2
        cuts.append(min(max(start, middle - middle % MULTIPLE), previous + tile))
    cuts.append(length)
    return [(a - s, b - s) for s, a, b in zip(starts, cuts, cuts[1:])]


def feather(starts: list[int], tile: int, length: int) -> list[torch.Tensor]:
    """Each tile's 1-D blending weight: a raised cosine across each overlap with a neighbour, 1 elsewhere."""
    weights = []
    for i, start in enumerate(starts):
        size = min(tile, length - start)
        weight = torch.ones(size)
        if i > 0:
            ramp = starts[i - 1] + tile - start
            weight[:ramp] = _raised_cosine(ramp)
        if i + 1 < len(starts):
            ramp = start + tile - starts[i + 1]
            weight[size - ramp:] = torch.minimum(weight[size - ramp:], _raised_cosine(ramp).flip(0))
        weights.append(weight)
    return weights


def _raised_cosine(n: int) -> torch.Tensor:
    return 0.5 - 0.5 * torch.cos(torch.pi * (torch.arange(n) + 0.5) / n)


def guide_copy(image: torch.Tensor, pixels: int) -> torch.Tensor:
    """The image area-downscaled to at most `pixels` pixels (at least 8 px a side), for the guide pass."""
    h, w = image.shape[-2:]
    scale = min(1.0, (pixels / (h * w)) ** 0.5)
    if scale == 1.0:
        return image
    size = (max(MULTIPLE, round(h * scale)), max(MULTIPLE, round(w * scale)))
    return F.interpolate(image, size=size, mode="area")


def restore_tiled(restorer: nn.Module, run: Callable[[torch.Tensor], torch.Tensor], image: torch.Tensor,
                  tile: int, overlap: int, refine: int = 2, progress: Progress | None = None) -> torch.Tensor:
    """`run` (R with its prior bound) over a 1x3xHxW image: one pass when it fits a tile, else
    overlapping tiles sharing the whole image's MDTA statistics (see the module docstring).
    `restorer` is the module whose MDTAs share them. `progress(done, total)` counts tile passes,
    from (0, total) once the guide pass, about one tile pass long, is done."""
    check_tile(tile, overlap)
    h, w = image.shape[-2:]
    ys, xs = tile_starts(h, tile, overlap), tile_starts(w, tile, overlap)
    if len(ys) * len(xs) == 1:
        output = forward_padded(run, image)
        if progress:
            progress(1, 1)
        return output
    owned_y, owned_x = owned_spans(ys, tile, h), owned_spans(xs, tile, w)
    weight_y, weight_x = feather(ys, tile, h), feather(xs, tile, w)
    total, done = (refine + 1) * len(ys) * len(xs), 0
    shared = SharedAttention()
    shared.attach(restorer)
    try:
        shared.collecting = True
        forward_padded(run, guide_copy(image, tile * tile))
        shared.fix()
        if progress:  # the guide pass took about as long as one tile pass will: callers estimate from here
            progress(0, total)
        for last_pass in [False] * refine + [True]:
            shared.collecting = not last_pass
            output = torch.zeros_like(image) if last_pass else None
            weight_sum = torch.zeros_like(image[:, :1]) if last_pass else None
            for y, (oy0, oy1), wy in zip(ys, owned_y, weight_y):
                for x, (ox0, ox1), wx in zip(xs, owned_x, weight_x):
                    crop = image[..., y:y + tile, x:x + tile]
                    shared.region = (oy0, oy1, ox0, ox1)
                    shared.input_size = tuple(side + -side % MULTIPLE for side in crop.shape[-2:])
                    restored = forward_padded(run, crop)
                    if last_pass:
                        blend = (wy[:, None] * wx[None, :]).to(image)
                        output[..., y:y + tile, x:x + tile] += restored * blend
                        weight_sum[..., y:y + tile, x:x + tile] += blend
                    done += 1
                    if progress:
                        progress(done, total)
            if not last_pass:
                shared.fix()
    finally:
        SharedAttention.detach(restorer)
    return output / weight_sum


def restore_independent_tiles(run: Callable[[torch.Tensor], torch.Tensor], image: torch.Tensor, tile: int,
                              overlap: int) -> torch.Tensor:
    """The naive baseline `restore_tiled` replaces, kept to measure it against: every tile restored
    alone (its own MDTA statistics) and overlaps averaged flat."""
    output, weight = torch.zeros_like(image), torch.zeros_like(image[:, :1])
    for y in tile_starts(image.shape[-2], tile, overlap):
        for x in tile_starts(image.shape[-1], tile, overlap):
            output[..., y:y + tile, x:x + tile] += forward_padded(run, image[..., y:y + tile, x:x + tile])
            weight[..., y:y + tile, x:x + tile] += 1
    return output / weight


def blend_strength(image: np.ndarray, restored: np.ndarray, strength: float) -> np.ndarray:
    """input + strength x (restored - input): 0 gives the input, 1 the restoration."""
    return image + np.float32(strength) * (restored - image)
