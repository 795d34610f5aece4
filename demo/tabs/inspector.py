"""Prior inspector: the 512-d prior d_S of the current image, and Figure 5b live: re-noise its
clean copy with a sigma slider and watch the prior dimensions shift (D_S only, so it keeps
up with the slider); on release, the restoration at that sigma."""
from __future__ import annotations

from dataclasses import dataclass
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


@dataclass
class Curve:
    """Figure 5b's data for one clean copy re-noised at CURVE_SIGMAS."""

    sigmas: np.ndarray
    priors: np.ndarray             # (S, D) d_S
    teacher: np.ndarray | None     # (S, D) d_T, when the clean original is known and the teacher ships
    dims: list[int]                # the dimensions followed, by |rho| with sigma over the atlas
    rho: list[float]
    read: list[float | None]       # the sigma the prior reads at each sigma


class InspectorTab(Tab):
    title, tab_id = "Prior inspector", "inspector"

    def build(self) -> None:
        self.clean_copy = gr.State(None)   # the clean original (or the image), fitted to INSPECTOR_SIDE
        self.curve = gr.State(None)        # Figure 5b's data for that copy (a Curve)
        self.info = gr.Markdown(EMPTY, elem_id="insp-info")
        self.prior_plot = gr.Plot(label="Prior d_S", elem_id="insp-prior")
        with gr.Row(equal_height=False):
            with gr.Column(scale=2):
                self.sigma = gr.Slider(0, SIGMA_MAX, value=0, step=1, elem_id="insp-sigma",
                                       label="Sigma: re-noise the clean image (prior redraws live; release to restore)")
                self.curve_plot = gr.Plot(label="Figure 5b", elem_id="insp-curve")
                self.sigma_plot = gr.Plot(label="The severity the prior reads", elem_id="insp-read-sigma")
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
        return ["clean_copy", "curve", "prior_plot", "curve_plot", "sigma_plot", "info"]

    def show(self, current: Current) -> dict[str, Any]:
        copy = fit_within(current.clean if current.clean is not None else current.image, INSPECTOR_SIDE)
        if current.prior is None:
            return {"clean_copy": copy, "curve": None, "prior_plot": None, "curve_plot": None, "sigma_plot": None,
                    "info": "This model has no degradation predictor: no prior to show."}
        curve = self.curve_of(copy, current.clean is not None)
        reading = current.reading
        return {
            "clean_copy": copy, "curve": curve,
            "prior_plot": charts.prior_bars(current.prior, self.atlas, highlight=reading["kind"] if reading else None,
                                            title="Prior d_S of the current input"),
            "curve_plot": self.curve_chart(curve), "sigma_plot": self.sigma_chart(curve),
            "info": f"Showing the prior of the current input ({current.source}). {describe_sentence(reading)} "
                    f"Move the sigma slider to re-noise "
                    f"{'the clean original' if current.clean is not None else 'this image'} and watch the prior change.",
        }

    def curve_of(self, copy: np.ndarray, clean_known: bool) -> Curve:
        """Figure 5b's data for a clean copy: d_S (and d_T, when the copy is a known clean original and
        the teacher ships) at CURVE_SIGMAS, the dimensions to follow, and the sigma each prior reads."""
        sigmas, priors = noise_curve(self.pipeline, copy, CURVE_SIGMAS, seed=NOISE_SEED)
        teacher = None
        if clean_known and self.pipeline.teacher is not None:
            teacher = np.stack([self.pipeline.privileged_prior(self.renoised(copy, float(s)), copy) for s in sigmas])
        if self.atlas is not None:
            dims, rho = self.atlas.severity_dims("noise")
        else:
            dims, rho = np.argsort(-np.abs(priors[-1] - priors[0]), kind="stable")[:6], np.zeros(0)
        return Curve(sigmas, priors, teacher, [int(d) for d in dims], [float(r) for r in rho],
                     [self.read_sigma(prior) for prior in priors])

    def read_sigma(self, prior: np.ndarray) -> float | None:
        """The noise sigma the atlas reads from a prior: its estimate when it reads noise, 0 when it
        reads clean, None for another kind (or without an atlas)."""
        if self.atlas is None:
            return None
        reading = self.atlas.describe(prior)
        return reading.get("sigma") if reading["kind"] == "noise" else 0.0 if reading["kind"] == "clean" else None

    def curve_chart(self, curve: Curve, sigma: float | None = None, prior: np.ndarray | None = None):
        return charts.noise_curve_chart(curve.sigmas, curve.priors, curve.dims, curve.rho, current_sigma=sigma,
                                        current_prior=prior, atlas=self.atlas, teacher=curve.teacher)

    def sigma_chart(self, curve: Curve, sigma: float | None = None, read: float | None = None):
        if self.atlas is None:
            return None
        return charts.sigma_reading_chart(curve.sigmas, curve.read, None if sigma is None else (sigma, read))

    def renoised(self, clean_copy: np.ndarray, sigma: float) -> np.ndarray:
        return add_gaussian_noise(clean_copy, sigma, NOISE_SEED) if sigma > 0 else clean_copy

    def on_sigma(self, clean_copy: np.ndarray | None, curve: Curve | None, sigma: float) -> dict[str, Any]:
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
            read = self.read_sigma(prior)
            out["curve_plot"] = self.curve_chart(curve, sigma, prior)
            out["sigma_plot"] = self.sigma_chart(curve, sigma, read)
            if read is not None:
                out["info"] += f" The prior reads sigma ~ {read:.0f} (true {sigma:g})."
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
