"""Inference (section 3.4): d_S = D_S(I_d), I_o = R_S(I_d, d_S), for any image.

`load_pretrained()` gives a `Pipeline` whose `restore()` takes a uint8 array or
PIL image of any size and returns the same type and size: reflect-padded to a
multiple of 8 and cropped back (never centre-cropped), and run through
overlapping tiles that share the whole image's attention statistics when large
(`tiling`), so memory stays bounded and no seam shows. An input that the prior
reads as clean (against the atlas) is left as it is unless forced, and
`strength` blends the restoration with the input. `prior()` runs D_S alone.
`restore_float()` is the model itself, ungated and unblended: what metrics score.
R runs under bf16 autocast where the processor computes bf16 natively (precision "auto"),
about twice as fast as fp32 on CPU and within 2/255 of it; D_S stays fp32, so a prior, and
what the atlas reads from it, do not depend on the machine.
The command line, the evaluation harness and the app all call this module.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from .atlas import ASSETS, DEFAULT_ATLAS, Atlas
from .hardware import autocast_dtype, keep_freed_memory, resolve_device
from .images import ImageError, quantize, to_float_image, to_rgb_uint8, to_tensor
from .models import StudentSystem, TeacherSystem
from .tiling import blend_strength, check_tile, restore_tiled, tile_starts
from .weights import WeightsError, exported_name, load_model

SHIPPED_NAME = "lupi-small"
DEFAULT_STUDENT = ASSETS / exported_name(SHIPPED_NAME, "student")
DEFAULT_TEACHER = ASSETS / exported_name(SHIPPED_NAME, "teacher")

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Restoration:
    """What `Pipeline.restoration` did: the HxWx3 float32 result, what the prior read the input
    as (`Atlas.describe`, or None without a matching atlas), and whether it was left as it is."""

    image: np.ndarray
    reading: dict[str, Any] | None
    left_as_is: bool

    @property
    def message(self) -> str:
        if self.left_as_is:
            return f"looks clean ({self.reading['text']}): left as it is; force a restoration to change it"
        return f"looks like {self.reading['text']}" if self.reading else "restored"


class Pipeline:
    """The deployed student (D_S + R_S), and optionally the teacher's D_T for comparisons."""

    def __init__(self, student: StudentSystem, teacher: TeacherSystem | None = None,
                 device: str | torch.device = "auto", tile: int = 512, tile_overlap: int = 64,
                 tile_refine: int = 2, atlas: Atlas | None = None, precision: str = "auto"):
        check_tile(tile, tile_overlap)
        if tile_refine < 0:
            raise ValueError(f"tile_refine must be 0 or more, got {tile_refine}")
        self.device = resolve_device(device)
        self.restorer_dtype = autocast_dtype(precision, self.device)  # None: fp32
        keep_freed_memory(self.device.type)
        # channels-last routes the depthwise convs to oneDNN: about 2x faster on CPU
        self.student = student.to(self.device, memory_format=torch.channels_last).eval()
        self.teacher = (teacher.to(self.device, memory_format=torch.channels_last).eval()
                        if teacher is not None else None)
        self.cfg = student.cfg
        self.tile, self.tile_overlap, self.tile_refine = tile, tile_overlap, tile_refine
        self.atlas: Atlas | None = None
        if atlas is not None:
            self.use_atlas(atlas)

    @property
    def has_prior(self) -> bool:
        return self.student.has_predictor

    def use_atlas(self, atlas: Atlas) -> None:
        """Read priors against `atlas` (what the input looks like; whether it looks clean)."""
        if not atlas.matches(self):
            raise ValueError("this atlas was built with another predictor D_S; rebuild it with "
                             "python -m lupi_core atlas --checkpoint WEIGHTS")
        self.atlas = atlas

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
                      tile: int | None = None, progress: Progress | None = None,
                      with_teacher: bool = False) -> np.ndarray:
        """Restore to HxWx3 float32 in [0, 1], clamped, not quantised (what metrics use).

        `prior` replaces d_S (e.g. d_T, or a counterfactual); `tile` overrides the tile size.
        `with_teacher` restores with the teacher's R_T instead of R_S, given `prior` (d_T from
        `privileged_prior`): what Stage 1 learned, for diagnosis.
        """
        if with_teacher and (self.teacher is None or prior is None):
            raise ValueError("restoring with R_T needs the teacher's weights (load_pretrained(teacher=...)) "
                             "and a prior (privileged_prior(degraded, clean))")
        restorer = self.teacher.restorer if with_teacher else self.student.restorer
        tensor = self._input(image)
        prior_tensor = None
        if with_teacher or self.has_prior:
            prior_tensor = (self._prior_tensor(tensor) if prior is None
                            else torch.as_tensor(np.asarray(prior, np.float32), device=self.device).reshape(1, -1))
            if prior_tensor.shape[1] != self.cfg.prior_dim:
                raise ValueError(f"a prior must have {self.cfg.prior_dim} values, got {prior_tensor.shape[1]}")
        run = lambda x: restorer(x, prior_tensor).float()  # noqa: E731
        dtype = self.restorer_dtype
        with torch.autocast(self.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            output = restore_tiled(restorer, run, tensor, tile or self.tile, self.tile_overlap,
                                   self.tile_refine, progress)
        return to_float_image(output)

    def read(self, image: np.ndarray | Image.Image, prior: np.ndarray | None = None) -> dict[str, Any] | None:
        """What the prior (the image's own d_S unless given) says the image suffers from
        (`Atlas.describe`); None without an atlas."""
        if self.atlas is None or not self.has_prior:
            return None
        return self.atlas.describe(self.prior(image) if prior is None else prior)

    def restoration(self, image: np.ndarray | Image.Image, strength: float = 1.0, force: bool = False,
                    prior: np.ndarray | None = None, tile: int | None = None,
                    progress: Progress | None = None) -> Restoration:
        """Restore unless the prior reads the image as clean (then it is left as it is, unless
        `force`), blended with the input by `strength` (0: the input exactly, 1: the restoration)."""
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"strength must be between 0 and 1, got {strength}")
        array = to_rgb_uint8(image)
        own = self.prior(array) if self.has_prior else None  # D_S once: for the reading and for R
        reading = self.read(array, own)
        looks_clean = (reading is not None and reading["kind"] == "clean"
                       and not reading["out_of_distribution"])
        if (looks_clean and not force) or strength == 0:
            return Restoration(array.astype(np.float32) / 255.0, reading, left_as_is=looks_clean and not force)
        restored = self.restore_float(array, prior=own if prior is None else prior, tile=tile, progress=progress)
        if strength < 1:
            restored = blend_strength(array.astype(np.float32) / 255.0, restored, strength)
        return Restoration(restored, reading, left_as_is=False)

    def restore(self, image: np.ndarray | Image.Image, prior: np.ndarray | None = None,
                tile: int | None = None, progress: Progress | None = None, strength: float = 1.0,
                force: bool = False) -> np.ndarray | Image.Image:
        """Restore an image (see `restoration`); the result has the input's type (array or PIL)
        and size, as uint8 RGB."""
        result = self.restoration(image, strength=strength, force=force, prior=prior, tile=tile, progress=progress)
        restored = quantize(result.image)
        return Image.fromarray(restored) if isinstance(image, Image.Image) else restored


def load_pretrained(path: str | Path | None = None, teacher: str | Path | None = None,
                    device: str | torch.device = "auto", tile: int = 512, atlas: str | Path | None = None,
                    tile_refine: int = 2, precision: str = "auto") -> Pipeline:
    """Load a student weights file (default: the shipped model in assets/).

    With no `teacher` the shipped teacher is loaded too when `path` is the default and it exists.
    With no `atlas` the shipped one is used when it was built with this student's D_S.
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
    pipeline = Pipeline(student, teacher_model, device=device, tile=tile, tile_refine=tile_refine, precision=precision)
    if atlas is not None:
        pipeline.use_atlas(Atlas.load(atlas))
    elif Atlas.exists(DEFAULT_ATLAS) and pipeline.has_prior:
        shipped = Atlas.load(DEFAULT_ATLAS)
        if shipped.matches(pipeline):  # another model's atlas would misread its priors: then none
            pipeline.atlas = shipped
    return pipeline
