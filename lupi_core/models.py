"""The three assemblies of the paper: backbone R, teacher system (D_T, R_T) and
student system (D_S, R_S).

- Teacher (Stage 1, eq. 3): I_r = R_T(I_d, D_T(I_d, I_c)).
- Student (Stage 2, eq. 4, and inference, section 3.4): I_o = R_S(I_d, D_S(I_d)).
- The backbone alone (no prior, no DBs) is Restormer, the Table 3 baseline.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .config import ModelConfig
from .prior import DegradationPredictor, PrivilegedEstimator
from .restorer import Restorer


def restore_twice(restorer: Restorer, degraded: torch.Tensor, prior: torch.Tensor,
                  counterfactual: tuple[torch.Tensor, torch.Tensor] | None = None,
                  estimate: Callable[[torch.Tensor], torch.Tensor] | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """R on each image with its own prior and with a wrong one (detached): one batch of 2B, so
    that the wrong-prior term costs one forward pass (and DDP sees one). The wrong prior is the
    next sample's, or, given `counterfactual` (rows, I_d at another severity), on the marked rows
    `estimate`'s prior of the same patch at that other severity."""
    wrong = prior.roll(1, 0)
    if counterfactual is not None:
        rows, other_degraded = counterfactual
        with torch.no_grad():
            other = estimate(other_degraded)
        wrong = torch.where(rows[:, None], other.to(prior.dtype), wrong)
    both = restorer(torch.cat([degraded, degraded]), torch.cat([prior, wrong.detach()]))
    return both.chunk(2)


class TeacherSystem(nn.Module):
    """D_T + R_T: sees the clean image, so exists only during training."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.estimator = PrivilegedEstimator(cfg)
        self.restorer = Restorer(cfg, with_prior=True)

    def forward(self, degraded: torch.Tensor, clean: torch.Tensor, wrong_prior: bool = False,
                channel_noise: float = 0.0, stand_in: tuple[torch.Tensor, torch.Tensor] | None = None,
                prior_inputs: tuple[torch.Tensor, torch.Tensor] | None = None,
                counterfactual: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple:
        """(I_r, d_T); with `wrong_prior`, (I_r, d_T, I_r under the next sample's d_T, or, with
        `counterfactual` (rows, I_d at another severity), under d_T of that image on those rows). With
        `channel_noise` s > 0 (the prior bottleneck, training only) R_T reads d_T + N(0, s^2 I).
        With `stand_in` (rows, d_S) R_T reads d_S instead of d_T on the rows marked True
        (the student-prior share, training only). `prior_inputs` (I_d, I_c) of a larger crop
        around the patch are what D_T sees instead of the patch (the prior context, training only)."""
        prior = self.estimator(*(prior_inputs or (degraded, clean)))
        received = prior + channel_noise * torch.randn_like(prior) if channel_noise else prior
        if stand_in is not None:
            rows, student_prior = stand_in
            received = torch.where(rows[:, None], student_prior.to(received.dtype), received)
        if wrong_prior:
            restored, wrong = restore_twice(self.restorer, degraded, received, counterfactual,
                                            lambda other: self.estimator(other, clean))
            return restored, prior, wrong
        return self.restorer(degraded, received), prior


class StudentSystem(nn.Module):
    """D_S + R_S, the deployed model. Without a predictor it is the plain backbone
    (the "w/o Degradation Predictor" ablation) and `prior()` is unavailable."""

    def __init__(self, cfg: ModelConfig, with_predictor: bool = True):
        super().__init__()
        self.cfg = cfg
        self.predictor = DegradationPredictor(cfg) if with_predictor else None
        self.restorer = Restorer(cfg, with_prior=with_predictor)

    @property
    def has_predictor(self) -> bool:
        return self.predictor is not None

    def prior(self, degraded: torch.Tensor) -> torch.Tensor:
        if self.predictor is None:
            raise RuntimeError("this model has no degradation predictor D_S (it is the plain backbone)")
        return self.predictor(degraded)

    def forward(self, degraded: torch.Tensor, prior: torch.Tensor | None = None, wrong_prior: bool = False,
                prior_input: torch.Tensor | None = None,
                counterfactual: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple:
        """(I_o, d_S) with D_S's own prior, or with a given one (counterfactuals, d_T); with
        `wrong_prior`, also I_o under the next sample's prior, or with `counterfactual` (rows, I_d
        at another severity) under D_S's prior of that image on those rows: (I_o, d_S, I_o wrong).
        D_S reads `prior_input` (a larger crop around the patch: the prior context, training only)
        when given."""
        if prior is None and self.predictor is not None:
            prior = self.predictor(degraded if prior_input is None else prior_input)
        if wrong_prior:
            restored, wrong = restore_twice(self.restorer, degraded, prior, counterfactual, self.predictor)
            return restored, prior, wrong
        return self.restorer(degraded, prior), prior


def build_backbone(cfg: ModelConfig) -> Restorer:
    """R without Degradation-aware Blocks: Restormer itself."""
    return Restorer(cfg, with_prior=False)


def build_teacher(cfg: ModelConfig) -> TeacherSystem:
    return TeacherSystem(cfg)


def build_student(cfg: ModelConfig, with_predictor: bool = True) -> StudentSystem:
    return StudentSystem(cfg, with_predictor=with_predictor)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
