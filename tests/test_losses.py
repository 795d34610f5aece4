"""The training objectives: the spectrum L1 that may join the reconstruction L1, and L_align of eq. 4."""
import math

import pytest
import skimage.data
import torch
import torch.nn.functional as F
from scipy import ndimage

from lupi_core.losses import (
    AlignConfig,
    alignment_loss,
    frequency_loss,
    prior_contrast_loss,
    reconstruction_loss,
    wrong_prior_loss,
)


def _photo() -> torch.Tensor:
    image = skimage.data.astronaut()[100:228, 100:228].astype("float32") / 255.0
    return torch.from_numpy(image).permute(2, 0, 1)[None]


def test_frequency_loss_of_a_constant_offset_is_its_dc_term():
    clean = _photo()
    h, w = clean.shape[-2:]
    offset = 0.1
    # Orthonormal FFT: a constant c puts c * sqrt(HW) in the DC bin and nothing elsewhere.
    coefficients = clean.shape[1] * h * (w // 2 + 1) * 2
    expected = clean.shape[1] * offset * math.sqrt(h * w) / coefficients
    assert frequency_loss(clean + offset, clean).item() == pytest.approx(expected, rel=1e-4)
    assert frequency_loss(clean, clean).item() == 0.0


def test_frequency_loss_does_not_grow_with_the_patch_size():
    torch.manual_seed(0)
    small, large = torch.randn(1, 3, 64, 64) * 0.1, torch.randn(1, 3, 256, 256) * 0.1
    zeros = torch.zeros_like
    assert frequency_loss(small, zeros(small)).item() == pytest.approx(frequency_loss(large, zeros(large)).item(), rel=0.05)


def test_frequency_loss_weighs_blur_more_than_a_brightness_shift_of_equal_l1():
    clean = _photo()
    blurred = torch.from_numpy(ndimage.gaussian_filter(clean.numpy(), sigma=(0, 0, 2, 2)))
    shift = F.l1_loss(blurred, clean).item()
    brighter = clean + shift
    assert reconstruction_loss(brighter, clean).item() == pytest.approx(reconstruction_loss(blurred, clean).item(), rel=1e-3)
    assert frequency_loss(blurred, clean) > 3 * frequency_loss(brighter, clean)


def test_alignment_loss_is_zero_at_the_teacher_and_pulls_towards_it():
    torch.manual_seed(0)
    teacher = torch.randn(4, 512)
    student = torch.randn(4, 512, requires_grad=True)
    for form in ("kl", "l1", "mse"):
        cfg = AlignConfig(form=form)
        assert alignment_loss(teacher.clone(), teacher, cfg).item() == pytest.approx(0.0, abs=1e-6)
        loss = alignment_loss(student, teacher, cfg)
        (grad,) = torch.autograd.grad(loss, student)
        moved = student.detach() - 0.01 * grad
        assert alignment_loss(moved, teacher, cfg) < loss, form


def test_kl_alignment_is_teacher_to_student_on_a_hand_computed_example():
    """KL(p_T || p_S) with p = softmax(d / tau): d_S = (2, 0, 0), d_T = (0, 0, 0), tau = 1 gives
    p_T = (1/3, 1/3, 1/3), p_S = (e^2, 1, 1) / (e^2 + 2) and, by hand,
    KL(p_T || p_S) = 0.47427, where the other direction KL(p_S || p_T) would be 0.43304."""
    student, teacher = torch.tensor([[2.0, 0.0, 0.0]]), torch.zeros(1, 3)
    loss = alignment_loss(student, teacher, AlignConfig("kl", temperature=1.0))
    assert loss.item() == pytest.approx(0.47427, abs=1e-5)
    halved = alignment_loss(2 * student, teacher, AlignConfig("kl", temperature=2.0))
    assert halved.item() == pytest.approx(0.47427, abs=1e-5)  # only d / tau matters


def test_wrong_prior_loss_is_zero_once_the_wrong_prior_is_worse_by_the_margin():
    clean = torch.zeros(2, 3, 4, 4)
    own = torch.full_like(clean, 0.02)  # L1 0.02 per sample
    wrong = torch.full_like(clean, 0.05)  # L1 0.05: worse by 0.03
    different = torch.ones(2)
    assert wrong_prior_loss(own, wrong, clean, different, margin=0.03).item() == pytest.approx(0.0, abs=1e-7)
    # margin 0.05: relu(0.05 + 0.02 - 0.05) = 0.02
    assert wrong_prior_loss(own, wrong, clean, different, margin=0.05).item() == pytest.approx(0.02, abs=1e-6)
    # a pair of the same task does not count
    wrong_same = wrong.clone()
    wrong_same[1] = 0.0  # sample 1's "wrong" prior restores perfectly, but it is of its own task
    same = torch.tensor([1.0, 0.0])
    assert wrong_prior_loss(own, wrong_same, clean, same, margin=0.05).item() == pytest.approx(0.02, abs=1e-6)
    assert wrong_prior_loss(own, wrong, clean, torch.zeros(2), margin=0.05).item() == 0.0


def test_wrong_prior_loss_pulls_the_own_restoration_closer_and_the_wrong_one_away():
    clean = torch.zeros(1, 3, 4, 4)
    own = torch.full_like(clean, 0.04).requires_grad_()
    wrong = torch.full_like(clean, 0.05).requires_grad_()
    wrong_prior_loss(own, wrong, clean, torch.ones(1), margin=0.05).backward()
    assert torch.all(own.grad > 0)  # descent lowers the own error
    assert torch.all(wrong.grad < 0)  # and raises the wrong-prior error


def test_prior_contrast_loss_clusters_priors_by_task():
    labels = ["noise", "noise", "rain", "rain"]
    clustered = torch.tensor([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0], [0.1, 1.0]])
    mixed = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.1], [0.1, 1.0]])
    assert prior_contrast_loss(clustered, labels, 0.1) < prior_contrast_loss(mixed, labels, 0.1)
    assert prior_contrast_loss(mixed, ["a", "b", "c", "d"], 0.1).item() == 0.0  # no positives: zero
    priors = mixed.clone().requires_grad_()
    optimizer = torch.optim.SGD([priors], lr=0.05)
    cosine = lambda p: F.cosine_similarity(p[0], p[1], dim=0).item()  # noqa: E731  (both "noise")
    before = cosine(priors.detach())
    for _ in range(20):
        optimizer.zero_grad()
        prior_contrast_loss(priors, labels, 0.1).backward()
        optimizer.step()
    assert cosine(priors.detach()) > before + 0.1


