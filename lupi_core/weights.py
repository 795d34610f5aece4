"""Weights on disk: safetensors files that carry their config in the metadata.

A file alone rebuilds its model (`load_model`), nothing is unpickled, and every
failure names the file and says what is wrong.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file
from torch import nn

from .config import ModelConfig
from .hardware import resolve_device
from .images import to_tensor
from .models import StudentSystem, TeacherSystem, build_student, build_teacher

FORMAT = "lupi-weights/1"


class WeightsError(RuntimeError):
    """A weights file that cannot be used; the message names the file."""


def exported_name(name: str, kind: str) -> str:
    """The file `export` writes for a model kind under a prefix: NAME-student / NAME-teacher."""
    return f"{name}-{kind}.safetensors"


def save_model(model: StudentSystem | TeacherSystem, path: str | Path, *, half: bool = False,
               info: dict | None = None) -> Path:
    """Write `model` with its config (and optional `info`, e.g. training steps) in the metadata."""
    path = Path(path)
    kind = "teacher" if isinstance(model, TeacherSystem) else "student"
    metadata = {"format": FORMAT, "kind": kind, "config": model.cfg.to_json(),
                "with_predictor": json.dumps(kind == "teacher" or model.has_predictor),
                "info": json.dumps(info or {})}
    dtype = torch.float16 if half else torch.float32
    tensors = {name: t.detach().to("cpu", dtype).contiguous() for name, t in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    save_file(tensors, str(tmp), metadata=metadata)
    tmp.replace(path)  # atomic: a crash never leaves a half-written file under the real name
    return path


def read_metadata(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: weights file not found")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except (SafetensorError, OSError, ValueError) as error:
        raise WeightsError(f"{path}: not a readable safetensors file, it may be truncated or corrupt ({error})") from None
    if metadata.get("format") != FORMAT:
        raise WeightsError(f"{path}: not a LUPI weights file (metadata format {metadata.get('format')!r}, "
                           f"expected {FORMAT!r})")
    return metadata


def load_model(path: str | Path, kind: str | None = None, preset: str | None = None,
               device: str | torch.device = "auto") -> StudentSystem | TeacherSystem:
    """Rebuild the model a file describes. `kind`/`preset`, when given, must match the file."""
    path = Path(path)
    metadata = read_metadata(path)
    if kind is not None and metadata["kind"] != kind:
        raise WeightsError(f"{path}: holds a {metadata['kind']} model, but a {kind} model was asked for")
    try:
        cfg = ModelConfig.from_json(metadata["config"])
    except (ValueError, TypeError, KeyError) as error:
        raise WeightsError(f"{path}: its config metadata is invalid ({error})") from None
    if preset is not None and cfg.preset_name() != preset:
        raise WeightsError(f"{path}: holds a {cfg.preset_name() or 'custom'} model, not the {preset!r} preset")
    if metadata["kind"] == "teacher":
        model: nn.Module = build_teacher(cfg)
    else:
        model = build_student(cfg, with_predictor=json.loads(metadata.get("with_predictor", "true")))
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise WeightsError(f"{path}: tensor data is unreadable, the file may be truncated ({error})") from None
    expected = model.state_dict()
    missing, unexpected = expected.keys() - tensors.keys(), tensors.keys() - expected.keys()
    wrong_shape = [k for k in expected.keys() & tensors.keys() if expected[k].shape != tensors[k].shape]
    if missing or unexpected or wrong_shape:
        raise WeightsError(f"{path}: tensors do not match its config (missing {sorted(missing)[:3]}, "
                           f"unexpected {sorted(unexpected)[:3]}, wrong shape {wrong_shape[:3]})")
    model.load_state_dict({k: v.float() for k, v in tensors.items()})
    return model.to(resolve_device(device)).eval()


def model_info(path: str | Path) -> dict:
    """The `info` a file was saved with (training steps, data, ...)."""
    return json.loads(read_metadata(path).get("info", "{}"))


def export_weights(source: str | Path, target: str | Path, half: bool = True,
                   max_change: float = 0.5 / 255) -> tuple[Path, float]:
    """Copy a weights file for shipping, in fp16 when that changes the model's output on
    a test photograph by at most `max_change` (on the [0, 1] scale), else in fp32.
    Returns the written path and the measured largest change."""
    from skimage import data as photographs

    model = load_model(source)
    info = model_info(source)
    image = to_tensor(photographs.astronaut()[:256, :256])
    inputs = (image, image) if isinstance(model, TeacherSystem) else (image,)  # D_T also sees the clean image
    rounded = copy.deepcopy(model)
    rounded.load_state_dict({k: v.half().float() for k, v in model.state_dict().items()})
    with torch.no_grad():
        change = float((rounded(*inputs)[0] - model(*inputs)[0]).abs().max())
    save_model(model, target, half=half and change <= max_change, info=info)
    return Path(target), change

