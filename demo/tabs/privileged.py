"""Privileged vs predicted: the teacher's d_T = D_T(I_d, I_c), which sees the clean image,
beside the student's d_S = D_S(I_d), their alignment gap (eq. 4) and the restorations each
gives."""
from __future__ import annotations

from typing import Any

import gradio as gr
import numpy as np
import torch

from lupi_core.images import quantize
from lupi_core.losses import AlignConfig, alignment_loss
from lupi_core.metrics import psnr

from .. import charts
from ..session import Current, Tab, warn

ALIGN_TEMPERATURE = AlignConfig().temperature  # the training's default KL temperature
NEEDS_CLEAN = ("this needs a degraded image whose clean original is known: synthesize one (Restore tab), "
               "pick a degraded example, or click an atlas point")


class PrivilegedTab(Tab):
    title, tab_id = "Privileged vs predicted", "privileged"

    def build(self) -> None:
        gr.Markdown("For an image whose clean original is known (synthesized, a degraded example, or an atlas "
                    "sample): the teacher's prior d_T, computed from the degraded **and** the clean image, "
                    "beside the student's d_S from the degraded image alone.")
        self.compare_btn = gr.Button("Compare teacher and student on the current image", variant="primary",
                                     elem_id="compare-btn")
        self.info = gr.Markdown(elem_id="priv-info")
        self.plot = gr.Plot(label="d_T vs d_S", elem_id="priv-plot")
        with gr.Row():
            self.with_student = gr.Image(label="Restored with the student's d_S (deployed)", format="png",
                                         type="numpy", interactive=False, height=260, elem_id="priv-student")
            self.with_teacher = gr.Image(label="Restored with the teacher's d_T (privileged)", format="png",
                                         type="numpy", interactive=False, height=260, elem_id="priv-teacher")

    def compare(self, current: Current | None) -> dict[str, Any]:
        """d_T beside d_S for the current image, their gap, and the restorations each gives."""
        if current is None or current.clean is None:
            return {"info": warn(NEEDS_CLEAN)}
        if self.pipeline.teacher is None:
            return {"info": warn("no teacher weights loaded (start the app with --teacher FILE)")}
        if current.prior is None:
            return {"info": warn("this model has no degradation predictor")}
        image, clean = current.image, current.clean
        d_t, d_s = self.pipeline.privileged_prior(image, clean), current.prior
        gap = prior_gap(d_t, d_s)
        with_student, with_teacher = self.pipeline.restore_float(image), self.pipeline.restore_float(image, prior=d_t)
        p_in, p_s, p_t = psnr(image, clean), psnr(with_student, clean), psnr(with_teacher, clean)
        info = (f"**Alignment gap** (eq. 4's L_align, which Stage 2 minimises in one of two forms): the paper's "
                f"KL(softmax(d_T/{ALIGN_TEMPERATURE:g}) || softmax(d_S/{ALIGN_TEMPERATURE:g})) = **{gap['kl']:.4f}**, "
                f"mean |d_T - d_S| = **{gap['l1']:.4f}** (`--align l1`, the shipped model's); cosine similarity = "
                f"**{gap['cosine']:.4f}**.  \n"
                f"**PSNR against the clean original:** input {p_in:.2f} dB; restored with the student's d_S "
                f"(deployed) **{p_s:.2f} dB**; restored with the teacher's d_T (privileged) **{p_t:.2f} dB** "
                f"({p_t - p_s:+.2f} dB).")
        plot = charts.two_priors_chart(d_t, d_s, ("teacher d_T (sees the clean image)", "student d_S (degraded image only)"),
                                       "Privileged prior d_T vs predicted prior d_S")
        return {"plot": plot, "info": info, "with_student": quantize(with_student), "with_teacher": quantize(with_teacher)}


def prior_gap(d_t: np.ndarray, d_s: np.ndarray, temperature: float = ALIGN_TEMPERATURE) -> dict[str, float]:
    """KL as trained (lupi_core.losses, temperature 0.15), cosine similarity and mean |difference|."""
    t = torch.as_tensor(np.asarray(d_t, np.float32))[None]
    s = torch.as_tensor(np.asarray(d_s, np.float32))[None]
    kl = float(alignment_loss(s, t, AlignConfig("kl", temperature)))
    l1 = float(alignment_loss(s, t, AlignConfig("l1", temperature)))
    cosine = float(torch.nn.functional.cosine_similarity(s, t).item())
    return {"kl": kl, "cosine": cosine, "l1": l1}
