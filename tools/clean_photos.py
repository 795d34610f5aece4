"""What the model does with photos that need no restoration: for each folder of clean images
(and the photographs bundled with scikit-image), how many the prior reads as clean (the gate of
`Pipeline.restoration`, which needs an atlas built with the model's D_S), and how close the
ungated restoration stays to the photo: median PSNR against it, median |change of mean
brightness| (0-255), and how many stay within 33 dB and 3/255 (issue #16's target).
`--per-image --kind-priors` adds, for each image, the range of its brightness change when R_S
restores it with each atlas kind's mean prior in place of its own: whether the prior or R_S
decides the tone.

    python -m tools.clean_photos [FOLDER ...] [--limit 30] [--checkpoint F --atlas PATH] [--per-image [--kind-priors]]
"""
from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from lupi_core.images import BUNDLED_IMAGES, bundled_image, list_images, load_image
from lupi_core.markdown import markdown_table
from lupi_core.metrics import psnr
from lupi_core.pipeline import load_pretrained
from lupi_core.steering import atlas_priors, counterfactuals

TARGET_DB, TARGET_BRIGHTNESS = 33.0, 3.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="*", type=Path, help="folders of clean images")
    parser.add_argument("--limit", type=int, default=30, help="at most this many images a folder")
    parser.add_argument("--checkpoint", type=Path, default=None, help="student weights (default: the shipped model)")
    parser.add_argument("--atlas", type=Path, default=None, help="an atlas built with that student's D_S")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--per-image", action="store_true", help="also list each image's PSNR and brightness change")
    parser.add_argument("--kind-priors", action="store_true",
                        help="with --per-image: also each image's brightness change under every atlas kind's mean prior")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pipeline = load_pretrained(args.checkpoint, atlas=args.atlas)
    if args.kind_priors and (pipeline.atlas is None or not args.per_image):
        parser.error("--kind-priors needs --per-image and an atlas built with the model's D_S (--atlas PATH)")
    kind_priors = atlas_priors(pipeline.atlas) if args.kind_priors else {}
    sets = {"bundled photographs": {name: bundled_image(name, None) for name in BUNDLED_IMAGES}}
    for folder in args.folders:
        sets[str(folder)] = {path.name: load_image(path) for path in list_images(folder)[:args.limit]}
    rows, image_rows = [], []
    for name, named_images in sets.items():
        images = list(named_images.values())
        kinds = Counter(pipeline.read(image)["kind"] for image in images) if pipeline.atlas is not None else None
        scores = []
        for image_name, image in named_images.items():
            # the own prior's restoration first, then (with --kind-priors) each kind mean's
            restorations = [c.restored for c in counterfactuals(pipeline, image, kind_priors)] if kind_priors \
                else [pipeline.restore_float(image)]
            changes = [float(restored.mean()) * 255 - image.mean() for restored in restorations]
            scores.append((psnr(restorations[0], image), abs(changes[0])))
            image_rows.append([name, image_name, f"{scores[-1][0]:.1f}", f"{changes[0]:+.1f}"])
            if kind_priors:
                image_rows[-1].append(f"{min(changes[1:]):+.1f} to {max(changes[1:]):+.1f}")
        db, brightness = np.array(scores).T
        within = int(np.sum((db >= TARGET_DB) & (brightness <= TARGET_BRIGHTNESS)))
        rows.append([name, len(images), "no atlas" if kinds is None else kinds["clean"],
                     "" if kinds is None else dict(kinds.most_common()), f"{np.median(db):.1f}",
                     f"{np.median(brightness):.1f}", f"{within} of {len(images)}"])
    print(markdown_table(["clean images", "n", "read as clean", "read as", "PSNR vs itself (median dB)",
                          "brightness change (median /255)", f"within {TARGET_DB:g} dB and {TARGET_BRIGHTNESS:g}/255"],
                         rows))
    if args.per_image:
        print()
        print(markdown_table(["set", "image", "PSNR vs itself (dB)", "brightness change (/255)"] +
                             ["the same under the kind means"] * args.kind_priors, image_rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
