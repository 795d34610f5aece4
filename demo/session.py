"""What every tab of the app shares: the loaded model and atlas, reading uploads, and the
current image (the degraded input I_d, its clean original I_c when known, and its prior d_S).

A tab's handlers return plain dicts keyed by the names of that tab's own components,
so they are tested without a server; `Tab.updates` turns such a dict into Gradio's
{component: value}.
"""
from __future__ import annotations

import tempfile
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
from PIL import Image

from lupi_core.atlas import Atlas
from lupi_core.images import ImageError, load_image, to_rgb_uint8
from lupi_core.pipeline import Pipeline

MAX_PIXELS = 16_000_000          # uploads above this are refused with a message (CLI: any size)
MIN_SIDE = 8                     # the network downsamples three times


class RawImage(gr.Image):
    """An image input that hands the handler the uploaded file's path untouched, so that
    lupi_core.images.load_image reads it (EXIF, 16-bit, alpha, and a clear message for a
    damaged or non-image file) instead of Gradio's own conversion raising first."""

    def preprocess(self, payload):  # type: ignore[override]
        if payload is not None and getattr(payload, "path", None) and not (payload.url or "").startswith("data:"):
            return str(payload.path)
        return super().preprocess(payload)

    def get_block_name(self) -> str:
        return "image"


@dataclass
class Current:
    """The image every tab looks at, and what D_S and the atlas make of it."""

    image: np.ndarray
    clean: np.ndarray | None
    source: str
    note: str = ""
    prior: np.ndarray | None = None     # d_S, None for a model without a predictor
    reading: dict | None = None         # the atlas' description of d_S (Atlas.describe)
    kind: str | None = None             # the true degradation, when known (an example, a synthesized or atlas image)


class Session:
    """The loaded pipeline, atlas and examples, shared by the tabs of one app."""

    def __init__(self, pipeline: Pipeline, atlas: Atlas | None = None, examples: list[dict] | None = None,
                 tmp_dir: str | Path | None = None):
        self.pipeline, self.atlas, self.examples = pipeline, atlas, list(examples or [])
        Image.MAX_IMAGE_PIXELS = MAX_PIXELS  # PIL refuses bombs at the app's own limit, not its default 89 MP
        if atlas is not None and pipeline.atlas is None and pipeline.has_prior and atlas.matches(pipeline):
            pipeline.use_atlas(atlas)  # the pipeline reads inputs (clean or not) against the app's atlas
        self.tmp = Path(tmp_dir) if tmp_dir else Path(tempfile.mkdtemp(prefix="lupi-demo-"))
        self.tmp.mkdir(parents=True, exist_ok=True)

    def read_upload(self, path: str | Path | None) -> tuple[np.ndarray, str]:
        """Load an uploaded file as uint8 RGB; raises ImageError with a user-facing message that
        names the file by its own name (never the server's temporary folder). Returns the image
        and a note of what was converted (grayscale, alpha, 16-bit, ...)."""
        if path is None or str(path) == "":
            raise ImageError("no image: drop, paste or pick one (PNG, JPEG, BMP, TIFF, WebP, GIF)")
        path = Path(path)
        name = path.name
        header = _read_header(path)
        w, h = header["size"]
        if w * h > MAX_PIXELS:
            size = f"{w} x {h} ({w * h / 1e6:.1f} MP)" if w != MAX_PIXELS else "larger than PIL decodes safely"
            raise ImageError(f"{name}: the image is {size}, above this demo's "
                             f"{MAX_PIXELS / 1e6:.0f} MP limit; downscale it, or restore it with "
                             f"`python -m lupi_core restore` (tiles, any size)")
        image = load_image(path, name=name)
        if min(image.shape[:2]) < MIN_SIDE:
            raise ImageError(f"{name}: the image is {image.shape[1]} x {image.shape[0]} pixels; it needs at least "
                             f"{MIN_SIDE} x {MIN_SIDE}")
        return image, conversion_note(header["mode"], header["frames"], header["rotated"])

    def example(self, index: int) -> tuple[Current, str]:
        """Example `index` as the current image (with its clean original when it is a degraded one),
        and its file path."""
        if not 0 <= index < len(self.examples):
            raise ImageError(f"no example {index}")
        entry = self.examples[index]
        clean = load_image(entry["clean_path"]) if entry["kind"] != "clean" else None
        return self.current(load_image(entry["path"]), clean, f"Example {entry['file']}",
                            kind=entry["kind"]), entry["path"]

    def current(self, image: np.ndarray, clean: np.ndarray | None, source: str, note: str = "",
                kind: str | None = None) -> Current:
        """A new current image, with its prior and the atlas' reading of it."""
        image = to_rgb_uint8(image)
        if clean is not None and clean.shape != image.shape:
            clean = None
        prior = self.pipeline.prior(image) if self.pipeline.has_prior else None
        reading = self.atlas.describe(prior) if self.atlas is not None and prior is not None else None
        return Current(image, clean, source, note, prior, reading, kind)


