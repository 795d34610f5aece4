"""Do tiles restore as one pass would? PSNR of the default (tiled) restore against one
whole-image pass, on large photos darkened and hazed, with the old independent tiles
beside it. One pass of a 1536x1024 image peaks at about 7.6 GB.

    python -m tools.tile_agreement FOLDER [--size 1536x1024] [--level 0.7]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from lupi_core.degrade import degrade
from lupi_core.images import list_images, load_image, to_float_image
from lupi_core.markdown import markdown_table
from lupi_core.metrics import psnr
from lupi_core.pipeline import load_pretrained
from lupi_core.tiling import restore_independent_tiles


def independent_tiles(pipeline, image: np.ndarray) -> np.ndarray:
    tensor = pipeline._input(image)
    prior = pipeline._prior_tensor(tensor)
    with torch.inference_mode():
        return to_float_image(restore_independent_tiles(lambda t: pipeline.student.restorer(t, prior), tensor,
                                                        pipeline.tile, pipeline.tile_overlap))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="photos, resized to --size")
    parser.add_argument("--size", default="1536x1024")
    parser.add_argument("--level", type=float, default=0.7)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    pipeline = load_pretrained()
    rows = []
    for path in list_images(args.folder):
        clean = np.asarray(Image.fromarray(load_image(path)).resize((width, height), Image.Resampling.LANCZOS))
        for kind in ("lowlight", "haze"):
            image = degrade(clean, kind, level=args.level, seed=1)
            whole = pipeline.restore_float(image, tile=max(width, height) + 8)
            tiled = pipeline.restore_float(image)
            rows.append([path.name, kind, f"{psnr(tiled, whole):.2f}",
                         f"{psnr(independent_tiles(pipeline, image), whole):.2f}"])
    print(markdown_table(["photo", "kind", "default tiles vs one pass (dB)", "independent tiles vs one pass (dB)"],
                         rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
