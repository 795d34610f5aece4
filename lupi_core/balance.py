"""Per-task balancing of L_recon (not in the paper): each task's reconstruction loss is weighted
by a power of the inverse of its gradient norm; at power 1 every task has the same say in a step.

Why (docs/results/task-balance/): L1's gradient is a sign per pixel. A hazy or dark patch's
error is coherent over the whole patch (a per-image colour offset, the part of haze and low
light the input does not determine), so its signs add up; a blurred or noisy patch's error is
local and its signs cancel. On the shipped model the tone tasks' and the clean inputs'
gradients are 10-50x the norm of blur's and noise's, so in a shared batch they fill Adam's
second moments and the local tasks' steps shrink by as much: the mixture learns no deblurring
where blur alone does.

Every `every` steps the trainer measures each task's gradient norm on fixed held-out patches of
that task and sets its weight to norm ** -power, scaled so that the weights' mean over tasks is 1.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .data import HELD_OUT_DRAWS

# Probe patches come from sample indices past the validation patches (HELD_OUT_DRAWS + i).
PROBE_DRAWS = HELD_OUT_DRAWS + 10**6


def probe_batches(dataset, tasks: tuple[str, ...], patches: int, scan_limit: int = 10_000) -> dict[str, dict]:
    """`patches` held-out patches of each task, stacked into one batch per task."""
    found: dict[str, list[dict]] = {task: [] for task in tasks}
    for i in range(scan_limit):
        if all(len(items) == patches for items in found.values()):
            break
        item = dataset[PROBE_DRAWS + i]
        if len(found[item["task"]]) < patches:
            found[item["task"]].append(item)
    short = [task for task, items in found.items() if len(items) < patches]
    if short:
        raise ValueError(f"task balancing found fewer than {patches} patches of {', '.join(short)} in "
                         f"{scan_limit} draws; give those tasks more weight in the mixture")
    return {task: {"degraded": torch.stack([x["degraded"] for x in items]),
                   "clean": torch.stack([x["clean"] for x in items])} for task, items in found.items()}


def loss_gradient(model: nn.Module, loss: torch.Tensor) -> torch.Tensor:
    """The gradient of `loss` over the model's trainable weights, flattened into one vector;
    leaves no gradients behind."""
    model.zero_grad(set_to_none=True)
    loss.backward()
    gradient = torch.cat([p.grad.float().flatten() for p in model.parameters() if p.grad is not None])
    model.zero_grad(set_to_none=True)
    return gradient


class TaskBalance:
    """The tasks' loss weights and how they are measured; `weights` is what a checkpoint keeps."""

    def __init__(self, probes: dict[str, dict], every: int, power: float = 1.0):
        self.probes, self.every, self.power = probes, every, power
        self.weights = {task: 1.0 for task in probes}

    def per_sample(self, tasks: list[str], device: torch.device) -> torch.Tensor:
        return torch.tensor([self.weights[task] for task in tasks], dtype=torch.float32, device=device)

    def measure(self, model: nn.Module, loss_of: Callable[[nn.Module, dict], torch.Tensor],
                prepare: Callable[[dict], dict]) -> dict[str, float]:
        """Each task's gradient norm of `loss_of(model, batch)` over the model's trainable
        parameters; sets the weights from them and returns the norms. `prepare` crops and moves
        a probe batch as the training step would. Leaves no gradients behind."""
        norms = {task: float(loss_gradient(model, loss_of(model, prepare(batch))).norm())
                 for task, batch in self.probes.items()}
        inverse = {task: max(norm, 1e-12) ** -self.power for task, norm in norms.items()}
        mean = sum(inverse.values()) / len(inverse)
        self.weights = {task: value / mean for task, value in inverse.items()}
        return norms
