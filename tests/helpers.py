"""Helpers shared by the test modules (not tests themselves).

A tiny model with non-zero Degradation-aware Blocks (so the prior matters) and an
atlas of two photographs at 64 px, built once per test session; a running app
on a free local port; and small generated image folders laid out as a recipe names them.
"""
from __future__ import annotations

import socket
import tomllib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from lupi_core.atlas import Atlas, Spec, build_atlas, bundled_image
from lupi_core.config import ModelConfig
from lupi_core.models import build_student, build_teacher
from lupi_core.pipeline import Pipeline, load_pretrained
from lupi_core.weights import save_model


def picture(seed, h=40, w=52):
    """A smooth random colour image: patches of it are all different."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (h // 4 + 1, w // 4 + 1, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((w, h), Image.BILINEAR))


def write(folder, names, seed=0, h=40, w=52, images=None):
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for k, name in enumerate(names):
        image = picture(seed + k, h, w) if images is None else images[k]
        Image.fromarray(image).save(folder / name)
    return folder


def recipe_layout(root: Path, recipe: Path, count: int = 1, inputs_per_target: int = 1) -> Path:
    """The folders a recipe names under `root`, with `count` images each (k.png); a paired task's
    input folder gets `inputs_per_target` inputs per target, named k_j.png as SOTS names them."""
    for entry in tomllib.loads(Path(recipe).read_text())["task"]:
        if "clean" in entry:
            write(root / entry["clean"], [f"{k}.png" for k in range(count)])
            continue
        write(root / entry["target"], [f"{k}.png" for k in range(count)])
        if entry["input"] != entry["target"]:
            write(root / entry["input"], [f"{k}_{j}.png" for k in range(count) for j in range(inputs_per_target)],
                  seed=100)
    return root


SMALL_SPECS = [Spec("clean"), Spec("noise", sigma=10.0), Spec("noise", sigma=30.0), Spec("noise", sigma=50.0),
               Spec("rain", level=0.5), Spec("haze", level=0.5), Spec("blur", level=0.5), Spec("lowlight", level=0.5),
               Spec("mix", level=0.5)]
SMALL_IMAGES = ("astronaut", "coffee")
SIZE = 64


def trained_looking(model: torch.nn.Module, generator: torch.Generator) -> torch.nn.Module:
    """Give the zero-initialised DBs (and their MLPs) non-zero weights, so the prior matters."""
    with torch.no_grad():
        for block in model.restorer.dbs.values():
            for param in block.parameters():
                param.copy_(torch.randn(param.shape, generator=generator) * 0.2)
    return model


def make_tiny_checkpoint(folder: Path) -> tuple[Path, Path]:
    """Tiny student and teacher weights files; the zero-initialised DBs get random weights."""
    torch.manual_seed(0)
    cfg = ModelConfig.preset("tiny")
    student, teacher = build_student(cfg), build_teacher(cfg)
    generator = torch.Generator().manual_seed(0)
    for model in (student, teacher):
        trained_looking(model, generator)
    return save_model(student, folder / "student.safetensors"), save_model(teacher, folder / "teacher.safetensors")


def build_small_atlas(pipeline: Pipeline, seed: int = 0, extra: dict | None = None) -> Atlas:
    images = {name: bundled_image(name, SIZE) for name in SMALL_IMAGES}
    images.update(extra or {})
    return build_atlas(pipeline, images, SMALL_SPECS, seed=seed, image_size=SIZE, n_neighbors=6)


def shared_model_and_atlas(tmp_path_factory) -> tuple[Path, Path, Path]:
    """(student, teacher, atlas path): built on first use in a test session, then reused."""
    root = tmp_path_factory.getbasetemp() / "lupi-tiny-shared"
    if not (root / "atlas.json").is_file():
        root.mkdir(exist_ok=True)
        student, teacher = make_tiny_checkpoint(root)
        build_small_atlas(load_pretrained(student, teacher=teacher)).save(root / "atlas")
    return root / "student.safetensors", root / "teacher.safetensors", root / "atlas"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(pipeline: Pipeline, atlas: Atlas) -> Iterator[str]:
    """Launch the app around a pipeline and atlas on a free local port; yields its URL."""
    from demo.app import build_app, launch_options
    from lupi_core.examples import load_index

    app = build_app(pipeline, atlas, load_index())
    port = free_port()
    app.launch(prevent_thread_lock=True, quiet=True, **launch_options("127.0.0.1", port))
    yield f"http://127.0.0.1:{port}/"
    app.close()


def command_args(*argv: object):
    """`python -m lupi_core ARGV` parsed as the command line parses it (shared flags included),
    to call `args.run(args)` in-process."""
    from lupi_core.__main__ import build_parser

    return build_parser().parse_args([str(a) for a in argv])


def deaf_to_prior(pipeline: Pipeline) -> None:
    """Zero every DB's FiLM output layer: gamma = 1, beta = 0 whatever the prior, so the prior does nothing."""
    from lupi_core.prior import DegradationAwareBlock

    with torch.no_grad():
        for block in pipeline.student.modules():
            if isinstance(block, DegradationAwareBlock):
                block.mlp[-1].weight.zero_()
                block.mlp[-1].bias.zero_()
