"""How often the prior reads clean photos as clean: the gate `Pipeline.restoration` uses.

For each folder of clean images (and the photographs bundled with scikit-image, at full
size), the share the shipped pipeline's `read()` (the atlas' 7-nearest-neighbour reading)
calls "clean", and what it calls the rest.

    python -m tools.clean_reading [FOLDER ...] [--limit 30]
"""
from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from lupi_core.images import BUNDLED_IMAGES, bundled_image, list_images, load_image
from lupi_core.markdown import markdown_table
from lupi_core.pipeline import load_pretrained


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="*", type=Path, help="folders of clean images")
    parser.add_argument("--limit", type=int, default=30, help="at most this many images a folder")
    args = parser.parse_args()
    pipeline = load_pretrained()
    if pipeline.atlas is None:
        print("the shipped atlas does not match the model: rebuild it (python -m lupi_core atlas)")
        return 2
    sets = {"bundled photographs": [bundled_image(name, None) for name in BUNDLED_IMAGES]}
    for folder in args.folders:
        sets[str(folder)] = [load_image(path) for path in list_images(folder)[:args.limit]]
    rows = []
    for name, images in sets.items():
        kinds = Counter(pipeline.read(image)["kind"] for image in images)
        rows.append([name, len(images), kinds["clean"], dict(kinds.most_common())])
    print(markdown_table(["clean images", "n", "read as clean", "read as"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
