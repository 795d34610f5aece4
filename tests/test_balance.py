"""The task balance (balance.py): each task's loss weight is the inverse of its gradient norm."""
import pytest
import torch
from torch import nn

from lupi_core.balance import TaskBalance, probe_batches


class Tasks:
    """Item i: task "tone" for even i (the input a constant offset of the clean patch, an error
    coherent over the patch), "speckle" for odd i (independent noise per pixel)."""

    def __getitem__(self, index):
        generator = torch.Generator().manual_seed(index)
        clean = torch.rand(3, 16, 16, generator=generator)
        if index % 2 == 0:
            return {"degraded": clean + 0.2, "clean": clean, "task": "tone"}
        return {"degraded": clean + 0.2 * torch.randn(3, 16, 16, generator=generator), "clean": clean, "task": "speckle"}


def _l1(model, batch):
    return (model(batch["degraded"]) - batch["clean"]).abs().mean()


def test_probe_batches_gather_patches_of_every_task_and_name_a_missing_one():
    probes = probe_batches(Tasks(), ("speckle", "tone"), patches=3)
    assert set(probes) == {"speckle", "tone"} and probes["tone"]["degraded"].shape == (3, 3, 16, 16)
    assert torch.allclose(probes["tone"]["degraded"] - probes["tone"]["clean"], torch.tensor(0.2))
    with pytest.raises(ValueError, match="blur"):
        probe_batches(Tasks(), ("speckle", "tone", "blur"), patches=2, scan_limit=50)


def test_weights_are_the_inverse_gradient_norms_with_mean_one():
    model = nn.Conv2d(3, 3, 3, padding=1)
    nn.init.dirac_(model.weight), nn.init.zeros_(model.bias)  # the identity: its error is the degradation
    balance = TaskBalance(probe_batches(Tasks(), ("speckle", "tone"), patches=4), every=10)
    assert balance.weights == {"speckle": 1.0, "tone": 1.0}  # until the first measurement
    norms = balance.measure(model, _l1, lambda batch: batch)
    assert norms["tone"] > 2 * norms["speckle"]  # the coherent error's signs add up
    assert balance.weights["tone"] * norms["tone"] == pytest.approx(balance.weights["speckle"] * norms["speckle"])
    assert sum(balance.weights.values()) / 2 == pytest.approx(1.0)
    assert all(p.grad is None for p in model.parameters())  # the measurement leaves no gradients behind
    weights = balance.per_sample(["tone", "speckle", "tone"], torch.device("cpu"))
    assert weights.tolist() == pytest.approx([balance.weights["tone"], balance.weights["speckle"], balance.weights["tone"]])


def test_a_power_below_one_balances_part_of_the_way():
    model = nn.Conv2d(3, 3, 3, padding=1)
    nn.init.dirac_(model.weight), nn.init.zeros_(model.bias)
    probes = probe_batches(Tasks(), ("speckle", "tone"), patches=4)
    full, half = TaskBalance(probes, every=1, power=1.0), TaskBalance(probes, every=1, power=0.5)
    full.measure(model, _l1, lambda batch: batch), half.measure(model, _l1, lambda batch: batch)
    ratio = lambda balance: balance.weights["speckle"] / balance.weights["tone"]  # noqa: E731
    assert ratio(half) == pytest.approx(ratio(full) ** 0.5)