def test_per_sample_weights_scale_each_patch_of_the_reconstruction_and_spectrum_terms():
    torch.manual_seed(0)
    clean = torch.rand(3, 3, 16, 16)
    restored = clean + 0.1 * torch.randn_like(clean)
    per_patch = (restored - clean).abs().mean(dim=(1, 2, 3))
    weights = torch.tensor([2.0, 0.5, 0.0])
    assert reconstruction_loss(restored, clean).item() == pytest.approx(F.l1_loss(restored, clean).item(), rel=1e-6)
    assert reconstruction_loss(restored, clean, weights).item() == pytest.approx((per_patch * weights).mean().item(), rel=1e-6)
    alone = [frequency_loss(restored[i:i + 1], clean[i:i + 1]).item() for i in range(3)]
    assert frequency_loss(restored, clean, weights).item() == pytest.approx((2 * alone[0] + 0.5 * alone[1]) / 3, rel=1e-5)


def test_the_coarse_term_squares_the_block_means_and_keeps_l1_for_the_rest():
    torch.manual_seed(0)
    clean = (torch.rand(2, 3, 32, 32) * 128).round() / 256  # dyadic values: the offsets below add exactly
    texture = 0.05 * torch.sign(torch.randn(2, 3, 32, 32))
    texture = texture - F.avg_pool2d(texture, 16).repeat_interleave(16, -1).repeat_interleave(16, -2)  # no block mean
    # an error with zero block means is scored by L1 as before
    assert reconstruction_loss(clean + texture, clean, coarse_scale=0.5).item() == pytest.approx(
        reconstruction_loss(clean + texture, clean).item(), rel=1e-5)
    # a constant offset m is scored m^2 / (2 scale): its push is L1's where m is the scale, less below it
    offset = 1 / 16
    assert reconstruction_loss(clean + offset, clean, coarse_scale=0.5).item() == pytest.approx(offset ** 2, rel=1e-5)
    assert reconstruction_loss(clean + offset, clean, coarse_scale=offset).item() == pytest.approx(offset / 2, rel=1e-5)
    restored = (clean + offset).requires_grad_()
    reconstruction_loss(restored, clean, coarse_scale=10 * offset).backward()
    assert restored.grad.abs().sum().item() == pytest.approx(0.1, rel=1e-4)  # L1's push is 1: a tenth at m = scale / 10
    with pytest.raises(ValueError, match="multiples of 16"):
        reconstruction_loss(clean[..., :30], clean[..., :30], coarse_scale=0.5)
