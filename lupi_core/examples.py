"""The app's example images: scikit-image's bundled photographs (public domain /
CC0, read from the installed package, never downloaded), each degraded with
fixed seeds, plus the clean originals, as PNGs in assets/examples/ with an
index.json that names each file's clean original and recipe.

Regenerate: ``python -m lupi_core examples [--out assets/examples]``.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image

from .atlas import ASSETS
from .degrade import degrade
from .images import bundled_image, save_png

EXAMPLES_DIR = ASSETS / "examples"
MAX_SIDE = 320
# (photograph, kind, degrade() keywords, seed): every kind on two photographs.
RECIPES = (
    ("astronaut", "noise", {"sigma": 25}, 1),
    ("coffee", "noise", {"sigma": 25}, 2),
    ("chelsea", "rain", {"level": 0.6}, 3),
    ("rocket", "rain", {"level": 0.6}, 4),
    ("rocket", "haze", {"level": 0.6}, 5),
    ("astronaut", "haze", {"level": 0.6}, 6),
    ("chelsea", "blur", {"level": 0.5}, 7),
    ("coffee", "blur", {"level": 0.5}, 8),
    ("coffee", "lowlight", {"level": 0.5}, 9),
    ("astronaut", "lowlight", {"level": 0.5}, 10),
    ("chelsea", "mix", {"level": 0.5, "kinds": ["haze", "noise"]}, 11),
    ("rocket", "mix", {"level": 0.5, "kinds": ["rain", "lowlight"]}, 12),
)


def clean_photo(name: str, max_side: int = MAX_SIDE) -> np.ndarray:
    """A bundled photograph scaled so its longer side is max_side, both sides a multiple of 8."""
    image = bundled_image(name, size=None)
    h, w = image.shape[:2]
    scale = max_side / max(h, w)
    size = (max(8, round(w * scale) // 8 * 8), max(8, round(h * scale) // 8 * 8))
    return np.array(Image.fromarray(image).resize(size, Image.Resampling.LANCZOS))


def write_examples(out: str | Path = EXAMPLES_DIR, max_side: int = MAX_SIDE) -> list[dict]:
    """Write the PNGs and index.json; returns the index entries (degraded ones, then clean ones)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    entries, cleans = [], {}
    for name, kind, params, seed in RECIPES:
        if name not in cleans:
            cleans[name] = clean_photo(name, max_side)
            save_png(cleans[name], out / f"{name}_clean.png")
        degraded = degrade(cleans[name], kind, seed=seed, **params)
        suffix = f"noise{params['sigma']}" if kind == "noise" else kind
        file = f"{name}_{suffix}.png"
        save_png(degraded, out / file)
        entries.append({"file": file, "image": name, "kind": kind, "params": params, "seed": seed,
                        "clean": f"{name}_clean.png"})
    entries += [{"file": f"{name}_clean.png", "image": name, "kind": "clean", "params": {}, "seed": None,
                 "clean": f"{name}_clean.png"} for name in cleans]
    doc = {"source": "scikit-image bundled photographs (public domain / CC0); regenerate with "
                     "python -m lupi_core examples", "examples": entries}
    (out / "index.json").write_text(json.dumps(doc, indent=1) + "\n")
    return entries


def load_index(folder: str | Path = EXAMPLES_DIR) -> list[dict]:
    """The examples' index entries, with absolute "path" and "clean_path" added ([] if missing)."""
    folder = Path(folder)
    index = folder / "index.json"
    if not index.is_file():
        return []
    entries = json.loads(index.read_text())["examples"]
    return [{**e, "path": str(folder / e["file"]), "clean_path": str(folder / e["clean"])} for e in entries
            if (folder / e["file"]).is_file()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=EXAMPLES_DIR, help="folder for the PNGs and index.json")
    parser.add_argument("--max-side", type=int, default=MAX_SIDE, help="photographs are fitted within this side")


def run(args: argparse.Namespace) -> int:
    entries = write_examples(args.out, args.max_side)
    total = sum((args.out / e["file"]).stat().st_size for e in entries)
    print(f"wrote {len(entries)} examples to {args.out} ({total / 1e6:.1f} MB)")
    return 0
