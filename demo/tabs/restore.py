"""Restore: load an image (upload, example or a synthesized degradation), restore it at full
resolution with R_S steered by d_S, and show what the prior reads it as."""
from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np

from lupi_core.atlas import DEGRADED_KINDS
from lupi_core.degrade import degrade
from lupi_core.images import ImageError, quantize, save_png, to_rgb_uint8
from lupi_core.markdown import markdown_table
from lupi_core.metrics import psnr, ssim

from .. import charts
from ..session import Current, RawImage, Tab, describe_markdown, warn

SIGMA_MAX = 75
Progress = Callable[..., Any] | None


class RestoreTab(Tab):
    title, tab_id = "Restore", "restore"

    # -- building --------------------------------------------------------------------------------
    def build(self) -> None:
        with gr.Row(equal_height=False):
            with gr.Column(scale=1):
                self.input_image = RawImage(type="filepath", sources=["upload", "clipboard"], format="png",
                                            image_mode=None, label="Input image: drop, paste or click to pick",
                                            height=340, elem_id="input-image")
                with gr.Accordion("Or synthesize a degradation (the clean original is then known)", open=True):
                    with gr.Row():
                        choices = [(charts.KIND_NAMES[kind], kind) for kind in DEGRADED_KINDS]
                        self.kind = gr.Dropdown(choices=choices, value="noise", label="Kind", scale=2)
                        self.seed = gr.Number(value=0, precision=0, label="Seed", scale=1, minimum=0)
                    self.severity = gr.Slider(0, SIGMA_MAX, value=25, step=1, label="Noise sigma (0-255 scale)")
                    self.synth_btn = gr.Button("Degrade the clean original", elem_id="synth-btn")
                self.strength = gr.Slider(0, 1, value=1, step=0.05, elem_id="strength",
                                          label="Strength (0: the input, 1: the full restoration)")
                with gr.Row():
                    self.restore_btn = gr.Button("Restore", variant="primary", elem_id="restore-btn", scale=2)
                    self.force_btn = gr.Button("Restore anyway", elem_id="force-btn", scale=1)
                self.status = gr.Markdown("Load an image to begin.", elem_id="status")
            with gr.Column(scale=1):
                self.restored = gr.ImageSlider(label="Before / after (drag the handle)", type="numpy", format="png",
                                               interactive=False, max_height=420, elem_id="restored")
                with gr.Row():
                    self.difference = gr.Image(label="Difference, amplified", format="png", type="numpy",
                                               interactive=False, height=200, elem_id="difference", scale=1)
                    with gr.Column(scale=1):
                        self.difference_info = gr.Markdown()
                        self.download = gr.DownloadButton("Download restored PNG", value=None, elem_id="download")
                self.metrics = gr.Markdown(elem_id="metrics")
                self.describe = gr.Markdown(elem_id="describe")
        examples = self.session.examples
        self.gallery = gr.Gallery(value=[(e["path"], e["file"].removesuffix(".png").replace("_", " ")) for e in examples],
                                  label="Examples (click one to load it; degraded ones come with their clean original)",
                                  columns=8, height=230, allow_preview=False, object_fit="cover", format="png",
                                  elem_id="examples")

    RESTORED = ["restored", "difference", "difference_info", "download", "metrics", "status", "describe"]

    def shown(self) -> list[str]:
        return ["input_image", *self.RESTORED]

    def show(self, current: Current) -> dict[str, Any]:
        h, w = current.image.shape[:2]
        status = f"**{current.source}**: {w} x {h}" + (f" ({current.note})" if current.note else "")
        status += ". Clean original known: PSNR/SSIM will be shown." if current.clean is not None else "."
        if current.prior is None:
            reading = "This model has no degradation predictor: no prior to show."
        else:
            reading = describe_markdown(current.reading)
        return {"restored": None, "difference": None, "difference_info": "", "download": None, "metrics": "",
                "status": status, "describe": reading}

    # -- a new current image -------------------------------------------------------------------------
    def load_upload(self, path: str | None) -> Current:
        """The uploaded file as the current image; raises ImageError with the message to show."""
        image, note = self.session.read_upload(path)
        return self.session.current(image, None, f"Uploaded {Path(path).name}", note)

    def synthesize(self, kind: str, severity: float, seed: float | None, current: Current | None) -> Current:
        """Degrade the clean original (or the current image, taken as clean) with a known recipe;
        raises ValueError when there is nothing to degrade."""
        if current is None:
            raise ValueError("load an image first (upload one or pick an example); it is taken as the clean original")
        source = current.clean if current.clean is not None else current.image
        seed = int(seed or 0)
        if kind == "noise":
            degraded = degrade(source, "noise", sigma=float(severity), seed=seed)
            what = f"noise sigma {float(severity):g}"
        else:
            level = float(np.clip(severity, 0.0, 1.0))
            degraded, info = degrade(source, kind, level=level, seed=seed, return_info=True)
            what = f"{kind} level {level:g}" + (f" ({' + '.join(info['kinds'])})" if kind == "mix" else "")
        return self.session.current(degraded, source, f"Synthesized {what}, seed {seed}", kind=kind)

    def severity_control(self, kind: str) -> dict[str, Any]:
        """The severity slider for a kind: noise in sigma (0-255 scale), others a 0-1 level."""
        if kind == "noise":
            return {"severity": gr.update(minimum=0, maximum=SIGMA_MAX, step=1, value=25,
                                          label="Noise sigma (0-255 scale)")}
        return {"severity": gr.update(minimum=0, maximum=1, step=0.05, value=0.5,
                                      label="Severity level (0 = mildest, 1 = strongest)")}

    # -- restoring -----------------------------------------------------------------------------------
    def restore(self, image: str | Path | np.ndarray | None, current: Current | None, strength: float = 1.0,
                force: bool = False, progress: Progress = None) -> dict[str, Any]:
        """Restore the input (a file path, as the page sends it, or an array) at full resolution:
        before/after, the amplified difference, PSNR/SSIM when the clean original is known, a PNG
        to download. An input the prior reads as clean is left as it is unless `force`."""
        try:
            array = to_rgb_uint8(image) if isinstance(image, np.ndarray) else self.session.read_upload(image)[0]
        except ImageError as error:
            return {"status": warn(str(error))}
        clean = current.clean if current is not None and current.clean is not None else None
        if clean is not None and clean.shape != array.shape:
            clean = None
        try:
            result = self.pipeline.restoration(array, strength=float(strength), force=bool(force),
                                               progress=_tile_progress(progress))
        except (ImageError, ValueError, RuntimeError) as error:
            return {"status": warn(f"restoration failed: {error}")}
        restored = quantize(result.image)
        diff, gain = charts.difference_image(restored, array)
        w, h = array.shape[1], array.shape[0]
        if result.left_as_is:
            status = f"{w} x {h} {result.message}: press **Restore anyway**."
        else:
            status = f"Restored {w} x {h} at full resolution" + (f", strength {strength:g}." if strength < 1 else ".")
        out = {"restored": (array, restored), "difference": diff,
               "difference_info": f"|output - input| x {gain} (gain {gain}: a difference of "
                                  f"{255 / gain:.0f}/255 shows as white)",
               "download": str(save_png(restored, self.session.tmp / f"restored-{uuid.uuid4().hex[:8]}.png")),
               "metrics": metrics_markdown(array, result.image, clean), "status": status}
        if self.pipeline.has_prior:
            reading = result.reading
            if reading is None and self.atlas is not None:
                reading = self.atlas.describe(self.pipeline.prior(array))
            out["describe"] = describe_markdown(reading)
        return out