def _read_header(path: Path) -> dict[str, Any]:
    """Size, mode, frame count and EXIF rotation from the header alone, so that a huge image is
    refused before it is decoded. An unreadable file reads as 0 x 0 (load_image says why)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # refused by the caller, with a message
            with Image.open(path) as probe:
                return {"size": probe.size, "mode": probe.mode, "frames": getattr(probe, "n_frames", 1),
                        "rotated": probe.getexif().get(0x0112, 1) not in (1, None)}
    except Image.DecompressionBombError:  # a header claiming more than twice PIL's own limit
        return {"size": (MAX_PIXELS, MAX_PIXELS), "mode": "", "frames": 1, "rotated": False}
    except Exception:  # noqa: BLE001 - any unreadable file: load_image raises the message
        return {"size": (0, 0), "mode": "", "frames": 1, "rotated": False}


def conversion_note(mode: str, frames: int, rotated: bool) -> str:
    """What load_image converted, for the status line."""
    notes = []
    if frames > 1:
        notes.append(f"animated ({frames} frames): the first frame is used")
    if mode in ("L", "1", "LA", "I;16", "I;16B", "I;16L", "I"):
        notes.append("grayscale: converted to RGB")
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        notes.append("16-bit: scaled to 8-bit")
    if mode in ("RGBA", "LA", "PA"):
        notes.append("transparency: composited on white")
    if rotated:
        notes.append("EXIF orientation applied")
    return "; ".join(notes)


def describe_sentence(reading: dict | None) -> str:
    """The atlas' reading of a prior in one sentence, with how many neighbours agree; without a
    majority it says the reading is unsure and how the neighbours split, since the prior does
    not keep every pair of kinds apart (noise and rain above all)."""
    if reading is None:
        return "No atlas loaded, so no description."
    n = len(reading["neighbours"])
    counts = Counter(label["kind"] for label, _ in reading["neighbours"])
    agree = counts[reading["kind"]]
    if 2 * agree > n:
        return f"Looks like **{reading['text']}** ({agree} of the {n} nearest atlas samples agree)."
    split = ", ".join(f"{count} {kind}" for kind, count in counts.most_common())
    return (f"Unsure: the {n} nearest atlas samples split {split}, so the prior does not tell these kinds "
            f"apart here; the closest ones lean to **{reading['text']}**.")


def describe_markdown(reading: dict | None) -> str:
    text = "#### What the model thinks it is looking at\n" + describe_sentence(reading)
    if reading is not None and reading["out_of_distribution"]:
        text += (f"\n\n⚠️ **Far from everything in the atlas**: the nearest atlas sample is "
                 f"{reading['nearest_distance']:.3f} away, beyond the {reading['threshold']:.3f} that 99% of "
                 f"atlas samples are within of their own nearest neighbour. The model has seen nothing like this "
                 f"image; read its description, and its restoration, with care.")
    return text


def warn(message: str) -> str:
    """A message for the page (as Markdown) and as a toast; never an exception."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # outside a request gradio turns it into a Python warning
            gr.Warning(message)
    except Exception:  # noqa: BLE001 - a toast is a nicety
        pass
    return f"⚠️ {message}"


class Tab:
    """One tab of the app: its components (attributes set by `build`) and its handlers, whose
    dicts are keyed by those attributes' names."""

    title = ""
    tab_id = ""
    tab: gr.Tab | None = None  # the gr.Tab holding it, set when the page is built

    def __init__(self, session: Session):
        self.session = session

    @property
    def pipeline(self) -> Pipeline:
        return self.session.pipeline

    @property
    def atlas(self) -> Atlas | None:
        return self.session.atlas

    def build(self) -> None:
        raise NotImplementedError

    def show(self, current: Current) -> dict[str, Any]:
        """This tab's view of a new current image (nothing by default)."""
        return {}

    def shown(self) -> list[str]:
        """The names `show` fills: the outputs of every event that changes the current image."""
        return []

    def components(self, names: list[str]) -> list:
        return [getattr(self, name) for name in names]

    def updates(self, result: dict[str, Any]) -> dict:
        """A handler's named results as Gradio's {component: value}; names without a component
        (none in this tab) are an error, so a misspelt key cannot pass silently."""
        return {getattr(self, name): value for name, value in result.items()}
