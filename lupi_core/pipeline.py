"""Inference (section 3.4): d_S = D_S(I_d), I_o = R_S(I_d, d_S), for any image.

`load_pretrained()` gives a `Pipeline` whose `restore()` takes a uint8 array or
PIL image of any size and returns the same type and size: reflect-padded to a
multiple of 8 and cropped back (never centre-cropped), and run through
overlapping tiles when large so memory stays bounded. `prior()` runs D_S alone.
The command line, the evaluation harness and the app all call this module.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .cpu import keep_freed_memory
from .images import ImageError, to_float_image, to_rgb_uint8, to_tensor, quantize
from .models import StudentSystem, TeacherSystem
from .weights import WeightsError, load_model

ASSETS = Path(__file__).resolve().parent.parent / "assets"
DEFAULT_STUDENT = ASSETS / "lupi-small-student.safetensors"
DEFAULT_TEACHER = ASSETS / "lupi-small-teacher.safetensors"
MULTIPLE = 8  # three 2x downsamplings inside R and D

Progress = Callable[[int, int], None]


def forward_padded(fn: Callable[..., torch.Tensor], image: torch.Tensor, *more: torch.Tensor) -> torch.Tensor:
    """Run fn on tensors padded to a multiple of 8 (reflect; replicate when too small) and crop back."""
    h, w = image.shape[-2:]
    pad = (0, -w % MULTIPLE, 0, -h % MULTIPLE)
    mode = "reflect" if h > pad[3] and w > pad[1] else "replicate"
    padded = [F.pad(t, pad, mode=mode) if any(pad) else t for t in (image, *more)]
    return fn(*padded)[..., :h, :w]


def _check_tile(tile: int, overlap: int) -> None:
    if tile % MULTIPLE or tile <= overlap:
        raise ValueError(f"tile must be a multiple of {MULTIPLE} and larger than the overlap ({overlap})")


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of size `tile` covering [0, length), the last one flush with the end."""
    if length <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, length - tile, stride))
    return starts + [length - tile]


