"""Learn: a guided tour. Each step loads an example, opens the view that shows one idea, and
states the effect with the number measured on the loaded model right then; where the model
does not show the effect, the step says so."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import gradio as gr
import numpy as np

from lupi_core.atlas import noise_curve
from lupi_core.images import ImageError, fit_within
from lupi_core.metrics import psnr
from lupi_core.steering import atlas_priors, counterfactuals

from .. import views
from ..session import Current, Tab, describe_sentence
from .inspector import INSPECTOR_SIDE, NOISE_SEED

NO_EFFECT_DB = 0.1        # priors that change PSNR by less than this "have no measurable effect"
NO_SWING = 0.05           # a prior that moves less than this share of its norm "barely moves"


@dataclass(frozen=True)
class Step:
    button: str           # what the step's button says
    example: str          # the example it loads (assets/examples/)
    tab: str              # the tab it opens
    measure: Callable[[LearnTab, Current], str]


def _restore_gain(tab: LearnTab, current: Current) -> str:
    restored = tab.pipeline.restore_float(current.image)
    before, after = psnr(current.image, current.clean), psnr(restored, current.clean)
    return (f"On this image the model goes from {before:.2f} dB to **{after:.2f} dB** against the clean original "
            f"(**{after - before:+.2f} dB**). Press **Restore** to see it.")


def _sigma_swing(tab: LearnTab, current: Current) -> str:
    copy = fit_within(current.clean if current.clean is not None else current.image, INSPECTOR_SIDE)
    sigmas, priors = noise_curve(tab.pipeline, copy, (0, 50), seed=NOISE_SEED)
    swing = float(np.linalg.norm(priors[-1] - priors[0]) / np.linalg.norm(priors, axis=1).mean())
    top = int(np.argmax(np.abs(priors[-1] - priors[0])))
    if swing < NO_SWING:
        return (f"On the loaded model the prior barely moves: from sigma 0 to 50 it shifts by **{swing:.0%}** of "
                f"its norm, so Figure 5b's lines stay nearly flat.")
    return (f"From sigma 0 to 50 this image's prior shifts by **{swing:.0%}** of its norm; dimension #{top} moves "
            f"most ({priors[0][top]:+.3f} -> {priors[-1][top]:+.3f}). Drag the sigma slider from 0 to 50.")


def _atlas_reading(tab: LearnTab, current: Current) -> str:
    if current.reading is None:
        return "No atlas is loaded, so the model's reading of the image cannot be shown."
    return f"{describe_sentence(current.reading)} The star on the map is this image."


def _steer(tab: LearnTab, current: Current) -> str:
    if tab.atlas is None:
        return "No atlas is loaded, so there are no kind means to restore with."
    results = counterfactuals(tab.pipeline, current.image, atlas_priors(tab.atlas), current.clean, own=current.prior)
    by_name = {c.name: c.psnr for c in results}
    spread = max(by_name.values()) - min(by_name.values())
    if spread < NO_EFFECT_DB:
        return (f"On the loaded model the prior has **no measurable effect** on this image: its own prior and every "
                f"kind's mean prior give restorations within {spread:.2f} dB of each other.")
    text = f"On this rainy image the prior matters: the restorations span **{spread:.2f} dB**"
    if "rain mean" in by_name and "noise mean" in by_name:
        gap = by_name["rain mean"] - by_name["noise mean"]
        text += f"; the rain prior {'beats' if gap >= 0 else 'loses to'} the noise prior by **{abs(gap):.2f} dB**"
    return text + ". Move a slider or press **Restore under every prior**."


def _teacher(tab: LearnTab, current: Current) -> str:
    if tab.pipeline.teacher is None:
        return "No teacher is loaded (start the app with --teacher FILE), so d_T cannot be shown."
    d_t = tab.pipeline.privileged_prior(current.image, current.clean)
    with_student = psnr(tab.pipeline.restore_float(current.image, prior=current.prior), current.clean)
    with_teacher = psnr(tab.pipeline.restore_float(current.image, prior=d_t), current.clean)
    return (f"On this image the teacher's prior d_T restores to {with_teacher:.2f} dB and the student's d_S to "
            f"{with_student:.2f} dB: the privileged prior is worth **{with_teacher - with_student:+.2f} dB** here. "
            f"Press **Compare teacher and student**.")


STEPS = (
    Step("Step 1: restore a rainy photo", "chelsea_rain.png", "restore", _restore_gain),
    Step("Step 2: slide sigma from 0 to 50", "coffee_noise25.png", "inspector", _sigma_swing),
    Step("Step 3: find the image on the atlas map", "rocket_haze.png", "atlas", _atlas_reading),
    Step("Step 4: steer the prior of a rainy photo", "rocket_rain.png", "steer", _steer),
    Step("Step 5: the teacher's privileged prior", "astronaut_haze.png", "privileged", _teacher),
)


class LearnTab(Tab):
    title, tab_id = "Learn", "learn"
    _measured: dict[str, str] | None = None

    def build(self) -> None:
        gr.Markdown(views.LEARN)
        gr.Markdown("### The tour\nEach step loads an example and opens the view that shows one idea. The numbers "
                    "beside the steps are measured on the loaded model when this tab opens.")
        self.buttons = []
        for k, step in enumerate(STEPS):
            with gr.Row(equal_height=True):
                self.buttons.append(gr.Button(step.button, scale=1, elem_id=f"tour-{k + 1}"))
                setattr(self, f"result_{k}", gr.Markdown("*measuring on the loaded model...*",
                                                        elem_id=f"tour-{k + 1}-result"))

    def shown(self) -> list[str]:
        return []

    def step_example(self, index: int) -> tuple[Current, str]:
        """The current image step `index` loads, and its file path."""
        files = [entry["file"] for entry in self.session.examples]
        step = STEPS[index]
        if step.example not in files:
            raise ImageError(f"the tour's example {step.example} is missing from assets/examples "
                             f"(regenerate: python -m lupi_core examples)")
        return self.session.example(files.index(step.example))

    def measure(self) -> dict[str, str]:
        """Every step's sentence, measured on the loaded model (once: the model and examples do not
        change while the app runs, and the steps cost a dozen restorations)."""
        if self._measured is None:
            self._measured = self._measure_steps()
        return dict(self._measured)

    def _measure_steps(self) -> dict[str, str]:
        out = {}
        for k, step in enumerate(STEPS):
            try:
                current, _ = self.step_example(k)
            except ImageError as error:
                out[f"result_{k}"] = str(error)
                continue
            out[f"result_{k}"] = ("This model has no degradation predictor: there is no prior to show."
                                  if current.prior is None else step.measure(self, current))
        return out
