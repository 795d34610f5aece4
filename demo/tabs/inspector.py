"""Prior inspector: the 512-d prior d_S of the current image, and Figure 5b live: re-noise its
clean copy with a sigma slider and watch the prior dimensions shift (D_S only, so it keeps
up with the slider); on release, the restoration at that sigma."""
from __future__ import annotations

from typing import Any

import gradio as gr
import numpy as np

from lupi_core.atlas import noise_curve
from lupi_core.degrade import add_gaussian_noise
from lupi_core.images import fit_within, quantize
from lupi_core.metrics import psnr

from .. import charts
from ..session import Current, Tab, describe_sentence
from .restore import SIGMA_MAX

INSPECTOR_SIDE = 384             # the inspector re-noises a copy this size, so the slider stays live
CURVE_SIGMAS = (0, 10, 20, 30, 40, 50, 60)
NOISE_SEED = 0                   # the same noise pattern at every sigma
EMPTY = "Load an image first (Restore tab), or click a point on the atlas map."


class InspectorTab(Tab):
    title, tab_id = "Prior inspector", "inspector"

    def build(self) -> None:
        self.clean_copy = gr.State(None)   # the clean original (or the image), fitted to INSPECTOR_SIDE
        self.curve = gr.State(None)        # (sigmas, priors) of that copy re-noised at CURVE_SIGMAS
        self.info = gr.Markdown(EMPTY, elem_id="insp-info")
        self.prior_plot = gr.Plot(label="Prior d_S", elem_id="insp-prior")
        with gr.Row(equal_height=False):
            with gr.Column(scale=2):
                self.sigma = gr.Slider(0, SIGMA_MAX, value=0, step=1, elem_id="insp-sigma",
                                       label="Sigma: re-noise the clean image (prior redraws live; release to restore)")
                self.curve_plot = gr.Plot(label="Figure 5b", elem_id="insp-curve")
            with gr.Column(scale=1):
                self.noisy = gr.Image(label="Re-noised input", format="png", type="numpy", interactive=False,
                                      height=220, elem_id="insp-noisy")
                self.result = gr.ImageSlider(label="Its restoration (on release)", type="numpy", format="png",
                                             interactive=False, max_height=260, elem_id="insp-result")
                self.metrics = gr.Markdown(elem_id="insp-metrics")
        if self.atlas is not None:
            figure, text = charts.signature_heatmap(self.atlas)
            gr.Plot(value=figure, label="Figure 5a", elem_id="fig5a")
            gr.Markdown(text)

    def shown(self) -> list[str]:
        return ["clean_copy", "curve", "prior_plot", "curve_plot", "info"]

    def show(self, current: Current) -> dict[str, Any]:
        copy = fit_within(current.clean if current.clean is not None else current.image, INSPECTOR_SIDE)
        if current.prior is None:
            return {"clean_copy": copy, "curve": None, "prior_plot": None, "curve_plot": None,
                    "info": "This model has no degradation predictor: no prior to show."}
        sigmas, curve = noise_curve(self.pipeline, copy, CURVE_SIGMAS, seed=NOISE_SEED)
        reading = current.reading
        return {
            "clean_copy": copy, "curve": (sigmas, curve),
            "prior_plot": charts.prior_bars(current.prior, self.atlas, highlight=reading["kind"] if reading else None,
                                            title="Prior d_S of the current input"),
            "curve_plot": charts.noise_curve_chart(sigmas, curve, self.noise_dims(), atlas=self.atlas),
            "info": f"Showing the prior of the current input ({current.source}). {describe_sentence(reading)} "
                    f"Move the sigma slider to re-noise "
                    f"{'the clean original' if current.clean is not None else 'this image'} and watch the prior change.",
        }

    def noise_dims(self) -> list[int]:
        """The dimensions Figure 5b follows: the atlas' choice, else the first six."""
        if self.atlas is not None and len(self.atlas.noise_dims):
            return [int(d) for d in self.atlas.noise_dims[:6]]
        return list(range(6))

    def renoised(self, clean_copy: np.ndarray, sigma: float) -> np.ndarray:
        return add_gaussian_noise(clean_copy, sigma, NOISE_SEED) if sigma > 0 else clean_copy

    def on_sigma(self, clean_copy: np.ndarray | None, curve: tuple | None, sigma: float) -> dict[str, Any]:
        """Re-noise the clean copy at `sigma` and redraw its prior (D_S only: live)."""
        if clean_copy is None:
            return {"info": EMPTY}
        sigma = float(sigma)
        noisy = self.renoised(clean_copy, sigma)
        prior = self.pipeline.prior(noisy)
        reading = self.atlas.describe(prior) if self.atlas is not None else None
        out = {"prior_plot": charts.prior_bars(prior, self.atlas, highlight=reading["kind"] if reading else None,
                                               title=f"Prior d_S after re-noising at sigma {sigma:g}"),
               "noisy": noisy, "info": f"Sigma {sigma:g}: {describe_sentence(reading)}"}
        if curve is not None:
            sigmas, priors = curve
            out["curve_plot"] = charts.noise_curve_chart(sigmas, priors, self.noise_dims(), current_sigma=sigma,
                                                         current_prior=prior, atlas=self.atlas)
        return out

    def on_release(self, clean_copy: np.ndarray | None, sigma: float) -> dict[str, Any]:
        """The full restoration of the re-noised copy (when the slider is released)."""
        if clean_copy is None:
            return {}
        sigma = float(sigma)
        noisy = self.renoised(clean_copy, sigma)
        restored = self.pipeline.restore_float(noisy)
        return {"result": (noisy, quantize(restored)),
                "metrics": f"Sigma {sigma:g}: noisy {psnr(noisy, clean_copy):.2f} dB -> restored "
                           f"{psnr(restored, clean_copy):.2f} dB PSNR against the clean copy."}