def _tile_progress(progress: Progress) -> Callable[[int, int], None] | None:
    """The pipeline's tile callback as a Gradio progress bar, with a time estimate once the
    guide pass has run."""
    if progress is None:
        return None
    started = time.perf_counter()

    def tiles(done: int, total: int) -> None:
        estimate = (time.perf_counter() - started) * total if done == 0 else None
        progress((done, total), desc=f"restoring {total} tile passes" + (f", about {estimate:.0f} s" if estimate else ""))
    return tiles


def metrics_markdown(degraded: np.ndarray, restored: np.ndarray, clean: np.ndarray | None) -> str:
    """PSNR/SSIM of the input and of the (unquantised) output against the clean original."""
    if clean is None:
        return ("No clean original for this image, so no PSNR/SSIM. Synthesize a degradation (above) or pick a "
                "degraded example to see them.")
    p_in, p_out = psnr(degraded, clean), psnr(restored, clean)
    s_in, s_out = ssim(degraded, clean), ssim(restored, clean)
    return markdown_table(["against the clean original", "PSNR (dB)", "SSIM"], [
        ["input", f"{p_in:.2f}", f"{s_in:.4f}"], ["restored", f"**{p_out:.2f}**", f"**{s_out:.4f}**"],
        ["change", f"{p_out - p_in:+.2f}", f"{s_out - s_in:+.4f}"]])
