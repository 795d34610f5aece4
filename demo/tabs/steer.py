"""Steer the prior: edit d_S along named directions ("more haze", "stronger rain", principal
components) and watch R_S's output change, restore one image under every kind's mean prior
(the counterfactual gallery), or scale chosen dimensions by hand."""
from __future__ import annotations

from functools import cached_property
from typing import Any

import gradio as gr
import numpy as np

from lupi_core.images import quantize
from lupi_core.metrics import psnr
from lupi_core.steering import Direction, atlas_priors, counterfactuals, named_directions, steer_sentence

from .. import charts
from ..session import Current, Tab, warn

NEEDS_ATLAS = "The named directions and the gallery come from the atlas; start the app with one."
EDITED_DIMS = 5


class SteerTab(Tab):
    title, tab_id = "Steer the prior", "steer"

    @cached_property
    def directions(self) -> list[Direction]:
        return named_directions(self.atlas) if self.atlas is not None else []

    def build(self) -> None:
        self.edited = gr.State(None)   # the edited prior, for the atlas map's star
        gr.Markdown("The restorer R_S is modulated by the prior d. Move d along a direction read from the atlas "
                    "(0: the image's own prior; 1 on *more rain*: as far as the rain samples' mean lies from the "
                    "clean samples' mean) and see what changes in the restoration, though the image does not.")
        self.info = gr.Markdown("Load an image first (Restore tab).", elem_id="steer-info")
        kinds = [d for d in self.directions if d.key.startswith("kind:")]
        others = [d for d in self.directions if not d.key.startswith("kind:")]
        self.sliders = []
        with gr.Row(equal_height=False):
            with gr.Column(scale=1):
                for direction in kinds:
                    self.sliders.append(gr.Slider(-1, 2, value=0, step=0.1, label=direction.label,
                                                  elem_id=f"steer-{direction.key.replace(':', '-')}"))
                with gr.Accordion("Severity and principal directions", open=False):
                    for direction in others:
                        self.sliders.append(gr.Slider(-2, 2, value=0, step=0.1, label=direction.label,
                                                      elem_id=f"steer-{direction.key.replace(':', '-')}"))
                self.reset_btn = gr.Button("Back to the image's own prior", elem_id="steer-reset")
            with gr.Column(scale=1):
                self.result = gr.ImageSlider(label="Own prior / edited prior", type="numpy", format="png",
                                             interactive=False, max_height=360, elem_id="steer-result")
                self.change = gr.Markdown(elem_id="steer-change")
        gr.Markdown("### Counterfactual gallery: the same image under every kind's mean prior")
        self.gallery_btn = gr.Button("Restore under every prior", variant="primary", elem_id="gallery-btn")
        self.gallery_info = gr.Markdown(elem_id="gallery-info")
        self.gallery = gr.Gallery(label="Own prior first", columns=4, height=330, allow_preview=True, format="png",
                                  elem_id="cf-gallery")
        with gr.Accordion("Advanced: scale chosen dimensions", open=False):
            with gr.Row():
                self.dims = gr.Textbox(label=f"Dimensions (pre-filled: the {EDITED_DIMS} farthest from the clean mean)",
                                       scale=2, elem_id="steer-dims")
                self.scale = gr.Slider(-3, 3, value=2, step=0.1, label="Scale those dimensions by", scale=2)
            self.dims_btn = gr.Button("Restore with those dimensions scaled", elem_id="dims-btn")
            self.dims_info = gr.Markdown(elem_id="dims-info")
            self.dims_plot = gr.Plot(label="Prior used vs own prior")

    def shown(self) -> list[str]:
        return ["dims", "info", "result", "change", "gallery", "gallery_info"]

    def show(self, current: Current) -> dict[str, Any]:
        cleared = {"result": None, "change": "", "gallery": None, "gallery_info": ""}
        if current.prior is None:
            return {**cleared, "dims": "", "info": "This model has no degradation predictor: no prior to steer."}
        dims = self.dims_that_matter(current.prior)
        info = (f"Steering the prior of **{current.source}**. Move a slider; the output on the right is restored "
                "with the edited prior." if self.atlas is not None else NEEDS_ATLAS)
        return {**cleared, "dims": ", ".join(map(str, dims)), "info": info}

    def dims_that_matter(self, prior: np.ndarray) -> list[int]:
        """The dimensions where this prior differs most from the clean mean (from 0 without an atlas)."""
        reference = self.atlas.kind_mean("clean") if self.atlas is not None and "clean" in self.atlas.kinds else 0.0
        return sorted(charts.top_indices(np.abs(prior - reference), EDITED_DIMS))

    def edited_prior(self, prior: np.ndarray, amounts: list[float]) -> tuple[np.ndarray, list[str]]:
        edited, moves = np.asarray(prior, np.float32), []
        for direction, amount in zip(self.directions, amounts):
            if amount:
                edited = direction.moved(edited, amount)
                moves.append(f"{float(amount):+g} {direction.label}")
        return edited, moves

    def on_steer(self, current: Current | None, *amounts: float) -> dict[str, Any]:
        """Restore with the prior moved by `amounts` along the named directions (in their order)."""
        if current is None or current.prior is None:
            return {"change": warn("load an image first (Restore tab)")}
        edited, moves = self.edited_prior(current.prior, list(amounts))
        own = self.pipeline.restore_float(current.image, prior=current.prior)
        changed = self.pipeline.restore_float(current.image, prior=edited) if moves else own
        text = "Own prior: move a slider." if not moves else (
            f"Edited prior: {', '.join(moves)}. Against the own-prior restoration: "
            f"**{psnr(changed, own):.1f} dB** PSNR, mean |difference| **{np.mean(np.abs(changed - own)) * 255:.2f}/255**.")
        if moves and current.clean is not None:
            text += (f"  \nAgainst the clean original: own prior {psnr(own, current.clean):.2f} dB, edited "
                     f"{psnr(changed, current.clean):.2f} dB.")
        return {"result": (quantize(own), quantize(changed)), "change": text, "edited": edited}

    def on_gallery(self, current: Current | None) -> dict[str, Any]:
        """The counterfactual gallery: own prior, the clean mean and each kind's mean, with PSNR
        when the clean original is known and the change against the own-prior output otherwise."""
        if current is None or current.prior is None:
            return {"gallery_info": warn("load an image first (Restore tab)")}
        if self.atlas is None:
            return {"gallery_info": warn(NEEDS_ATLAS)}
        results = counterfactuals(self.pipeline, current.image, atlas_priors(self.atlas), current.clean,
                                  own=current.prior)
        own = results[0]

        def caption(c) -> str:
            if c.psnr is None:
                return f"{c.name}: change {c.change:.2f}/255"
            return f"{c.name}: {c.psnr:.2f} dB" + ("" if c is own else f" ({c.psnr - own.psnr:+.2f})")
        return {"gallery": [(quantize(c.restored), caption(c)) for c in results],
                "gallery_info": steer_sentence(results, current.kind)}

    def on_dims(self, current: Current | None, dims_text: str, scale: float) -> dict[str, Any]:
        """The own prior with chosen dimensions scaled."""
        if current is None or current.prior is None:
            return {"dims_info": warn("load an image first (Restore tab)")}
        own = current.prior
        try:
            dims = parse_dims(dims_text, own.size) or self.dims_that_matter(own)
        except ValueError as error:
            return {"dims_info": warn(str(error))}
        used = own.copy()
        used[dims] *= float(scale)
        default = self.pipeline.restore_float(current.image, prior=own)
        changed = self.pipeline.restore_float(current.image, prior=used)
        info = (f"Dims {', '.join(f'#{d}' for d in dims)} x {float(scale):g}: mean |change| against the own-prior "
                f"restoration **{float(np.mean(np.abs(changed - default)) * 255):.2f}/255**.")
        if current.clean is not None:
            info += (f"  \nPSNR: own prior **{psnr(default, current.clean):.2f} dB**, edited "
                     f"**{psnr(changed, current.clean):.2f} dB**.")
        return {"result": (quantize(default), quantize(changed)), "dims_info": info,
                "dims_plot": charts.two_priors_chart(used, own, ("prior used", "own prior d_S"),
                                                     "Edited prior vs the image's own prior")}


def parse_dims(text: str | None, size: int) -> list[int]:
    """"71, 128 300" -> [71, 128, 300]; raises ValueError for anything else."""
    if not text or not str(text).strip():
        return []
    dims = []
    for token in str(text).replace(",", " ").replace("#", " ").split():
        if not token.isdigit() or not 0 <= int(token) < size:
            raise ValueError(f"dimensions must be whole numbers from 0 to {size - 1}, got {token!r}")
        dims.append(int(token))
    return sorted(set(dims))
