"""Privileged vs predicted: the teacher's d_T = D_T(I_d, I_c), which sees the clean image,
beside the student's d_S = D_S(I_d), their alignment gap (eq. 4) and the restorations each
gives; and the counterfactual: the same image restored under another prior."""
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
OWN = "own"  # the counterfactual source "the image's own prior, chosen dimensions scaled"
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
        gr.Markdown("### Counterfactual: restore with another prior\nSame image, different prior: what changes is "
                    "what the prior controls.")
        with gr.Row():
            kinds = self.atlas.kinds if self.atlas is not None else []
            choices = [("own prior, chosen dims scaled", OWN)] + [
                (f"atlas mean: {charts.KIND_NAMES.get(k, k)}", k) for k in kinds]
            self.cf_source = gr.Dropdown(choices, value=OWN, label="Prior", scale=2)
            self.cf_dims = gr.Textbox(label="Dimensions (e.g. 71, 128; empty: the 5 largest)", scale=2)
            self.cf_scale = gr.Slider(-3, 3, value=2, step=0.1, label="Scale those dimensions by", scale=2)
        self.cf_btn = gr.Button("Restore with this prior", elem_id="cf-btn")
        self.cf_info = gr.Markdown(elem_id="cf-info")
        with gr.Row():
            self.cf_result = gr.ImageSlider(label="Default restoration / counterfactual", type="numpy", format="png",
                                            interactive=False, max_height=360, elem_id="cf-result")
            self.cf_plot = gr.Plot(label="Prior used")

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
        info = (f"**Alignment gap** (what Stage 2 minimises): KL(softmax(d_T/{ALIGN_TEMPERATURE:g}) || "
                f"softmax(d_S/{ALIGN_TEMPERATURE:g})) = **{gap['kl']:.4f}**, cosine similarity = **{gap['cosine']:.4f}**, "
                f"mean |d_T - d_S| = **{gap['l1']:.4f}**.  \n"
                f"**PSNR against the clean original:** input {p_in:.2f} dB; restored with the student's d_S "
                f"(deployed) **{p_s:.2f} dB**; restored with the teacher's d_T (privileged) **{p_t:.2f} dB** "
                f"({p_t - p_s:+.2f} dB).")
        plot = charts.two_priors_chart(d_t, d_s, ("teacher d_T (sees the clean image)", "student d_S (degraded image only)"),
                                       "Privileged prior d_T vs predicted prior d_S")
        return {"plot": plot, "info": info, "with_student": quantize(with_student), "with_teacher": quantize(with_teacher)}

    def counterfactual(self, current: Current | None, source: str, dims_text: str, scale: float) -> dict[str, Any]:
        """Restore with another prior: a kind's atlas mean (`source` a kind), or the own prior with
        chosen dimensions scaled (`source` OWN). Shows what the prior controls in the restorer."""
        if current is None:
            return {"cf_info": warn("load an image first")}
        if current.prior is None:
            return {"cf_info": warn("this model has no degradation predictor")}
        own = current.prior
        if source != OWN:
            if self.atlas is None:
                return {"cf_info": warn("no atlas loaded")}
            used = self.atlas.kind_mean(source).copy()
            what = f"the atlas mean prior of {charts.KIND_NAMES.get(source, source)}"
        else:
            try:
                dims = parse_dims(dims_text, own.size) or charts.top_indices(own, 5)
            except ValueError as error:
                return {"cf_info": warn(str(error))}
            used = own.copy()
            used[dims] *= float(scale)
            what = f"its own prior with dims {', '.join(f'#{d}' for d in dims)} x {float(scale):g}"
        default = self.pipeline.restore_float(current.image)
        changed = self.pipeline.restore_float(current.image, prior=used)
        info = (f"Restored with {what}. Mean |change| against the default restoration: "
                f"**{float(np.mean(np.abs(changed - default)) * 255):.2f}/255**.")
        if current.clean is not None:
            info += (f"  \nPSNR: default (own d_S) **{psnr(default, current.clean):.2f} dB**, counterfactual "
                     f"**{psnr(changed, current.clean):.2f} dB**.")
        return {"cf_result": (quantize(default), quantize(changed)), "cf_info": info,
                "cf_plot": charts.two_priors_chart(used, own, ("prior used", "own prior d_S"),
                                                   "Counterfactual prior vs the image's own prior")}


def prior_gap(d_t: np.ndarray, d_s: np.ndarray, temperature: float = ALIGN_TEMPERATURE) -> dict[str, float]:
    """KL as trained (lupi_core.losses, temperature 0.15), cosine similarity and mean |difference|."""
    t = torch.as_tensor(np.asarray(d_t, np.float32))[None]
    s = torch.as_tensor(np.asarray(d_s, np.float32))[None]
    kl = float(alignment_loss(s, t, AlignConfig("kl", temperature)))
    l1 = float(alignment_loss(s, t, AlignConfig("l1", temperature)))
    cosine = float(torch.nn.functional.cosine_similarity(s, t).item())
    return {"kl": kl, "cosine": cosine, "l1": l1}


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
