"""Does the prior steer the restorer on the app's degraded examples? For each example with a
clean original: the gallery's own-prior PSNR minus the best and the mean of the other priors
(the atlas' clean and kind means), and how far each kind's direction slider at full scale
(amount 2) moves the output: the largest change of PSNR against the clean original, and the
PSNR of that edited restoration against the own-prior one.
`python -m tools.steer_examples [--threads 2]` (the shipped model and atlas)."""
from __future__ import annotations

import argparse
import sys

import numpy as np
import torch

from lupi_core.examples import load_index
from lupi_core.images import load_image
from lupi_core.markdown import markdown_table
from lupi_core.metrics import psnr
from lupi_core.pipeline import load_pretrained
from lupi_core.steering import atlas_priors, counterfactuals, kind_directions

FULL_SCALE = 2.0  # the right end of the app's kind sliders


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pipeline = load_pretrained()
    if pipeline.atlas is None:
        print("the shipped atlas does not match the model: rebuild it (python -m lupi_core atlas)")
        return 2
    directions = kind_directions(pipeline.atlas)
    rows, own_margins, slider_db = [], [], []
    for entry in load_index():
        if entry["kind"] == "clean":
            continue
        image, clean = load_image(entry["path"]), load_image(entry["clean_path"])
        own_prior = pipeline.prior(image)
        results = counterfactuals(pipeline, image, atlas_priors(pipeline.atlas), clean, own=own_prior)
        own, others = results[0], [c.psnr for c in results[1:]]
        edited = [pipeline.restore_float(image, prior=d.moved(own_prior, FULL_SCALE)) for d in directions]
        shifts = [psnr(out, clean) - own.psnr for out in edited]
        strongest = int(np.argmax(np.abs(shifts)))
        own_margins.append(own.psnr - max(others))
        slider_db.append(abs(shifts[strongest]))
        rows.append([entry["file"], f"{own.psnr:.2f}", f"{own.psnr - max(others):+.2f}",
                     f"{own.psnr - np.mean(others):+.2f}", f"{directions[strongest].label}: {shifts[strongest]:+.2f}",
                     f"{psnr(edited[strongest], own.restored):.1f}"])
    print(markdown_table(["example", "own prior (dB)", "own minus best other (dB)", "own minus mean other (dB)",
                          f"strongest slider at {FULL_SCALE:g}: PSNR change (dB)", "edited vs own output (dB)"], rows))
    print(f"\naverage own-prior margin over the best other prior: {np.mean(own_margins):+.2f} dB; strongest "
          f"slider at full scale: |PSNR change| {np.mean(slider_db):.2f} dB on average")
    return 0


if __name__ == "__main__":
    sys.exit(main())
