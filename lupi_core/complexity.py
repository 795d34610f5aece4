"""Model size and cost: parameters and multiply-accumulates (the paper's "GFLOPs").

The paper's 163.20 "GFLOPs" and Restormer's 154.88 are multiply-accumulates:
PyTorch's FlopCounterMode total divided by two.
"""
from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from .config import ModelConfig
from .models import build_backbone, build_student, build_teacher, count_parameters


@torch.no_grad()
def gmac(model: torch.nn.Module, *inputs: torch.Tensor) -> float:
    counter = FlopCounterMode(display=False)
    with counter:
        model(*inputs)
    return counter.get_total_flops() / 2 / 1e9


def complexity_report(cfg: ModelConfig, size: int = 256) -> dict[str, dict[str, float]]:
    """Parameters (and GMAC at 1x3xSxS where it applies) of R, D_T, D_S and the deployed student."""
    image = torch.rand(1, 3, size, size)
    backbone, teacher, student = build_backbone(cfg).eval(), build_teacher(cfg).eval(), build_student(cfg).eval()
    return {
        "backbone R (Restormer)": {"params": count_parameters(backbone), "gmac": gmac(backbone, image)},
        "estimator D_T": {"params": count_parameters(teacher.estimator),
                          "gmac": gmac(teacher.estimator, image, image)},
        "predictor D_S": {"params": count_parameters(student.predictor), "gmac": gmac(student.predictor, image)},
        "student D_S + R_S (deployed)": {"params": count_parameters(student), "gmac": gmac(student, image)},
    }