class Pipeline:
    """The deployed student (D_S + R_S), and optionally the teacher's D_T for comparisons."""

    def __init__(self, student: StudentSystem, teacher: TeacherSystem | None = None,
                 device: str | torch.device = "cpu", tile: int = 512, tile_overlap: int = 32):
        _check_tile(tile, tile_overlap)
        self.device = torch.device(device)
        keep_freed_memory(self.device.type)
        # channels-last routes the depthwise convs to oneDNN: about 2x faster on CPU
        self.student = student.to(self.device, memory_format=torch.channels_last).eval()
        self.teacher = (teacher.to(self.device, memory_format=torch.channels_last).eval()
                        if teacher is not None else None)
        self.cfg = student.cfg
        self.tile, self.tile_overlap = tile, tile_overlap

    @property
    def has_prior(self) -> bool:
        return self.student.has_predictor

    def _input(self, image: np.ndarray | Image.Image) -> torch.Tensor:
        return to_tensor(to_rgb_uint8(image)).to(self.device, memory_format=torch.channels_last)

    # -- the degradation prior -------------------------------------------------------------
    @torch.inference_mode()
    def _prior_tensor(self, image: torch.Tensor) -> torch.Tensor:
        """d_S for a 1x3xHxW tensor; large images pool D_S's features tile by tile."""
        predictor = self.student.predictor
        if predictor is None:
            raise RuntimeError("this model has no degradation predictor D_S; it cannot compute a prior")
        h, w = image.shape[-2:]
        pooled, area = 0.0, 0
        for y in tile_starts(h, self.tile, 0):
            for x in tile_starts(w, self.tile, 0):
                crop = image[..., y:y + self.tile, x:x + self.tile]
                size = crop.shape[-2] * crop.shape[-1]
                pooled = pooled + predictor.pooled_features(crop) * size
                area += size
        return predictor.head(pooled / area)

    def prior(self, image: np.ndarray | Image.Image) -> np.ndarray:
        """The student's 512-d degradation prior d_S = D_S(I_d), as float32. Does not run R."""
        tensor = self._input(image)
        return self._prior_tensor(tensor)[0].float().cpu().numpy()

    @torch.inference_mode()
    def privileged_prior(self, degraded: np.ndarray | Image.Image, clean: np.ndarray | Image.Image) -> np.ndarray:
        """The teacher's d_T = D_T(I_d, I_c): needs the clean image, so only for synthesized inputs."""
        if self.teacher is None:
            raise RuntimeError("no teacher weights loaded; pass teacher=... to load_pretrained")
        degraded, clean = to_rgb_uint8(degraded), to_rgb_uint8(clean)
        if degraded.shape != clean.shape:
            raise ImageError(f"degraded {degraded.shape} and clean {clean.shape} images differ in size")
        prior = self.teacher.estimator(self._input(degraded), self._input(clean))
        return prior[0].float().cpu().numpy()

    # -- restoration ------------------------------------------------------------------------
    @torch.inference_mode()
    def restore_float(self, image: np.ndarray | Image.Image, prior: np.ndarray | None = None,
                      tile: int | None = None, progress: Progress | None = None) -> np.ndarray:
        """Restore to HxWx3 float32 in [0, 1], clamped, not quantised (what metrics use).

        `prior` replaces d_S (e.g. d_T, or a counterfactual); `tile` overrides the tile size.
        """
        tensor = self._input(image)
        prior_tensor = None
        if self.has_prior:
            prior_tensor = (self._prior_tensor(tensor) if prior is None
                            else torch.as_tensor(np.asarray(prior, np.float32), device=self.device).reshape(1, -1))
            if prior_tensor.shape[1] != self.cfg.prior_dim:
                raise ValueError(f"a prior must have {self.cfg.prior_dim} values, got {prior_tensor.shape[1]}")
        run = lambda x: self.student.restorer(x, prior_tensor)  # noqa: E731
        tile = tile or self.tile
        _check_tile(tile, self.tile_overlap)
        h, w = tensor.shape[-2:]
        ys, xs = tile_starts(h, tile, self.tile_overlap), tile_starts(w, tile, self.tile_overlap)
        if len(ys) * len(xs) == 1:
            output = forward_padded(run, tensor)
            if progress:
                progress(1, 1)
        else:  # overlapping tiles, averaged where they overlap
            output = torch.zeros_like(tensor)
            weight = torch.zeros_like(tensor[:, :1])
            total, done = len(ys) * len(xs), 0
            for y in ys:
                for x in xs:
                    crop = tensor[..., y:y + tile, x:x + tile]
                    output[..., y:y + tile, x:x + tile] += forward_padded(run, crop)
                    weight[..., y:y + tile, x:x + tile] += 1
                    done += 1
                    if progress:
                        progress(done, total)
            output /= weight
        return to_float_image(output)

    def restore(self, image: np.ndarray | Image.Image, prior: np.ndarray | None = None,
                tile: int | None = None, progress: Progress | None = None) -> np.ndarray | Image.Image:
        """Restore an image; the result has the input's type (array or PIL) and size, as uint8 RGB."""
        restored = quantize(self.restore_float(image, prior=prior, tile=tile, progress=progress))
        return Image.fromarray(restored) if isinstance(image, Image.Image) else restored


def load_pretrained(path: str | Path | None = None, teacher: str | Path | None = None,
                    device: str | torch.device = "cpu", tile: int = 512) -> Pipeline:
    """Load a student weights file (default: the shipped model in assets/).

    With no `teacher` the shipped teacher is loaded too when `path` is the default and it exists.
    """
    student_path = Path(path) if path is not None else DEFAULT_STUDENT
    if path is None and not DEFAULT_STUDENT.is_file():
        raise WeightsError(f"{DEFAULT_STUDENT}: the shipped default weights are missing; pass a weights file "
                           f"(python -m lupi_core restore ... --checkpoint F) or train one (see README)")
    student = load_model(student_path, kind="student", device=device)
    teacher_path = Path(teacher) if teacher is not None else (DEFAULT_TEACHER if path is None else None)
    teacher_model = None
    if teacher_path is not None and (teacher is not None or teacher_path.is_file()):
        teacher_model = load_model(teacher_path, kind="teacher", device=device)
    return Pipeline(student, teacher_model, device=device, tile=tile)
